//! Creating containers so that `rmi` always sees them: the image is resolved and the
//! container directory (with its `image` file) written under the store lock; the rootfs is
//! mounted afterwards, outside it, by the supervisor.

use cairn_runtime::RunRequest;
use cairn_runtime::bundle::{Bundle, BundleRequest};
use cairn_runtime::container::{self, Container};
use cairn_runtime::launch::NewContainer;

use crate::{Engine, Result};

impl Engine {
    /// Resolves the image and creates the container (not yet mounted or started).
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

    /// `bundle`: a container whose rootfs is mounted in an OCI bundle directory for runc.
    pub fn create_bundle(&self, req: &BundleRequest) -> Result<Bundle> {
        let _lock = self.store().lock()?;
        Ok(cairn_runtime::bundle::create(
            self.images(),
            &self.containers(),
            req,
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
