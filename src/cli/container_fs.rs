//! The container filesystem and exec commands, at the top level and under `cairn container`:
//! `exec`, `top`, `diff`, `cp`, `commit`, `export`.

use cairn_engine::StoreRoot;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_driver::archive::Compression;
use cairn_driver::archive::tar_out::export_dir;
use cairn_runtime::container_fs::{diff as container_diff, with_rootfs};

use super::exec::find;

/// The commands of this module (flattened into the top level and `container`).
#[derive(Debug, clap::Subcommand)]
pub enum FsCommand {
    /// Execute a command in a running container.
    Exec(super::exec::ExecArgs),
    /// Display the running processes of a container.
    Top(super::exec::TopArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff {
        /// The container.
        container: String,
    },
    /// Copy files/folders between a container and the local filesystem.
    Cp(super::cp::CpArgs),
    /// Create a new image from a container's changes.
    Commit(super::commit::CommitArgs),
    /// Export a container's filesystem as a tar archive.
    Export {
        /// Write to a file, instead of STDOUT.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The container.
        container: String,
    },
}

/// Runs one of these commands.
pub fn run(root: &StoreRoot, cmd: FsCommand) -> Result<()> {
    match cmd {
        FsCommand::Exec(a) => super::exec::exec(root, a),
        FsCommand::Top(a) => super::exec::top(root, a),
        FsCommand::Diff { container } => diff(root, &container),
        FsCommand::Cp(a) => super::cp::cp(root, a),
        FsCommand::Commit(a) => super::commit::commit(root, a),
        FsCommand::Export { output, container } => export(root, output, &container),
    }
}

/// `cairn diff`: one `A|C|D path` line per change.
fn diff(root: &StoreRoot, arg: &str) -> Result<()> {
    let c = find(root, arg)?;
    let mut out = std::io::stdout().lock();
    for ch in container_diff(&c)? {
        writeln!(out, "{ch}")?;
    }
    Ok(())
}

/// `cairn export`: the merged filesystem as a tar.
fn export(root: &StoreRoot, output: Option<PathBuf>, arg: &str) -> Result<()> {
    let c = find(root, arg)?;
    match output {
        Some(path) => {
            let tmp = path.with_extension("cairn-tmp");
            let file = std::fs::File::create(&tmp).with_context(|| tmp.display().to_string())?;
            let mut w = BufWriter::new(file);
            with_rootfs(&c, |rootfs| export_dir(rootfs, &mut w, Compression::None))??;
            w.into_inner()?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut w = BufWriter::new(stdout.lock());
            with_rootfs(&c, |rootfs| export_dir(rootfs, &mut w, Compression::None))??;
            w.flush()?;
        }
    }
    Ok(())
}
