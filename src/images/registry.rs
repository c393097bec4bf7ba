//! The OCI distribution API, read-only: manifests and blobs of one repository, through the profile's
//! registry mirror or from the image's own registry, with the anonymous bearer-token challenge public
//! registries (ghcr.io, Docker Hub) answer with. Blocking, on the release downloads' client, so images
//! share their deadlines, idle timeouts, retries and size caps (`release::net`).

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::blocking::Response;

use crate::profile::ImageRef;
use crate::release::net::{Budget, Net, NetError, size_detail};

/// Every manifest media type kimage reads: OCI and Docker, single images and multi-arch lists.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The most a manifest or index may be (the distribution spec's registries refuse past 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

pub struct Registry {
    net: Net,
    mirror: Option<String>,
    /// Bearer tokens by `registry/repository`, from answered challenges.
    tokens: Mutex<HashMap<String, String>>,
}

/// A manifest or index as the registry sent it.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub url: String,
}

impl Registry {
    pub fn new(net: Net, mirror: Option<String>) -> Registry {
        Registry {
            net,
            mirror: mirror.map(|m| m.trim_end_matches('/').to_string()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn net(&self) -> &Net {
        &self.net
    }

    /// `<base>/v2/<repository>/<kind>/<reference>`; through a mirror the upstream registry travels in
    /// `ns=`, as containerd sends it to its mirrors.
    pub fn url(&self, image: &ImageRef, kind: &str, reference: &str) -> String {
        match &self.mirror {
            Some(m) => format!(
                "{m}/v2/{}/{kind}/{reference}?ns={}",
                image.repository(),
                image.registry()
            ),
            None => {
                let host = match image.registry() {
                    "docker.io" => "registry-1.docker.io",
                    r => r,
                };
                format!(
                    "https://{host}/v2/{}/{kind}/{reference}",
                    image.repository()
                )
            }
        }
    }

    /// A GET that answers one bearer challenge (anonymous pull token) and retries transient failures
    /// within `budget`.
    pub fn get(
        &self,
        image: &ImageRef,
        url: &str,
        accept: Option<&str>,
        budget: &Budget,
    ) -> Result<Response, NetError> {
        let key = format!("{}/{}", image.registry(), image.repository());
        let mut attempt = 1;
        let mut challenged = false;
        loop {
            let mut headers = Vec::new();
            if let Some(a) = accept {
                headers.push(("accept", a.to_string()));
            }
            if let Some(t) = self.tokens.lock().expect("not poisoned").get(&key) {
                headers.push(("authorization", format!("Bearer {t}")));
            }
            let r = self
                .net
                .request(url, &headers, None, budget)
                .and_then(|resp| {
                    if resp.status() != StatusCode::UNAUTHORIZED {
                        return Ok(Some(resp));
                    }
                    let challenge = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    if challenged {
                        return Err(NetError::Status {
                            url: url.to_string(),
                            status: 401,
                        });
                    }
                    let token = self.token(url, &challenge)?;
                    self.tokens
                        .lock()
                        .expect("not poisoned")
                        .insert(key.clone(), token);
                    Ok(None)
                });
            match r {
                Ok(Some(resp)) => return Ok(resp),
                Ok(None) => challenged = true,
                Err(e) if e.transient() && attempt < self.net.retry.attempts => {
                    match self.net.retry.wait_within(attempt, budget) {
                        Some(wait) => std::thread::sleep(wait),
                        None => return Err(budget.no_time_for_retry(e)),
                    }
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// An anonymous token for a `Bearer realm="…",service="…",scope="…"` challenge.
    fn token(&self, url: &str, challenge: &str) -> Result<String, NetError> {
        let unusable = |why: &str| NetError::Http {
            url: url.to_string(),
            detail: format!("HTTP 401 with {why}; kimage pulls anonymously only"),
            transient: false,
        };
        let params = parse_challenge(challenge).ok_or_else(|| {
            unusable(&format!(
                "an authentication challenge it cannot answer ({challenge:?})"
            ))
        })?;
        let realm = params
            .get("realm")
            .ok_or_else(|| unusable("a bearer challenge without a realm"))?;
        let mut token_url = reqwest::Url::parse(realm)
            .map_err(|_| unusable(&format!("a token realm that is not a URL ({realm:?})")))?;
        for k in ["service", "scope"] {
            if let Some(v) = params.get(k) {
                token_url.query_pairs_mut().append_pair(k, v);
            }
        }
        let text = self
            .net
            .get_text(token_url.as_str(), "a token", 1024 * 1024)?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| unusable("a token endpoint that does not answer JSON"))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| unusable("a token endpoint that sent no token"))
    }

    /// The manifest (or index) `reference` (a tag or a digest) of `image`, at most
    /// [`MAX_MANIFEST_BYTES`].
    pub fn manifest(
        &self,
        image: &ImageRef,
        reference: &str,
        budget: &Budget,
    ) -> Result<Fetched, NetError> {
        let url = self.url(image, "manifests", reference);
        let mut resp = self.get(image, &url, Some(ACCEPT), budget)?;
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let total = resp.content_length();
        if let Some(n) = total.filter(|n| *n > MAX_MANIFEST_BYTES) {
            return Err(too_large(&url, size_detail(0, Some(n))));
        }
        let mut bytes = Vec::new();
        (&mut resp)
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| NetError::Http {
                url: url.clone(),
                detail: format!("reading the manifest: {e}"),
                transient: true,
            })?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(too_large(&url, size_detail(bytes.len() as u64, None)));
        }
        Ok(Fetched {
            bytes,
            media_type,
            url,
        })
    }
}

fn too_large(url: &str, detail: String) -> NetError {
    NetError::TooLarge {
        url: url.to_string(),
        what: "a manifest".to_string(),
        limit: MAX_MANIFEST_BYTES,
        detail,
    }
}

/// The parameters of a `Bearer k="v",…` challenge.
pub fn parse_challenge(h: &str) -> Option<HashMap<String, String>> {
    let rest = h.trim().strip_prefix("Bearer ")?;
    let mut out = HashMap::new();
    let mut s = rest;
    while !s.is_empty() {
        let (k, v) = s.split_once('=')?;
        let v = v.strip_prefix('"')?;
        let end = v.find('"')?;
        out.insert(k.trim().to_string(), v[..end].to_string());
        s = v[end + 1..].trim_start_matches(',').trim_start();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ghcr_challenge_parses() {
        let p = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:flannel-io/flannel:pull""#,
        )
        .unwrap();
        assert_eq!(p["realm"], "https://ghcr.io/token");
        assert_eq!(p["service"], "ghcr.io");
        assert_eq!(p["scope"], "repository:flannel-io/flannel:pull");
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
    }

    #[test]
    fn urls_keep_the_repository_and_name_the_registry_to_a_mirror() {
        let net = Net::new(Default::default()).unwrap();
        let r: ImageRef = "ghcr.io/flannel-io/flannel:v0.27.4".parse().unwrap();
        let direct = Registry::new(Net::new(Default::default()).unwrap(), None);
        assert_eq!(
            direct.url(&r, "manifests", "v0.27.4"),
            "https://ghcr.io/v2/flannel-io/flannel/manifests/v0.27.4"
        );
        let hub: ImageRef = "nginx:1.27".parse().unwrap();
        assert_eq!(
            direct.url(&hub, "blobs", "sha256:ab"),
            "https://registry-1.docker.io/v2/library/nginx/blobs/sha256:ab"
        );
        let m = Registry::new(net, Some("http://10.0.0.1:5000/".into()));
        assert_eq!(
            m.url(&r, "manifests", "v0.27.4"),
            "http://10.0.0.1:5000/v2/flannel-io/flannel/manifests/v0.27.4?ns=ghcr.io"
        );
    }
}
