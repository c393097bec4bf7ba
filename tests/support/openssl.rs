//! Certificates kimage did not make, made by openssl itself: throwaway CAs and leaves that tests put in
//! place of kimage's to check that real components refuse them. Included with `#[path]` by the test
//! helpers that need it.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const OPENSSL: &str = "/usr/bin/openssl";

/// `[v3]` of a CA certificate (with the `[req]` sections `openssl req -x509 -config` needs).
pub const CA_EXT: &str = "[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,digitalSignature,keyEncipherment\n";
/// `[v3]` of a client certificate.
pub const CLIENT_EXT: &str =
    "[v3]\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";

pub fn openssl(args: &[&str]) {
    let out = Command::new(OPENSSL)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {OPENSSL}: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new P-256 key at `path`.
fn new_key(path: &Path) {
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path.to_str().unwrap(),
    ]);
}

/// A self-signed CA in `dir`: `<base>.key`, `<base>.crt`, valid two days. Returns (key, cert).
pub fn openssl_ca(dir: &Path, base: &str, cn: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join(format!("{base}.key"));
    let crt = dir.join(format!("{base}.crt"));
    let ext = dir.join(format!("{base}.ext"));
    std::fs::write(&ext, CA_EXT).unwrap();
    new_key(&key);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        &format!("/CN={cn}"),
        "-days",
        "2",
        "-extensions",
        "v3",
        "-config",
        ext.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
    ]);
    (key, crt)
}

/// A leaf certificate for `key` (an existing key file, or a new one when it does not exist) signed by
/// `ca` (key, cert), with the OpenSSL extension section `[v3]` in `ext`. Returns the certificate path.
pub fn openssl_leaf(
    dir: &Path,
    base: &str,
    subj: &str,
    key: &Path,
    ca: (&Path, &Path),
    ext: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    if !key.exists() {
        new_key(key);
    }
    let csr = dir.join(format!("{base}.csr"));
    let crt = dir.join(format!("{base}.crt"));
    let extf = dir.join(format!("{base}.ext"));
    std::fs::write(&extf, ext).unwrap();
    openssl(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        subj,
        "-out",
        csr.to_str().unwrap(),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca.1.to_str().unwrap(),
        "-CAkey",
        ca.0.to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        extf.to_str().unwrap(),
        "-extensions",
        "v3",
        "-out",
        crt.to_str().unwrap(),
    ]);
    crt
}
