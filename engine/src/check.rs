//! `system check`: every inconsistency of the store, and `--repair`. Finds what the driver's
//! fsck finds (blob digests, layer metadata, stale staging) and what spans crates: corrupt
//! state files (image index, container config/state/image), images whose config or layers are
//! missing, containers whose image is gone, blobs no image refers to, dead private mounts of
//! killed commands. Repair quarantines bad files (`quarantine/`), re-extracts a missing layer
//! from its blob, detaches dead mounts and removes orphans; what it cannot fix remains and is
//! reported again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_driver::Digest;
use cairn_driver::images::{ImagesError, Index};
use cairn_driver::store::{FsckIssue, FsckProblem};
use cairn_runtime::container::{Container, ContainerConfig, State};

use crate::users::image_of;
use crate::{Engine, Error, Result};

/// Blobs written more recently than this may belong to a writer (pull, load) that records
/// its image only at the end: they are not called leaked yet.
const BLOB_GRACE: Duration = Duration::from_secs(10);

/// One inconsistency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The driver's fsck: a damaged or orphaned blob, layer or name.
    Store(FsckIssue),
    /// A state file that does not parse.
    Corrupt { path: PathBuf, what: String },
    /// An image's config blob is gone.
    ConfigMissing { image: Digest },
    /// An image's layer is gone; `blob` is the layer's blob when the store still has it.
    LayerMissing {
        image: Digest,
        chain: Digest,
        blob: Option<Digest>,
    },
    /// A container stands on an image the store no longer has.
    DanglingContainer { container: String, image: String },
    /// A blob no image refers to.
    LeakedBlob { digest: Digest },
    /// A private mount of a killed command (`containers/<id>/mnt-PID`).
    DeadMount { path: PathBuf },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Store(i) => write!(f, "{}: {:?}", i.path.display(), i.problem),
            Problem::Corrupt { path, what } => {
                write!(f, "corrupt state file {}: {what}", path.display())
            }
            Problem::ConfigMissing { image } => write!(f, "image {image}: config blob missing"),
            Problem::LayerMissing { image, chain, blob } => {
                write!(f, "image {image}: layer {chain} is missing")?;
                match blob {
                    Some(b) => write!(f, " (its blob {b} is in the store)"),
                    None => write!(f, " (no blob to re-extract it from)"),
                }
            }
            Problem::DanglingContainer { container, image } => {
                write!(f, "container {container}: its image {image} is missing")
            }
            Problem::LeakedBlob { digest } => write!(f, "blob {digest}: no image refers to it"),
            Problem::DeadMount { path } => write!(f, "dead mount {}", path.display()),
        }
    }
}

/// What `system check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub blobs_checked: usize,
    pub layers_checked: usize,
    pub images_checked: usize,
    /// Stale staging entries removed (always: they are leftovers of killed writers).
    pub stale_removed: usize,
    /// Layers of interrupted imports whose parent never arrived: valid, unused, reclaimable.
    pub unused_layers: Vec<PathBuf>,
    pub problems: Vec<Problem>,
}

/// What `--repair` did.
#[derive(Debug, Default)]
pub struct RepairReport {
    /// Entries removed (damaged, orphaned, leaked).
    pub removed: usize,
    /// Files moved to `quarantine/`.
    pub quarantined: usize,
    /// Layers extracted again from their blobs.
    pub reextracted: usize,
    /// Dead mounts detached.
    pub unmounted: usize,
    /// What is still wrong afterwards.
    pub remaining: Vec<Problem>,
}

impl Engine {
    /// `system check`. Stale staging is removed on the way (never data anyone needs).
    pub fn check(&self) -> Result<CheckReport> {
        let mut rep = CheckReport::default();
        let fsck = self.store().fsck(false)?;
        rep.blobs_checked = fsck.blobs_checked;
        rep.layers_checked = fsck.layers_checked;
        for i in fsck.damaged.into_iter().chain(fsck.orphans) {
            match i.problem {
                FsckProblem::StaleStaging => {
                    let _ =
                        std::fs::remove_dir_all(&i.path).or_else(|_| std::fs::remove_file(&i.path));
                    rep.stale_removed += 1;
                }
                FsckProblem::LayerMissingParent { .. } => rep.unused_layers.push(i.path),
                _ => rep.problems.push(Problem::Store(i)),
            }
        }
        let images = self.images();
        let idx = match images.index() {
            Ok(idx) => Some(idx),
            Err(ImagesError::Index { path, source }) => {
                rep.problems.push(Problem::Corrupt {
                    path,
                    what: source.to_string(),
                });
                None
            }
            Err(e) => return Err(e.into()),
        };
        let mut known: BTreeSet<String> = BTreeSet::new();
        if let Some(idx) = &idx {
            rep.images_checked = idx.images.len();
            for rec in idx.images.values() {
                known.insert(rec.id.to_string());
                if !self.store().has_blob(&rec.id) {
                    rep.problems.push(Problem::ConfigMissing { image: rec.id });
                }
                for (i, chain) in rec.chain_ids().into_iter().enumerate() {
                    if images.layers().get(&chain).ok().flatten().is_none() {
                        let blob = rec
                            .layer_blobs
                            .get(i)
                            .copied()
                            .flatten()
                            .filter(|b| self.store().has_blob(b));
                        rep.problems.push(Problem::LayerMissing {
                            image: rec.id,
                            chain,
                            blob,
                        });
                    }
                }
            }
            let referenced = idx.referenced_blobs();
            for d in self.store().blobs()? {
                if !referenced.contains(&d) && older_than(&self.store().blob_path(&d), BLOB_GRACE) {
                    rep.problems.push(Problem::LeakedBlob { digest: d });
                }
            }
        }
        for c in self.containers_list() {
            self.check_container(&c, idx.is_some().then_some(&known), &mut rep.problems);
        }
        Ok(rep)
    }

    /// Blobs no image refers to (with their sizes), older than the grace a writer needs to
    /// record its image after storing its blobs.
    pub fn leaked_blobs_of(&self, idx: &Index) -> Result<Vec<(Digest, u64)>> {
        let referenced = idx.referenced_blobs();
        let mut out = Vec::new();
        for d in self.store().blobs()? {
            let path = self.store().blob_path(&d);
            if !referenced.contains(&d) && older_than(&path, BLOB_GRACE) {
                out.push((d, path.symlink_metadata().map_or(0, |m| m.len())));
            }
        }
        Ok(out)
    }

    fn check_container(
        &self,
        c: &Container,
        known: Option<&BTreeSet<String>>,
        out: &mut Vec<Problem>,
    ) {
        match image_of(&c.dir) {
            Ok(image) if known.is_some_and(|k| !k.contains(&image)) => {
                out.push(Problem::DanglingContainer {
                    container: c.id.clone(),
                    image,
                })
            }
            Ok(_) => {}
            Err(Error::Corrupt { path, what }) => out.push(Problem::Corrupt { path, what }),
            Err(e) => out.push(Problem::Corrupt {
                path: c.dir.clone(),
                what: e.to_string(),
            }),
        }
        for (file, parse) in [
            (
                "config.json",
                parses::<ContainerConfig> as fn(&[u8]) -> Option<String>,
            ),
            ("state.json", parses::<State>),
        ] {
            let path = c.dir.join(file);
            if let Ok(data) = std::fs::read(&path)
                && let Some(what) = parse(&data)
            {
                out.push(Problem::Corrupt { path, what });
            }
        }
        for path in cairn_runtime::lifecycle::dead_private_mounts(c) {
            out.push(Problem::DeadMount { path });
        }
    }

    /// `system check --repair`: fixes what can be fixed, then checks again.
    pub fn repair(&self) -> Result<RepairReport> {
        let mut rep = RepairReport::default();
        // The driver's own repair first: it removes damaged layers, which may then be
        // extracted again from their blobs below.
        let fsck = self.store().fsck(true)?;
        rep.removed += fsck
            .damaged
            .iter()
            .chain(&fsck.orphans)
            .filter(|i| !matches!(i.problem, FsckProblem::LayerMissingParent { .. }))
            .count();
        // Layers are re-extracted bottom first, so a pass may enable the next one.
        for _ in 0..2 {
            for p in self.check()?.problems {
                self.fix(&p, &mut rep)?;
            }
        }
        rep.remaining = self.check()?.problems;
        Ok(rep)
    }

    fn fix(&self, p: &Problem, rep: &mut RepairReport) -> Result<()> {
        match p {
            Problem::Corrupt { path, .. } => {
                self.quarantine(path)?;
                rep.quarantined += 1;
            }
            Problem::LayerMissing {
                image,
                chain,
                blob: Some(blob),
            } => {
                // A failure leaves the problem, reported by the final check.
                rep.reextracted += usize::from(self.reextract(image, chain, blob).is_ok());
            }
            Problem::LeakedBlob { digest } => {
                let _lock = self.store().lock()?;
                // Still leaked under the lock (no image recorded it meanwhile)?
                if !self.images().index()?.referenced_blobs().contains(digest) {
                    self.store().remove_blob(digest)?;
                    rep.removed += 1;
                }
            }
            Problem::DeadMount { path } => {
                let done = cairn_runtime::lifecycle::remove_private_mount(path).is_ok();
                rep.unmounted += usize::from(done);
            }
            _ => {}
        }
        Ok(())
    }

    /// Extracts layer `chain` of `image` again from its blob (its parent must be present).
    fn reextract(&self, image: &Digest, chain: &Digest, blob: &Digest) -> Result<()> {
        let idx = self.images().index()?;
        let rec = idx
            .images
            .get(&image.hex())
            .ok_or_else(|| ImagesError::NotFound(image.to_string()))?;
        let chains = rec.chain_ids();
        let Some(i) = chains.iter().position(|c| c == chain) else {
            return Ok(());
        };
        let parent = i.checked_sub(1).map(|p| chains[p]);
        let file = self.store().open_blob(blob)?;
        self.images()
            .layers()
            .import(file, parent.as_ref(), Some(&rec.diff_ids[i]))?;
        Ok(())
    }

    /// Moves a file (or directory) into `quarantine/`, named after its path.
    fn quarantine(&self, path: &Path) -> Result<()> {
        let q = self.layout().quarantine();
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { what, path, source }
        };
        std::fs::create_dir_all(&q).map_err(io("create directory", &q))?;
        let rel = path.strip_prefix(self.layout().root()).unwrap_or(path);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("{stamp}-{}", rel.to_string_lossy().replace('/', "_"));
        std::fs::rename(path, q.join(name)).map_err(io("quarantine", path))
    }
}

fn parses<T: serde::de::DeserializeOwned>(data: &[u8]) -> Option<String> {
    serde_json::from_slice::<T>(data)
        .err()
        .map(|e| e.to_string())
}

fn older_than(path: &Path, age: Duration) -> bool {
    path.symlink_metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|a| a >= age)
}
