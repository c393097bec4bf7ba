//! The NoCloud seed judged by the tools that read FAT volumes: fsck.fat (dosfstools) must find it clean,
//! blkid and file must see a vfat volume labelled cidata, mtools must read every file back byte for byte.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kimage::seed::{FatType, SeedError, Source, image_size, write_seed, write_seed_to};

const MTIME: u64 = 1_700_000_000;

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed (Debian: dosfstools, mtools, util-linux, file)"
    );
    let mut c = Command::new(name);
    // mtools reads ~/.mtoolsrc and /etc/mtools.conf; neither may change what it sees here.
    c.env("MTOOLSRC", "/dev/null");
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("running {c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Pseudo-random bytes (not compressible, not all alike) written to `dir/name`.
fn noise_file(dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    let p = dir.join(name);
    let mut x = seed | 1;
    let mut f = std::io::BufWriter::new(fs::File::create(&p).unwrap());
    for _ in 0..len / 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        f.write_all(&x.to_le_bytes()).unwrap();
    }
    f.write_all(&vec![0xa5; len % 8]).unwrap();
    f.flush().unwrap();
    p
}

fn node_files(tmp: &Path) -> Vec<(String, Source)> {
    let layer_a = noise_file(tmp, "a.tar.gz", 1_234_567, 1);
    let layer_b = noise_file(tmp, "b.tar.gz", 4097, 2);
    let empty = tmp.join("empty");
    fs::write(&empty, b"").unwrap();
    vec![
        (
            "user-data".into(),
            Source::from("#cloud-config\nhostname: master-1\n"),
        ),
        (
            "meta-data".into(),
            Source::from("instance-id: master-1\nlocal-hostname: master-1\n"),
        ),
        (
            "network-config".into(),
            Source::from("version: 2\nethernets: {}\n"),
        ),
        (
            format!("layers/{}.tar.gz", "a".repeat(64)),
            Source::Path(layer_a),
        ),
        (
            format!("layers/{}.tar.gz", "ab".repeat(32)),
            Source::Path(layer_b),
        ),
        ("layers/empty".into(), Source::Path(empty)),
        ("deep/er/still/file.txt".into(), Source::from("nested\n")),
    ]
}

fn content(src: &Source) -> Vec<u8> {
    match src {
        Source::Bytes(b) => b.clone(),
        Source::Path(p) => fs::read(p).unwrap(),
    }
}

/// fsck.fat -n (no changes) with the verification pass; exit 0 and no complaint in its output.
fn fsck_clean(img: &Path) {
    let mut c = tool("fsck.vfat");
    c.args(["-n", "-V", "-v"]).arg(img);
    let out = run(c);
    let t = text(&out);
    for bad in [
        "differ",
        "Warning",
        "warning",
        "Free cluster summary",
        "invalid",
        "bad",
        "Orphan",
        "Dirty",
    ] {
        assert!(!t.contains(bad), "fsck.fat reports {bad:?}:\n{t}");
    }
}

fn read_back(img: &Path, files: &[(String, Source)], tmp: &Path) {
    for (i, (name, src)) in files.iter().enumerate() {
        let out = tmp.join(format!("back-{i}"));
        let mut c = tool("mcopy");
        c.args(["-n", "-i"])
            .arg(img)
            .arg(format!("::/{name}"))
            .arg(&out);
        run(c);
        assert!(
            fs::read(&out).unwrap() == content(src),
            "{name} read back by mcopy differs"
        );
        fs::remove_file(out).unwrap();
    }
}

#[test]
fn small_seed_is_a_clean_fat16_volume_labelled_cidata_that_mtools_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let files = node_files(tmp.path());
    let img = tmp.path().join("nodes/master-1/seed.img");
    let info = write_seed(&img, &files, MTIME).unwrap();
    assert_eq!(info.fat, FatType::Fat16);
    assert_eq!(fs::metadata(&img).unwrap().len(), info.bytes);
    assert_eq!(
        info.bytes,
        image_size(&files, MTIME).unwrap(),
        "the size is known before writing"
    );
    assert_eq!(info.bytes % (1 << 20), 0, "whole MiB");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&img).unwrap().permissions().mode() & 0o777,
        0o600,
        "user-data holds private keys"
    );

    let mut c = tool("sha256sum");
    c.arg(&img);
    assert!(String::from_utf8_lossy(&run(c).stdout).starts_with(&info.sha256));

    fsck_clean(&img);

    let mut c = tool("blkid");
    c.args(["-p", "-o", "export"]).arg(&img);
    let b = text(&run(c));
    assert!(b.contains("\nLABEL=cidata\n"), "{b}");
    assert!(b.contains("\nTYPE=vfat\n"), "{b}");
    assert!(b.contains("VERSION=FAT16"), "{b}");
    let serial = format!("{:04X}-{:04X}", info.serial >> 16, info.serial & 0xffff);
    assert!(b.contains(&format!("UUID={serial}")), "{b}");

    let mut c = tool("file");
    c.arg(&img);
    let f = text(&run(c));
    assert!(
        f.contains("label: \"cidata     \"") && f.contains("FAT (16 bit)"),
        "{f}"
    );

    // Listing: long names, the fixed timestamp (FAT stores local time; we write the UTC wall clock).
    let mut c = tool("mdir");
    c.args(["-a", "-i"]).arg(&img).arg("::/layers");
    let l = text(&run(c));
    assert!(l.contains(&format!("{}.tar.gz", "a".repeat(64))), "{l}");
    assert!(l.contains("2023-11-14  22:13"), "{l}");
    let mut c = tool("mdir");
    c.args(["-i"]).arg(&img).arg("::/");
    let l = text(&run(c));
    for n in ["user-data", "meta-data", "network-config", "layers", "deep"] {
        assert!(l.contains(n), "{n} missing from:\n{l}");
    }
    assert!(l.contains("Volume in drive : is cidata"), "{l}");

    read_back(&img, &files, tmp.path());
}

#[test]
fn large_seed_switches_to_fat32_and_streams_a_300_mb_layer() {
    let tmp = tempfile::tempdir().unwrap();
    // Sparse: cheap to create, still 300 MB of content to stream and verify.
    let big = tmp.path().join("big.tar.gz");
    let f = fs::File::create(&big).unwrap();
    f.set_len(300_000_000).unwrap();
    drop(f);
    let mid = noise_file(tmp.path(), "mid.tar.gz", 5_000_001, 7);
    let files = vec![
        ("user-data".to_string(), Source::from("#cloud-config\n")),
        (
            "meta-data".to_string(),
            Source::from("instance-id: node-1\n"),
        ),
        ("network-config".to_string(), Source::from("version: 2\n")),
        (
            format!("layers/{}.tar.gz", "c".repeat(64)),
            Source::Path(big),
        ),
        (
            format!("layers/{}.tar.gz", "d".repeat(64)),
            Source::Path(mid),
        ),
    ];
    let img = tmp.path().join("seed.img");
    let info = write_seed(&img, &files, MTIME).unwrap();
    assert_eq!(info.fat, FatType::Fat32);
    fsck_clean(&img);
    let mut c = tool("blkid");
    c.args(["-p", "-o", "export"]).arg(&img);
    let b = text(&run(c));
    assert!(
        b.contains("\nLABEL=cidata\n") && b.contains("VERSION=FAT32"),
        "{b}"
    );
    let mut c = tool("minfo");
    c.arg("-i").arg(&img).arg("::");
    let m = text(&run(c));
    assert!(m.contains("cluster size: 8 sectors"), "{m}");
    read_back(&img, &files, tmp.path());
}

#[test]
fn same_inputs_give_identical_bytes_and_other_inputs_another_serial() {
    let tmp = tempfile::tempdir().unwrap();
    let files = node_files(tmp.path());
    let mut a = Vec::new();
    let ia = write_seed_to(&mut a, &files, MTIME).unwrap();
    let mut reversed = files.clone();
    reversed.reverse();
    let mut b = Vec::new();
    let ib = write_seed_to(&mut b, &reversed, MTIME).unwrap();
    assert_eq!(ia, ib);
    assert!(a == b, "insertion order changed the image");
    let on_disk = write_seed(&tmp.path().join("s.img"), &files, MTIME).unwrap();
    assert_eq!(on_disk, ia);
    assert!(fs::read(tmp.path().join("s.img")).unwrap() == a);

    let mut other = files.clone();
    other[0].1 = Source::from("#cloud-config\nhostname: master-2\n");
    let io = write_seed_to(std::io::sink(), &other, MTIME).unwrap();
    assert_ne!(io.serial, ia.serial);
    assert_ne!(io.sha256, ia.sha256);
    let later = write_seed_to(std::io::sink(), &files, MTIME + 2).unwrap();
    assert_ne!(later.sha256, ia.sha256, "the mtime is in the timestamps");
}

/// The helper for the usual layout puts layers under layers/ with their digest as name.
#[test]
fn nocloud_layout_helper_reads_back_through_mtools() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = kimage::layers::LayerBuilder::new(MTIME);
    b.file("/etc/hosts", 0o644, "127.0.0.1 localhost\n");
    let layer = b.write_into_dir(&tmp.path().join("layers")).unwrap();
    let files = kimage::seed::nocloud_files(
        "#cloud-config\n",
        "instance-id: w1\n",
        "version: 2\n",
        &[(layer.info.sha256.clone(), layer.path.clone())],
    );
    let img = tmp.path().join("seed.img");
    write_seed(&img, &files, MTIME).unwrap();
    fsck_clean(&img);
    let back = tmp.path().join("back.tar.gz");
    let mut c = tool("mcopy");
    c.args(["-n", "-i"])
        .arg(&img)
        .arg(format!("::/layers/{}.tar.gz", layer.info.sha256))
        .arg(&back);
    run(c);
    // The copy on the seed is the layer itself: same digest, and extract() accepts it.
    kimage::layers::extract(&back, &layer.info.sha256, &tmp.path().join("x")).unwrap();
    assert_eq!(
        fs::read(tmp.path().join("x/etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
}

/// The image id is part of the output contract (manifest.json): pin one so a layout change is deliberate.
#[test]
fn pinned_digest_of_a_small_seed() {
    let files = vec![
        ("user-data".to_string(), Source::from("#cloud-config\n")),
        ("meta-data".to_string(), Source::from("instance-id: a\n")),
        ("network-config".to_string(), Source::from("version: 2\n")),
        (
            "layers/x.tar.gz".to_string(),
            Source::Bytes(vec![7; 10_000]),
        ),
    ];
    let info = write_seed_to(std::io::sink(), &files, MTIME).unwrap();
    assert_eq!(
        (info.sha256.as_str(), info.bytes),
        (
            "4c0b14e0ca538adceb9472077b8af040f99e72a9f039cad2f98246003488d106",
            3145728
        ),
        "{info:?}"
    );
}

#[test]
fn names_fat_cannot_hold_are_refused() {
    let f = |names: &[&str]| -> Result<(), SeedError> {
        let files: Vec<(String, Source)> = names
            .iter()
            .map(|n| (n.to_string(), Source::from("x")))
            .collect();
        write_seed_to(std::io::sink(), &files, MTIME).map(|_| ())
    };
    assert!(matches!(
        f(&["user-data", "USER-DATA"]),
        Err(SeedError::Duplicate { .. })
    ));
    assert!(matches!(
        f(&["layers", "layers/x"]),
        Err(SeedError::FileIsDirectory { .. })
    ));
    for bad in ["/abs", "a//b", "a/../b", "what?", "trailing.", "", "x:y"] {
        assert!(
            matches!(f(&[bad]), Err(SeedError::InvalidName { .. })),
            "{bad:?}"
        );
    }
    let missing = vec![("x".to_string(), Source::Path("/nonexistent/kimage".into()))];
    let err = write_seed_to(std::io::sink(), &missing, MTIME).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/kimage"), "{err}");
}
