//! cairn-runtime: running a process in namespaces on an image's layers mounted through cairn's
//! FUSE union filesystem (`cairn run`).
//!
//! - [`spec`]: image config + options → run spec (pure);
//! - [`container`]: the container directory, config and state;
//! - [`cgroup`]: memory / pids limits on cgroup v2 or v1; [`devices`]: the device policy;
//! - [`seccomp`]: docker's seccomp profiles, resolved and loaded with libseccomp;
//! - [`rootfs`] and [`process`]: the child side (mounts, pivot_root, user, capabilities, exec)
//!   and the parent side (clone, start handshake, signal forwarding, wait);
//! - [`exec`] and [`live`]: a process in a running container, its processes and cgroups;
//! - [`container_fs`] and [`copy`]: a container's filesystem: diff, commit, cp, export.
//! - [`run`]: `cairn run` (create, then supervise in the foreground or detached);
//! - [`supervisor`]: the per-container supervisor (mount, pid 1, log, restart policy);
//! - [`launch`]: what a supervisor starts (a container created from its image, or an
//!   existing one) and the files it writes once the rootfs is mounted;
//! - [`state`]: the truth about a container whose supervisor died, dead private mounts;
//! - [`lifecycle`]: stop, kill, start, wait, rm for commands; [`logs`]: the json-file log.
//!
//! Modules depend downward only: spec, container, cgroup, logs, tty, live, start_failure →
//! rootfs → process → state → exec, launch → container_fs, supervisor → lifecycle, run,
//! bundle. The runtime knows no store layout: the engine hands it the containers directory.

use std::path::PathBuf;

pub mod bundle;
pub mod cgroup;
pub mod container;
pub mod container_fs;
pub mod copy;
pub mod devices;
pub mod exec;
pub mod launch;
pub mod lifecycle;
pub mod live;
pub mod logs;
pub mod process;
pub mod rootfs;
pub mod run;
pub mod seccomp;
pub mod spec;
pub mod start_failure;
pub mod state;
pub mod supervisor;

pub use run::{RunRequest, run, run_detached};
pub use spec::{RunOptions, RunSpec, SpecError};

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Images(#[from] cairn_driver::images::ImagesError),
    #[error(transparent)]
    Image(#[from] cairn_driver::image::ImageError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mounting the rootfs at {}: {source}", path.display())]
    Mount {
        path: PathBuf,
        #[source]
        source: cairn_fs::error::Error,
    },
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse { name: String, id: String },
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("Multiple IDs found with provided prefix: {0}")]
    AmbiguousContainer(String),
    #[error(
        "Error when allocating new name: Renaming a container with the same name as its current name"
    )]
    SameName(String),
    #[error(
        "cannot remove container \"/{0}\": container is running: stop the container before removing or force remove"
    )]
    RemoveRunning(String),
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error("invalid signal: {0}")]
    InvalidSignal(String),
    #[error("invalid restart policy: {0}")]
    InvalidRestartPolicy(String),
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error(transparent)]
    DeviceProgram(#[from] crate::devices::bpf::BpfError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("cgroup {}: {source}", path.display())]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    /// The container process could not be started; `code` is docker's exit status for it
    /// (125 setup, 126 not executable, 127 not found).
    #[error("{message}")]
    Start { code: i32, message: String },
}

impl Error {
    /// The exit status `cairn run` reports for this error (docker's: 125 unless the command
    /// itself could not be run).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Start { code, .. } => *code,
            _ => 125,
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}

/// Result of the runtime.
pub type Result<T> = std::result::Result<T, Error>;
