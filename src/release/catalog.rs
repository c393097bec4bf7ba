//! The built-in release catalog (`catalog.yaml`, embedded): how each kind of upstream artifact is found,
//! checked and unpacked, and the published digests of known releases so that those resolve offline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::digest::Algorithm;
use crate::profile::{Arch, Version};

const CATALOG_TEXT: &str = include_str!("catalog.yaml");

/// The catalog compiled into kimage, parsed once. Its consistency is checked by unit tests, so a failure
/// here is a build defect, not a user error.
pub static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    Catalog::parse(CATALOG_TEXT).unwrap_or_else(|e| panic!("built-in release catalog: {e}"))
});

/// Install mode of every release binary.
pub const BINARY_MODE: u32 = 0o755;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Where digests were copied from: key → description (repository, path, commit).
    pub sources: BTreeMap<String, String>,
    pub kinds: BTreeMap<String, Kind>,
    pub releases: Vec<Release>,
}

/// A kind of upstream artifact (e.g. `kubelet`, `etcd`): URL pattern, checksum file and members.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kind {
    /// Which profile version applies.
    pub component: Component,
    pub url: String,
    pub format: Format,
    pub algorithm: Algorithm,
    /// Where upstream publishes the digest.
    pub checksum: ChecksumSource,
    /// The most an artifact of this kind may be, in MiB (2-4 times today's size): a longer body is cut
    /// off there, and the default download deadline scales with it.
    pub max_mib: u64,
    pub members: Vec<MemberTemplate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksumSource {
    pub url: String,
    pub format: ChecksumFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumFormat {
    /// A file holding only the digest (optionally followed by the file name).
    Sidecar,
    /// `sha256sum` output listing many files (SHA256SUMS, runc.sha256sum, cfssl checksums.txt).
    Sums,
    /// The Kubernetes CHANGELOG "Downloads for vX.Y.Z" tables.
    Changelog,
}

impl ChecksumFormat {
    /// The most a checksum file of this format may be: 1 MiB (a few hundred lines), 16 MiB for the
    /// Kubernetes CHANGELOG (about 1 MiB today). A longer one is refused, never held in memory.
    pub fn max_bytes(&self) -> u64 {
        match self {
            ChecksumFormat::Sidecar | ChecksumFormat::Sums => 1024 * 1024,
            ChecksumFormat::Changelog => 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Format {
    /// The artifact is the binary itself.
    #[serde(rename = "file")]
    File,
    /// A gzip-compressed tar archive; members are extracted.
    #[serde(rename = "tar.gz")]
    TarGz,
}

impl Format {
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::File => "file",
            Format::TarGz => "tar.gz",
        }
    }
}

/// Which profile setting gives an artifact's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Kubernetes,
    Etcd,
    Containerd,
    Runc,
    Crictl,
    CniPlugins,
    Cfssl,
}

impl Component {
    pub fn as_str(&self) -> &'static str {
        match self {
            Component::Kubernetes => "kubernetes",
            Component::Etcd => "etcd",
            Component::Containerd => "containerd",
            Component::Runc => "runc",
            Component::Crictl => "crictl",
            Component::CniPlugins => "cni-plugins",
            Component::Cfssl => "cfssl",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberTemplate {
    /// The program this file belongs to (`model::Binary::name`); a node gets the member when it runs it.
    pub binary: String,
    /// Path inside a tarball (absent for single-file artifacts); `*` / `DIR/*`: every executable regular
    /// file directly in that directory.
    #[serde(default)]
    pub path: Option<String>,
    /// Install path on the node (a directory ending in `/` for a `*` member).
    pub install: String,
}

/// One file (or, for a `*` path, set of files) that comes out of an artifact onto a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub binary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub install: String,
    #[serde(with = "octal_mode")]
    pub mode: u32,
}

impl Member {
    /// For a `*` member: the archive directory it takes every executable file of (`""` for the top).
    pub fn glob_dir(&self) -> Option<&str> {
        let p = self.path.as_deref()?;
        if p == "*" {
            Some("")
        } else {
            p.strip_suffix("/*")
        }
    }
}

/// Modes are written as octal strings (`"0755"`): a decimal 493 helps nobody reading a lock.
pub(crate) mod octal_mode {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        u32::from_str_radix(&s, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "mode `{s}` is not an octal file mode such as \"0755\""
                ))
            })
    }
}

/// A known release with its published digest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub kind: String,
    pub version: Version,
    pub arch: Arch,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    sha512: Option<String>,
    /// `<key of sources> (<entry in that file>)`.
    pub source: String,
    #[serde(default)]
    pub cross_checked: Option<String>,
}

impl Release {
    pub fn digest(&self) -> (Algorithm, &str) {
        match (&self.sha256, &self.sha512) {
            (Some(d), _) => (Algorithm::Sha256, d),
            (None, Some(d)) => (Algorithm::Sha512, d),
            (None, None) => unreachable!("checked by Catalog::parse"),
        }
    }
}

/// Replaces `{version}` (without the `v`), `{major}`, `{minor}`, `{arch}` and `{url}` in a pattern.
pub fn expand(pattern: &str, version: &Version, arch: Arch, url: Option<&str>) -> String {
    let mut s = pattern
        .replace("{version}", &version.bare())
        .replace("{major}", &version.0.major.to_string())
        .replace("{minor}", &version.0.minor.to_string())
        .replace("{arch}", arch.as_str());
    if let Some(u) = url {
        s = s.replace("{url}", u);
    }
    s
}

impl Kind {
    /// The size cap in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_mib * 1024 * 1024
    }

    pub fn url_for(&self, version: &Version, arch: Arch) -> String {
        expand(&self.url, version, arch, None)
    }

    pub fn checksum_url_for(&self, version: &Version, arch: Arch) -> String {
        expand(
            &self.checksum.url,
            version,
            arch,
            Some(&self.url_for(version, arch)),
        )
    }

    pub fn members_for(&self, version: &Version, arch: Arch) -> Vec<Member> {
        self.members
            .iter()
            .map(|m| Member {
                binary: m.binary.clone(),
                path: m.path.as_ref().map(|p| expand(p, version, arch, None)),
                install: m.install.clone(),
                mode: BINARY_MODE,
            })
            .collect()
    }
}

/// The last path segment of a URL: the artifact's file name.
pub fn file_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

impl Catalog {
    pub fn parse(text: &str) -> Result<Catalog, String> {
        let c: Catalog = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = BTreeSet::new();
        for (name, k) in &c.kinds {
            if k.members.is_empty() {
                return Err(format!("kind {name} has no members"));
            }
            if k.max_mib == 0 {
                return Err(format!("kind {name}: max_mib must be at least 1"));
            }
            for m in &k.members {
                let glob = m
                    .path
                    .as_deref()
                    .is_some_and(|p| p == "*" || p.ends_with("/*"));
                if glob != m.install.ends_with('/') || !m.install.starts_with('/') {
                    return Err(format!(
                        "kind {name}: member {} installs to {}",
                        m.binary, m.install
                    ));
                }
                if (k.format == Format::File) != m.path.is_none() {
                    return Err(format!(
                        "kind {name}: member {} path does not fit format",
                        m.binary
                    ));
                }
            }
        }
        for r in &c.releases {
            let what = format!("release {} {} {}", r.kind, r.version, r.arch.as_str());
            let kind = c
                .kinds
                .get(&r.kind)
                .ok_or_else(|| format!("{what}: unknown kind"))?;
            let (algorithm, digest) = match (&r.sha256, &r.sha512) {
                (Some(d), None) => (Algorithm::Sha256, d),
                (None, Some(d)) => (Algorithm::Sha512, d),
                _ => return Err(format!("{what}: give exactly one of sha256, sha512")),
            };
            if algorithm != kind.algorithm || !algorithm.is_digest(digest) {
                return Err(format!(
                    "{what}: {algorithm} digest `{digest}` does not fit kind {}",
                    r.kind
                ));
            }
            let key = r.source.split([' ', '(']).next().unwrap_or_default();
            if !c.sources.contains_key(key) {
                return Err(format!(
                    "{what}: source `{}` does not start with a key of `sources`",
                    r.source
                ));
            }
            if !seen.insert((r.kind.clone(), r.version.clone(), r.arch)) {
                return Err(format!("{what}: listed twice"));
            }
        }
        Ok(c)
    }

    pub fn kind(&self, name: &str) -> Option<&Kind> {
        self.kinds.get(name)
    }

    pub fn release(&self, kind: &str, version: &Version, arch: Arch) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.kind == kind && &r.version == version && r.arch == arch)
    }

    /// The provenance written into a lock for a catalog digest: the entry it was copied from and the
    /// cross-check (the full description of each source is in the catalog's `sources`).
    pub fn provenance(&self, r: &Release) -> String {
        match &r.cross_checked {
            Some(c) => format!("kimage catalog: {}; cross-checked: {c}", r.source),
            None => format!("kimage catalog: {}", r.source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses() {
        let c = &*CATALOG;
        assert!(c.releases.len() >= 40);
        let v: Version = "v1.35.0".parse().unwrap();
        let k = c.kind("kubelet").unwrap();
        assert_eq!(
            k.url_for(&v, Arch::Arm64),
            "https://dl.k8s.io/release/v1.35.0/bin/linux/arm64/kubelet"
        );
        assert_eq!(
            k.checksum_url_for(&v, Arch::Amd64),
            "https://dl.k8s.io/release/v1.35.0/bin/linux/amd64/kubelet.sha256"
        );
        let srv = c.kind("kubernetes-server").unwrap();
        assert_eq!(
            srv.checksum_url_for(&v, Arch::Amd64),
            "https://raw.githubusercontent.com/kubernetes/kubernetes/master/CHANGELOG/CHANGELOG-1.35.md"
        );
    }

    #[test]
    fn rejects_bad_entries() {
        let base = CATALOG_TEXT
            .split("\nreleases:")
            .next()
            .unwrap()
            .to_string();
        let bad = format!(
            "{base}\nreleases:\n  - {{kind: kubelet, version: v1.0.0, arch: amd64, sha256: abc, source: kubespray}}\n"
        );
        assert!(Catalog::parse(&bad).unwrap_err().contains("does not fit"));
        let bad = format!(
            "{base}\nreleases:\n  - {{kind: kubelet, version: v1.0.0, arch: amd64, sha256: {}, source: nowhere}}\n",
            "a".repeat(64)
        );
        assert!(Catalog::parse(&bad).unwrap_err().contains("sources"));
    }
}
