//! `cairn mount` and `cairn umount`: the union filesystem for any stack of layer directories,
//! with fuse-overlayfs compatible `-o` options and mount.fuse3 (`-t fuse.cairn`) support, or
//! a read-only view of an image from the store (`cairn mount IMAGE [MNT]`).

use cairn_engine::StoreRoot;
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
    /// `[SOURCE] MOUNTPOINT` for a layer stack (mount(8) passes a source name first; it
    /// becomes the fsname), or `IMAGE [MOUNTPOINT]` for a read-only view of an image.
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

/// True when the arguments name a layer stack (`--lower` or `-o lowerdir=`), not an image.
fn is_stack(a: &MountArgs) -> bool {
    a.lower.is_some() || a.options.iter().any(|o| o.contains("lowerdir="))
}

/// `cairn mount IMAGE [MNT]`: a read-only view of an image's layers. Without MNT a directory
/// under the store is used and printed.
fn image_request(root: &StoreRoot, a: &MountArgs) -> Result<MountRequest> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let image = a.paths[0].to_string_lossy().into_owned();
    let (rec, _) = match images.find(&image) {
        Ok(found) => found,
        Err(_) if a.paths.len() == 1 && a.paths[0].is_dir() => {
            bail!(
                "no lower layer given (--lower A:B or -o lowerdir=A:B), and {image} is not an image"
            )
        }
        Err(e) => return Err(e.into()),
    };
    let id = rec.id;
    let lowers = images.lower_dirs(&rec)?;
    if lowers.is_empty() {
        bail!("image {image} has no layers to mount");
    }
    let mnt = match a.paths.get(1) {
        Some(m) => m.clone(),
        None => {
            let m = engine.layout().mnt().join(&id.hex()[..12]);
            std::fs::create_dir_all(&m).with_context(|| format!("{}", m.display()))?;
            println!("{}", m.display());
            m
        }
    };
    let mut req = MountRequest::new(mnt);
    req.fsname = format!("cairn:{}", &id.hex()[..12]);
    for o in &a.options {
        req.apply_options(o)?;
    }
    req.cfg.lowers = lowers;
    req.read_only = true;
    req.validate()?;
    Ok(req)
}

/// Runs `cairn mount`: a layer stack, or an image from the store.
pub fn mount(root: &StoreRoot, a: MountArgs) -> Result<()> {
    let req = if is_stack(&a) || a.upper.is_some() {
        request(&a)?
    } else {
        image_request(root, &a)?
    };
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
