//! The images layer: every locked image as one OCI image layout under [`DIR`], which the node packs
//! into a tar and hands to `ctr -n k8s.io images import` (image-layers/images/kimage-images-import).
//! Each blob is the cache's verified file (re-hashed here); `index.json` names each manifest with the
//! `io.containerd.image.name` annotation containerd's import reads, and `images.list` gives the node
//! the name and digest to check after the import.

use std::collections::BTreeMap;

use super::{ImageError, LockedImage, read_manifest};
use crate::layers::{Content, Entry};
use crate::release::cache::{BlobState, Cache};
use crate::release::digest::Algorithm;

/// Where the layout lands on a node.
pub const DIR: &str = "/var/lib/kimage/images";

/// The layer entries for `locked` (sorted by reference, as the lock lists them).
pub fn entries(locked: &[LockedImage], cache: &Cache) -> Result<Vec<Entry>, ImageError> {
    let mut blobs: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
    let mut manifests = Vec::new();
    let mut list = String::new();
    for l in locked {
        let manifest = verified(cache, l, l.hex())?;
        let m = read_manifest(&manifest, l)?;
        blobs.insert(l.hex().to_string(), manifest);
        for d in std::iter::once(m.config()).chain(m.layers().iter()) {
            let hex = d
                .as_digest_sha256()
                .expect("read_manifest checked the digests");
            blobs.insert(hex.to_string(), verified(cache, l, hex)?);
        }
        let name = l.reference.name();
        let mut annotations = serde_json::Map::new();
        annotations.insert("io.containerd.image.name".into(), name.clone().into());
        if let Some(tag) = l.reference.tag() {
            annotations.insert("org.opencontainers.image.ref.name".into(), tag.into());
        }
        manifests.push(serde_json::json!({
            "mediaType": l.media_type,
            "digest": l.digest,
            "size": l.size.parse::<u64>().unwrap_or(0),
            "annotations": annotations,
            "platform": {"architecture": l.arch.as_str(), "os": "linux"},
        }));
        list.push_str(&format!("{name} {}\n", l.digest));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut out = vec![
        Entry::file(
            format!("{DIR}/oci-layout"),
            0o644,
            br#"{"imageLayoutVersion":"1.0.0"}"#.as_slice(),
        ),
        Entry::file(
            format!("{DIR}/index.json"),
            0o644,
            serde_json::to_vec(&index).expect("json serializes"),
        ),
        Entry::file(format!("{DIR}/images.list"), 0o644, list),
    ];
    for (hex, path) in blobs {
        out.push(Entry::file(
            format!("{DIR}/blobs/sha256/{hex}"),
            0o444,
            Content::Path(path),
        ));
    }
    Ok(out)
}

fn verified(cache: &Cache, l: &LockedImage, hex: &str) -> Result<std::path::PathBuf, ImageError> {
    let path = cache.blob(Algorithm::Sha256, hex);
    match cache.check_blob(Algorithm::Sha256, hex) {
        Ok(BlobState::Valid { .. }) => Ok(path),
        Ok(BlobState::Missing) => Err(ImageError::NotFetched {
            image: l.label(),
            digest: format!("sha256:{hex}"),
            path,
        }),
        Ok(BlobState::Corrupt { actual }) => Err(ImageError::Mismatch {
            image: l.label(),
            url: path.display().to_string(),
            expected: format!("sha256:{hex}"),
            actual: format!("sha256:{actual}"),
            kept: "; run `kimage fetch` to replace it".to_string(),
        }),
        Err(source) => Err(ImageError::Io {
            image: l.label(),
            action: "reading",
            path,
            source,
        }),
    }
}
