//! `cairn run`: a container created by [`crate::launch::create`] handed to a supervisor
//! ([`crate::supervisor`]) — this process in the foreground ([`run`]), a detached one with
//! `-d` ([`run_detached`]).

use crate::Result;
use crate::container::Container;
use crate::launch::{Launch, NewContainer};
use crate::supervisor::Attach;

pub use crate::launch::{RunRequest, create};

/// Runs a container to completion in the foreground (this process is its supervisor, its
/// output goes to this process's stdout and stderr and to its log); returns the exit status
/// of its pid 1 (128+N for signal N). Errors carry docker's status in [`Error::exit_code`].
pub fn run(new: NewContainer) -> Result<i32> {
    let attach = match new.req.interactive {
        true => Attach::OutputAndStdin,
        false => Attach::Output,
    };
    crate::supervisor::supervise(Launch::New(Box::new(new)), attach, &mut |_| {})
}

/// `run -d`: creates the container and starts it under a detached supervisor; returns once
/// pid 1 runs (or could not be started).
pub fn run_detached(new: NewContainer) -> Result<Container> {
    let c = new.container.clone();
    crate::supervisor::detach(Launch::New(Box::new(new)))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::{ImageSettings, RunOptions};

    /// A lower dir with a static busybox as /bin/sh.
    fn busybox_lower(dir: &Path) -> Option<std::path::PathBuf> {
        let lower = dir.join("lower");
        std::fs::create_dir_all(lower.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", lower.join("bin/busybox")).ok()?;
        std::fs::hard_link(lower.join("bin/busybox"), lower.join("bin/sh")).unwrap();
        Some(lower)
    }

    /// A process that runs containers one after another (the builder) has other children:
    /// one of them exiting while a container runs in the foreground neither kills the
    /// container (it used to be taken for the rootfs's FUSE daemon dying: exit 137) nor is
    /// reaped behind its parent's back.
    #[test]
    fn an_unrelated_child_exiting_leaves_the_container_running() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting a container's rootfs needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let Some(lower) = busybox_lower(tmp.path()) else {
            eprintln!("skipped: no /bin/busybox (apt-get install busybox-static)");
            return;
        };
        let containers = tmp.path().join("containers");
        std::fs::create_dir_all(&containers).unwrap();
        let container = Container::create(&containers, None, &"ab".repeat(32)).unwrap();
        let req = RunRequest {
            image: "test".into(),
            options: RunOptions {
                command: vec!["/bin/sh".into(), "-c".into(), "sleep 2; exit 7".into()],
                ..Default::default()
            },
            remove: true,
            ..Default::default()
        };
        let dir = container.dir.clone();
        let new = NewContainer {
            container,
            req,
            settings: ImageSettings::default(),
            lowers: vec![lower],
            image_id: "ab".repeat(32),
            stop_signal: None,
        };
        // Exits while the container sleeps.
        let mut other = std::process::Command::new("/bin/busybox")
            .args(["sleep", "0.2"])
            .spawn()
            .unwrap();
        let code = run(new);
        let other_status = other.wait();
        assert_eq!(code.unwrap(), 7, "the container was killed");
        assert!(
            other_status.as_ref().is_ok_and(|s| s.success()),
            "the unrelated child was reaped by the supervisor: {other_status:?}"
        );
        assert!(!dir.exists(), "--rm left {}", dir.display());
    }
}
