//! Work containers: a step's container on its parent image, created through the engine (so
//! `rmi` sees the image in use), run (RUN) or only mounted by the runtime (COPY, ADD,
//! WORKDIR, a stage's files for `COPY --from`), committed as one layer, and always removed —
//! also when the step fails — so a build leaves no mount, process or container behind.

use std::path::{Path, PathBuf};

use cairn_driver::commit::{CommitOptions, commit};
use cairn_driver::image::{Change, Timestamp};
use cairn_driver::images::ImageRecord;
use cairn_engine::Engine;
use cairn_runtime::container::{Container, Pid, reap_daemon, unmount_rootfs};
use cairn_runtime::container_fs::{MOUNT_POINTS, commit_container};
use cairn_runtime::{RunOptions, RunRequest};

use crate::Result;

/// A container of the build, removed on drop.
pub struct Work<'a> {
    engine: &'a Engine,
    pub container: Container,
    image: ImageRecord,
    /// The rootfs mounted by this process ([`Work::mounted`]) and its FUSE daemon, our child.
    mnt: Option<(PathBuf, Pid)>,
}

fn skip_mount_points(p: &str) -> bool {
    MOUNT_POINTS
        .iter()
        .any(|m| p == *m || p.starts_with(&format!("{m}/")))
}

impl<'a> Work<'a> {
    /// Runs `options.command` in a container on `image` in the foreground (output streamed);
    /// `started` is told the container's id first. Returns the container (to commit) and the
    /// command's status.
    pub fn run(
        engine: &'a Engine,
        image: &ImageRecord,
        options: RunOptions,
        started: &mut dyn FnMut(&str),
    ) -> Result<(Work<'a>, i32)> {
        let req = RunRequest {
            image: image.id.to_string(),
            options,
            ..Default::default()
        };
        let new = engine.create_container(&req)?;
        let work = Work {
            engine,
            container: new.container.clone(),
            image: image.clone(),
            mnt: None,
        };
        started(&work.container.id);
        let code = match cairn_runtime::run(new) {
            Ok(code) => code,
            Err(cairn_runtime::Error::Start { code, .. }) => code,
            Err(e) => return Err(e.into()),
        };
        Ok((work, code))
    }

    /// A container on `image` whose rootfs is mounted (by this process) for host-side file
    /// operations; returns it with the mount path.
    pub fn mounted(engine: &'a Engine, image: &ImageRecord) -> Result<Work<'a>> {
        let req = RunRequest {
            image: image.id.to_string(),
            options: RunOptions {
                command: vec!["true".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let new = engine.create_container(&req)?;
        let mut work = Work {
            engine,
            container: new.container.clone(),
            image: image.clone(),
            mnt: None,
        };
        drop(new);
        let lowers = engine.images().lower_dirs(image)?;
        let mnt = work.container.rootfs();
        let daemon = work.container.mount_rootfs_tied(&mnt, &lowers)?;
        work.mnt = Some((mnt, daemon));
        Ok(work)
    }

    /// The mounted rootfs (only for [`Work::mounted`]).
    pub fn root(&self) -> &Path {
        &self.mnt.as_ref().expect("mounted work container").0
    }

    /// Commits the container's changes as one layer on its image, history `created_by`, config
    /// `changes` applied, dated `created` (default now).
    pub fn commit(
        &self,
        created_by: &str,
        changes: Vec<Change>,
        created: Option<Timestamp>,
    ) -> Result<ImageRecord> {
        let opts = CommitOptions {
            created_by: created_by.to_string(),
            changes,
            created,
            ..Default::default()
        };
        let images = self.engine.images();
        Ok(match &self.mnt {
            Some((m, _)) => commit(
                images,
                &self.image,
                &self.container.upper(),
                Some(m),
                &opts,
                &skip_mount_points,
            )?,
            None => commit_container(images, &self.container, &opts, false)?,
        })
    }
}

impl Drop for Work<'_> {
    fn drop(&mut self) {
        match self.mnt.take() {
            // Never started: its state names this process as supervisor, so the lifecycle's
            // remove would stop this process; unmount and remove the directory.
            Some((m, daemon)) => {
                if unmount_rootfs(&m).is_ok() {
                    reap_daemon(daemon);
                }
                let _ = self.container.remove();
            }
            None => {
                if cairn_runtime::lifecycle::remove(&self.container, true).is_err() {
                    let _ = self.container.remove();
                }
            }
        }
    }
}
