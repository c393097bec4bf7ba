//! Container images as pinned artifacts (the profile's `images`): `kimage lock` pins each image's
//! manifest for the cluster's architecture by digest ([`resolve`]), `kimage fetch` copies the manifest,
//! the config and every layer blob from the registry (or its mirror) into the content-addressed cache,
//! verifying each digest and size ([`fetch`]), and `kimage build` lays them out as one OCI image layout
//! in the images layer of every node that runs pods ([`layout`]); the node imports it into
//! containerd's `k8s.io` namespace before the kubelet starts and checks each manifest digest
//! (image-layers/images/).
//!
//! Parsing uses the `oci-spec` crate's image types; the distribution API is the few GETs in
//! [`registry`], on the release downloads' blocking client (the async `oci-client` would bring a second
//! HTTP stack and runtime for the same requests).

pub mod layout;
pub mod registry;

use std::fs;
use std::io::{self, Write as _};
use std::path::PathBuf;

use oci_spec::image::{ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::model::Cluster;
use crate::profile::{Arch, ImageRef};
use crate::release::cache::{BlobState, Cache};
use crate::release::digest::Algorithm;
use crate::release::net::{Budget, Net, NetError, RetryPolicy};
use registry::Registry;

/// One image in kimage.lock: the manifest the nodes run for `arch`, which pins its config and layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedImage {
    pub reference: ImageRef,
    pub arch: Arch,
    /// `sha256:<hex>` of the image manifest for `arch`.
    pub digest: String,
    /// Media type of that manifest (OCI or Docker schema 2).
    pub media_type: String,
    /// Its size in bytes, as a string (every lock value is quoted).
    pub size: String,
    /// `sha256:<hex>` of what the reference resolved to when that is a multi-arch index (the
    /// manifest above is its entry for `arch`); empty for a single-arch image.
    pub index: String,
    /// Where the digest was read.
    pub source: String,
}

impl LockedImage {
    pub fn label(&self) -> String {
        format!("image {} ({})", self.reference, self.arch.as_str())
    }
    /// The hex part of `digest`.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{image}: {source}")]
    Net { image: String, source: NetError },
    #[error("{image}: {url} is not a manifest kimage can read: {detail}")]
    BadManifest {
        image: String,
        url: String,
        detail: String,
    },
    #[error("{image}: the registry has no manifest for linux/{arch} in {url}")]
    NoPlatform {
        image: String,
        arch: String,
        url: String,
    },
    /// Content whose digest or size is not what it must be: nothing of it was kept.
    #[error("{image}: digest mismatch for {url}: expected {expected}, got {actual}{kept}")]
    Mismatch {
        image: String,
        url: String,
        expected: String,
        actual: String,
        /// How it was disposed of, for the message.
        kept: String,
    },
    #[error("{image}: {url} sends {got} bytes, its descriptor says {expected}; nothing was kept")]
    Size {
        image: String,
        url: String,
        expected: u64,
        got: u64,
    },
    #[error("{image}: {action} {}: {source}", path.display())]
    Io {
        image: String,
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{image}: blob {digest} is not in the cache ({}); run `kimage fetch`",
        path.display()
    )]
    NotFetched {
        image: String,
        digest: String,
        path: PathBuf,
    },
}

impl ImageError {
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            ImageError::Mismatch { .. } | ImageError::Size { .. } => exit::VERIFY,
            ImageError::Net {
                source: NetError::TooLarge { .. },
                ..
            } => exit::VERIFY,
            ImageError::NotFetched { .. } => exit::STATE,
            _ => exit::FAILURE,
        }
    }
}

/// The OCI platform architecture of a binaries arch.
fn oci_arch(a: Arch) -> &'static str {
    a.as_str()
}

fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// How `resolve` may pin images.
pub struct ResolveImages<'a> {
    pub offline: bool,
    pub refresh: bool,
    pub mirror: Option<String>,
    pub previous: &'a [LockedImage],
    pub retry: RetryPolicy,
}

/// Pins every image the cluster needs for its architecture: the previous lock's entry when it pins
/// the same reference (unless `refresh`), else the registry's answer now. Problems are collected.
pub fn resolve(cluster: &Cluster, opts: &ResolveImages) -> Result<Vec<LockedImage>, Vec<String>> {
    let Some(images) = &cluster.images else {
        return Ok(Vec::new());
    };
    let arch = cluster.binaries.arch;
    let mirror = opts
        .mirror
        .clone()
        .or_else(|| images.mirror.as_ref().map(|m| m.to_string()));
    let mut registry = None;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for need in images.needed.values() {
        let r = &need.reference;
        let previous = opts
            .previous
            .iter()
            .find(|p| p.reference == *r && p.arch == arch);
        if let Some(p) = previous.filter(|_| !opts.refresh) {
            out.push(p.clone());
            continue;
        }
        if opts.offline {
            problems.push(format!(
                "image {r}: not in the existing lock; run `kimage lock` without --offline (with images.mirror on an air-gapped site) to read its digest from the registry"
            ));
            continue;
        }
        if registry.is_none() {
            match Net::new(opts.retry) {
                Ok(net) => registry = Some(Registry::new(net, mirror.clone())),
                Err(e) => {
                    problems.push(e.to_string());
                    break;
                }
            }
        }
        match pin(registry.as_ref().expect("set above"), r, arch) {
            Ok(l) => out.push(l),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Reads what `r` points to and, for an index, its manifest for linux/`arch`.
fn pin(reg: &Registry, r: &ImageRef, arch: Arch) -> Result<LockedImage, ImageError> {
    let image = format!("image {r}");
    let budget = Budget::start(reg.net().retry.deadline_for(registry::MAX_MANIFEST_BYTES));
    let net = |source| ImageError::Net {
        image: image.clone(),
        source,
    };
    // A reference with a tag and a digest asks for the tag: a tag moved away from the pinned digest is
    // then found here, by name, not at the nodes.
    let top = reg
        .manifest(r, r.tag().unwrap_or(r.manifest_ref()), &budget)
        .map_err(net)?;
    let top_digest = sha256_of(&top.bytes);
    if let Some(want) = r.digest()
        && want != top_digest
    {
        return Err(ImageError::Mismatch {
            image,
            url: top.url,
            expected: want.to_string(),
            actual: top_digest,
            kept: String::new(),
        });
    }
    let bad = |url: &str, detail: String| ImageError::BadManifest {
        image: image.clone(),
        url: url.to_string(),
        detail,
    };
    let is_index = INDEX_TYPES.contains(&top.media_type.as_str())
        || (top.media_type.is_empty() && ImageIndex::from_reader(&top.bytes[..]).is_ok());
    let source = top.url.split('?').next().unwrap_or(&top.url).to_string();
    if !is_index {
        let m =
            ImageManifest::from_reader(&top.bytes[..]).map_err(|e| bad(&top.url, e.to_string()))?;
        let media_type = m
            .media_type()
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_else(|| top.media_type.clone());
        return Ok(LockedImage {
            reference: r.clone(),
            arch,
            digest: top_digest,
            media_type,
            size: top.bytes.len().to_string(),
            index: String::new(),
            source,
        });
    }
    let index =
        ImageIndex::from_reader(&top.bytes[..]).map_err(|e| bad(&top.url, e.to_string()))?;
    let entry = index
        .manifests()
        .iter()
        .find(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == oci_arch(arch)
            })
        })
        .ok_or_else(|| ImageError::NoPlatform {
            image: image.clone(),
            arch: oci_arch(arch).to_string(),
            url: top.url.clone(),
        })?;
    Ok(LockedImage {
        reference: r.clone(),
        arch,
        digest: entry.digest().to_string(),
        media_type: entry.media_type().to_string(),
        size: entry.size().to_string(),
        index: top_digest,
        source,
    })
}

/// What `fetch` did for one image.
#[derive(Debug, Clone)]
pub struct FetchedImage {
    pub label: String,
    /// Blobs downloaded now (manifest included) and their bytes; the rest were cached and re-verified.
    pub downloaded: usize,
    pub bytes: u64,
    pub blobs: usize,
}

/// Copies every locked image's manifest, config and layers into the cache, verifying each digest and
/// size; a blob already cached is re-hashed, and a corrupt one is quarantined and fetched again.
pub fn fetch(
    locked: &[LockedImage],
    cache: &Cache,
    mirror: Option<String>,
    retry: RetryPolicy,
) -> Result<Vec<FetchedImage>, ImagesFailed> {
    if locked.is_empty() {
        return Ok(Vec::new());
    }
    let total = locked.len();
    let net = Net::new(retry).map_err(|e| ImagesFailed {
        errors: vec![ImageError::Net {
            image: "images".to_string(),
            source: e,
        }],
        total,
    })?;
    let reg = Registry::new(net, mirror);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for l in locked {
        match fetch_one(&reg, cache, l) {
            Ok(f) => out.push(f),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ImagesFailed { errors, total })
    }
}

fn fetch_one(reg: &Registry, cache: &Cache, l: &LockedImage) -> Result<FetchedImage, ImageError> {
    let label = l.label();
    let mut f = FetchedImage {
        label: label.clone(),
        downloaded: 0,
        bytes: 0,
        blobs: 0,
    };
    let size: u64 = l.size.parse().unwrap_or(registry::MAX_MANIFEST_BYTES);
    let manifest_path = ensure_blob(
        reg,
        cache,
        l,
        &l.digest,
        size.min(registry::MAX_MANIFEST_BYTES),
        true,
        &mut f,
    )?;
    let m = read_manifest(&manifest_path, l)?;
    let mut blobs = vec![(m.config().digest().to_string(), m.config().size())];
    blobs.extend(
        m.layers()
            .iter()
            .map(|d| (d.digest().to_string(), d.size())),
    );
    for (digest, size) in blobs {
        ensure_blob(reg, cache, l, &digest, size, false, &mut f)?;
    }
    Ok(f)
}

/// Parses a cached manifest (already verified by digest).
pub(crate) fn read_manifest(
    path: &std::path::Path,
    l: &LockedImage,
) -> Result<ImageManifest, ImageError> {
    let bytes = fs::read(path).map_err(|source| ImageError::Io {
        image: l.label(),
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let m = ImageManifest::from_reader(&bytes[..]).map_err(|e| ImageError::BadManifest {
        image: l.label(),
        url: path.display().to_string(),
        detail: e.to_string(),
    })?;
    for d in std::iter::once(m.config()).chain(m.layers().iter()) {
        if d.as_digest_sha256().is_none() {
            return Err(ImageError::BadManifest {
                image: l.label(),
                url: path.display().to_string(),
                detail: format!("blob {} is not a sha256 digest", d.digest()),
            });
        }
    }
    Ok(m)
}

/// The cached blob `digest` (`sha256:<hex>`), downloading it when missing or corrupt. A blob is
/// streamed to a temporary file beside the cache, hashed and size-checked, and only then renamed into
/// place: an interrupted or wrong download leaves nothing under `blobs/`.
fn ensure_blob(
    reg: &Registry,
    cache: &Cache,
    l: &LockedImage,
    digest: &str,
    size: u64,
    manifest: bool,
    f: &mut FetchedImage,
) -> Result<PathBuf, ImageError> {
    let hex = digest.trim_start_matches("sha256:");
    let io_err = |action, path: &std::path::Path, source| ImageError::Io {
        image: l.label(),
        action,
        path: path.to_path_buf(),
        source,
    };
    f.blobs += 1;
    let dest = cache.blob(Algorithm::Sha256, hex);
    match cache
        .check_blob(Algorithm::Sha256, hex)
        .map_err(|e| io_err("reading", &dest, e))?
    {
        BlobState::Valid { .. } => return Ok(dest),
        BlobState::Missing => {}
        BlobState::Corrupt { .. } => {
            cache
                .quarantine(&dest, Algorithm::Sha256, hex)
                .map_err(|e| io_err("quarantining", &dest, e))?;
        }
    }
    let (kind, accept) = if manifest {
        ("manifests", Some(registry::ACCEPT))
    } else {
        ("blobs", None)
    };
    let url = reg.url(&l.reference, kind, digest);
    let budget = Budget::start(reg.net().retry.deadline_for(size));
    let net = |source| ImageError::Net {
        image: l.label(),
        source,
    };
    let tmp_dir = cache.root().join("tmp");
    fs::create_dir_all(&tmp_dir).map_err(|e| io_err("creating", &tmp_dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("sha256-{hex}."))
        .suffix(".partial")
        .tempfile_in(&tmp_dir)
        .map_err(|e| io_err("creating a file in", &tmp_dir, e))?;
    let mut resp = reg.get(&l.reference, &url, accept, &budget).map_err(net)?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reg
            .net()
            .read_body(&url, &mut resp, &mut buf, received, Some(size), &budget)
            .map_err(net)?;
        if n == 0 {
            break;
        }
        received += n as u64;
        if received > size {
            return Err(ImageError::Size {
                image: l.label(),
                url,
                expected: size,
                got: received,
            });
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| io_err("writing", tmp.path(), e))?;
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != digest {
        return Err(ImageError::Mismatch {
            image: l.label(),
            url,
            expected: digest.to_string(),
            actual,
            kept: "; nothing was kept".to_string(),
        });
    }
    if received != size && !manifest {
        return Err(ImageError::Size {
            image: l.label(),
            url,
            expected: size,
            got: received,
        });
    }
    let (_file, path) = tmp
        .keep()
        .map_err(|e| io_err("keeping", &tmp_dir, e.error))?;
    let dest = cache
        .commit(&path, Algorithm::Sha256, hex)
        .map_err(|e| io_err("moving into the cache", &path, e))?;
    f.downloaded += 1;
    f.bytes += received;
    Ok(dest)
}

/// Every failure of an image fetch run (the other images still completed).
#[derive(Debug, thiserror::Error)]
#[error("fetching images failed for {} of {total}:\n  {}", errors.len(), errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
pub struct ImagesFailed {
    pub errors: Vec<ImageError>,
    pub total: usize,
}

impl ImagesFailed {
    /// 4 when any content failed verification, else the first error's status.
    pub fn exit_code(&self) -> u8 {
        self.errors
            .iter()
            .map(ImageError::exit_code)
            .max()
            .unwrap_or(crate::exit::FAILURE)
    }
}
