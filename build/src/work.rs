//! Work containers: a step's container on its parent image, created through the engine (so
//! `rmi` sees the image in use), run (RUN) or only mounted by the runtime (COPY, ADD,
//! WORKDIR, a stage's files for `COPY --from`), committed as one layer, and always removed —
//! also when the step fails — so a build leaves no mount, process or container behind.

use std::path::{Path, PathBuf};

use cairn_driver::commit::{CommitOptions, commit};
use cairn_driver::image::{Change, Timestamp};
use cairn_driver::images::ImageRecord;
use cairn_engine::Engine;
use cairn_runtime::container::{Container, unmount_rootfs};
use cairn_runtime::container_fs::{MOUNT_POINTS, commit_container};
use cairn_runtime::{RunOptions, RunRequest};

use crate::Result;

/// A container of the build, removed on drop.
pub struct Work<'a> {
    engine: &'a Engine,
    pub container: Container,
    image: ImageRecord,
    mnt: Option<PathBuf>,
}

/// Waits (up to a few seconds) until the FUSE daemons of earlier steps' mounts, our
/// children, have exited and are reaped: a RUN's supervisor takes any other child's exit for
/// the death of its own rootfs's daemon and kills the step.
fn reap_children() {
    use rustix::process::{Pid, WaitOptions, waitpid};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left: Vec<i32> = children()
            .into_iter()
            .filter(|&p| {
                let pid = Pid::from_raw(p).expect("positive pid");
                !matches!(waitpid(Some(pid), WaitOptions::NOHANG), Ok(Some(_)))
            })
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// This process's children (every thread's).
fn children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return vec![];
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
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
        reap_children();
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
        work.container.mount_rootfs_tied(&mnt, &lowers)?;
        work.mnt = Some(mnt);
        Ok(work)
    }

    /// The mounted rootfs (only for [`Work::mounted`]).
    pub fn root(&self) -> &Path {
        self.mnt.as_deref().expect("mounted work container")
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
            Some(m) => commit(
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
            Some(m) => {
                let _ = unmount_rootfs(&m);
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
