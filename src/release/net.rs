//! HTTP(S) and file:// access for checksum files and downloads: one rustls client, retries with
//! exponential backoff on transient failures, and the mirror URL mapping.

use std::io;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};

/// How often and how patiently transient failures (connection errors, 5xx, 429, cut bodies) are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before try number `attempt + 1` (`attempt` ≥ 1): base × 2^(attempt-1), capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
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
}

impl NetError {
    pub fn transient(&self) -> bool {
        match self {
            NetError::Status { status, .. } => is_transient_status(*status),
            NetError::Http { transient, .. } => *transient,
            NetError::File { .. } | NetError::BadUrl { .. } => false,
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
            .connect_timeout(Duration::from_secs(15))
            // The blocking client applies this to each read, not the whole body: a stalled transfer fails
            // (transiently) after a minute without data, a long one is fine.
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| NetError::from_reqwest("(client setup)", e))?;
        Ok(Net { client, retry })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One GET, failing on a non-success status.
    pub fn get(&self, url: &str, range_from: Option<u64>) -> Result<Response, NetError> {
        let mut req = self.client.get(url);
        if let Some(from) = range_from {
            req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        let resp = req.send().map_err(|e| NetError::from_reqwest(url, e))?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::RANGE_NOT_SATISFIABLE {
            Ok(resp)
        } else {
            Err(NetError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            })
        }
    }

    /// A small text file (checksum lists, the CHANGELOG), retried on transient failures.
    pub fn get_text(&self, url: &str) -> Result<String, NetError> {
        if let Some(path) = file_path(url)? {
            return std::fs::read_to_string(&path)
                .map_err(|source| NetError::File { path, source });
        }
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(NetError::BadUrl {
                url: url.to_string(),
            });
        }
        let mut attempt = 1;
        loop {
            let r = self
                .get(url, None)
                .and_then(|resp| resp.text().map_err(|e| NetError::from_reqwest(url, e)));
            match r {
                Err(e) if e.transient() && attempt < self.retry.attempts => {
                    thread::sleep(self.retry.delay(attempt));
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
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(3), Duration::from_millis(400));
        assert_eq!(p.delay(8), Duration::from_secs(1));
    }
}
