//! One module per command group.

pub mod archive;
pub mod build;
pub mod bundle;
pub mod commit;
pub mod container_fs;
pub mod container_opts;
pub mod cp;
pub mod exec;
pub mod format;
pub mod graphdriver;
pub mod images;
pub mod inspect;
pub mod lifecycle;
pub mod logs;
pub mod mount;
pub mod mount_program;
pub mod outfile;
pub mod progress;
pub mod ps;
pub mod registry;
pub mod run;
pub mod store;
pub mod system;

/// A command's exit status when it already printed what went wrong (docker's CLI exits 1
/// after per-item failures; `run` exits with its container's status). Returned as an error so
/// that only `main` exits.
#[derive(Debug)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Ok for status 0, else [`Exit`].
pub fn exit_with(code: i32) -> anyhow::Result<()> {
    match code {
        0 => Ok(()),
        c => Err(Exit(c).into()),
    }
}
