//! Creating containers so that `rmi` always sees them: the image is resolved and the
//! container directory (with its `image` file) written under the store lock; the rootfs is
//! mounted afterwards, outside it, by the supervisor.

use cairn_runtime::RunRequest;
use cairn_runtime::bundle::{Bundle, BundleRequest};
use cairn_runtime::container::{self, Container};
use cairn_runtime::launch::NewContainer;

use crate::status::ContainerStatus;
use crate::{Engine, Result};

impl Engine {
    /// Resolves the image and creates the container (not yet mounted or started). The store
    /// lock is released on return, before anything forks a mount daemon or supervisor.
    pub fn create_container(&self, req: &RunRequest) -> Result<NewContainer> {
        let _lock = self.store().lock()?;
        Ok(cairn_runtime::launch::create(
            self.images(),
            &self.containers(),
            req,
        )?)
    }

    /// `run`: creates the container and runs it in the foreground; returns pid 1's status.
    pub fn run(&self, req: &RunRequest) -> Result<i32> {
        let new = self.create_container(req)?;
        Ok(cairn_runtime::run(new)?)
    }

    /// `run -d`: creates the container and starts it under a detached supervisor.
    pub fn run_detached(&self, req: &RunRequest) -> Result<Container> {
        let new = self.create_container(req)?;
        Ok(cairn_runtime::run_detached(new)?)
    }

    /// `bundle`: a container whose rootfs is mounted in an OCI bundle directory for runc. The
    /// store lock covers resolving the image and recording the container, not the mount (a
    /// forked mount daemon must never inherit the lock).
    pub fn create_bundle(&self, req: &BundleRequest) -> Result<Bundle> {
        let lock = self.store().lock()?;
        Ok(cairn_runtime::bundle::create(
            self.images(),
            &self.containers(),
            req,
            lock,
        )?)
    }

    /// The container a user named (id, name, unique id prefix).
    pub fn find_container(&self, arg: &str) -> Result<Container> {
        Ok(container::find(&self.containers(), arg)?)
    }

    /// Every container, newest first.
    pub fn containers_list(&self) -> Vec<Container> {
        container::list(&self.containers())
    }
}

/// A container `container prune` removed, and the bytes its writable layer held.
#[derive(Debug, Clone)]
pub struct PrunedContainer {
    pub id: String,
    pub bytes: u64,
}

impl Engine {
    /// `container prune`: removes every container whose status (the one status function) is
    /// not running or restarting, and what creations that died left.
    pub fn prune_containers(&self) -> Result<Vec<PrunedContainer>> {
        let dir = self.containers();
        container::prune_unfinished(&dir)?;
        let mut out = Vec::new();
        for c in container::list(&dir) {
            let st = cairn_runtime::lifecycle::refresh(&c)?;
            if matches!(
                crate::status::status(&st),
                ContainerStatus::Running | ContainerStatus::Restarting
            ) {
                continue;
            }
            let bytes = tree_bytes(&c.upper());
            if cairn_runtime::lifecycle::remove(&c, false).is_ok() {
                out.push(PrunedContainer { id: c.id, bytes });
            }
        }
        Ok(out)
    }
}

/// Bytes of the regular files under a directory (not following symlinks).
pub fn tree_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
