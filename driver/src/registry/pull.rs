//! `pull`: a manifest (or a manifest list / OCI index, narrowed to one platform), its config
//! and its layers from a registry into the store.
//!
//! Two steps, so a caller can report between them: [`resolve`] fetches and verifies the
//! manifest and the config; [`fetch`] brings the layers. Each missing layer is streamed from
//! the network through the blob hash, decompression and the diff_id hash straight into
//! extraction (no download-then-extract), while the bytes as received are teed into a blob
//! temp file (kept for `push` and `save`). Nothing becomes visible before both digests match;
//! a few layers move at once; broken connections resume with `Range` ([`super::blob`]). On
//! any failure, layers and blobs this pull created are removed again.

use std::io::{self, BufReader, Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use oci_spec::image::ImageManifest;
use ureq::http::{Method, StatusCode};

use super::auth::repo_scope;
use super::blob::BlobReader;
use super::client::{Body, Client, ClientOptions};
use super::error::{RegistryError, Result};
use super::platform::{self, Platform};
use super::{BlobEvent, Progress};
use crate::digest::{Digest, chain_next};
use crate::error::{EntryError, Error};
use crate::image::{ImageConfig, ManifestOrIndex, parse_manifest_or_index};
use crate::images::{ImageRecord, ImageStore};
use crate::layer::ImportOptions;
use crate::refs::Reference;
use crate::store::BlobWriter;

/// Manifests larger than this are refused (distribution's own limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// Configs larger than this are refused.
const MAX_CONFIG: u64 = 32 << 20;
/// Layers downloaded at once.
pub const PARALLEL_LAYERS: usize = 3;

/// Every manifest type cairn can pull, for `Accept`.
pub const MANIFEST_ACCEPT: &str = concat!(
    "application/vnd.oci.image.index.v1+json, ",
    "application/vnd.oci.image.manifest.v1+json, ",
    "application/vnd.docker.distribution.manifest.list.v2+json, ",
    "application/vnd.docker.distribution.manifest.v2+json"
);

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from a manifest list (default: the host's). When given, a single
    /// manifest for another platform is refused too.
    pub platform: Option<Platform>,
    /// How to reach the registry.
    pub client: ClientOptions,
}

/// One layer to pull.
#[derive(Debug, Clone)]
pub struct PlannedLayer {
    /// Blob digest (as distributed).
    pub digest: Digest,
    /// Blob size from the manifest.
    pub size: u64,
    /// diff_id from the config.
    pub diff_id: Digest,
    /// Chain id of the layer below.
    pub parent: Option<Digest>,
    /// True when the layer is in the store already with a blob of it (this one, or the one
    /// it was imported from before): nothing to download.
    pub present: bool,
    /// The blob the image record names for this layer: `digest`, or the stored blob of an
    /// equal layer that came another way (e.g. compressed differently).
    pub stored_blob: Digest,
}

/// A resolved pull: manifest and config fetched and verified, layers still to come.
#[derive(Debug)]
pub struct PullPlan {
    client: Client,
    scopes: Vec<String>,
    /// The reference pulled (normalised; a tag or a digest).
    pub reference: Reference,
    /// Digest of what the tag or digest names (a manifest list's own digest, if it was one):
    /// the repo digest docker shows.
    pub digest: Digest,
    /// The image manifest's digest and bytes (the platform's entry of a list).
    pub manifest_digest: Digest,
    manifest_bytes: Vec<u8>,
    config: ImageConfig,
    /// The image ID (config digest).
    pub id: Digest,
    /// Layers bottom first.
    pub layers: Vec<PlannedLayer>,
    /// True when the reference already named this image in the store.
    pub up_to_date: bool,
}

/// Fetches a manifest by tag or digest: bytes, served media type and digest (verified when
/// asked for by digest; compared with `Docker-Content-Digest` otherwise).
fn get_manifest(
    client: &Client,
    repo: &str,
    reference: &str,
    display: &str,
    scopes: &[String],
) -> Result<(Vec<u8>, Option<String>, Digest)> {
    let url = client.url(&format!("{repo}/manifests/{reference}"));
    let resp = client.send(
        Method::GET,
        &url,
        scopes,
        &[("Accept", MANIFEST_ACCEPT)],
        Body::Empty,
    )?;
    if resp.status() == StatusCode::NOT_FOUND {
        let (_, message) = super::client::error_message(resp);
        return Err(RegistryError::ManifestUnknown {
            reference: display.to_string(),
            message,
        });
    }
    if !resp.status().is_success() {
        return Err(client.status_error(resp, &format!("manifest {display}")));
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
    };
    let media_type = header("content-type");
    let served_digest = header("docker-content-digest");
    if let Some(len) = header("content-length").and_then(|l| l.parse::<u64>().ok())
        && len > MAX_MANIFEST
    {
        return Err(too_large(client, "manifest", reference, MAX_MANIFEST));
    }
    let bytes = resp
        .into_body()
        .with_config()
        .limit(MAX_MANIFEST)
        .read_to_vec()
        .map_err(|e| client.bad(&format!("manifest {display}"), e.to_string()))?;
    let actual = Digest::of(&bytes);
    let expected = match Digest::parse(reference) {
        Ok(d) => Some(d),
        Err(_) => served_digest.and_then(|d| Digest::parse(&d).ok()),
    };
    if let Some(expected) = expected
        && expected != actual
    {
        return Err(RegistryError::DigestMismatch {
            registry: client.registry().to_string(),
            what: "manifest",
            expected,
            actual,
        });
    }
    Ok((bytes, media_type, actual))
}

fn too_large(client: &Client, what: &'static str, digest: &str, limit: u64) -> RegistryError {
    RegistryError::TooLarge {
        registry: client.registry().to_string(),
        what,
        digest: digest.to_string(),
        limit,
    }
}

/// Fetches a small blob (a config) whole, verified against `digest`.
pub(crate) fn get_small_blob(
    client: &Client,
    repo: &str,
    digest: &Digest,
    scopes: &[String],
) -> Result<Vec<u8>> {
    let url = client.url(&format!("{repo}/blobs/{digest}"));
    let resp = client.send(Method::GET, &url, scopes, &[], Body::Empty)?;
    if !resp.status().is_success() {
        return Err(client.status_error(resp, &format!("GET blob {digest}")));
    }
    let bytes = resp
        .into_body()
        .with_config()
        .limit(MAX_CONFIG)
        .read_to_vec()
        .map_err(|e| client.bad(&format!("blob {digest}"), e.to_string()))?;
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(RegistryError::DigestMismatch {
            registry: client.registry().to_string(),
            what: "config",
            expected: *digest,
            actual,
        });
    }
    Ok(bytes)
}

fn parse(bytes: &[u8], media_type: Option<&str>, reference: &str) -> Result<ManifestOrIndex> {
    parse_manifest_or_index(bytes, media_type).map_err(|source| RegistryError::Manifest {
        reference: reference.to_string(),
        source,
    })
}

fn digest_of(d: &oci_spec::image::Digest, reference: &str) -> Result<Digest> {
    Digest::parse(d.as_ref()).map_err(|_| RegistryError::Manifest {
        reference: reference.to_string(),
        source: crate::image::ImageError::BadDigest {
            what: "descriptor",
            digest: d.to_string(),
        },
    })
}

/// Fetches the manifest (choosing a platform from a list) and the config of `reference`, and
/// works out which layers are missing.
pub fn resolve(images: &ImageStore, reference: &Reference, opts: &PullOptions) -> Result<PullPlan> {
    let client = Client::new(reference.domain(), &opts.client)?;
    let repo = reference.path().to_string();
    let scopes = vec![repo_scope(&repo, false)];
    let display = reference.familiar();
    let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
    let by = reference
        .digest()
        .or(reference.tag())
        .unwrap_or(crate::refs::DEFAULT_TAG);
    let (bytes, mt, digest) = get_manifest(&client, &repo, by, &display, &scopes)?;
    let (manifest, manifest_bytes, manifest_digest) = match parse(&bytes, mt.as_deref(), &display)?
    {
        ManifestOrIndex::Manifest(m) => (m, bytes, digest),
        ManifestOrIndex::Index(index) => {
            let platforms: Vec<Option<Platform>> = index
                .manifests()
                .iter()
                .map(|d| {
                    d.platform().as_ref().map(|p| {
                        Platform::new(
                            &p.os().to_string(),
                            &p.architecture().to_string(),
                            p.variant().as_deref(),
                        )
                    })
                })
                .collect();
            let Some(i) = platform::select(&platforms, &wanted) else {
                let available: Vec<String> =
                    platforms.iter().flatten().map(|p| p.to_string()).collect();
                return Err(RegistryError::NoPlatform {
                    reference: display,
                    wanted: wanted.to_string(),
                    available: available.join(", "),
                });
            };
            let entry = &index.manifests()[i];
            let d = digest_of(entry.digest(), &display)?;
            let (b, mt, md) = get_manifest(&client, &repo, &d.to_string(), &display, &scopes)?;
            let mt = mt.or_else(|| Some(entry.media_type().to_string()));
            match parse(&b, mt.as_deref(), &display)? {
                ManifestOrIndex::Manifest(m) => (m, b, md),
                ManifestOrIndex::Index(_) => {
                    return Err(client.bad(
                        &format!("manifest {display}"),
                        "a manifest list entry is itself a manifest list",
                    ));
                }
            }
        }
    };
    let id = digest_of(manifest.config().digest(), &display)?;
    // A config the store has (verified when it was stored) is not fetched again.
    let stored = std::fs::read(images.store().blob_path(&id))
        .ok()
        .filter(|b| Digest::of(b) == id);
    let raw = match stored {
        Some(b) => b,
        None => get_small_blob(&client, &repo, &id, &scopes)?,
    };
    let config = ImageConfig::from_bytes(raw).map_err(|source| RegistryError::Manifest {
        reference: display.clone(),
        source,
    })?;
    if let Some(want) = &opts.platform {
        let actual = Platform::new(&config.os(), &config.architecture(), config.variant());
        if !want.matches(&actual) {
            return Err(RegistryError::PlatformMismatch {
                reference: display,
                wanted: want.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    let layers = plan_layers(images, &manifest, &config, &display)?;
    let idx = images.index()?;
    let key = match reference.digest() {
        Some(_) => reference.to_string(),
        None => reference.clone().tag_name_only().to_string(),
    };
    let up_to_date = idx
        .tags
        .get(&key)
        .or_else(|| idx.digests.get(&key))
        .is_some_and(|h| *h == id.hex())
        && layers.iter().all(|l| l.present);
    Ok(PullPlan {
        client,
        scopes,
        reference: reference.clone(),
        digest,
        manifest_digest,
        manifest_bytes,
        config,
        id,
        layers,
        up_to_date,
    })
}

fn plan_layers(
    images: &ImageStore,
    manifest: &ImageManifest,
    config: &ImageConfig,
    display: &str,
) -> Result<Vec<PlannedLayer>> {
    let diff_ids = config
        .diff_ids()
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(RegistryError::LayerCount {
            reference: display.to_string(),
            diff_ids: diff_ids.len(),
            layers: manifest.layers().len(),
        });
    }
    let mut parent: Option<Digest> = None;
    let mut out = Vec::new();
    for (desc, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let digest = digest_of(desc.digest(), display)?;
        let chain = chain_next(parent.as_ref(), &diff_id);
        let store = images.store();
        let stored_blob = match images.layers().get(&chain)? {
            Some(_) if store.has_blob(&digest) => Some(digest),
            Some(info) => info.blob.filter(|b| store.has_blob(b)),
            None => None,
        };
        out.push(PlannedLayer {
            digest,
            size: desc.size(),
            diff_id,
            parent,
            present: stored_blob.is_some(),
            stored_blob: stored_blob.unwrap_or(digest),
        });
        parent = Some(chain);
    }
    Ok(out)
}

/// Bytes read from `inner` are also written to `out`; stops with an error once `cancel` is set.
struct Tee<'a, 'b, R> {
    inner: R,
    out: &'a mut BlobWriter<'b>,
    cancel: &'a AtomicBool,
}

impl<R: Read> Read for Tee<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("cancelled: another layer failed"));
        }
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// What one pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image ID.
    pub id: Digest,
    /// The repo digest (`name@sha256:…`) recorded.
    pub repo_digest: String,
    /// True when nothing changed.
    pub up_to_date: bool,
}

impl PullPlan {
    fn pull_layer(
        &self,
        images: &ImageStore,
        layer: &PlannedLayer,
        progress: &dyn Progress,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let slot = Mutex::new(None);
        let repo = self.reference.path();
        let reader = BlobReader::new(
            &self.client,
            repo,
            &self.scopes,
            layer.digest,
            layer.size,
            progress,
            &slot,
        );
        let mut blob = images.store().blob_writer()?;
        let opts = ImportOptions {
            parent: layer.parent.as_ref(),
            expected_diff_id: Some(&layer.diff_id),
            expected_blob: Some(&layer.digest),
        };
        let mut tee = Tee {
            inner: BufReader::with_capacity(1 << 20, reader),
            out: &mut blob,
            cancel,
        };
        let imported = images.layers().import_with(&mut tee, &opts);
        if let Err(source) = imported {
            if let Some(e) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(e);
            }
            // Unreadable or refused content: if the blob is not what the manifest names, that
            // is the real story (corruption on the way), so read the rest to tell.
            let content = match &source {
                Error::Stream { .. } => true,
                Error::Entry { problem, .. } => !matches!(
                    problem,
                    EntryError::NoSpace { .. }
                        | EntryError::TooLarge { .. }
                        | EntryError::Io { .. }
                ),
                _ => false,
            };
            if content && io::copy(&mut tee, &mut io::sink()).is_ok() {
                let actual = tee.out.digest();
                if actual != layer.digest {
                    return Err(RegistryError::DigestMismatch {
                        registry: self.client.registry().to_string(),
                        what: "layer blob",
                        expected: layer.digest,
                        actual,
                    });
                }
            }
            return Err(RegistryError::Layer {
                digest: layer.digest,
                source,
            });
        }
        drop(tee);
        if blob.len() != layer.size {
            return Err(too_large(
                &self.client,
                "layer",
                &layer.digest.to_string(),
                layer.size,
            ));
        }
        blob.commit(Some(&layer.digest))
            .map_err(|source| RegistryError::Layer {
                digest: layer.digest,
                source,
            })?;
        progress.blob(&layer.digest, BlobEvent::Done);
        Ok(())
    }

    /// Brings the missing layers (a few at once) and records the image under its tag and
    /// repo digest. On failure, what this pull added to the store is removed.
    pub fn fetch(self, images: &ImageStore, progress: &dyn Progress) -> Result<Pulled> {
        for l in &self.layers {
            let ev = if l.present {
                BlobEvent::Exists
            } else {
                BlobEvent::Queued
            };
            progress.blob(&l.digest, ev);
        }
        let chains: Vec<Digest> = self
            .layers
            .iter()
            .map(|l| chain_next(l.parent.as_ref(), &l.diff_id))
            .collect();
        let layers_before: Vec<bool> = chains
            .iter()
            .map(|c| images.layers().get(c).map(|l| l.is_some()))
            .collect::<std::result::Result<_, _>>()?;
        let blobs_before = images.store().blobs()?;
        let result = self
            .fetch_layers(images, progress)
            .and_then(|()| self.record(images));
        if result.is_err() {
            for (chain, existed) in chains.iter().zip(&layers_before).rev() {
                if !existed {
                    let _ = images.layers().remove(chain);
                }
            }
            for l in &self.layers {
                if blobs_before.binary_search(&l.digest).is_err() {
                    let _ = images.store().remove_blob(&l.digest);
                }
            }
        }
        result
    }

    fn fetch_layers(&self, images: &ImageStore, progress: &dyn Progress) -> Result<()> {
        let todo: Vec<&PlannedLayer> = self.layers.iter().filter(|l| !l.present).collect();
        let next = AtomicUsize::new(0);
        let cancel = AtomicBool::new(false);
        let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_LAYERS.min(todo.len()) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= todo.len() || cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Err(e) = self.pull_layer(images, todo[i], progress, &cancel) {
                            // Recorded before the others are cancelled, so the first real
                            // failure wins over their "cancelled".
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                            cancel.store(true, Ordering::SeqCst);
                            break;
                        }
                    }
                });
            }
        });
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn record(&self, images: &ImageStore) -> Result<Pulled> {
        let store = images.store();
        store.put_blob(self.config.raw(), Some(&self.id))?;
        store.put_blob(&self.manifest_bytes[..], Some(&self.manifest_digest))?;
        let rec = ImageRecord {
            id: self.id,
            diff_ids: self.layers.iter().map(|l| l.diff_id).collect(),
            manifest: Some(self.manifest_digest),
            layer_blobs: self.layers.iter().map(|l| Some(l.stored_blob)).collect(),
            added: crate::images::now(),
            last_tag: None,
        };
        let tags: Vec<String> = match self.reference.tag() {
            Some(_) if self.reference.digest().is_none() => vec![self.reference.to_string()],
            _ => vec![],
        };
        let repo_digest = format!("{}@{}", self.reference.name(), self.digest);
        images.add(rec, &tags, std::slice::from_ref(&repo_digest))?;
        Ok(Pulled {
            id: self.id,
            repo_digest,
            up_to_date: self.up_to_date,
        })
    }
}
