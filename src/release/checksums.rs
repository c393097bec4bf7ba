//! Parsers for the files upstream projects publish their digests in.

use super::catalog::ChecksumFormat;
use super::digest::Algorithm;
use crate::profile::Version;

/// Finds the digest of `file` in a checksum file's text. The error says what was looked for.
pub fn find_digest(
    format: ChecksumFormat,
    text: &str,
    file: &str,
    version: &Version,
    algorithm: Algorithm,
) -> Result<String, String> {
    match format {
        ChecksumFormat::Sidecar => sidecar(text, file, algorithm),
        ChecksumFormat::Sums => sums(text, file, algorithm),
        ChecksumFormat::Changelog => changelog(text, file, version, algorithm),
    }
}

/// `DIGEST` or `DIGEST  NAME` on the first non-empty line.
fn sidecar(text: &str, file: &str, algorithm: Algorithm) -> Result<String, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or("the checksum file is empty")?;
    let mut words = line.split_whitespace();
    let digest = words.next().unwrap_or_default().to_ascii_lowercase();
    if !algorithm.is_digest(&digest) {
        return Err(format!(
            "the checksum file does not start with a {algorithm} digest"
        ));
    }
    if let Some(name) = words.next() {
        let name = clean_name(name);
        if name != file {
            return Err(format!("the checksum file names {name}, not {file}"));
        }
    }
    Ok(digest)
}

/// `sha256sum` lines (`DIGEST  NAME`, `DIGEST *NAME`, `./NAME`); other lines (PGP armor) are skipped.
fn sums(text: &str, file: &str, algorithm: Algorithm) -> Result<String, String> {
    let mut found: Option<String> = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(digest), Some(name), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let digest = digest.to_ascii_lowercase();
        if !algorithm.is_digest(&digest) || clean_name(name) != file {
            continue;
        }
        match &found {
            Some(d) if *d != digest => {
                return Err(format!("{file} is listed twice with different digests"));
            }
            _ => found = Some(digest),
        }
    }
    found.ok_or_else(|| format!("no {algorithm} line for {file}"))
}

fn clean_name(name: &str) -> &str {
    let name = name.strip_prefix('*').unwrap_or(name);
    name.strip_prefix("./").unwrap_or(name)
}

/// The Kubernetes CHANGELOG: within the `Downloads for vX.Y.Z` section (up to the next heading of the
/// same or a higher level), a table row `[NAME](URL) | DIGEST`. Scoping to the section matters: every
/// release's section lists the same file names.
fn changelog(
    text: &str,
    file: &str,
    version: &Version,
    algorithm: Algorithm,
) -> Result<String, String> {
    let wanted = format!("Downloads for {version}");
    let mut level: Option<usize> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') {
            let hashes = t.chars().take_while(|c| *c == '#').count();
            let title = t[hashes..].trim();
            match level {
                Some(l) if hashes <= l => break,
                Some(_) => continue,
                None if title == wanted => level = Some(hashes),
                None => {}
            }
            continue;
        }
        if level.is_none() {
            continue;
        }
        let Some(rest) = t.strip_prefix('[') else {
            continue;
        };
        let Some((name, rest)) = rest.split_once(']') else {
            continue;
        };
        if name != file {
            continue;
        }
        let digest = rest
            .rsplit('|')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !algorithm.is_digest(&digest) {
            return Err(format!(
                "the row for {file} under \"{wanted}\" has no {algorithm} digest"
            ));
        }
        return Ok(digest);
    }
    match level {
        None => Err(format!("no \"{wanted}\" section")),
        Some(_) => Err(format!("no row for {file} under \"{wanted}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn sidecar_forms() {
        let d = "a".repeat(64);
        assert_eq!(
            sidecar(&format!("{d}\n"), "kubelet", Algorithm::Sha256).unwrap(),
            d
        );
        assert_eq!(
            sidecar(
                &format!("{d}  crictl.tar.gz\n"),
                "crictl.tar.gz",
                Algorithm::Sha256
            )
            .unwrap(),
            d
        );
        assert!(sidecar(&format!("{d}  other\n"), "crictl.tar.gz", Algorithm::Sha256).is_err());
        assert!(sidecar("<html>", "x", Algorithm::Sha256).is_err());
    }

    #[test]
    fn sums_skip_pgp_armor() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{a}  runc.amd64\n{b} *runc.arm64\n-----BEGIN PGP SIGNATURE-----\n"
        );
        assert_eq!(sums(&text, "runc.arm64", Algorithm::Sha256).unwrap(), b);
        assert_eq!(sums(&text, "runc.amd64", Algorithm::Sha256).unwrap(), a);
        assert!(
            sums(&text, "runc.s390x", Algorithm::Sha256)
                .unwrap_err()
                .contains("no sha256 line")
        );
    }

    #[test]
    fn changelog_is_scoped_to_the_version() {
        let old = "1".repeat(128);
        let new = "2".repeat(128);
        let text = format!(
            "# v1.35.1\n\n## Downloads for v1.35.1\n\n### Server Binaries\n\nfilename | sha512 hash\n-------- | -----------\n\
             [kubernetes-server-linux-amd64.tar.gz](https://dl.k8s.io/v1.35.1/kubernetes-server-linux-amd64.tar.gz) | {new}\n\n\
             ## Changelog since v1.35.0\n\n# v1.35.0\n\n## Downloads for v1.35.0\n\n### Server Binaries\n\n\
             [kubernetes-server-linux-amd64.tar.gz](https://dl.k8s.io/v1.35.0/kubernetes-server-linux-amd64.tar.gz) | {old}\n"
        );
        let f = "kubernetes-server-linux-amd64.tar.gz";
        assert_eq!(
            changelog(&text, f, &v("v1.35.0"), Algorithm::Sha512).unwrap(),
            old
        );
        assert_eq!(
            changelog(&text, f, &v("v1.35.1"), Algorithm::Sha512).unwrap(),
            new
        );
        assert!(
            changelog(&text, f, &v("v1.35.2"), Algorithm::Sha512)
                .unwrap_err()
                .contains("no \"Downloads")
        );
        assert!(
            changelog(
                &text,
                "kubernetes-node-linux-amd64.tar.gz",
                &v("v1.35.1"),
                Algorithm::Sha512
            )
            .is_err()
        );
    }
}
