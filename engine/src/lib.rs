//! cairn-engine: the one application layer. The CLI (and the builder and plugin servers to
//! come) open an [`Engine`] once from a [`StoreRoot`] and call its operations; the rules that
//! span crates live here and nowhere else:
//!
//! - [`layout`]: the store root and which directory holds what;
//! - [`users`]: which containers stand on which image (an image is *in use*);
//! - [`status`]: the one container status function (ps, inspect, rm, prune);
//! - [`images`]: `rmi` and `image prune` under docker's rules;
//! - [`containers`]: creating a container (run, bundle) so that `rmi` always sees it;
//! - [`check`]: `system check` and `--repair`;
//! - [`ops`]: resolve an image, layer stacks, diff, commit — what front ends build on.
//!
//! # Lock discipline
//!
//! | lock | file | guards |
//! |------|------|--------|
//! | store lock | `<root>/lock` | `images/index.json`, entries appearing in or leaving `layers/` and `blobs/`, and the *set of containers with their image reference* |
//! | names lock | `containers/.lock` | container names, creation (`.new-<id>` → `<id>`) |
//! | container lock | flock on `containers/<id>/` | that container's `state.json`, its private mounts |
//! | staging flock | each `tmp/<entry>` | tells live staging from stale |
//!
//! Order: store lock → names lock → container lock. Never the reverse; a flock is taken on a
//! fresh fd each time, so a holder must not take the same lock again (use the `*_locked`
//! variants of the driver, which take the held [`cairn_driver::store::StoreLock`] as proof).
//!
//! Consequences: creating a container (run, bundle) resolves the image and writes the
//! container directory with its `image` file under the store lock; `rmi` and `image prune`
//! read the users and delete under the same lock. So an image with a container (of any
//! status) is never deleted, and `rmi -f` only takes its names away. Recording an image
//! (load, import, pull, commit) checks its layers under the lock in which it writes the index,
//! and deleting an image removes its record, layers and blobs in one critical section.

pub mod check;
pub mod containers;
pub mod images;
pub mod layout;
pub mod ops;
pub mod status;
pub mod users;

use std::path::PathBuf;

use cairn_driver::Store;
use cairn_driver::images::ImageStore;

pub use layout::{Layout, StoreRoot};

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] cairn_driver::Error),
    #[error(transparent)]
    Images(#[from] cairn_driver::images::ImagesError),
    #[error(transparent)]
    Runtime(#[from] cairn_runtime::Error),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A state file cannot be trusted: it is named, with what is wrong.
    #[error("corrupt state file {}: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    /// docker's conflict: the image is used by a container, or has several names.
    #[error("conflict: unable to delete {id} (must be forced) - {reason}")]
    Conflict { id: String, reason: String },
}

/// Result of the engine.
pub type Result<T> = std::result::Result<T, Error>;

/// The store, opened once per command.
#[derive(Debug)]
pub struct Engine {
    layout: Layout,
    images: ImageStore,
}

impl Engine {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &StoreRoot) -> Result<Engine> {
        let path = root.path()?;
        let store = Store::open(&path)?;
        let layout = Layout::create(&path)?;
        Ok(Engine {
            layout,
            images: ImageStore::new(store),
        })
    }

    /// The same engine with limits on what a layer import may expand to.
    pub fn with_import_limits(self, limits: cairn_driver::archive::tar_in::ImportLimits) -> Engine {
        Engine {
            layout: self.layout,
            images: self.images.with_import_limits(limits),
        }
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The image store (read-only operations and the driver's own writers: pull, load,
    /// commit, save).
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The underlying blob/layer store.
    pub fn store(&self) -> &Store {
        self.images.store()
    }

    /// `containers/`, as the runtime's functions take it.
    pub fn containers(&self) -> PathBuf {
        self.layout.containers()
    }
}
