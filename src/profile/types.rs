//! Newtypes for the values a profile carries. Each parses from a YAML string, reports what is wrong with
//! it in words a person can act on, and describes itself to the schema walker (`format`), so that bad
//! values are found together with every other problem instead of stopping deserialization at the first.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that can be checked from its text alone. `check` returns the problem and the fix.
pub trait Checked: Sized {
    /// The schema `format` name the walker dispatches on.
    const FORMAT: &'static str;
    fn check(s: &str) -> Result<Self, Problem>;
}

/// What is wrong with a value and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub fix: String,
}

impl Problem {
    pub fn new(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Checks `value` against the newtype registered for `format`; used by the schema walker.
pub fn check_format(format: &str, value: &str) -> Option<Problem> {
    fn run<T: Checked>(v: &str) -> Option<Problem> {
        T::check(v).err()
    }
    match format {
        NodeName::FORMAT => run::<NodeName>(value),
        ClusterName::FORMAT => run::<ClusterName>(value),
        Address::FORMAT => run::<Address>(value),
        Cidr::FORMAT => run::<Cidr>(value),
        Version::FORMAT => run::<Version>(value),
        Endpoint::FORMAT => run::<Endpoint>(value),
        San::FORMAT => run::<San>(value),
        DnsDomain::FORMAT => run::<DnsDomain>(value),
        Duration::FORMAT => run::<Duration>(value),
        Url::FORMAT => run::<Url>(value),
        PortRange::FORMAT => run::<PortRange>(value),
        MacAddr::FORMAT => run::<MacAddr>(value),
        ImageRef::FORMAT => run::<ImageRef>(value),
        _ => None,
    }
}

macro_rules! string_newtype_impls {
    ($t:ty, $desc:expr) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t as Checked>::check(&s).map_err(|p| serde::de::Error::custom(p.message))
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl FromStr for $t {
            type Err = Problem;
            fn from_str(s: &str) -> Result<Self, Problem> {
                <$t as Checked>::check(s)
            }
        }
        impl JsonSchema for $t {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($t))
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({"type": "string", "format": <$t as Checked>::FORMAT, "description": $desc})
            }
        }
    };
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Digits and dots only (`10.0.0.300`): meant as an IPv4 address, never a host name (no top-level
/// domain is numeric).
fn meant_as_ipv4(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn not_an_ipv4_address() -> Problem {
    Problem::new(
        "is not an IPv4 address (four numbers 0-255 separated by dots)",
        "correct the address",
    )
}

/// A node name: an RFC 1123 DNS subdomain (lowercase), as Kubernetes requires for Node objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Checked for NodeName {
    const FORMAT: &'static str = "node-name";
    fn check(s: &str) -> Result<Self, Problem> {
        if is_dns_subdomain(s) {
            return Ok(NodeName(s.to_string()));
        }
        let suggestion: String = s
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .trim_matches(|c| c == '-' || c == '.')
            .to_string();
        Err(Problem::new(
            "is not a valid node name (RFC 1123: lowercase letters, digits, '-' and '.', \
             each part starting and ending with a letter or digit, at most 63 characters per part)",
            if is_dns_subdomain(&suggestion) {
                format!("rename the node, e.g. to `{suggestion}`")
            } else {
                "rename the node using lowercase letters, digits and '-'".to_string()
            },
        ))
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_impls!(NodeName, "RFC 1123 DNS subdomain, lowercase");

/// The cluster name: a DNS label (it becomes the kubeconfig cluster entry and the etcd cluster token).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(String);

impl ClusterName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Checked for ClusterName {
    const FORMAT: &'static str = "cluster-name";
    fn check(s: &str) -> Result<Self, Problem> {
        if is_dns_label(s) {
            Ok(ClusterName(s.to_string()))
        } else {
            Err(Problem::new(
                "is not a valid cluster name (RFC 1123 label: lowercase letters, digits and '-', at most 63 characters)",
                "use a short lowercase name such as `prod`",
            ))
        }
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_impls!(ClusterName, "RFC 1123 DNS label, lowercase");

/// A DNS domain such as `cluster.local`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsDomain(String);

impl DnsDomain {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Checked for DnsDomain {
    const FORMAT: &'static str = "dns-domain";
    fn check(s: &str) -> Result<Self, Problem> {
        if is_dns_subdomain(s) {
            Ok(DnsDomain(s.to_string()))
        } else {
            Err(Problem::new(
                "is not a valid DNS domain",
                "use lowercase labels separated by dots, e.g. `cluster.local`",
            ))
        }
    }
}

impl fmt::Display for DnsDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_impls!(DnsDomain, "DNS domain, e.g. cluster.local");

/// An IPv4 or IPv6 address, without prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub IpAddr);

impl Checked for Address {
    const FORMAT: &'static str = "ip-address";
    fn check(s: &str) -> Result<Self, Problem> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Address(ip));
        }
        let fix = if let Some((ip, _)) = s.split_once('/') {
            if ip.parse::<IpAddr>().is_ok() {
                format!(
                    "write the address without a prefix length: `{ip}` (the prefix goes in network.prefixLength)"
                )
            } else {
                "write an IPv4 or IPv6 address such as 192.168.31.71".to_string()
            }
        } else {
            "write an IPv4 or IPv6 address such as 192.168.31.71".to_string()
        };
        Err(Problem::new("is not an IP address", fix))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
string_newtype_impls!(Address, "IPv4 or IPv6 address");

/// A network in CIDR notation. The address must be the network address (no host bits set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr(pub ipnet::IpNet);

impl Checked for Cidr {
    const FORMAT: &'static str = "cidr";
    fn check(s: &str) -> Result<Self, Problem> {
        match s.parse::<ipnet::IpNet>() {
            Ok(net) if net.network() == net.addr() => Ok(Cidr(net)),
            Ok(net) => Err(Problem::new(
                "has host bits set after the prefix",
                format!("use the network address `{}`", net.trunc()),
            )),
            Err(_) => Err(Problem::new(
                "is not a CIDR",
                "write a network such as 10.96.0.0/12",
            )),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
string_newtype_impls!(Cidr, "network in CIDR notation, e.g. 10.96.0.0/12");

/// A release version, written `v1.35.0` (a leading `v` is accepted and always printed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub semver::Version);

impl Version {
    /// `1.35.0` without the leading `v` (URL patterns of some projects need it).
    pub fn bare(&self) -> String {
        self.0.to_string()
    }
    pub fn minor(&self) -> (u64, u64) {
        (self.0.major, self.0.minor)
    }
}

impl Checked for Version {
    const FORMAT: &'static str = "version";
    fn check(s: &str) -> Result<Self, Problem> {
        let bare = s.strip_prefix('v').unwrap_or(s);
        match semver::Version::parse(bare) {
            Ok(v) if !v.build.is_empty() => Err(Problem::new(
                "carries build metadata (`+…`), which no release is published under",
                format!(
                    "write v{}.{}.{}{}",
                    v.major,
                    v.minor,
                    v.patch,
                    if v.pre.is_empty() {
                        String::new()
                    } else {
                        format!("-{}", v.pre)
                    }
                ),
            )),
            Ok(v) => Ok(Version(v)),
            Err(_) => {
                let parts: Vec<&str> = bare.split('.').collect();
                let fix = if parts.len() == 2 && parts.iter().all(|p| p.parse::<u64>().is_ok()) {
                    format!("give the full version including the patch release, e.g. `v{bare}.0`")
                } else {
                    "write a semantic version such as v1.35.0".to_string()
                };
                Err(Problem::new(
                    "is not a semantic version (vMAJOR.MINOR.PATCH)",
                    fix,
                ))
            }
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}
string_newtype_impls!(Version, "semantic version, e.g. v1.35.0");

/// A host: IP address or DNS name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    Ip(IpAddr),
    Dns(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => ip.fmt(f),
            Host::Dns(name) => f.write_str(name),
        }
    }
}

/// `host:port` that clients dial for the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

impl Endpoint {
    pub fn url(&self) -> String {
        format!("https://{}:{}", self.host, self.port)
    }
}

impl Checked for Endpoint {
    const FORMAT: &'static str = "endpoint";
    fn check(s: &str) -> Result<Self, Problem> {
        let bad = || {
            Problem::new(
                "is not a host:port endpoint",
                "write the address clients dial, e.g. `192.168.31.75:6443` or `k8s-api.example.com:6443`",
            )
        };
        let s = s.strip_prefix("https://").unwrap_or(s);
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
            (h, p)
        } else {
            s.rsplit_once(':').ok_or_else(bad)?
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        let host = if let Ok(ip) = host.parse::<IpAddr>() {
            Host::Ip(ip)
        } else if meant_as_ipv4(host) {
            return Err(not_an_ipv4_address());
        } else if is_dns_subdomain(host) {
            Host::Dns(host.to_string())
        } else {
            return Err(bad());
        };
        Ok(Endpoint { host, port })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}
string_newtype_impls!(Endpoint, "host:port, e.g. 192.168.31.75:6443");

/// An extra subject alternative name for the apiserver certificate: IP address or DNS name (wildcards allowed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum San {
    Ip(IpAddr),
    Dns(String),
}

impl Checked for San {
    const FORMAT: &'static str = "san";
    fn check(s: &str) -> Result<Self, Problem> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        // Regression: `10.0.0.300` passed as a DNS name and became a useless DNS SAN.
        if meant_as_ipv4(s) {
            return Err(not_an_ipv4_address());
        }
        let name = s.strip_prefix("*.").unwrap_or(s);
        if is_dns_subdomain(name) {
            Ok(San::Dns(s.to_string()))
        } else {
            Err(Problem::new(
                "is neither an IP address nor a DNS name",
                "write an IP address or a lowercase DNS name (a leading `*.` is allowed)",
            ))
        }
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Ip(ip) => ip.fmt(f),
            San::Dns(n) => f.write_str(n),
        }
    }
}
string_newtype_impls!(San, "IP address or DNS name");

/// A length of time: an integer with unit `s`, `m`, `h`, `d` or `y` (365 days), e.g. `8760h` or `10y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    seconds: u64,
}

impl Duration {
    pub const fn from_hours(h: u64) -> Self {
        Duration { seconds: h * 3600 }
    }
    pub fn as_secs(&self) -> u64 {
        self.seconds
    }
}

impl Checked for Duration {
    const FORMAT: &'static str = "duration";
    fn check(s: &str) -> Result<Self, Problem> {
        let bad = || {
            Problem::new(
                "is not a duration",
                "write a number with a unit s, m, h, d or y, e.g. `8760h` or `10y`",
            )
        };
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            "y" => 365 * 86400,
            _ => return Err(bad()),
        };
        if n == 0 {
            return Err(Problem::new(
                "must be longer than zero",
                "write e.g. `8760h`",
            ));
        }
        n.checked_mul(mult)
            .map(|seconds| Duration { seconds })
            .ok_or_else(bad)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        if s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}
string_newtype_impls!(Duration, "duration with unit s, m, h, d or y, e.g. 8760h");

/// An http(s) or file URL (mirrors, layer base URLs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Url(String);

impl Url {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The URL without a trailing slash, for joining paths.
    pub fn base(&self) -> &str {
        self.0.trim_end_matches('/')
    }
}

impl Checked for Url {
    const FORMAT: &'static str = "url";
    fn check(s: &str) -> Result<Self, Problem> {
        let ok = ["http://", "https://", "file://"]
            .iter()
            .any(|p| s.starts_with(p) && s.len() > p.len())
            && !s.chars().any(|c| c.is_whitespace());
        // The URL parser the downloads use refuses what they could not fetch (a port past 65535, …).
        if ok && let Err(e) = reqwest::Url::parse(s) {
            return Err(Problem::new(
                format!("is not a usable URL: {e}"),
                "write a URL such as http://10.0.0.1:8080/releases",
            ));
        }
        if ok {
            Ok(Url(s.to_string()))
        } else {
            Err(Problem::new(
                "is not an http://, https:// or file:// URL",
                "write a URL such as http://10.0.0.1:8080/releases",
            ))
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_impls!(Url, "http(s):// or file:// URL");

/// A port range `LOW-HIGH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl Checked for PortRange {
    const FORMAT: &'static str = "port-range";
    fn check(s: &str) -> Result<Self, Problem> {
        let bad = || Problem::new("is not a port range", "write LOW-HIGH, e.g. `30000-32767`");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let low: u16 = a.trim().parse().map_err(|_| bad())?;
        let high: u16 = b.trim().parse().map_err(|_| bad())?;
        if low == 0 || low > high {
            return Err(bad());
        }
        Ok(PortRange { low, high })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}
string_newtype_impls!(PortRange, "port range LOW-HIGH, e.g. 30000-32767");

/// A MAC address `52:54:00:12:34:56` (lowercased on output).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(String);

impl Checked for MacAddr {
    const FORMAT: &'static str = "mac-address";
    fn check(s: &str) -> Result<Self, Problem> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        {
            Ok(MacAddr(s.to_ascii_lowercase()))
        } else {
            Err(Problem::new(
                "is not a MAC address",
                "write six hex pairs separated by colons, e.g. 52:54:00:12:34:56",
            ))
        }
    }
}

impl MacAddr {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype_impls!(MacAddr, "MAC address, e.g. 52:54:00:12:34:56");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_accept_leading_v_and_reject_two_parts() {
        assert_eq!(Version::check("v1.35.0").unwrap().to_string(), "v1.35.0");
        assert_eq!(Version::check("1.35.0").unwrap().to_string(), "v1.35.0");
        let p = Version::check("v1.35").unwrap_err();
        assert_eq!(
            p.fix,
            "give the full version including the patch release, e.g. `v1.35.0`"
        );
    }

    #[test]
    fn cidr_rejects_host_bits() {
        let p = Cidr::check("10.96.0.1/12").unwrap_err();
        assert_eq!(p.fix, "use the network address `10.96.0.0/12`");
    }

    #[test]
    fn endpoint_forms() {
        assert_eq!(
            Endpoint::check("10.0.0.1:6443").unwrap().url(),
            "https://10.0.0.1:6443"
        );
        assert_eq!(
            Endpoint::check("[fd00::1]:6443").unwrap().url(),
            "https://[fd00::1]:6443"
        );
        assert_eq!(
            Endpoint::check("api.example.com:443").unwrap().url(),
            "https://api.example.com:443"
        );
        assert!(Endpoint::check("10.0.0.1").is_err());
        assert!(Endpoint::check("10.0.0.1:0").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(Duration::check("8760h").unwrap().as_secs(), 8760 * 3600);
        assert_eq!(Duration::check("10y").unwrap().as_secs(), 3650 * 86400);
        assert!(Duration::check("1.5h").is_err());
        assert!(Duration::check("0h").is_err());
    }

    #[test]
    fn node_names_suggest_a_fix() {
        let p = NodeName::check("Master_1").unwrap_err();
        assert_eq!(p.fix, "rename the node, e.g. to `master-1`");
    }
}

/// A container image reference as containerd and the kubelet read it:
/// `[registry[:port]/]repository[:tag][@sha256:<64 hex>]`. Without a registry (no `.` or `:` in the first
/// path component and not `localhost`) it is Docker Hub's, and a one-component repository is under
/// `library/`. A tag or a digest is required: `latest` by default would pin nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    text: String,
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// `registry.k8s.io`, `docker.io`, `10.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }
    /// The repository path inside the registry (`coredns/coredns`, `library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// `sha256:<hex>`, when the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
    /// The name containerd stores the image under, normalized as the kubelet asks for it:
    /// `registry/repository:tag` (`docker.io/library/nginx:1.27`), or `registry/repository@digest`
    /// when the reference has no tag.
    pub fn name(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}/{}:{t}", self.registry, self.repository),
            (None, Some(d)) => format!("{}/{}@{d}", self.registry, self.repository),
            (None, None) => unreachable!("a reference has a tag or a digest"),
        }
    }
    /// What a registry's manifest endpoint is asked for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .expect("a reference has a tag or a digest")
    }
}

fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl Checked for ImageRef {
    const FORMAT: &'static str = "image-reference";
    fn check(s: &str) -> Result<Self, Problem> {
        let example = "write a reference such as registry.k8s.io/pause:3.10.1 (a tag, or @sha256:<digest>, or both)";
        let bad = |what: String| Err(Problem::new(what, example));
        if s.is_empty() || s.len() > 512 || s.chars().any(|c| c.is_whitespace()) {
            return bad("is not an image reference".to_string());
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) if is_sha256_digest(d) => (n, Some(d.to_string())),
            Some(_) => return bad("has a digest that is not sha256:<64 lowercase hex>".to_string()),
            None => (s, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && !t.starts_with(['.', '-'])
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return bad(format!("has an invalid tag {t:?}"));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err(Problem::new(
                "names no tag and no digest",
                format!(
                    "write {s}:<tag> or {s}@sha256:<digest>: an implicit `latest` pins nothing"
                ),
            ));
        }
        let (registry, repository) = match path.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ if !path.contains('/') => ("docker.io".to_string(), format!("library/{path}")),
            _ => ("docker.io".to_string(), path.to_string()),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(component_ok) {
            return bad(format!(
                "has an invalid repository {repository:?} (lowercase letters, digits and . _ - between slashes)"
            ));
        }
        if registry.is_empty() || registry.contains(['@', '?', '#']) {
            return bad(format!("has an invalid registry {registry:?}"));
        }
        Ok(ImageRef {
            text: s.to_string(),
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
string_newtype_impls!(
    ImageRef,
    "container image reference with a tag or digest, e.g. registry.k8s.io/pause:3.10.1"
);
