//! The store root and its layout: every directory name of the store, created and checked in
//! one place.
//!
//! ```text
//! <root>/lock                  the store lock (driver::Store::lock), see crate::locks
//! <root>/blobs/sha256/<hex>    content-addressed blobs            (driver)
//! <root>/layers/<chain>/       extracted layers: diff/ + meta.json (driver)
//! <root>/images/index.json     the image index                     (driver::images)
//! <root>/tmp/                  staging of every writer, flock'ed    (driver)
//! <root>/containers/<id>/      one container: name, image, config.json, state.json,
//!                              upper/ work/ rootfs/, mnt-PID/       (runtime, given this path)
//! <root>/containers/.lock      the container names lock
//! <root>/mnt/                  `cairn mount IMAGE` mountpoints
//! <root>/quarantine/           damaged state files moved aside by `system check --repair`
//! ```

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Where the store lives: `--root`, else `CAIRN_ROOT`, else the default (`/var/lib/cairn` as
/// root, `$XDG_DATA_HOME/cairn` otherwise). Resolved only when a command opens the store.
#[derive(Debug, Clone, Default)]
pub struct StoreRoot {
    explicit: Option<PathBuf>,
}

impl StoreRoot {
    /// The root a command line chose (None: the default).
    pub fn new(explicit: Option<&str>) -> StoreRoot {
        StoreRoot {
            explicit: explicit.map(PathBuf::from),
        }
    }

    /// The root directory.
    pub fn path(&self) -> Result<PathBuf> {
        match &self.explicit {
            Some(p) => Ok(p.clone()),
            None => Ok(cairn_driver::Store::default_root()?),
        }
    }
}

/// The store's directories, owned here.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

const CONTAINERS: &str = "containers";
const MNT: &str = "mnt";
const QUARANTINE: &str = "quarantine";
const IMAGES: &str = "images";

impl Layout {
    /// Creates the directories the engine owns under `root` (the driver creates its own).
    pub fn create(root: &Path) -> Result<Layout> {
        for sub in [CONTAINERS, IMAGES] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|source| Error::Io {
                what: "create directory",
                path: p,
                source,
            })?;
        }
        Ok(Layout {
            root: root.to_path_buf(),
        })
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `containers/`: handed to the runtime, which knows no other directory of the store.
    pub fn containers(&self) -> PathBuf {
        self.root.join(CONTAINERS)
    }

    /// `mnt/`: mountpoints of `cairn mount IMAGE`.
    pub fn mnt(&self) -> PathBuf {
        self.root.join(MNT)
    }

    /// `quarantine/`: damaged files moved aside by repair.
    pub fn quarantine(&self) -> PathBuf {
        self.root.join(QUARANTINE)
    }

    /// `images/index.json`.
    pub fn image_index(&self) -> PathBuf {
        self.root.join(IMAGES).join("index.json")
    }
}
