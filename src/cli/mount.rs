//! `cairn mount` and `cairn umount`: the union filesystem for any stack of layer directories,
//! with fuse-overlayfs compatible `-o` options and mount.fuse3 (`-t fuse.cairn`) support.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_fs::mount::{MountRequest, serve, spawn_daemon, unmount};

/// Arguments of `cairn mount`.
#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// Lower layers, colon separated, leftmost on top (as overlayfs lowerdir=).
    #[arg(long, value_name = "A:B:C")]
    lower: Option<String>,
    /// Upper (writable) layer; without it the mount is read-only.
    #[arg(long, value_name = "DIR")]
    upper: Option<PathBuf>,
    /// Work dir on the same filesystem as the upper.
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// Mount options: lowerdir=,upperdir=,workdir=,ro,timeout=SECS,threads=N,nopassthrough,...
    #[arg(short = 'o', value_name = "OPTS")]
    options: Vec<String>,
    /// Stay in the foreground and serve until unmounted.
    #[arg(short, long)]
    foreground: bool,
    /// Accepted for mount(8) compatibility (no mtab to update).
    #[arg(short = 'n', hide = true)]
    no_mtab: bool,
    /// Accepted for mount(8) compatibility (sloppy options).
    #[arg(short = 's', hide = true)]
    sloppy: bool,
    /// Accepted for mount(8) compatibility (verbose).
    #[arg(short = 'v', hide = true)]
    verbose: bool,
    /// `[SOURCE] MOUNTPOINT`: mount(8) passes a source name first; it becomes the fsname.
    #[arg(value_name = "MOUNTPOINT", num_args = 1..=2, required = true)]
    paths: Vec<PathBuf>,
}

/// Arguments of `cairn umount`.
#[derive(Debug, clap::Args)]
pub struct UmountArgs {
    /// Mountpoint of a cairn mount.
    mountpoint: PathBuf,
}

fn request(a: &MountArgs) -> Result<MountRequest> {
    let (source, mountpoint) = match a.paths.as_slice() {
        [m] => (None, m.clone()),
        [s, m] => (Some(s.clone()), m.clone()),
        _ => bail!("expected [SOURCE] MOUNTPOINT"),
    };
    let mut req = MountRequest::new(mountpoint);
    if let Some(s) = source {
        req.fsname = s.to_string_lossy().into_owned();
    }
    for o in &a.options {
        req.apply_options(o)?;
    }
    if let Some(l) = &a.lower {
        req.apply_options(&format!("lowerdir={}", l.replace(',', "\\,")))?;
    }
    if let Some(u) = &a.upper {
        req.cfg.upper = Some(u.clone());
    }
    if let Some(w) = &a.work {
        req.cfg.work = Some(w.clone());
    }
    match (&req.cfg.upper, &req.cfg.work) {
        (Some(_), None) => bail!("an upper dir needs a work dir (--work DIR or -o workdir=DIR)"),
        (None, Some(_)) => bail!("a work dir needs an upper dir (--upper DIR or -o upperdir=DIR)"),
        _ => {}
    }
    req.validate()?;
    Ok(req)
}

/// Runs `cairn mount`.
pub fn mount(a: MountArgs) -> Result<()> {
    let req = request(&a)?;
    if a.foreground {
        serve(&req, |_| {}).context("cairn mount")?;
        return Ok(());
    }
    spawn_daemon(&req)?;
    Ok(())
}

/// Runs `cairn umount`.
pub fn umount(a: UmountArgs) -> Result<()> {
    unmount(&a.mountpoint)?;
    Ok(())
}
