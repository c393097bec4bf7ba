#!/usr/bin/env python3
"""Writes OCI images into an OCI image layout, deterministically: the same input gives the same bytes.

Used by ci/real/images.sh. Reads a JSON spec on stdin:
  {"layout": DIR, "archives": DIR,
   "images": [{"ref": "registry.k8s.io/pause:3.10.1", "config": {...OCI config "config" part...},
               "layers": [ROOTFS_DIR, ...]}, ...]}
Each layer is a directory tree packed as a tar (entries sorted by path, mtime 0, uid/gid 0 and no user or
group names, modes as on disk, symlinks kept, hard links as plain files) compressed with gzip without a
name or a time in its header. The image config's `created` is the epoch and its history empty, so nothing
of the packing moment gets in. DIR becomes an OCI layout (oci-layout, index.json, blobs/sha256/) holding
every image, each index entry named by both `org.opencontainers.image.ref.name` (the full reference, which
`skopeo copy oci:DIR:REF` looks up) and `io.containerd.image.name` (what `ctr images import` names it).
With "archives", each image is also written as ARCHIVES/<repo-with-dashes>_<tag>.tar, a one-image OCI
layout in a tar (`ctr -n k8s.io images import FILE`, `skopeo copy oci-archive:FILE ...`).
Prints `REF DIGEST` for each image (the manifest's digest).
"""
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX = "application/vnd.oci.image.index.v1+json"


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(root):
    """The uncompressed tar of a directory tree, deterministic."""
    buf = io.BytesIO()
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            entries.append(os.path.relpath(full, root))
    entries.sort()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in entries:
            full = os.path.join(root, rel)
            st = os.lstat(full)
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(full)
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                sys.exit(f"ocipack: {full}: not a file, directory or symlink")
    return buf.getvalue()


class Layout:
    def __init__(self, path):
        self.path = path
        self.blobs = os.path.join(path, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)

    def put(self, data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        target = os.path.join(self.blobs, digest)
        if not os.path.exists(target):
            tmp = target + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, target)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def image(layout, spec, layer_cache):
    layers, diff_ids = [], []
    for root in spec["layers"]:
        if root not in layer_cache:
            raw = layer_tar(root)
            gz = io.BytesIO()
            with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=6) as z:
                z.write(raw)
            layer_cache[root] = (layout.put(gz.getvalue(), LAYER), "sha256:" + hashlib.sha256(raw).hexdigest())
        desc, diff_id = layer_cache[root]
        layers.append(desc)
        diff_ids.append(diff_id)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": spec["config"],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": layout.put(canonical(config), CONFIG),
        "layers": layers,
    }
    desc = layout.put(canonical(manifest), MANIFEST)
    desc["annotations"] = {
        "io.containerd.image.name": spec["ref"],
        "org.opencontainers.image.ref.name": spec["ref"],
    }
    desc["platform"] = {"architecture": "amd64", "os": "linux"}
    return desc, manifest


def write_index(path, manifests):
    with open(os.path.join(path, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}
    with open(os.path.join(path, "index.json"), "wb") as f:
        f.write(canonical(index))
    return index


def archive(layout, out, desc, manifest):
    """A one-image OCI layout as a tar, deterministic."""
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [desc]}
    files = {
        "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
        "index.json": canonical(index),
    }
    for d in [desc, manifest["config"], *manifest["layers"]]:
        files["blobs/sha256/" + d["digest"].split(":", 1)[1]] = None
    tmp = out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ["blobs", "blobs/sha256"]:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(files):
            data = files[name]
            if data is None:
                with open(os.path.join(layout.path, name), "rb") as f:
                    data = f.read()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    os.rename(tmp, out)


def main():
    spec = json.load(sys.stdin)
    layout = Layout(spec["layout"])
    cache, manifests = {}, []
    for img in sorted(spec["images"], key=lambda i: i["ref"]):
        desc, manifest = image(layout, img, cache)
        manifests.append(desc)
        if spec.get("archives"):
            os.makedirs(spec["archives"], exist_ok=True)
            repo, tag = img["ref"].rsplit(":", 1)
            archive(layout, os.path.join(spec["archives"], f"{repo.replace('/', '-')}_{tag}.tar"), desc, manifest)
        print(img["ref"], desc["digest"])
    write_index(layout.path, manifests)


if __name__ == "__main__":
    main()
