#!/usr/bin/env python3
"""Checks a Terraform example against a kimage output directory.

usage: examples_hcl_check.py MANIFEST_JSON TF_DIR

- every *.tf in TF_DIR parses with python-hcl2 (a real HCL2 parser);
- every manifest key the configuration reads (local.manifest.X, and attributes of loop variables
  bound to manifest collections, e.g. `for name, node in local.manifest.nodes` then node.seed.path)
  exists in MANIFEST_JSON, in every element it is read from;
- every `each.value.X` in a resource iterating over a local built from the manifest is one of the
  keys that local defines;
- every file read below the output directory is manifest.json or a path the manifest names
  (`${local.out}/${<binding>.path}`): no hard-coded artifact paths.

Prints a JSON summary on stdout; exits 1 listing the problems, 3 when python-hcl2 is missing.
Loop variables must keep one meaning per configuration (the check is textual, not scoped).
"""
import json
import pathlib
import re
import sys

try:
    import hcl2
except ImportError:
    print("python-hcl2 is not installed: python3 -m pip install python-hcl2", file=sys.stderr)
    sys.exit(3)

FOR_RE = re.compile(r"\bfor\s+(\w+)(?:\s*,\s*(\w+))?\s+in\s+([A-Za-z_][\w.]*)")
REF_RE = re.compile(r"(?<![\w.])([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)")
EACH_RE = re.compile(r"\beach\.value\.(\w+)")
LOCAL_RE = re.compile(r"\blocal\.(\w+)")
OUT_PATH_RE = re.compile(r"\$\{local\.out\}/(?!manifest\.json\"|\$\{[A-Za-z_][\w.]*\.path\})")


def strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for k, v in x.items():
            if k == "__comments__":
                continue
            yield from strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from strings(v)


def elements(values):
    out = []
    for v in values:
        if isinstance(v, dict):
            out.extend(v.values())
        elif isinstance(v, list):
            out.extend(v)
    return out


def object_keys(expr):
    """Keys of the objects a `{for ... : k => {a = ..., b = ...}}` expression builds, or None."""
    m = re.search(r"=>\s*\{", expr)
    if not m:
        return None
    return set(re.findall(r"(?:\{|,)\s*([A-Za-z_]\w*)\s*=(?!=)", expr[m.end() - 1:]))


def main(manifest_path, tf_dir):
    manifest = json.load(open(manifest_path))
    problems = []
    tf_files = sorted(pathlib.Path(tf_dir).glob("*.tf"))
    if not tf_files:
        problems.append(f"no .tf files in {tf_dir}")
    docs = {}
    for f in tf_files:
        try:
            docs[f.name] = hcl2.load(open(f))
        except Exception as e:  # the parser's own message names the line
            problems.append(f"{f}: does not parse as HCL2: {e}")
    all_exprs = [s for d in docs.values() for s in strings(d)]

    locals_ = {}
    for d in docs.values():
        for block in d.get("locals", []):
            for k, v in block.items():
                if not k.startswith("__"):
                    locals_[k] = v if isinstance(v, str) else json.dumps(v)
    if "manifest" not in locals_ or "manifest.json" not in locals_["manifest"]:
        problems.append("local.manifest must be jsondecode(file(\"${local.out}/manifest.json\"))")
    derived = {k: keys for k, v in locals_.items() if (keys := object_keys(v)) is not None}

    # Loop variables bound to manifest values: name -> (collection expression, element values).
    bindings = {}
    checked = set()

    def resolve(expr):
        """Values `expr` denotes in the manifest, or None if it is not a manifest expression."""
        parts = expr.split(".")
        if parts[:2] == ["local", "manifest"]:
            values, rest, root = [manifest], parts[2:], "manifest"
        elif parts[0] in bindings:
            values, rest, root = bindings[parts[0]][1], parts[1:], parts[0]
        else:
            return None
        path = root
        for attr in rest:
            path += "." + attr
            nxt = []
            for v in values:
                if isinstance(v, dict) and attr in v:
                    nxt.append(v[attr])
                else:
                    problems.append(f"`{expr}`: the manifest has no key `{attr}` at `{path}`")
                    return []
            values = nxt
        checked.add(expr)
        return values

    changed = True
    while changed:
        changed = False
        for e in all_exprs:
            for m in FOR_RE.finditer(e):
                var = m.group(2) or m.group(1)
                coll = m.group(3)
                if coll.split(".")[0] == var:
                    continue
                if var in bindings:
                    if bindings[var][0] != coll and resolve(coll) is not None:
                        problems.append(
                            f"loop variable `{var}` iterates over both `{bindings[var][0]}` and `{coll}`; "
                            "use distinct names so the check can follow them"
                        )
                    continue
                values = resolve(coll)
                if values is not None:
                    bindings[var] = (coll, elements(values))
                    changed = True
    if not any(b[0] == "local.manifest.nodes" for b in bindings.values()):
        problems.append("nothing iterates over local.manifest.nodes")

    # Every attribute read from the manifest or a manifest-bound loop variable must exist.
    for e in all_exprs:
        for m in REF_RE.finditer(e):
            head, tail = m.group(1), m.group(2)
            if head == "local" and tail.startswith(".manifest"):
                resolve("local" + tail)
            elif head in bindings:
                resolve(head + tail)

    # Loop variables over derived locals, and each.value in resources over them, use defined keys.
    for e in all_exprs:
        for m in FOR_RE.finditer(e):
            var = m.group(2) or m.group(1)
            coll = m.group(3)
            if coll.startswith("local.") and coll[6:] in derived:
                for r in re.finditer(rf"(?<![\w.]){re.escape(var)}\.(\w+)", e):
                    if r.group(1) not in derived[coll[6:]]:
                        problems.append(f"`{var}.{r.group(1)}`: {coll} has no key `{r.group(1)}`")
                    checked.add(f"{coll}.{r.group(1)}")

    def blocks(d):
        for kind in ("resource", "data"):
            for entry in d.get(kind, []):
                for rtype, named in entry.items():
                    for rname, body in named.items():
                        yield f"{kind} {rtype.strip(chr(34))}.{rname.strip(chr(34))}", body
        for entry in d.get("output", []):
            for oname, body in entry.items():
                yield f"output {oname.strip(chr(34))}", body

    for d in docs.values():
        for label, body in blocks(d):
            texts = list(strings(body))
            uses = {u for t in texts for u in EACH_RE.findall(t)}
            if not uses:
                continue
            for_each = body.get("for_each", "")
            keys = set()
            for name in LOCAL_RE.findall(str(for_each)):
                keys |= derived.get(name, set())
            if not keys:
                problems.append(f"{label}: uses each.value but its for_each is not a local built from the manifest")
                continue
            for u in sorted(uses - keys):
                problems.append(f"{label}: each.value.{u} is not a key of {for_each}")
            checked.update(f"each.value.{u}" for u in uses & keys)

    # Files below the output directory: manifest.json or paths the manifest names.
    for e in all_exprs:
        for m in OUT_PATH_RE.finditer(e):
            problems.append(f"reads `{e[m.start():m.start() + 60]}`, a path below the output directory the manifest does not name")

    summary = {
        "files": [f.name for f in tf_files],
        "bindings": {k: v[0] for k, v in sorted(bindings.items())},
        "checked": sorted(checked),
        "problems": problems,
    }
    print(json.dumps(summary, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
