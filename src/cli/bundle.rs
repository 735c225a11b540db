//! `cairn bundle IMAGE DIR [COMMAND [ARG...]]`: write an OCI runtime bundle for runc and
//! friends — `DIR/config.json` and the image mounted at `DIR/rootfs` through cairn's union
//! filesystem, with a fresh upper in the store's container directory; prints DIR.
//! `cairn bundle --rm-mount DIR` (or `cairn umount DIR/rootfs`) releases the mount.

use cairn_engine::StoreRoot;
use std::path::PathBuf;

use anyhow::Result;
use cairn_runtime::RunOptions;
use cairn_runtime::bundle::{self, BundleRequest};

/// Arguments of `cairn bundle` (`-h` is --hostname, as in `cairn run`; help is `--help`).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct BundleArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Unmount DIR/rootfs of a bundle made earlier (the container's upper stays in the store).
    #[arg(long = "rm-mount", value_name = "DIR", conflicts_with = "image")]
    rm_mount: Option<PathBuf>,
    #[command(flatten)]
    opts: super::container_opts::ContainerOpts,
    /// The image.
    #[arg(required_unless_present = "rm_mount")]
    image: Option<String>,
    /// The bundle directory (created if missing; must be empty).
    #[arg(required_unless_present = "rm_mount")]
    dir: Option<PathBuf>,
    /// The command and its arguments (replaces the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn options(a: &BundleArgs) -> Result<RunOptions> {
    if a.opts.cpus.is_some() {
        anyhow::bail!("--cpus is not supported by cairn bundle yet");
    }
    let mut opts = a.opts.clone();
    // A bundle always has its own network namespace unless it shares the host's.
    if matches!(opts.network.as_deref(), None | Some("default")) {
        opts.network = Some("none".into());
    }
    opts.to_run_options(&a.command)
}

/// Runs `cairn bundle`.
pub fn bundle(root: &StoreRoot, a: BundleArgs) -> Result<()> {
    if let Some(dir) = &a.rm_mount {
        bundle::release(dir)?;
        return Ok(());
    }
    let (Some(image), Some(dir)) = (a.image.clone(), a.dir.clone()) else {
        anyhow::bail!("\"cairn bundle\" requires IMAGE and DIR");
    };
    let options = options(&a)?;
    let engine = super::store::open(root)?;
    let req = BundleRequest {
        image,
        dir,
        options,
        name: a.opts.name.clone(),
    };
    let b = engine
        .create_bundle(&req)
        .map_err(super::store::unwrap_err)?;
    println!("{}", b.dir.display());
    Ok(())
}
