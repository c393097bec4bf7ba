//! Layers judged by the tools that read them on and off the node: GNU tar (byte-identical to its own
//! deterministic output, listing, extraction), Python's tarfile, gzip -t, pigz -t.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kimage::layers::{Entry, LayerBuilder, LayerError, extract};

const MTIME: u64 = 1_700_000_000;

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed; install the Debian package that provides it"
    );
    Command::new(name)
}

fn ok(mut c: Command) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("running {c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn long_name(n: usize) -> String {
    (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect()
}

/// The reference tree every test here uses: the modes a node needs, a symlink with an absolute target, a
/// long symlink target, shared bytes, names of 99, 100 and 101+ bytes (around the tar name field's size).
fn reference_entries(bigfile: &Path) -> Vec<Entry> {
    vec![
        Entry::file(
            "/etc/kubernetes/pki/ca.key",
            0o600,
            "-----BEGIN EC PRIVATE KEY-----\n",
        ),
        Entry::file(
            "/etc/kubernetes/pki/ca.crt",
            0o644,
            "-----BEGIN CERTIFICATE-----\n",
        ),
        Entry::dir("/etc/kubernetes/pki", 0o700),
        Entry::dir("/var/lib/etcd", 0o700),
        Entry::file(
            "/usr/local/bin/etcd",
            0o755,
            kimage::layers::Content::Path(bigfile.to_path_buf()),
        ),
        Entry::file("/etc/hosts", 0o644, "127.0.0.1 localhost\n"),
        Entry::file("/etc/empty", 0o644, ""),
        Entry::symlink(
            "/etc/systemd/system/multi-user.target.wants/kubelet.service",
            "/etc/systemd/system/kubelet.service",
        ),
        // Shared bytes (a file rendered once for many nodes) are written like any other.
        Entry::file(
            "/etc/systemd/system/kubelet.service",
            0o644,
            kimage::layers::Blob::new(b"[Unit]\n".to_vec()),
        ),
        Entry::symlink("/usr/local/bin/long-link", format!("../{}", long_name(140))),
        Entry::file(format!("/opt/{}", long_name(95)), 0o644, "99 bytes\n"),
        Entry::file(format!("/opt/{}", long_name(96)), 0o644, "100 bytes\n"),
        Entry::file(format!("/opt/{}", long_name(97)), 0o644, "101 bytes\n"),
        Entry::file(
            format!("/opt/deep/{}/{}", long_name(120), long_name(200)),
            0o640,
            "very long\n",
        ),
        Entry::dir(format!("/opt/dir-{}", long_name(120)), 0o750),
        Entry::file("/usr/local/bin/setuid-tool", 0o4755, "#!/bin/sh\n"),
    ]
}

/// ~3 MB that is not all alike: exercises streaming from disk and several 128 KiB chunks.
fn write_bigfile(dir: &Path) -> PathBuf {
    let p = dir.join("etcd.bin");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..3_000_017u32)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 4 == 0 {
                x as u8
            } else {
                b"GOROOT runtime.gopark "[(i % 22) as usize]
            }
        })
        .collect();
    fs::write(&p, data).unwrap();
    p
}

fn builder(entries: impl IntoIterator<Item = Entry>) -> LayerBuilder {
    let mut b = LayerBuilder::new(MTIME);
    for e in entries {
        b.entry(e);
    }
    b
}

/// Materializes the same tree on disk for GNU tar.
fn materialize(entries: &[Entry], root: &Path) {
    for e in entries {
        let p = root.join(e.path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        match &e.kind {
            kimage::layers::EntryKind::Directory => fs::create_dir_all(&p).unwrap(),
            kimage::layers::EntryKind::File(kimage::layers::Content::Path(s)) => {
                fs::copy(s, &p).unwrap();
            }
            kimage::layers::EntryKind::File(c) => fs::write(&p, c.bytes().unwrap()).unwrap(),
            kimage::layers::EntryKind::Symlink(t) => symlink(t, &p).unwrap(),
        }
    }
    // Explicit modes everywhere (implicit parents 0755), independent of the umask.
    for d in walk(root) {
        let m = fs::symlink_metadata(&d).unwrap();
        if m.is_dir() {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    for e in entries {
        if !matches!(e.kind, kimage::layers::EntryKind::Symlink(_)) {
            let p = root.join(e.path.trim_start_matches('/'));
            fs::set_permissions(&p, fs::Permissions::from_mode(e.mode)).unwrap();
        }
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn uncompressed_tar_is_byte_identical_to_gnu_tar_deterministic_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let big = write_bigfile(tmp.path());
    let entries = reference_entries(&big);
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    materialize(&entries, &root);
    let mut tops: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    tops.sort();
    let mut c = tool("tar");
    c.args([
        "--format=gnu",
        "--sort=name",
        "--numeric-owner",
        "--owner=0",
        "--group=0",
    ])
    .arg(format!("--mtime=@{MTIME}"))
    .arg("-cf")
    .arg("-")
    .arg("-C")
    .arg(&root)
    .args(&tops);
    let gnu = ok(c).stdout;
    let mut ours = Vec::new();
    builder(entries).write_tar(&mut ours).unwrap();
    assert_eq!(ours.len(), gnu.len(), "tar length differs from GNU tar's");
    if ours != gnu {
        let at = ours.iter().zip(&gnu).position(|(a, b)| a != b).unwrap();
        panic!(
            "first difference at byte {at} (block {}, offset {}): ours {:?} gnu {:?}",
            at / 512,
            at % 512,
            String::from_utf8_lossy(&ours[at / 512 * 512..at / 512 * 512 + 512]),
            String::from_utf8_lossy(&gnu[at / 512 * 512..at / 512 * 512 + 512])
        );
    }
}

#[test]
fn gzip_pigz_gnu_tar_and_python_read_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let big = write_bigfile(tmp.path());
    let mut entries = reference_entries(&big);
    entries.push(
        Entry::file("/var/lib/kubelet/owned", 0o640, "x\n")
            .owner(1000, 1001)
            .names("kube", "kubegrp"),
    );
    let b = builder(entries);
    let stored = b.write_into_dir(&tmp.path().join("layers")).unwrap();
    let layer = &stored.path;
    assert_eq!(
        layer.file_name().unwrap().to_string_lossy(),
        format!("{}.tar.gz", stored.info.sha256)
    );
    assert_eq!(fs::metadata(layer).unwrap().len(), stored.info.bytes);

    // The digest is the sha256 of the bytes, as sha256sum sees them.
    let sum = ok({
        let mut c = tool("sha256sum");
        c.arg(layer);
        c
    });
    assert!(String::from_utf8_lossy(&sum.stdout).starts_with(&stored.info.sha256));

    for t in ["gzip", "pigz"] {
        let mut c = tool(t);
        c.arg("-t").arg(layer);
        ok(c);
    }
    // Fixed gzip header: no name, MTIME 0, XFL 0 (level 6), OS 3.
    let gz = fs::read(layer).unwrap();
    assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    // gzip -dc gives back exactly the tar stream.
    let mut c = tool("gzip");
    c.arg("-dc").arg(layer);
    let mut tar = Vec::new();
    b.write_tar(&mut tar).unwrap();
    assert!(
        ok(c).stdout == tar,
        "gzip -dc output differs from the tar stream"
    );

    // GNU tar's verbose listing: modes, numeric owners, mtime.
    let mut c = tool("tar");
    c.env("TZ", "UTC")
        .args(["--numeric-owner", "--full-time", "-tvzf"])
        .arg(layer);
    let listing = String::from_utf8(ok(c).stdout).unwrap();
    for want in [
        "-rw------- 0/0 31 2023-11-14 22:13:20 etc/kubernetes/pki/ca.key",
        "drwx------ 0/0 0 2023-11-14 22:13:20 etc/kubernetes/pki/",
        "drwxr-xr-x 0/0 0 2023-11-14 22:13:20 etc/",
        "-rwxr-xr-x 0/0 3000017 2023-11-14 22:13:20 usr/local/bin/etcd",
        "-rwsr-xr-x 0/0 10 2023-11-14 22:13:20 usr/local/bin/setuid-tool",
        "-rw-r----- 1000/1001 2 2023-11-14 22:13:20 var/lib/kubelet/owned",
        "lrwxrwxrwx 0/0 0 2023-11-14 22:13:20 etc/systemd/system/multi-user.target.wants/kubelet.service -> /etc/systemd/system/kubelet.service",
    ] {
        let norm: Vec<String> = listing
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert!(
            norm.iter().any(|l| l == want),
            "tar -tv lacks {want:?}:\n{listing}"
        );
    }
    // The listing is in our order: every parent before its children, per-directory name order.
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    assert_eq!(names[0], "etc/");
    assert!(names.contains(&format!("opt/deep/{}/{}", long_name(120), long_name(200)).as_str()));

    // GNU tar extraction as root keeps modes and owners.
    let x = tmp.path().join("gnu-x");
    fs::create_dir(&x).unwrap();
    let mut c = tool("tar");
    c.args(["--same-owner", "--same-permissions", "-xzf"])
        .arg(layer)
        .arg("-C")
        .arg(&x);
    ok(c);
    let m = |p: &str| fs::symlink_metadata(x.join(p)).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(m("etc/kubernetes/pki/ca.key").mode() & 0o7777, 0o600);
    assert_eq!(m("etc/kubernetes/pki").mode() & 0o7777, 0o700);
    assert_eq!(m("usr/local/bin/setuid-tool").mode() & 0o7777, 0o4755);
    assert_eq!(m("usr/local/bin/etcd").mtime(), MTIME as i64);
    assert_eq!(
        fs::read(x.join("usr/local/bin/etcd")).unwrap(),
        fs::read(&big).unwrap()
    );
    if is_root() {
        assert_eq!(
            (
                m("var/lib/kubelet/owned").uid(),
                m("var/lib/kubelet/owned").gid()
            ),
            (1000, 1001)
        );
    }

    // Python's tarfile sees the same metadata.
    let script = r#"
import sys, tarfile, json
with tarfile.open(sys.argv[1], "r:gz") as t:
    print(json.dumps([[m.name, oct(m.mode), m.uid, m.gid, m.uname, m.gname, m.mtime, m.type.decode(), m.linkname, m.size] for m in t.getmembers()]))
"#;
    let mut c = tool("python3");
    c.arg("-c").arg(script).arg(layer);
    let members: Vec<serde_json::Value> = serde_json::from_slice(&ok(c).stdout).unwrap();
    let find = |n: &str| {
        members
            .iter()
            .find(|m| m[0] == n)
            .unwrap_or_else(|| panic!("{n} missing: {members:?}"))
    };
    assert_eq!(find("etc/kubernetes/pki/ca.key")[1], "0o600");
    assert_eq!(find("var/lib/etcd")[1], "0o700");
    assert_eq!(find("var/lib/etcd")[7], "5");
    let owned = find("var/lib/kubelet/owned");
    assert_eq!(
        (&owned[2], &owned[3], &owned[4], &owned[5]),
        (
            &1000.into(),
            &1001.into(),
            &"kube".into(),
            &"kubegrp".into()
        )
    );
    assert_eq!(find("usr/local/bin/etcd")[6], MTIME);
    assert_eq!(find("usr/local/bin/etcd")[9], 3_000_017);
    assert_eq!(
        find("usr/local/bin/long-link")[8],
        format!("../{}", long_name(140))
    );
    assert_eq!(find("etc/hosts")[4], "");
    assert!(
        members.iter().all(|m| m[6] == MTIME),
        "every member has the fixed mtime"
    );
    assert_eq!(members.len(), 31, "{members:#?}");

    // Python's extraction (the 'tar' filter: refuses absolute names and escapes, keeps permission bits
    // except setuid/setgid) restores modes and content.
    let py = tmp.path().join("py-x");
    let script = r#"
import os, sys, tarfile
with tarfile.open(sys.argv[1], "r:gz") as t:
    t.extractall(sys.argv[2], filter="tar")
for p in ["etc/kubernetes/pki/ca.key", "etc/kubernetes/pki", "usr/local/bin/etcd", "var/lib/etcd"]:
    st = os.lstat(os.path.join(sys.argv[2], p))
    print(p, oct(st.st_mode & 0o7777), int(st.st_mtime))
"#;
    let mut c = tool("python3");
    c.arg("-c").arg(script).arg(layer).arg(&py);
    let got = String::from_utf8(ok(c).stdout).unwrap();
    assert_eq!(
        got,
        format!(
            "etc/kubernetes/pki/ca.key 0o600 {MTIME}\netc/kubernetes/pki 0o700 {MTIME}\n\
             usr/local/bin/etcd 0o755 {MTIME}\nvar/lib/etcd 0o700 {MTIME}\n"
        )
    );
    assert_eq!(
        fs::read(py.join("usr/local/bin/etcd")).unwrap(),
        fs::read(&big).unwrap()
    );
}

fn is_root() -> bool {
    let mut c = Command::new("id");
    c.arg("-u");
    ok(c).stdout == b"0\n"
}

#[test]
fn same_entries_give_the_same_bytes_whatever_order_or_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let big = write_bigfile(tmp.path());
    let entries = reference_entries(&big);
    let mut reversed = entries.clone();
    reversed.reverse();
    let build = |es: &[Entry], threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut out = Vec::new();
        let info = pool
            .install(|| builder(es.to_vec()).build_to(&mut out))
            .unwrap();
        (info, out)
    };
    let (a, abytes) = build(&entries, 1);
    let (b, bbytes) = build(&reversed, 2);
    let (c, cbytes) = build(&entries, 4);
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert!(abytes == bbytes && abytes == cbytes);
    // digest() (no output) agrees with what build_to wrote.
    assert_eq!(builder(entries).digest().unwrap(), a);
}

/// Layer ids are part of the output contract: if this changes, every layer id changes (a new deflate
/// implementation or tar layout). Update deliberately, never casually.
#[test]
fn pinned_digest_of_a_small_layer() {
    let mut b = LayerBuilder::new(MTIME);
    b.file("/etc/hosts", 0o644, "127.0.0.1 localhost\n")
        .dir("/var/lib/etcd", 0o700)
        .symlink("/usr/bin/x", "y");
    let info = b.digest().unwrap();
    assert_eq!(
        info.sha256, "c2f9390bd1876efe3e530ca7baaa4b728f79927e103da3a1ac80d11933592f3a",
        "{info:?}"
    );
    // Many chunks, each primed with its predecessor's tail: pins the parallel path too.
    let tmp = tempfile::tempdir().unwrap();
    let big = write_bigfile(tmp.path());
    let info = builder(reference_entries(&big)).digest().unwrap();
    assert_eq!(
        info.sha256, "a61137e6d314d582378bb6528584b349eed5470eef1ae190c70b34854adf3aab",
        "{info:?}"
    );
}

#[test]
fn extract_restores_the_tree_and_refuses_a_wrong_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let big = write_bigfile(tmp.path());
    let stored = builder(reference_entries(&big))
        .write_into_dir(tmp.path())
        .unwrap();
    let into = tmp.path().join("x");
    let wrong = "0".repeat(64);
    let err = extract(&stored.path, &wrong, &into).unwrap_err();
    assert!(matches!(err, LayerError::DigestMismatch { .. }), "{err}");
    assert!(
        !into.exists(),
        "nothing is written before the digest is checked"
    );

    let s = extract(&stored.path, &stored.info.sha256, &into).unwrap();
    assert_eq!((s.files, s.symlinks), (11, 2));
    use std::os::unix::fs::MetadataExt;
    let m = |p: &str| fs::symlink_metadata(into.join(p)).unwrap();
    assert_eq!(m("etc/kubernetes/pki/ca.key").mode() & 0o7777, 0o600);
    assert_eq!(m("etc/kubernetes/pki").mode() & 0o7777, 0o700);
    assert_eq!(m("etc/kubernetes").mode() & 0o7777, 0o755);
    assert_eq!(m("usr/local/bin/setuid-tool").mode() & 0o7777, 0o4755);
    assert_eq!(m("etc/kubernetes/pki").mtime(), MTIME as i64);
    assert_eq!(m("usr/local/bin/etcd").mtime(), MTIME as i64);
    assert_eq!(
        fs::read(into.join("usr/local/bin/etcd")).unwrap(),
        fs::read(&big).unwrap()
    );
    assert_eq!(
        fs::read_link(into.join("etc/systemd/system/multi-user.target.wants/kubelet.service"))
            .unwrap(),
        Path::new("/etc/systemd/system/kubelet.service")
    );
    // GNU tar agrees with what we extracted: `tar -d` compares the archive against the directory.
    let mut c = tool("tar");
    c.args(["-dzf"]).arg(&stored.path).arg("-C").arg(&into);
    ok(c);
}

/// Archives made by Python's tarfile with the classic escape tricks; extract must refuse each one and write
/// nothing outside the target directory.
#[test]
fn extract_refuses_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import sys, tarfile, io
def add(t, name, data=b"x", typ=tarfile.REGTYPE, link=""):
    i = tarfile.TarInfo(name); i.type = typ; i.linkname = link; i.size = len(data) if typ == tarfile.REGTYPE else 0
    t.addfile(i, io.BytesIO(data) if typ == tarfile.REGTYPE else None)
cases = {
  "abs": [("/tmp/kimage-escape-abs", )],
  "dotdot": [("a/../../kimage-escape-dotdot", )],
  "through-symlink": [("link", b"", tarfile.SYMTYPE, sys.argv[2]), ("link/kimage-escape-link", )],
  "hardlink": [("h", b"", tarfile.LNKTYPE, "/etc/passwd")],
  "device": [("dev", b"", tarfile.CHRTYPE)],
}
for name, entries in cases.items():
    with tarfile.open(f"{sys.argv[1]}/{name}.tar.gz", "w:gz", format=tarfile.GNU_FORMAT) as t:
        for e in entries:
            add(t, *e)
"#;
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let mut c = tool("python3");
    c.arg("-c").arg(script).arg(tmp.path()).arg(&outside);
    ok(c);
    for case in ["abs", "dotdot", "through-symlink", "hardlink", "device"] {
        let layer = tmp.path().join(format!("{case}.tar.gz"));
        let (sha, _) = kimage::layers::sha256_file(&layer).unwrap();
        let into = tmp.path().join(format!("into-{case}"));
        let err = extract(&layer, &sha, &into).unwrap_err();
        assert!(
            matches!(err, LayerError::UnsafeEntry { .. }),
            "{case}: {err}"
        );
    }
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "something escaped into {}",
        outside.display()
    );
    assert!(!Path::new("/tmp/kimage-escape-abs").exists());
    assert!(!tmp.path().join("kimage-escape-dotdot").exists());
}
