//! The `cairn` command line. Parses arguments (clap), runs one command, prints, and maps errors
//! to docker-like exit codes (125 for cairn's own errors).

mod cli;

use clap::{Parser, Subcommand};

/// cairn: container image layers on its own FUSE union filesystem.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount a stack of layers as one union filesystem (overlayfs semantics).
    Mount(cli::mount::MountArgs),
    /// Unmount a cairn mount.
    #[command(alias = "unmount")]
    Umount(cli::mount::UmountArgs),
}

/// Names under which mount(8) / mount.fuse3 run us: `cairn SOURCE MNT -o OPTS` or
/// `mount.fuse.cairn SOURCE MNT -o OPTS` mean `cairn mount SOURCE MNT -o OPTS`.
fn normalize_args(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let argv0 = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let helper = argv0.starts_with("mount.fuse.cairn") || argv0.starts_with("mount.cairn");
    let first = args.get(1).map(|a| a.to_string_lossy().into_owned());
    let known = ["mount", "umount", "unmount", "help"];
    let positional_source = match &first {
        Some(f) => !f.starts_with('-') && !known.contains(&f.as_str()) && args.len() >= 3,
        None => false,
    };
    if helper || positional_source {
        args.insert(1, "mount".into());
    }
    args
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::new().filter("CAIRN_LOG")).init();
    let cli = Cli::parse_from(normalize_args(std::env::args_os().collect()));
    let result = match cli.command {
        Command::Mount(a) => cli::mount::mount(a),
        Command::Umount(a) => cli::mount::umount(a),
    };
    if let Err(e) = result {
        eprintln!("cairn: {e:#}");
        std::process::exit(125);
    }
}
