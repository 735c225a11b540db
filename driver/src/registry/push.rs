//! `push`: an image of the store to a registry.
//!
//! Layer blobs go exactly as the store keeps them (as distributed: pulled, loaded or
//! imported), so the manifest names their digests. For each blob: `HEAD` first (the registry
//! may have it), then a cross-repository mount when an image with this blob came from another
//! repository of the same registry (its repo digests say where), else an upload: one `PUT`
//! for small blobs, `PATCH` chunks for big ones, always following the latest `Location`.
//! Then the config, then the manifest: the one the image was pulled with when it still
//! describes these blobs (same digest as the source), else a new docker v2 schema2 manifest
//! (OCI when a layer is zstd).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ureq::http::{Method, StatusCode};

use super::auth::repo_scope;
use super::client::{Body, Client, ClientOptions, resolve_location, with_query};
use super::error::{RegistryError, Result};
use super::{BlobEvent, NoProgress, Progress};
use crate::archive::Compression;
use crate::digest::Digest;
use crate::image::{
    DOCKER_MANIFEST_V2, LayerCompression, ManifestBuilder, ManifestFlavor, ManifestOrIndex,
    manifest_to_bytes, parse_manifest_or_index,
};
use crate::images::{ImageRecord, ImageStore, Index};
use crate::refs::{Reference, parse_normalized_named};

/// Blobs up to this size go in one `PUT`; bigger ones in `PATCH` chunks of this size.
pub const CHUNK: u64 = 8 << 20;
/// Blobs uploaded at once.
pub const PARALLEL_BLOBS: usize = 3;
/// Times a blob upload is started again after a passing failure.
const PUSH_RETRIES: u32 = 2;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// One blob to push.
#[derive(Debug, Clone)]
struct PushBlob {
    digest: Digest,
    size: u64,
    /// Repositories of the target registry that have it (mount sources).
    sources: Vec<String>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size in bytes.
    pub size: usize,
}

/// Repositories on `registry` (other than `repo`) that images carrying each blob came from,
/// from the repo digests recorded at pull and push.
fn mount_sources(idx: &Index, registry: &str, repo: &str) -> BTreeMap<Digest, Vec<String>> {
    let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for (name, hex) in &idx.digests {
        let Some(rec) = idx.images.get(hex) else {
            continue;
        };
        let Some((n, _)) = name.rsplit_once('@') else {
            continue;
        };
        let Ok(r) = parse_normalized_named(n) else {
            continue;
        };
        if r.domain() != registry || r.path() == repo {
            continue;
        }
        for b in rec.layer_blobs.iter().flatten() {
            let v = out.entry(*b).or_default();
            if !v.iter().any(|p| p == r.path()) {
                v.push(r.path().to_string());
            }
        }
    }
    out
}

/// The manifest to push: the recorded one if it still names exactly these blobs, else a new
/// one. Returns (bytes, media type).
fn manifest_for(
    images: &ImageStore,
    rec: &ImageRecord,
    layers: &[Digest],
) -> Result<(Vec<u8>, String)> {
    let store = images.store();
    if let Some(md) = rec.manifest.filter(|d| store.has_blob(d)) {
        let bytes =
            std::fs::read(store.blob_path(&md)).map_err(|source| crate::error::Error::Io {
                op: "read manifest",
                path: store.blob_path(&md),
                source,
            })?;
        if let Ok(ManifestOrIndex::Manifest(m)) = parse_manifest_or_index(&bytes, None) {
            let same_config = m.config().digest().as_ref() == rec.id.to_string();
            let same_layers = m.layers().len() == layers.len()
                && m.layers()
                    .iter()
                    .zip(layers)
                    .all(|(l, d)| l.digest().as_ref() == d.to_string());
            if same_config && same_layers {
                let mt = m
                    .media_type()
                    .as_ref()
                    .map_or_else(|| OCI_MANIFEST.to_string(), |t| t.to_string());
                return Ok((bytes, mt));
            }
        }
    }
    let mut compressions = Vec::new();
    for d in layers {
        let mut magic = [0u8; 4];
        let mut f = store.open_blob(d)?;
        let n = f.read(&mut magic).unwrap_or(0);
        compressions.push(match Compression::detect(&magic[..n]) {
            Compression::None => LayerCompression::None,
            Compression::Gzip => LayerCompression::Gzip,
            Compression::Zstd => LayerCompression::Zstd,
        });
    }
    let flavor = if compressions.contains(&LayerCompression::Zstd) {
        ManifestFlavor::Oci
    } else {
        ManifestFlavor::DockerV2
    };
    let config_size = blob_size(images, &rec.id)?;
    let bad = |source| RegistryError::Manifest {
        reference: rec.id.to_string(),
        source,
    };
    let mut mb = ManifestBuilder::new(flavor, &rec.id.to_string(), config_size).map_err(bad)?;
    for (d, c) in layers.iter().zip(compressions) {
        mb = mb
            .layer(&d.to_string(), blob_size(images, d)?, c)
            .map_err(bad)?;
    }
    let mt = match flavor {
        ManifestFlavor::Oci => OCI_MANIFEST,
        ManifestFlavor::DockerV2 => DOCKER_MANIFEST_V2,
    };
    Ok((manifest_to_bytes(&mb.build()), mt.to_string()))
}

fn blob_size(images: &ImageStore, d: &Digest) -> Result<u64> {
    let p = images.store().blob_path(d);
    let md = std::fs::metadata(&p).map_err(|source| crate::error::Error::Io {
        op: "stat blob",
        path: p,
        source,
    })?;
    Ok(md.len())
}

struct Pusher<'a> {
    client: Client,
    images: &'a ImageStore,
    repo: String,
}

enum Outcome {
    Exists,
    Mounted(String),
    Uploaded,
}

impl Pusher<'_> {
    fn scopes(&self, from: Option<&str>) -> Vec<String> {
        let mut s = vec![repo_scope(&self.repo, true)];
        s.extend(from.map(|f| repo_scope(f, false)));
        s
    }

    fn blob_url(&self, d: &Digest) -> String {
        self.client.url(&format!("{}/blobs/{d}", self.repo))
    }

    fn location(
        &self,
        resp: &ureq::http::Response<ureq::Body>,
        base: &str,
        what: &str,
    ) -> Result<String> {
        resp.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| resolve_location(base, l))
            .ok_or_else(|| self.client.bad(what, "no Location header in the response"))
    }

    /// [`Self::push_blob_once`], started again (after 1 s, then 2 s) when the connection
    /// broke or the registry had a passing failure.
    fn push_blob(&self, blob: &PushBlob, progress: &dyn Progress) -> Result<Outcome> {
        let mut attempt = 0;
        loop {
            match self.push_blob_once(blob, progress) {
                Err(e) if attempt < PUSH_RETRIES && super::blob::retryable(&e) => {
                    attempt += 1;
                    progress.blob(&blob.digest, BlobEvent::Retrying { attempt, offset: 0 });
                    std::thread::sleep(std::time::Duration::from_secs(1 << (attempt - 1)));
                }
                other => return other,
            }
        }
    }

    fn push_blob_once(&self, blob: &PushBlob, progress: &dyn Progress) -> Result<Outcome> {
        let what = format!("blob {}", blob.digest);
        let scopes = self.scopes(None);
        let head = self.client.send(
            Method::HEAD,
            &self.blob_url(&blob.digest),
            &scopes,
            &[],
            Body::Empty,
        )?;
        if head.status().is_success() {
            return Ok(Outcome::Exists);
        }
        let uploads = self.client.url(&format!("{}/blobs/uploads/", self.repo));
        let mut session = None;
        for from in &blob.sources {
            let url = with_query(
                &with_query(&uploads, "mount", &blob.digest.to_string()),
                "from",
                from,
            );
            let scopes = self.scopes(Some(from));
            let resp = self
                .client
                .send(Method::POST, &url, &scopes, &[], Body::Bytes(&[]))?;
            match resp.status() {
                StatusCode::CREATED => return Ok(Outcome::Mounted(from.clone())),
                StatusCode::ACCEPTED => {
                    session = Some(self.location(&resp, &url, &what)?);
                    break;
                }
                _ => {}
            }
        }
        let mut loc = match session {
            Some(l) => l,
            None => {
                let resp =
                    self.client
                        .send(Method::POST, &uploads, &scopes, &[], Body::Bytes(&[]))?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self
                        .client
                        .status_error(resp, &format!("start upload of {what}")));
                }
                self.location(&resp, &uploads, &what)?
            }
        };
        let mut file = self.images.store().open_blob(&blob.digest)?;
        let read_err = |source| {
            RegistryError::Store(crate::error::Error::Io {
                op: "read blob",
                path: self.images.store().blob_path(&blob.digest),
                source,
            })
        };
        let final_body: Vec<u8>;
        if blob.size <= CHUNK {
            let mut data = Vec::with_capacity(blob.size as usize);
            file.read_to_end(&mut data).map_err(read_err)?;
            final_body = data;
        } else {
            let mut done = 0u64;
            let mut buf = vec![0u8; CHUNK as usize];
            loop {
                let n = read_full(&mut file, &mut buf).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                let range = format!("{}-{}", done, done + n as u64 - 1);
                let resp = self.client.send(
                    Method::PATCH,
                    &loc,
                    &scopes,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", &range),
                    ],
                    Body::Bytes(&buf[..n]),
                )?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self
                        .client
                        .status_error(resp, &format!("upload chunk of {what}")));
                }
                loc = self.location(&resp, &loc, &what)?;
                done += n as u64;
                progress.blob(
                    &blob.digest,
                    BlobEvent::Progress {
                        done,
                        total: blob.size,
                    },
                );
            }
            final_body = Vec::new();
        }
        let put_url = with_query(&loc, "digest", &blob.digest.to_string());
        let resp = self.client.send(
            Method::PUT,
            &put_url,
            &scopes,
            &[("Content-Type", "application/octet-stream")],
            Body::Bytes(&final_body),
        )?;
        if resp.status() != StatusCode::CREATED {
            return Err(self
                .client
                .status_error(resp, &format!("finish upload of {what}")));
        }
        Ok(Outcome::Uploaded)
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Pushes the local image `source` (an image argument: name, ID) as `target` (a tagged,
/// normalised reference) and records `target`'s repo digest.
pub fn push(
    images: &ImageStore,
    source: &str,
    target: &Reference,
    opts: &ClientOptions,
    progress: &dyn Progress,
) -> Result<Pushed> {
    let idx = images.index()?;
    let (id, _) = idx.resolve(source)?;
    let rec = idx
        .images
        .get(&id.hex())
        .cloned()
        .ok_or_else(|| crate::images::ImagesError::NotFound(source.to_string()))?;
    let layers: Vec<Digest> = rec
        .diff_ids
        .iter()
        .enumerate()
        .map(|(i, diff_id)| {
            rec.layer_blobs
                .get(i)
                .copied()
                .flatten()
                .filter(|b| images.store().has_blob(b))
                .ok_or(RegistryError::MissingBlob {
                    image: id,
                    diff_id: *diff_id,
                })
        })
        .collect::<Result<_>>()?;
    let (manifest, media_type) = manifest_for(images, &rec, &layers)?;
    let registry = target.domain();
    let repo = target.path().to_string();
    let sources = mount_sources(&idx, registry, &repo);
    let pusher = Pusher {
        client: Client::new(registry, opts)?,
        images,
        repo,
    };
    let mut blobs = Vec::new();
    for d in layers.iter().rev() {
        if blobs.iter().any(|b: &PushBlob| b.digest == *d) {
            continue;
        }
        blobs.push(PushBlob {
            digest: *d,
            size: blob_size(images, d)?,
            sources: sources.get(d).cloned().unwrap_or_default(),
        });
    }
    for b in &blobs {
        progress.blob(&b.digest, BlobEvent::Queued);
    }
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_BLOBS.min(blobs.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= blobs.len() || first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                        break;
                    }
                    let b = &blobs[i];
                    match pusher.push_blob(b, progress) {
                        Ok(Outcome::Exists) => progress.blob(&b.digest, BlobEvent::Exists),
                        Ok(Outcome::Mounted(from)) => progress.mounted(&b.digest, &from),
                        Ok(Outcome::Uploaded) => progress.blob(&b.digest, BlobEvent::Done),
                        Err(e) => {
                            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let config = PushBlob {
        digest: id,
        size: blob_size(images, &id)?,
        sources: vec![],
    };
    pusher.push_blob(&config, &NoProgress)?;
    let tag = target.tag().unwrap_or(crate::refs::DEFAULT_TAG);
    let url = pusher
        .client
        .url(&format!("{}/manifests/{tag}", pusher.repo));
    let resp = pusher.client.send(
        Method::PUT,
        &url,
        &pusher.scopes(None),
        &[("Content-Type", &media_type)],
        Body::Bytes(&manifest),
    )?;
    if resp.status() != StatusCode::CREATED {
        return Err(pusher
            .client
            .status_error(resp, &format!("manifest {}", target.familiar())));
    }
    let digest = Digest::of(&manifest);
    let repo_digest = format!("{}@{digest}", target.name());
    images.update(|idx| {
        idx.digests.insert(repo_digest, id.hex());
        Ok(())
    })?;
    Ok(Pushed {
        digest,
        size: manifest.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_sources_from_repo_digests() {
        let d = Digest::of(b"layer");
        let rec = ImageRecord {
            id: Digest::of(b"cfg"),
            diff_ids: vec![d],
            manifest: None,
            layer_blobs: vec![Some(d)],
            added: 0,
            last_tag: None,
        };
        let mut idx = Index::default();
        idx.images.insert(rec.id.hex(), rec.clone());
        let m = Digest::of(b"m");
        for name in [
            "127.0.0.1:5000/a",
            "127.0.0.1:5000/b",
            "127.0.0.1:6000/c",
            "busybox",
        ] {
            let r = parse_normalized_named(name).unwrap();
            idx.digests
                .insert(format!("{}@{m}", r.name()), rec.id.hex());
        }
        let s = mount_sources(&idx, "127.0.0.1:5000", "b");
        assert_eq!(s.get(&d), Some(&vec!["a".to_string()]));
        let s = mount_sources(&idx, "docker.io", "library/x");
        assert_eq!(s.get(&d), Some(&vec!["library/busybox".to_string()]));
    }
}
