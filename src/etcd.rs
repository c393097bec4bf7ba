//! Talking to a running etcd cluster from the operator's machine, with a client certificate from the
//! PKI state, over etcd's JSON gateway (`/v3/cluster/member/*`): list the members, remove one.
//! Joining needs no command: a member added to the profile adds itself when it boots.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("setting up the etcd client: {0}")]
    Client(String),
    #[error("no etcd member answered at {endpoints}: {last}")]
    Unreachable { endpoints: String, last: String },
    #[error("no member named `{name}` in the cluster; members: {members}")]
    NoSuchMember { name: String, members: String },
    #[error(
        "removing `{name}` would leave {left} voting member(s) of {total}: below quorum the cluster stops; add members first"
    )]
    Quorum {
        name: String,
        left: usize,
        total: usize,
    },
    #[error("etcd refused to remove `{name}`: {detail}")]
    Refused { name: String, detail: String },
}

impl EtcdError {
    pub fn exit_code(&self) -> u8 {
        match self {
            // The name or the request was wrong: nothing was changed.
            EtcdError::NoSuchMember { .. } | EtcdError::Quorum { .. } => crate::exit::INVALID,
            EtcdError::Client(_) | EtcdError::Unreachable { .. } | EtcdError::Refused { .. } => {
                crate::exit::FAILURE
            }
        }
    }
}

/// One member as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    #[serde(rename = "ID", deserialize_with = "id_from_string_or_number")]
    pub id: u64,
    /// Empty until a newly added member has started.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

fn id_from_string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    match Id::deserialize(d)? {
        Id::S(s) => s.parse().map_err(serde::de::Error::custom),
        Id::N(n) => Ok(n),
    }
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(default)]
    members: Vec<Member>,
}

/// A client for the members' client URLs, authenticated with a certificate of the etcd CA.
pub struct Client {
    http: reqwest::blocking::Client,
    endpoints: Vec<String>,
}

impl Client {
    pub fn new(
        endpoints: Vec<String>,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Client, EtcdError> {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
            .map_err(|e| EtcdError::Client(e.to_string()))?;
        let mut identity = cert_pem.as_bytes().to_vec();
        identity.extend_from_slice(key_pem.as_bytes());
        let id =
            reqwest::Identity::from_pem(&identity).map_err(|e| EtcdError::Client(e.to_string()))?;
        let http = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(id)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| EtcdError::Client(e.to_string()))?;
        Ok(Client { http, endpoints })
    }

    /// POSTs `body` to `path` on the first member that answers.
    fn call(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, EtcdError> {
        let mut last = String::from("no endpoints");
        for ep in &self.endpoints {
            let url = format!("{}{path}", ep.trim_end_matches('/'));
            let req = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string());
            match req.send() {
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().unwrap_or_default();
                    let v: serde_json::Value =
                        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                    if status.is_success() {
                        return Ok(v);
                    }
                    last = format!("{url}: HTTP {status}: {v}");
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(EtcdError::Unreachable {
            endpoints: self.endpoints.join(","),
            last,
        })
    }

    pub fn members(&self) -> Result<Vec<Member>, EtcdError> {
        let v = self.call("/v3/cluster/member/list", &serde_json::json!({}))?;
        let r: ListResponse =
            serde_json::from_value(v).map_err(|e| EtcdError::Client(e.to_string()))?;
        Ok(r.members)
    }

    /// Removes the member called `name` (or whose peer URL is `peer_url`, for one that never started),
    /// refusing when the voting members left could not keep quorum for the current ones.
    pub fn remove(&self, name: &str, peer_url: Option<&str>) -> Result<Member, EtcdError> {
        let members = self.members()?;
        let target = members
            .iter()
            .find(|m| {
                m.name == name || peer_url.is_some_and(|u| m.peer_urls.iter().any(|p| p == u))
            })
            .cloned()
            .ok_or_else(|| EtcdError::NoSuchMember {
                name: name.to_string(),
                members: members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let voting = members.iter().filter(|m| !m.is_learner).count();
        if !target.is_learner && voting <= 2 && voting > 0 {
            return Err(EtcdError::Quorum {
                name: name.to_string(),
                left: voting - 1,
                total: voting,
            });
        }
        self.call(
            "/v3/cluster/member/remove",
            &serde_json::json!({"ID": target.id.to_string()}),
        )
        .map_err(|e| EtcdError::Refused {
            name: name.to_string(),
            detail: e.to_string(),
        })?;
        Ok(target)
    }
}
