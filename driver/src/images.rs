//! The image index: which images the store holds (config blob = image ID, layer chain),
//! their names (tags, repo digests), reference counting of layers, and removal. One JSON index
//! (`images/index.json`), rewritten atomically under the store lock, so readers always see
//! either the old or the new state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, chain_id};
use crate::layer::LayerStore;
use crate::refs::{Reference, resolve_image};
use crate::store::{Store, StoreLock};

/// Errors of the image index.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] crate::error::Error),
    /// No image matches the argument.
    #[error("No such image: {0}")]
    NotFound(String),
    /// An argument names no image, or several.
    #[error(transparent)]
    Resolve(#[from] crate::refs::ResolveError),
    /// The index file is not valid.
    #[error("image index {path:?}: {source}")]
    Index {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Removing an image that other names or users still need.
    #[error(
        "conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories"
    )]
    MultipleRefs { id: String },
    /// An image manifest, config or reference is not acceptable.
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// A reference is not valid.
    #[error(transparent)]
    Ref(#[from] crate::refs::RefError),
    /// An image archive is not one cairn can read.
    #[error("{0}")]
    Archive(String),
    /// A layer an image needs is missing from the store.
    #[error("image {image}: layer {chain} is missing")]
    MissingLayer { image: Digest, chain: Digest },
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, ImagesError>;

/// One image in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// sha256 of the raw config bytes (the config is the blob with this digest).
    pub id: Digest,
    /// diff_ids bottom first (from the config).
    pub diff_ids: Vec<Digest>,
    /// Digest of the manifest it came with (`name@digest` pulls and loads), if any.
    #[serde(default)]
    pub manifest: Option<Digest>,
    /// Blob digests of the layers as distributed (same order as diff_ids), if known.
    #[serde(default)]
    pub layer_blobs: Vec<Option<Digest>>,
    /// Unix time when it entered the store.
    pub added: i64,
    /// Unix time of the last tag change.
    #[serde(default)]
    pub last_tag: Option<i64>,
}

impl ImageRecord {
    /// Chain ids bottom first.
    pub fn chain_ids(&self) -> Vec<Digest> {
        (1..=self.diff_ids.len())
            .filter_map(|n| chain_id(&self.diff_ids[..n]))
            .collect()
    }

    /// The top chain id (None for an image without layers).
    pub fn top_chain(&self) -> Option<Digest> {
        chain_id(&self.diff_ids)
    }
}

/// The index file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Image id hex → record.
    pub images: BTreeMap<String, ImageRecord>,
    /// Normalised reference (`docker.io/library/busybox:latest`) → image id hex.
    pub tags: BTreeMap<String, String>,
    /// Normalised repo digest (`docker.io/library/busybox@sha256:…`) → image id hex.
    #[serde(default)]
    pub digests: BTreeMap<String, String>,
}

impl Index {
    /// The references (tags) naming an image.
    pub fn tags_of(&self, id: &Digest) -> Vec<String> {
        let hex = id.hex();
        self.tags
            .iter()
            .filter(|(_, v)| **v == hex)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The repo digests naming an image.
    pub fn digests_of(&self, id: &Digest) -> Vec<String> {
        let hex = id.hex();
        self.digests
            .iter()
            .filter(|(_, v)| **v == hex)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every blob an image refers to: configs, manifests, layer blobs.
    pub fn referenced_blobs(&self) -> BTreeSet<Digest> {
        self.images
            .values()
            .flat_map(|r| {
                std::iter::once(r.id)
                    .chain(r.manifest)
                    .chain(r.layer_blobs.iter().flatten().copied())
            })
            .collect()
    }

    /// Chain ids used by any image.
    pub fn used_chains(&self) -> BTreeSet<Digest> {
        self.images.values().flat_map(|r| r.chain_ids()).collect()
    }

    /// Resolves a CLI image argument (ID, ID prefix, name[:tag], name@digest) as docker does.
    pub fn resolve(&self, arg: &str) -> Result<(Digest, Option<Reference>)> {
        let refs: BTreeMap<String, String> = self
            .tags
            .iter()
            .chain(self.digests.iter())
            .map(|(k, v)| (k.clone(), format!("sha256:{v}")))
            .collect();
        let ids: Vec<String> = self.images.keys().map(|k| format!("sha256:{k}")).collect();
        let r = resolve_image(arg, &refs, &ids)?;
        Ok((Digest::parse(&r.id)?, r.reference))
    }
}

/// The image store: the index over a layer store.
#[derive(Debug)]
pub struct ImageStore {
    layers: LayerStore,
}

const INDEX: &str = "images/index.json";

impl ImageStore {
    /// Opens the image store of `store`.
    pub fn new(store: Store) -> ImageStore {
        ImageStore {
            layers: LayerStore::new(store),
        }
    }

    /// Replaces the import limits of the layer store ("layer bomb" guards).
    pub fn with_import_limits(self, limits: crate::archive::tar_in::ImportLimits) -> ImageStore {
        ImageStore {
            layers: self.layers.with_limits(limits),
        }
    }

    /// The layer store.
    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        self.layers.store()
    }

    fn index_path(&self) -> PathBuf {
        self.store().root().join(INDEX)
    }

    /// Reads the index (empty when the store has none yet).
    pub fn index(&self) -> Result<Index> {
        let path = self.index_path();
        match std::fs::read(&path) {
            Ok(data) => {
                serde_json::from_slice(&data).map_err(|source| ImagesError::Index { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(crate::error::io_err("read image index", &path)(e).into()),
        }
    }

    /// Applies `change` to the index under the store lock and writes it atomically.
    pub fn update<T>(&self, change: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let lock = self.store().lock()?;
        self.update_locked(&lock, change)
    }

    /// [`ImageStore::update`] for a caller that already holds the store lock (the engine's
    /// operations that check container users and change the index in one critical section).
    pub fn update_locked<T>(
        &self,
        _lock: &StoreLock,
        change: impl FnOnce(&mut Index) -> Result<T>,
    ) -> Result<T> {
        let mut idx = self.index()?;
        let out = change(&mut idx)?;
        let path = self.index_path();
        let data = serde_json::to_vec_pretty(&idx)
            .map_err(|source| ImagesError::Index { path, source })?;
        self.store().write_atomic(Path::new(INDEX), &data)?;
        Ok(out)
    }

    /// Records an image whose config blob and layers are already in the store, and names it.
    /// Names move from whatever image they named before (that image may become dangling).
    pub fn add(
        &self,
        rec: ImageRecord,
        tags: &[String],
        digests: &[String],
    ) -> Result<ImageRecord> {
        let lock = self.store().lock()?;
        self.add_locked(&lock, rec, tags, digests)
    }

    /// [`ImageStore::add`] under a store lock the caller holds. The layers are checked under
    /// the lock, so a concurrent `rmi` or prune cannot remove them between check and record.
    pub fn add_locked(
        &self,
        lock: &StoreLock,
        rec: ImageRecord,
        tags: &[String],
        digests: &[String],
    ) -> Result<ImageRecord> {
        for chain in rec.chain_ids() {
            if self.layers.get(&chain)?.is_none() {
                return Err(ImagesError::MissingLayer {
                    image: rec.id,
                    chain,
                });
            }
        }
        let now = now();
        self.update_locked(lock, |idx| {
            let hex = rec.id.hex();
            let entry = idx.images.entry(hex.clone()).or_insert(rec.clone());
            if rec.manifest.is_some() {
                entry.manifest = rec.manifest;
                entry.layer_blobs = rec.layer_blobs.clone();
            }
            if !tags.is_empty() {
                entry.last_tag = Some(now);
            }
            let out = entry.clone();
            for t in tags {
                idx.tags.insert(t.clone(), hex.clone());
            }
            for d in digests {
                idx.digests.insert(d.clone(), hex.clone());
            }
            Ok(out)
        })
    }

    /// Points reference `tag` at image `id`.
    pub fn tag(&self, id: &Digest, tag: &str) -> Result<()> {
        let now = now();
        self.update(|idx| {
            let rec = idx
                .images
                .get_mut(&id.hex())
                .ok_or_else(|| ImagesError::NotFound(id.to_string()))?;
            rec.last_tag = Some(now);
            idx.tags.insert(tag.to_string(), id.hex());
            Ok(())
        })
    }

    /// Removes reference `tag`; returns the image it named.
    pub fn untag(&self, tag: &str) -> Result<Option<Digest>> {
        self.update(|idx| {
            let id = idx.tags.remove(tag);
            Ok(id.and_then(|h| idx.images.get(&h).map(|r| r.id)))
        })
    }

    /// Deletes an image record (all its names), every layer no other image uses and the
    /// blobs (config, manifest, layer blobs) only it referenced. Returns the removed layer
    /// chain ids, top first.
    pub fn delete(&self, id: &Digest) -> Result<Vec<Digest>> {
        let lock = self.store().lock()?;
        self.delete_locked(&lock, id)
    }

    /// [`ImageStore::delete`] under a store lock the caller holds: the record, its layers and
    /// its blobs go in one critical section, so an import or commit that records an image on
    /// the same layers meanwhile either sees them gone (and fails) or keeps them.
    pub fn delete_locked(&self, lock: &StoreLock, id: &Digest) -> Result<Vec<Digest>> {
        let (rec, used, blobs) = self.update_locked(lock, |idx| {
            let hex = id.hex();
            let rec = idx
                .images
                .remove(&hex)
                .ok_or_else(|| ImagesError::NotFound(id.to_string()))?;
            idx.tags.retain(|_, v| *v != hex);
            idx.digests.retain(|_, v| *v != hex);
            Ok((rec, idx.used_chains(), idx.referenced_blobs()))
        })?;
        let mut removed = Vec::new();
        for chain in rec.chain_ids().into_iter().rev() {
            if used.contains(&chain) {
                break;
            }
            match self.layers.remove_locked(lock, &chain) {
                Ok(()) => removed.push(chain),
                Err(crate::error::Error::LayerNotFound { .. }) => {}
                Err(crate::error::Error::LayerInUse { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
        let own = std::iter::once(rec.id)
            .chain(rec.manifest)
            .chain(rec.layer_blobs.iter().flatten().copied());
        for b in own.filter(|b| !blobs.contains(b)) {
            self.store().remove_blob(&b)?;
        }
        Ok(removed)
    }

    /// The lower directories of an image for mounting, top layer first.
    pub fn lower_dirs(&self, rec: &ImageRecord) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for chain in rec.chain_ids().into_iter().rev() {
            let info = self.layers.get(&chain)?.ok_or(ImagesError::MissingLayer {
                image: rec.id,
                chain,
            })?;
            dirs.push(info.path);
        }
        Ok(dirs)
    }

    /// Bytes of the image's layers (regular files), and of the layers only it uses.
    pub fn sizes(&self, idx: &Index, rec: &ImageRecord) -> Result<(u64, u64)> {
        let mut total = 0;
        let mut unique = 0;
        for chain in rec.chain_ids() {
            let size = self.layers.get(&chain)?.map_or(0, |l| l.size);
            total += size;
            let users = idx
                .images
                .values()
                .filter(|r| r.chain_ids().contains(&chain))
                .count();
            if users <= 1 {
                unique += size;
            }
        }
        Ok((total, unique))
    }

    /// The image a CLI argument names (ID, ID prefix, name[:tag], name@digest), with its
    /// parsed config.
    pub fn find(&self, arg: &str) -> Result<(ImageRecord, crate::image::ImageConfig)> {
        let idx = self.index()?;
        let (id, _) = idx.resolve(arg)?;
        let rec = idx
            .images
            .get(&id.hex())
            .cloned()
            .ok_or_else(|| ImagesError::NotFound(arg.to_string()))?;
        let config = crate::image::ImageConfig::from_bytes(self.config_bytes(&id)?)?;
        Ok((rec, config))
    }

    /// The raw config bytes of an image.
    pub fn config_bytes(&self, id: &Digest) -> Result<Vec<u8>> {
        let p = self.store().blob_path(id);
        std::fs::read(&p).map_err(|e| crate::error::io_err("read image config", &p)(e).into())
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(byte: u8) -> ImageRecord {
        ImageRecord {
            id: Digest::of(&[byte]),
            diff_ids: vec![],
            manifest: None,
            layer_blobs: vec![],
            added: 0,
            last_tag: None,
        }
    }

    #[test]
    fn tags_and_digests_of_an_image() {
        let mut idx = Index::default();
        let r = rec(1);
        idx.images.insert(r.id.hex(), r.clone());
        idx.tags.insert("docker.io/library/a:1".into(), r.id.hex());
        idx.tags.insert("docker.io/library/b:2".into(), r.id.hex());
        idx.digests
            .insert("docker.io/library/a@sha256:00".into(), r.id.hex());
        assert_eq!(idx.tags_of(&r.id).len(), 2);
        assert_eq!(idx.digests_of(&r.id).len(), 1);
    }
}
