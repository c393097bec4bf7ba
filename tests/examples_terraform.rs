//! The Terraform examples (examples/terraform-libvirt, examples/aws) parse with a real HCL2 parser
//! (python-hcl2) and read only what kimage writes: every manifest key they use exists in a manifest of
//! DESIGN.md's shape, and every file they read is one the manifest names.

mod examples_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use examples_support::{Out, build};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The Python that has python-hcl2: $KIMAGE_PYTHON, else python3 from PATH.
fn python() -> Command {
    let py = std::env::var("KIMAGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import hcl2"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{py} cannot import hcl2; CI installs it (`{py} -m pip install python-hcl2`), \
         or set KIMAGE_PYTHON to a Python that has it"
    );
    Command::new(py)
}

struct Check {
    ok: bool,
    summary: serde_json::Value,
    stderr: String,
}

fn check(manifest: &Path, example: &str) -> Check {
    let o = python()
        .arg(repo("tests/examples_hcl_check.py"))
        .arg(manifest)
        .arg(repo(example))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "checker crashed: {stderr}"
    );
    Check {
        ok: o.status.success(),
        summary: serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("checker output is not JSON ({e}): {stderr}")),
        stderr,
    }
}

fn checked(c: &Check) -> Vec<String> {
    c.summary["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn assert_reads(c: &Check, keys: &[&str]) {
    let got = checked(c);
    for k in keys {
        assert!(
            got.iter().any(|g| g == k),
            "expected the example to read `{k}`; it reads {got:?}"
        );
    }
}

/// The manifest with `key` removed from every node, written beside the original.
fn without(out: &Out, key: &str) -> PathBuf {
    let mut m = out.manifest.clone();
    for n in m["nodes"].as_object_mut().unwrap().values_mut() {
        n.as_object_mut().unwrap().remove(key);
    }
    let p = out.dir.join(format!("manifest-without-{key}.json"));
    std::fs::write(&p, serde_json::to_vec(&m).unwrap()).unwrap();
    p
}

#[test]
fn libvirt_example_reads_only_what_kimage_writes() {
    let out = build("002-external-etcd-nginx", None);
    let c = check(&out.dir.join("manifest.json"), "examples/terraform-libvirt");
    assert!(c.ok, "{}\n{}", c.summary, c.stderr);
    assert_reads(
        &c,
        &[
            "local.manifest.nodes",
            "local.manifest.cluster",
            "node.user_data.path",
            "node.meta_data.path",
            "node.network_config.path",
            "node.seed.path",
            "node.seed.sha256",
            "each.value.seed_file",
            "each.value.user_data_file",
        ],
    );
    // The check can fail: a manifest without the seed the example attaches is refused.
    let c = check(&without(&out, "seed"), "examples/terraform-libvirt");
    assert!(!c.ok);
    assert!(c.summary["problems"].to_string().contains("no key `seed`"));
}

#[test]
fn aws_example_reads_only_what_kimage_writes() {
    let out = build(
        "002-external-etcd-nginx",
        Some(("url", "https://kimage-artifacts.s3.eu-west-1.amazonaws.com")),
    );
    let c = check(&out.dir.join("manifest.json"), "examples/aws");
    assert!(c.ok, "{}\n{}", c.summary, c.stderr);
    assert_reads(
        &c,
        &[
            "node.layers",
            "layer.path",
            "layer.sha256",
            "node.user_data.path",
            "node.user_data.bytes",
            "node.user_data.sha256",
        ],
    );
    let c = check(&without(&out, "layers"), "examples/aws");
    assert!(!c.ok);
    assert!(
        c.summary["problems"]
            .to_string()
            .contains("no key `layers`")
    );
}

/// Evaluates Terraform expressions of examples/aws/main.tf in Python with the semantics of the
/// Terraform functions they use, and prints the results as JSON.
const EVAL_AWS: &str = r#"
import base64, gzip, hcl2, json, math, re, sys
src = hcl2.load(open(sys.argv[1]))
loc = {k: v for b in src["locals"] for k, v in b.items() if not k.startswith("__")}
def body(expr, head):
    e = expr[3:-2] if expr.startswith("${{") else expr
    assert e.startswith(head), e
    return e[len(head):]
def substr(s, off, n):
    if off < 0: off = len(s) + off
    return s[off:] if n < 0 else s[off:off + n]
env = {"floor": math.floor, "length": len, "regexall": re.findall, "substr": substr}
sent = body(loc["user_data_sent_bytes"], "for name, b64 in local.user_data_b64 : name => ")
limit = loc["user_data_limit"]
url = loc["layers_base_url"].strip('"')
sizes = [0, 1, 2, 3, 4, 5, 100, 16382, 16383, 16384, 16385, 16386, 16387, 20000]
out = {"limit": limit, "url": url, "decoded": {}}
for n in sizes:
    data = bytes(range(256)) * (n // 256 + 1)
    b64 = base64.b64encode(data[:n]).decode()
    out["decoded"][n] = eval(sent, dict(env, b64=b64))
print(json.dumps(out))
"#;

#[test]
fn aws_example_checks_the_size_ec2_counts_against_16_kib() {
    let o = python()
        .args(["-c", EVAL_AWS])
        .arg(repo("examples/aws/main.tf"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The limit in the example is kimage's own (userdata::LIMITS) for EC2.
    let ec2 = kimage::userdata::LIMITS
        .iter()
        .find(|(w, _)| *w == "AWS EC2")
        .unwrap()
        .1;
    assert_eq!(v["limit"], ec2 as u64);
    // The example's expression recovers the raw size from the base64 text, exactly.
    for (n, decoded) in v["decoded"].as_object().unwrap() {
        assert_eq!(
            decoded.as_u64().unwrap(),
            n.parse::<u64>().unwrap(),
            "size {n}"
        );
    }
    // The precondition compares that size with the limit, so 16385 bytes fail and 16384 pass.
    let main = std::fs::read_to_string(repo("examples/aws/main.tf")).unwrap();
    assert!(
        main.contains(
            "condition     = local.user_data_sent_bytes[each.key] <= local.user_data_limit"
        )
    );
}

#[test]
fn aws_example_base_url_is_what_the_user_data_names() {
    // The check block warns when a node's user-data does not contain layers_base_url; that only
    // works if kimage writes layers.baseURL into the user-data verbatim, which this pins.
    let base = "https://kimage-artifacts.s3.eu-west-1.amazonaws.com";
    let out = build("001-minimal", Some(("url", base)));
    for (node, ud) in &out.user_data {
        assert!(
            ud.contains(base),
            "user-data of {node} does not name {base}"
        );
    }
    let o = python()
        .args(["-c", EVAL_AWS])
        .arg(repo("examples/aws/main.tf"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let url = v["url"]
        .as_str()
        .unwrap()
        .replace("${var.bucket_name}", "kimage-artifacts")
        .replace("${var.region}", "eu-west-1");
    assert_eq!(url, base);
}

#[test]
fn example_readmes_name_files_that_exist() {
    for ex in ["terraform-libvirt", "virt-install", "aws"] {
        let dir = repo(&format!("examples/{ex}"));
        let readme = std::fs::read_to_string(dir.join("README.md"))
            .unwrap_or_else(|e| panic!("examples/{ex}/README.md: {e}"));
        for word in readme.split(|c: char| c.is_whitespace() || "`()[]".contains(c)) {
            let w = word.trim_end_matches([',', '.', ':', ';']);
            if (w.ends_with(".tf") || w.ends_with(".sh")) && !w.contains('/') && !w.contains('*') {
                assert!(
                    dir.join(w).exists(),
                    "examples/{ex}/README.md mentions {w}, which does not exist"
                );
            }
        }
    }
}
