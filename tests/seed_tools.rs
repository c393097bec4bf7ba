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
fn small_seed_is_a_clean_fat12_volume_labelled_cidata_that_mtools_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let files = node_files(tmp.path());
    let img = tmp.path().join("nodes/master-1/seed.img");
    let info = write_seed(&img, &files, MTIME).unwrap();
    // 1.2 MB at 512-byte clusters: ~2,400 FAT12 entries, many of them straddling a sector boundary.
    assert_eq!(info.fat, FatType::Fat12);
    assert_eq!(fs::metadata(&img).unwrap().len(), info.bytes);
    assert_eq!(
        info.bytes,
        image_size(&files, MTIME).unwrap(),
        "the size is known before writing"
    );
    assert_eq!(info.bytes % 512, 0, "whole sectors");
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
    assert!(b.contains("VERSION=FAT12"), "{b}");
    let serial = format!("{:04X}-{:04X}", info.serial >> 16, info.serial & 0xffff);
    assert!(b.contains(&format!("UUID={serial}")), "{b}");

    let mut c = tool("file");
    c.arg(&img);
    let f = text(&run(c));
    assert!(
        f.contains("label: \"cidata     \"") && f.contains("FAT (12 bit)"),
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
            "ea4c0b6ad78fad671aeb9025224a567be9eb5f4f7e9a46758fe74892d558a66f",
            16384
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

/// 4 KiB blocks of `bytes` holding anything but zeros: what no sparse file of these bytes can avoid
/// allocating.
fn nonzero_bytes(bytes: &[u8]) -> u64 {
    bytes
        .chunks(4096)
        .filter(|b| b.iter().any(|&x| x != 0))
        .count() as u64
        * 4096
}

/// Allocated bytes of `path` (st_blocks counts 512-byte units whatever the filesystem's block).
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().blocks() * 512
}

/// A seed was 3 MiB whatever it held (FAT16's minimum of 4,085 clusters, then rounded to whole MiB) and
/// every zero of it was written: 10,000 workers wrote 23 GB. Now the volume is the content plus its FAT
/// metadata, and what zeros remain are holes.
#[test]
fn seed_is_sparse_and_small() {
    let tmp = tempfile::tempdir().unwrap();
    let files = node_files(tmp.path());
    let content: u64 = files.iter().map(|(_, s)| content(s).len() as u64).sum();
    let img = tmp.path().join("seed.img");
    let info = write_seed(&img, &files, MTIME).unwrap();
    // Apparent size: each of the 7 files and 5 directories rounds up to a 512-byte cluster; boot sector,
    // two FATs (12 bits per cluster), the root region and the alignment of the data area to 4 KiB add
    // less than 16 KiB.
    let slack = 12 * 512 + 16 * 1024;
    assert!(
        info.bytes <= content + slack,
        "{} bytes for {content} bytes of content",
        info.bytes
    );
    let bytes = fs::read(&img).unwrap();
    let nonzero = nonzero_bytes(&bytes);
    assert!(
        allocated(&img) <= 2 * nonzero,
        "{} bytes allocated for {nonzero} bytes in non-zero blocks",
        allocated(&img)
    );
    fsck_clean(&img);
    read_back(&img, &files, tmp.path());

    // The documents alone (a seed when layers come from a URL) are a few KB, not 3 MiB.
    let docs = &files[..3];
    let small = tmp.path().join("docs.img");
    let info = write_seed(&small, docs, MTIME).unwrap();
    assert!(info.bytes <= 8 * 1024, "{info:?}");
    fsck_clean(&small);
    read_back(&small, docs, tmp.path());
}

/// Sparse on disk, same bytes as the plain stream, and the same bytes each time.
#[test]
fn sparse_seed_is_byte_identical_across_runs_and_to_the_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let files = node_files(tmp.path());
    let a = tmp.path().join("a.img");
    let b = tmp.path().join("b.img");
    let ia = write_seed(&a, &files, MTIME).unwrap();
    // Over an existing file with other bytes: nothing of them may show through a hole.
    fs::write(&b, vec![0xff; 4 << 20]).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&b).unwrap();
    let ib = kimage::seed::write_seed_file(&f, &files, MTIME).unwrap();
    drop(f);
    let mut streamed = Vec::new();
    let is = write_seed_to(&mut streamed, &files, MTIME).unwrap();
    assert_eq!(ia, ib);
    assert_eq!(ia, is);
    let (ba, bb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
    assert!(ba == streamed && bb == streamed, "logical bytes differ");
    assert_eq!(kimage::layers::sha256_file(&b).unwrap().0, ia.sha256);
}

/// Around the FAT12/FAT16 boundary (FAT12 up to 4,068 clusters of at most 4 KiB), and zero runs inside
/// a file are holes too. The big files are themselves sparse: cheap to make, cheap to stream.
#[test]
fn fat12_up_to_16_mib_then_fat16_both_clean_and_sparse() {
    let tmp = tempfile::tempdir().unwrap();
    for (len, fat, cluster) in [
        (2_500_000, FatType::Fat12, 1024),
        (15_000_000, FatType::Fat12, 4096),
        (17_000_000, FatType::Fat16, 512),
    ] {
        let big = tmp.path().join(format!("zeros-{len}"));
        fs::File::create(&big).unwrap().set_len(len).unwrap();
        let mut files = node_files(tmp.path());
        files.push(("layers/zeros.tar.gz".into(), Source::Path(big)));
        let img = tmp.path().join(format!("seed-{len}.img"));
        let info = write_seed(&img, &files, MTIME).unwrap();
        assert_eq!(info.fat, fat, "{len}");
        let mut c = tool("minfo");
        c.arg("-i").arg(&img).arg("::");
        let m = text(&run(c));
        assert!(
            m.contains(&format!("cluster size: {} sectors", cluster / 512)),
            "{len}: {m}"
        );
        fsck_clean(&img);
        read_back(&img, &files, tmp.path());
        // The zeros of the big file are not on disk: about the 1.2 MB of noise and the metadata.
        let bytes = fs::read(&img).unwrap();
        assert!(
            allocated(&img) <= 2 * nonzero_bytes(&bytes),
            "{len}: {} bytes allocated",
            allocated(&img)
        );
    }
}

/// The companion of the fsck checks above: a seed whose FAT is broken is caught, so "fsck.fat is clean"
/// means something for FAT12 too.
#[test]
fn fsck_rejects_a_seed_with_a_freed_directory_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let files = node_files(tmp.path());
    let img = tmp.path().join("seed.img");
    let info = write_seed(&img, &files, MTIME).unwrap();
    assert_eq!(info.fat, FatType::Fat12);
    let mut bytes = fs::read(&img).unwrap();
    let reserved = u16::from_le_bytes([bytes[14], bytes[15]]) as usize;
    let fat_sectors = u16::from_le_bytes([bytes[22], bytes[23]]) as usize;
    // Cluster 2 is the first directory's (directories come first), one cluster long: its FAT12 entry
    // (bytes 3 and the low nibble of 4) says end of chain. Mark it free in both FATs.
    for fat in [reserved * 512, (reserved + fat_sectors) * 512] {
        assert_eq!(
            (bytes[fat + 3], bytes[fat + 4] & 0x0f),
            (0xff, 0x0f),
            "end of chain"
        );
        bytes[fat + 3] = 0;
        bytes[fat + 4] &= 0xf0;
    }
    fs::write(&img, &bytes).unwrap();
    let mut c = tool("fsck.vfat");
    c.args(["-n", "-V", "-v"]).arg(&img);
    let out = c.output().unwrap();
    let t = text(&out);
    assert!(
        !out.status.success(),
        "fsck.fat accepted a broken FAT:\n{t}"
    );
}
