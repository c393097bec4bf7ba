//! SOURCE_DATE_EPOCH handling. Alone in its own test binary because it changes the process environment.

use kimage::layers::{LayerBuilder, LayerError, resolve_mtime};

#[test]
fn source_date_epoch_overrides_the_fallback_and_bad_values_are_errors() {
    // SAFETY: this test binary has no other test, so no other thread reads the environment concurrently.
    unsafe { std::env::remove_var("SOURCE_DATE_EPOCH") };
    assert_eq!(resolve_mtime(1_700_000_000).unwrap(), 1_700_000_000);
    unsafe { std::env::set_var("SOURCE_DATE_EPOCH", "1234567890") };
    let mtime = resolve_mtime(1_700_000_000).unwrap();
    assert_eq!(mtime, 1_234_567_890);
    let mut b = LayerBuilder::new(mtime);
    b.file("/etc/hosts", 0o644, "x\n");
    let mut tar = Vec::new();
    b.write_tar(&mut tar).unwrap();
    // mtime field of the first header (etc/), octal.
    assert_eq!(&tar[136..148], b"11145401322\0");
    unsafe { std::env::set_var("SOURCE_DATE_EPOCH", "yesterday") };
    let err = resolve_mtime(0).unwrap_err();
    assert!(matches!(err, LayerError::SourceDateEpoch { .. }));
    assert!(
        err.to_string().contains("SOURCE_DATE_EPOCH=\"yesterday\""),
        "{err}"
    );
    unsafe { std::env::remove_var("SOURCE_DATE_EPOCH") };
}
