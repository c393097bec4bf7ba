//! HTTP(S) and file:// access for checksum files and downloads: one rustls client, retries with
//! exponential backoff on transient failures, and the mirror URL mapping.

use std::io::{self, Read};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};

/// Default wait for a connection (TCP and TLS) to a server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default longest silence of a server: before its response headers, and between two reads of a body.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default deadline of one file is this floor plus one second per [`DEADLINE_RATE`] bytes of the
/// most the file may be (its size cap): 5 min for a checksum file, about 6 min for runc, 22 min for
/// the kubernetes-server tarball.
pub const DEADLINE_FLOOR: Duration = Duration::from_secs(300);
/// Bytes per second the default deadline allows for (of the size cap, itself 2-4 times the real size).
pub const DEADLINE_RATE: u64 = 1024 * 1024;

/// How often and how patiently a file is asked for: tries with exponential backoff on transient
/// failures (connection errors, timeouts, 5xx, 429, cut bodies), and how long each wait may last.
/// A file fails at the latest one idle timeout after its deadline.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest wait for a connection to a server.
    pub connect_timeout: Duration,
    /// Longest silence of a server, for the response headers and then between two reads of the body;
    /// a server silent this long fails the try (transiently: it is retried).
    pub idle_timeout: Duration,
    /// The whole budget of one file (an artifact or a checksum file), across its tries and the waits
    /// between them; `None`: scaled to the file's size cap ([`RetryPolicy::deadline_for`]).
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            connect_timeout: CONNECT_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            deadline: None,
        }
    }
}

impl RetryPolicy {
    /// The wait before try number `attempt + 1` (`attempt` ≥ 1): base × 2^(attempt-1), capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The deadline of a file that may be at most `max_bytes` long: the one given, else
    /// [`DEADLINE_FLOOR`] plus a second per [`DEADLINE_RATE`] bytes.
    pub fn deadline_for(&self, max_bytes: u64) -> Duration {
        self.deadline
            .unwrap_or(DEADLINE_FLOOR + Duration::from_secs(max_bytes / DEADLINE_RATE))
    }

    /// The wait before try `attempt + 1`, or `None` when that try would start after the deadline.
    pub fn wait_within(&self, attempt: u32, budget: &Budget) -> Option<Duration> {
        let wait = self.delay(attempt);
        (wait < budget.remaining()).then_some(wait)
    }
}

/// One file's deadline, running from its first try.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    start: Instant,
    limit: Duration,
}

impl Budget {
    pub fn start(limit: Duration) -> Budget {
        Budget {
            start: Instant::now(),
            limit,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.start.elapsed())
    }

    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// Whether a timeout that just fired was (give or take a timer's slack) the deadline's.
    fn nearly_expired(&self) -> bool {
        self.remaining() < Duration::from_millis(100)
    }

    /// The error once the deadline passed; `progress` says how far the transfer got.
    pub fn exceeded(&self, url: &str, progress: &str) -> NetError {
        NetError::Deadline {
            url: url.to_string(),
            detail: format!(
                "not done within the download deadline of {} (--download-timeout){progress}",
                secs(self.limit)
            ),
        }
    }

    /// `last` (a transient failure) ends the file: another try would start after the deadline.
    pub fn no_time_for_retry(&self, last: NetError) -> NetError {
        let url = match &last {
            NetError::Status { url, .. }
            | NetError::Http { url, .. }
            | NetError::Deadline { url, .. }
            | NetError::TooLarge { url, .. }
            | NetError::BadUrl { url } => url.clone(),
            NetError::File { path, .. } => path.display().to_string(),
        };
        NetError::Deadline {
            url,
            detail: format!(
                "{}; no time for another try within the download deadline of {} (--download-timeout)",
                last.detail(),
                secs(self.limit)
            ),
        }
    }
}

/// `4s`, `1.5s`.
pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{s:.1}s")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("HTTP {status} from {url}")]
    Status { url: String, status: u16 },
    #[error("requesting {url}: {detail}")]
    Http {
        url: String,
        detail: String,
        transient: bool,
    },
    #[error("reading {}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    #[error("{url} is not a valid http(s):// or file:// URL")]
    BadUrl { url: String },
    /// The file's deadline passed (not retried).
    #[error("requesting {url}: {detail}")]
    Deadline { url: String, detail: String },
    /// The body is longer than the file may be (not retried).
    #[error("{url} sends more than the {limit} bytes {what} may be ({detail}); stopped reading")]
    TooLarge {
        url: String,
        what: String,
        limit: u64,
        detail: String,
    },
}

impl NetError {
    pub fn transient(&self) -> bool {
        match self {
            NetError::Status { status, .. } => is_transient_status(*status),
            NetError::Http { transient, .. } => *transient,
            NetError::File { .. }
            | NetError::BadUrl { .. }
            | NetError::Deadline { .. }
            | NetError::TooLarge { .. } => false,
        }
    }

    /// What went wrong, without the URL (for messages that name it already).
    pub fn detail(&self) -> String {
        match self {
            NetError::Http { detail, .. } | NetError::Deadline { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    pub fn from_reqwest(url: &str, e: reqwest::Error) -> NetError {
        // No network at all (no route, a name that does not resolve) does not get better in the
        // seconds a retry waits: fail at once instead of retrying every artifact for 45 s.
        let transient = !no_network(&e)
            && (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode());
        NetError::Http {
            url: url.to_string(),
            detail: chain(&e),
            transient,
        }
    }
}

/// Whether an error says there is no network to reach: no route, or a host name that does not
/// resolve.
fn no_network(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<io::Error>()
            && matches!(
                io.kind(),
                io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable
            )
        {
            return true;
        }
        let m = c.to_string();
        if m.contains("dns error") || m.contains("failed to lookup address") {
            return true;
        }
        cur = c.source();
    }
    false
}

/// Whether a body read failed because the per-read timeout passed.
fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|i| i.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

/// `(the server announced N bytes)` or `(N bytes received so far)`, for [`NetError::TooLarge`].
pub fn size_detail(received: u64, announced: Option<u64>) -> String {
    match announced {
        Some(n) => format!("the server announced {n} bytes"),
        None => format!("{received} bytes received so far"),
    }
}

pub fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// An error with its causes (`reqwest` hides the useful part, e.g. "connection reset", in the source).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The URL to download an upstream URL from: a mirror keeps the upstream paths, so it is the mirror's
/// base plus the upstream URL's path.
pub fn via_mirror(upstream: &str, mirror: Option<&str>) -> String {
    match mirror {
        None => upstream.to_string(),
        Some(m) => {
            let path = reqwest::Url::parse(upstream)
                .map(|u| u.path().to_string())
                .unwrap_or_default();
            format!("{}{}", m.trim_end_matches('/'), path)
        }
    }
}

/// The local path of a file:// URL, `None` for other schemes.
pub fn file_path(url: &str) -> Result<Option<PathBuf>, NetError> {
    if !url.starts_with("file:") {
        return Ok(None);
    }
    let bad = || NetError::BadUrl {
        url: url.to_string(),
    };
    let u = reqwest::Url::parse(url).map_err(|_| bad())?;
    u.to_file_path().map(Some).map_err(|_| bad())
}

pub struct Net {
    client: Client,
    pub retry: RetryPolicy,
}

impl Net {
    pub fn new(retry: RetryPolicy) -> Result<Net, NetError> {
        let client = Client::builder()
            .user_agent(concat!("kimage/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(retry.connect_timeout)
            // The blocking client applies this to the wait for the response headers and to each read of
            // the body, not to the whole body: it is the idle timeout. (A timeout set on a request is
            // different: it bounds the whole request, body included; `get` uses that for the last
            // stretch of a file's deadline.)
            .timeout(retry.idle_timeout)
            .build()
            .map_err(|e| NetError::from_reqwest("(client setup)", e))?;
        Ok(Net { client, retry })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One GET within `budget`, failing on a non-success status.
    pub fn get(
        &self,
        url: &str,
        range_from: Option<u64>,
        budget: &Budget,
    ) -> Result<Response, NetError> {
        let resp = self.request(url, &[], range_from, budget)?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(NetError::Status {
                url: url.to_string(),
                status: 401,
            });
        }
        Ok(resp)
    }

    /// One GET with extra headers within `budget`: a success, 416 or 401 (whose challenge the caller
    /// answers, as a registry's token dance needs) is returned, any other status fails.
    pub fn request(
        &self,
        url: &str,
        headers: &[(&str, String)],
        range_from: Option<u64>,
        budget: &Budget,
    ) -> Result<Response, NetError> {
        let remaining = budget.remaining();
        if remaining.is_zero() {
            return Err(budget.exceeded(url, ""));
        }
        let mut req = self.client.get(url);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        // Less time left than an idle timeout: that time bounds the whole request (and each wait in it).
        // Otherwise the reads check the deadline, so a file ends at most one idle timeout after it.
        if remaining < self.retry.idle_timeout {
            req = req.timeout(remaining);
        }
        if let Some(from) = range_from {
            req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        let resp = req.send().map_err(|e| {
            if !e.is_timeout() {
                NetError::from_reqwest(url, e)
            } else if budget.nearly_expired() {
                budget.exceeded(url, "; no response headers yet")
            } else if e.is_connect() {
                NetError::Http {
                    url: url.to_string(),
                    detail: format!(
                        "no connection within {} (connect timeout, --connect-timeout)",
                        secs(self.retry.connect_timeout)
                    ),
                    transient: true,
                }
            } else {
                NetError::Http {
                    url: url.to_string(),
                    detail: format!(
                        "no response headers within {} (idle timeout, --idle-timeout)",
                        secs(self.retry.idle_timeout)
                    ),
                    transient: true,
                }
            }
        })?;
        let status = resp.status();
        if status.is_success()
            || status == StatusCode::RANGE_NOT_SATISFIABLE
            || status == StatusCode::UNAUTHORIZED
        {
            Ok(resp)
        } else {
            Err(NetError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            })
        }
    }

    /// One read of a body within `budget` (`received` of `total` bytes so far, for messages): a server
    /// silent for the idle timeout fails it transiently, a passed deadline for good.
    pub fn read_body(
        &self,
        url: &str,
        resp: &mut Response,
        buf: &mut [u8],
        received: u64,
        total: Option<u64>,
        budget: &Budget,
    ) -> Result<usize, NetError> {
        let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
        let progress = || format!("; {received}{of} bytes received");
        if budget.expired() {
            return Err(budget.exceeded(url, &progress()));
        }
        loop {
            match resp.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => {
                    if budget.nearly_expired() {
                        return Err(budget.exceeded(url, &progress()));
                    }
                    return Err(NetError::Http {
                        url: url.to_string(),
                        detail: format!(
                            "no data for {} after {received}{of} bytes (idle timeout, --idle-timeout)",
                            secs(self.retry.idle_timeout)
                        ),
                        transient: true,
                    });
                }
                Err(e) => {
                    return Err(NetError::Http {
                        url: url.to_string(),
                        detail: format!(
                            "connection lost after {received}{of} bytes: {}",
                            chain(&e)
                        ),
                        transient: true,
                    });
                }
            }
        }
    }

    /// A small text file (checksum lists, the CHANGELOG) of at most `max_bytes` (`what` names it in the
    /// error), retried on transient failures within its deadline. Never holds more than `max_bytes`.
    pub fn get_text(&self, url: &str, what: &str, max_bytes: u64) -> Result<String, NetError> {
        let too_large = |detail: String| NetError::TooLarge {
            url: url.to_string(),
            what: what.to_string(),
            limit: max_bytes,
            detail,
        };
        if let Some(path) = file_path(url)? {
            let file_err = |source| NetError::File {
                path: path.clone(),
                source,
            };
            let file = std::fs::File::open(&path).map_err(file_err)?;
            let mut bytes = Vec::new();
            file.take(max_bytes + 1)
                .read_to_end(&mut bytes)
                .map_err(file_err)?;
            if bytes.len() as u64 > max_bytes {
                return Err(too_large(format!("{} bytes read so far", bytes.len())));
            }
            return String::from_utf8(bytes)
                .map_err(|e| file_err(io::Error::new(io::ErrorKind::InvalidData, e.utf8_error())));
        }
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(NetError::BadUrl {
                url: url.to_string(),
            });
        }
        let budget = Budget::start(self.retry.deadline_for(max_bytes));
        let mut attempt = 1;
        loop {
            let r = self.get(url, None, &budget).and_then(|mut resp| {
                let total = resp.content_length();
                if let Some(n) = total.filter(|n| *n > max_bytes) {
                    return Err(too_large(size_detail(0, Some(n))));
                }
                let mut text = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let received = text.len() as u64;
                    let n = self.read_body(url, &mut resp, &mut buf, received, total, &budget)?;
                    if n == 0 {
                        return Ok(String::from_utf8_lossy(&text).into_owned());
                    }
                    if received + n as u64 > max_bytes {
                        return Err(too_large(size_detail(received + n as u64, None)));
                    }
                    text.extend_from_slice(&buf[..n]);
                }
            });
            match r {
                Err(e) if e.transient() && attempt < self.retry.attempts => {
                    match self.retry.wait_within(attempt, &budget) {
                        Some(wait) => thread::sleep(wait),
                        None => return Err(budget.no_time_for_retry(e)),
                    }
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_keeps_upstream_paths() {
        let u = "https://dl.k8s.io/release/v1.35.0/bin/linux/amd64/kubelet";
        assert_eq!(via_mirror(u, None), u);
        assert_eq!(
            via_mirror(u, Some("http://10.0.0.1:8080/k8s/")),
            "http://10.0.0.1:8080/k8s/release/v1.35.0/bin/linux/amd64/kubelet"
        );
        assert_eq!(
            via_mirror(u, Some("file:///srv/mirror")),
            "file:///srv/mirror/release/v1.35.0/bin/linux/amd64/kubelet"
        );
        assert_eq!(
            file_path("file:///srv/a/b").unwrap(),
            Some(PathBuf::from("/srv/a/b"))
        );
        assert_eq!(file_path("http://x/").unwrap(), None);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            attempts: 9,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(3), Duration::from_millis(400));
        assert_eq!(p.delay(8), Duration::from_secs(1));
    }
}
