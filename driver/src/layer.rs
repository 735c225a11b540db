//! The layer store: layer tar streams in, overlay-format layer directories out, and back.
//!
//! Each layer is an independent directory `layers/<chain-hex>/diff` in kernel overlay format
//! plus `meta.json`. The parent chain only determines the chain id (and is recorded); layers
//! are not stacked on disk — stacking happens at mount time. So the layers of one image can
//! be imported in any order and in parallel ([`LayerStore::import_stack`]); a layer whose
//! parent never arrives is reported by `fsck` as an orphan.
//!
//! All methods take `&self`: staging directories are private to each import, and the only
//! shared step (renaming into `layers/`) happens under the store lock.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::archive::tar_in::{self, Extracted, ImportLimits};
use crate::archive::tar_out::{self, ExportInfo};
use crate::archive::{Compression, WhiteoutForm};
use crate::digest::{Digest, chain_next};
use crate::error::{DigestKind, Error, Result, errno_err, io_err};
use crate::store::{Store, StoreLock, read_names, remove_tree};

/// `layers/<chain-hex>/meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerMeta {
    /// The chain id (also the directory name).
    pub chain_id: Digest,
    /// sha256 of the uncompressed layer tar.
    pub diff_id: Digest,
    /// The chain id of the layer below, if any.
    pub parent: Option<Digest>,
    /// Regular-file bytes in the layer.
    pub size: u64,
    /// Digest of the stream as it was imported (compressed, possibly).
    pub blob: Option<Digest>,
    /// Compression of the stream as it was imported.
    pub compression: Compression,
    /// How whiteouts are represented in `diff/`.
    #[serde(default)]
    pub whiteouts: WhiteoutForm,
}

impl LayerMeta {
    /// Reads a meta.json.
    pub fn read(path: &Path) -> Result<LayerMeta> {
        let data = std::fs::read(path).map_err(io_err("read layer metadata", path))?;
        serde_json::from_slice(&data).map_err(|source| Error::Meta {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// A layer in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Chain id.
    pub chain_id: Digest,
    /// diff_id.
    pub diff_id: Digest,
    /// Parent chain id.
    pub parent: Option<Digest>,
    /// Regular-file bytes.
    pub size: u64,
    /// The `diff` directory (overlay format), usable as a lower layer.
    pub path: PathBuf,
    /// Digest of the stream it was imported from.
    pub blob: Option<Digest>,
    /// Whiteout representation in `path`.
    pub whiteouts: WhiteoutForm,
}

/// What to verify and record while importing one layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions<'a> {
    /// Chain id of the layer below.
    pub parent: Option<&'a Digest>,
    /// The diff_id the image config promises; checked before the layer becomes visible.
    pub expected_diff_id: Option<&'a Digest>,
    /// The digest the manifest promises for the (compressed) stream.
    pub expected_blob: Option<&'a Digest>,
}

/// The layer store over a [`Store`].
#[derive(Debug)]
pub struct LayerStore {
    store: Store,
    limits: ImportLimits,
}

impl LayerStore {
    /// A layer store with default import limits.
    pub fn new(store: Store) -> LayerStore {
        LayerStore {
            store,
            limits: ImportLimits::default(),
        }
    }

    /// Replaces the import limits ("layer bomb" guard).
    pub fn with_limits(mut self, limits: ImportLimits) -> LayerStore {
        self.limits = limits;
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.store.layers_dir().join(chain.hex())
    }

    /// Imports one layer stream (plain, gzip or zstd) on top of `parent_chain`.
    pub fn import<R: Read>(
        &self,
        reader: R,
        parent_chain: Option<&Digest>,
        expected_diff_id: Option<&Digest>,
    ) -> Result<LayerInfo> {
        let opts = ImportOptions {
            parent: parent_chain,
            expected_diff_id,
            expected_blob: None,
        };
        self.import_with(reader, &opts)
    }

    /// Imports one layer stream. When the chain id is known in advance (expected diff_id) and
    /// the layer exists, the stream is only read and verified. Otherwise it is extracted into
    /// staging, verified, and renamed into `layers/` — or dropped if an equal layer appeared
    /// meanwhile. On any error nothing new is left in the store.
    pub fn import_with<R: Read>(&self, reader: R, opts: &ImportOptions<'_>) -> Result<LayerInfo> {
        if let Some(expected) = opts.expected_diff_id {
            let chain = chain_next(opts.parent, expected);
            if let Some(info) = self.get(&chain)? {
                let seen = tar_in::digest_stream(reader)?;
                verify(&seen, opts)?;
                return Ok(info);
            }
        }
        let staging = self.store.staging()?;
        let diff = staging.path().join("diff");
        rustix::fs::mkdirat(staging.fd(), "diff", rustix::fs::Mode::from_raw_mode(0o755))
            .map_err(errno_err("create layer directory", &diff))?;
        let diff_fd = rustix::fs::openat(
            staging.fd(),
            "diff",
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(errno_err("open layer directory", &diff))?;
        let seen = tar_in::extract(reader, std::os::fd::AsFd::as_fd(&diff_fd), &self.limits)?;
        verify(&seen, opts)?;
        let chain = chain_next(opts.parent, &seen.diff_id);
        let meta = LayerMeta {
            chain_id: chain,
            diff_id: seen.diff_id,
            parent: opts.parent.copied(),
            size: seen.size,
            blob: Some(seen.blob),
            compression: seen.compression,
            whiteouts: seen.whiteouts,
        };
        let meta_path = staging.path().join("meta.json");
        let json = serde_json::to_vec_pretty(&meta).map_err(|source| Error::Meta {
            path: meta_path.clone(),
            source,
        })?;
        std::fs::write(&meta_path, json).map_err(io_err("write layer metadata", &meta_path))?;
        // One syncfs makes the whole extracted tree durable before it becomes visible.
        rustix::fs::syncfs(&diff_fd).map_err(errno_err("syncfs", &diff))?;
        drop(diff_fd);
        let dest = self.layer_dir(&chain);
        let _lock = self.store.lock()?;
        if staging.persist(&dest)? {
            return Ok(info_from(meta, dest.join("diff")));
        }
        // An equal layer arrived meanwhile (same chain id): ours is dropped with the staging.
        self.get(&chain)?.ok_or(Error::LayerNotFound { chain })
    }

    /// Imports the layers of one image in parallel. `layers` are bottom-first, each with the
    /// diff_id the image config promises (which gives every chain id in advance).
    pub fn import_stack<R: Read + Send>(&self, layers: Vec<(R, Digest)>) -> Result<Vec<LayerInfo>> {
        let diff_ids: Vec<Digest> = layers.iter().map(|(_, d)| *d).collect();
        let mut parents = Vec::with_capacity(diff_ids.len());
        let mut chain: Option<Digest> = None;
        for d in &diff_ids {
            parents.push(chain);
            chain = Some(chain_next(chain.as_ref(), d));
        }
        layers
            .into_par_iter()
            .zip(parents)
            .map(|((r, diff_id), parent)| self.import(r, parent.as_ref(), Some(&diff_id)))
            .collect()
    }

    /// The layer with this chain id, if present.
    pub fn get(&self, chain: &Digest) -> Result<Option<LayerInfo>> {
        let dir = self.layer_dir(chain);
        let meta_path = dir.join("meta.json");
        if !meta_path.exists() {
            return Ok(None);
        }
        let meta = LayerMeta::read(&meta_path)?;
        Ok(Some(info_from(meta, dir.join("diff"))))
    }

    /// All layers, sorted by chain id. Entries that are not valid layers are skipped (`fsck`
    /// reports them).
    pub fn list(&self) -> Result<Vec<LayerInfo>> {
        let mut out = Vec::new();
        for name in read_names(&self.store.layers_dir())? {
            let Ok(chain) = Digest::from_hex(&name) else {
                continue;
            };
            if let Ok(Some(info)) = self.get(&chain) {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Removes a layer. Refused while another layer names it as parent. The directory
    /// disappears atomically (renamed into `tmp/`) and is then deleted.
    pub fn remove(&self, chain: &Digest) -> Result<()> {
        let lock = self.store.lock()?;
        self.remove_locked(&lock, chain)
    }

    /// [`LayerStore::remove`] under a store lock the caller holds.
    pub fn remove_locked(&self, _lock: &StoreLock, chain: &Digest) -> Result<()> {
        let dir = self.layer_dir(chain);
        if dir.symlink_metadata().is_err() {
            return Err(Error::LayerNotFound { chain: *chain });
        }
        if let Some(child) = self
            .list()?
            .into_iter()
            .find(|l| l.parent.as_ref() == Some(chain))
        {
            return Err(Error::LayerInUse {
                chain: *chain,
                child: child.chain_id,
            });
        }
        let trash = self
            .store
            .tmp_dir()
            .join(format!("removing-{}", crate::store::unique_name()));
        std::fs::rename(&dir, &trash).map_err(io_err("move layer out", &dir))?;
        crate::store::fsync_dir(&self.store.layers_dir())?;
        remove_tree(&trash)
    }

    /// Writes a stored layer back as an OCI layer tar.
    pub fn export<W: Write>(
        &self,
        chain: &Digest,
        out: W,
        compression: Compression,
    ) -> Result<ExportInfo> {
        let info = self
            .get(chain)?
            .ok_or(Error::LayerNotFound { chain: *chain })?;
        tar_out::export_dir(&info.path, out, compression)
    }
}

fn info_from(meta: LayerMeta, path: PathBuf) -> LayerInfo {
    LayerInfo {
        chain_id: meta.chain_id,
        diff_id: meta.diff_id,
        parent: meta.parent,
        size: meta.size,
        path,
        blob: meta.blob,
        whiteouts: meta.whiteouts,
    }
}

fn verify(seen: &Extracted, opts: &ImportOptions<'_>) -> Result<()> {
    if let Some(e) = opts.expected_diff_id
        && *e != seen.diff_id
    {
        return Err(Error::DigestMismatch {
            kind: DigestKind::DiffId,
            expected: *e,
            actual: seen.diff_id,
        });
    }
    if let Some(e) = opts.expected_blob
        && *e != seen.blob
    {
        return Err(Error::DigestMismatch {
            kind: DigestKind::LayerBlob,
            expected: *e,
            actual: seen.blob,
        });
    }
    Ok(())
}
