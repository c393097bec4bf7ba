//! openssl, the judge of kimage's certificates: running it (a missing openssl fails the test), its
//! s_server and s_client, and certificates kimage did not make: throwaway CAs and leaves that tests put
//! in place of kimage's to check that real components refuse them. Included by the support roots as
//! `openssl`, next to `tools` (support/tools.rs).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::tools::{free_port, require};

pub const OPENSSL: &str = "/usr/bin/openssl";

/// `[v3]` of a CA certificate (with the `[req]` sections `openssl req -x509 -config` needs).
pub const CA_EXT: &str = "[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,digitalSignature,keyEncipherment\n";
/// `[v3]` of a client certificate.
pub const CLIENT_EXT: &str =
    "[v3]\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";

/// `openssl ARGS` in the current directory; it must succeed. Returns its stdout.
pub fn openssl(args: &[&str]) -> String {
    openssl_in(Path::new("."), args)
}

/// `openssl ARGS` in `dir` (relative paths in `args` are in `dir`); it must succeed. Returns its stdout.
pub fn openssl_in(dir: &Path, args: &[&str]) -> String {
    require(OPENSSL);
    let out = Command::new(OPENSSL)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {OPENSSL}: {e}"));
    assert!(
        out.status.success(),
        "openssl {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// `openssl s_server -www` (killed on drop), requiring a client certificate from `client_ca`.
pub struct Server {
    pub port: u16,
    _child: super::tools::KillOnDrop,
}

pub fn s_server(cert: &Path, key: &Path, client_ca: &Path) -> Server {
    require(OPENSSL);
    let port = free_port();
    let mut child = Command::new(OPENSSL)
        .args(["s_server", "-www", "-verify_return_error", "-Verify", "1"])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .arg("-CAfile")
        .arg(client_ca)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting openssl s_server");
    // s_server prints ACCEPT once it listens.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("ACCEPT") => break,
            Some(Ok(_)) => continue,
            _ => panic!("openssl s_server did not start on port {port}"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Server {
        port,
        _child: super::tools::KillOnDrop(child),
    }
}

/// Connects with `openssl s_client`, presenting `cert`/`key` and verifying the server against `ca`
/// and `verify` (`-verify_ip X` / `-verify_hostname X`). Returns whether an HTTP answer came back
/// over a verified TLS connection, and the combined output.
pub fn s_client(port: u16, cert: &Path, key: &Path, ca: &Path, verify: &[&str]) -> (bool, String) {
    let mut child = Command::new(OPENSSL)
        .args(["s_client", "-ign_eof", "-verify_return_error", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .arg("-CAfile")
        .arg(ca)
        .args(verify)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting openssl s_client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = text.contains("HTTP/1.0 200 ok") && text.contains("Verify return code: 0 (ok)");
    (ok, text)
}
