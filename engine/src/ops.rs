//! The operations a front end builds on (the CLI today; the builder, the podman mount program,
//! the containerd snapshotter and the Docker graphdriver next): resolve an image, the layer
//! stack of an image, a container's mountable stack, its diff, its commit.

use std::path::PathBuf;

use cairn_driver::commit::CommitOptions;
use cairn_driver::diff::Change;
use cairn_driver::image::ImageConfig;
use cairn_driver::images::ImageRecord;
use cairn_runtime::container::{Container, ContainerConfig};

use crate::{Engine, Result};

/// What a container's union mount is made of.
#[derive(Debug, Clone)]
pub struct LayerStack {
    /// Read-only layer directories, top first (overlay `lowerdir` order).
    pub lowers: Vec<PathBuf>,
    /// The container's writable layer and the overlay work directory.
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl Engine {
    /// The image an argument names (ID, ID prefix, name[:tag], name@digest), with its config.
    pub fn resolve_image(&self, arg: &str) -> Result<(ImageRecord, ImageConfig)> {
        Ok(self.images().find(arg)?)
    }

    /// The read-only layer directories of an image, top first.
    pub fn image_layers(&self, rec: &ImageRecord) -> Result<Vec<PathBuf>> {
        Ok(self.images().lower_dirs(rec)?)
    }

    /// The layer stack of an existing container (as recorded when its rootfs was first
    /// mounted). Mount it with `cairn_fs::mount` or `Container::mount_rootfs`.
    pub fn container_stack(&self, c: &Container) -> Result<LayerStack> {
        let cfg: ContainerConfig = c.config()?;
        Ok(LayerStack {
            lowers: cfg.lowers,
            upper: c.upper(),
            work: c.work(),
        })
    }

    /// `diff`: the container's changes against its image.
    pub fn diff(&self, c: &Container) -> Result<Vec<Change>> {
        Ok(cairn_runtime::container_fs::diff(c)?)
    }

    /// `commit`: the container's changes as a new image on top of its image. The image is
    /// recorded under the store lock after its layers are checked there.
    pub fn commit(&self, c: &Container, opts: &CommitOptions, pause: bool) -> Result<ImageRecord> {
        Ok(cairn_runtime::container_fs::commit_container(
            self.images(),
            c,
            opts,
            pause,
        )?)
    }
}
