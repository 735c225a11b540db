//! `cairn cp`: files between a container (running: through its mounted rootfs; stopped: the
//! union mounted for the copy) and the host, with docker's rules for directories, files,
//! trailing `/` and `/.`, `-` for a tar stream, `-a` and `-L`. Container paths resolve beneath
//! the container's root.

use cairn_engine::StoreRoot;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use cairn_runtime::container::Container;
use cairn_runtime::container_fs::{volume_path, with_rootfs};
use cairn_runtime::copy::{Kind, Owner, archive, extract, kind};

use super::exec::find;

/// `cairn cp`.
#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// CONTAINER:SRC_PATH, SRC_PATH or `-`.
    src: String,
    /// DEST_PATH, CONTAINER:DEST_PATH or `-`.
    dest: String,
}

/// `CONTAINER:PATH` (a local path with a colon starts with `/` or `.`).
fn split(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':')
}

/// The last component of a path (`""` for a directory's contents, `/.`).
fn base(path: &str) -> String {
    if path.ends_with("/.") {
        return String::new();
    }
    Path::new(path.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parent(path: &str) -> String {
    Path::new(path.trim_end_matches('/'))
        .parent()
        .map_or("/".into(), |p| p.to_string_lossy().into_owned())
}

/// Where a copy lands: (directory to unpack into, name of the top entry), by docker's rules.
fn placement(
    src: &str,
    src_kind: Kind,
    dest: &str,
    dest_kind: Option<Kind>,
) -> Result<(String, String)> {
    let contents = src.ends_with("/.");
    Ok(match (src_kind, dest_kind) {
        (Kind::Dir, Some(Kind::Dir)) => (dest.to_string(), base(src)),
        (Kind::Dir, Some(Kind::Other)) => {
            bail!("cannot copy a directory to a file: {dest}")
        }
        (Kind::Dir, None) if contents => (dest.to_string(), String::new()),
        (Kind::Dir, None) => (parent(dest), base(dest)),
        (Kind::Other, _) if src.ends_with('/') || contents => {
            bail!("{src}: not a directory")
        }
        (Kind::Other, Some(Kind::Dir)) => (dest.to_string(), base(src)),
        (Kind::Other, None) if dest.ends_with('/') => {
            bail!("destination directory {dest} does not exist")
        }
        (Kind::Other, _) => (parent(dest), base(dest)),
    })
}

fn absolute(p: &str) -> Result<String> {
    Ok(std::path::absolute(p)?.to_string_lossy().into_owned())
}

/// Runs `cairn cp`.
pub fn cp(root: &StoreRoot, a: CpArgs) -> Result<()> {
    let follow = a.follow_link;
    let host = PathBuf::from("/");
    match (split(&a.src), split(&a.dest)) {
        (Some((ctr, src)), None) => {
            let c = find(root, ctr)?;
            in_container(&c, src, |rootfs, src| -> Result<()> {
                let Some(src_kind) = kind(rootfs, src, follow)? else {
                    bail!("Could not find the file {src} in container {ctr}");
                };
                if a.dest == "-" {
                    let name = base(src);
                    let out = std::io::stdout().lock();
                    return Ok(archive(rootfs, src, &name, follow, out)?);
                }
                let dest = absolute(&a.dest)?;
                let had_slash = a.dest.ends_with('/');
                let dest = if had_slash { format!("{dest}/") } else { dest };
                let (dir, name) = placement(src, src_kind, &dest, kind(&host, &dest, true)?)?;
                let owner = match a.archive {
                    true => Owner::Keep,
                    false => Owner::Set(
                        rustix::process::geteuid().as_raw(),
                        rustix::process::getegid().as_raw(),
                    ),
                };
                through_temp(rootfs, src, &name, follow, &host, &dir, owner)
            })
        }
        (None, Some((ctr, dest))) => {
            let c = find(root, ctr)?;
            let owner = if a.archive {
                Owner::Keep
            } else {
                Owner::Set(0, 0)
            };
            if a.src == "-" {
                return in_container(&c, dest, |rootfs, dest| -> Result<()> {
                    if kind(rootfs, dest, true)? != Some(Kind::Dir) {
                        bail!("destination \"{ctr}:{dest}\" must be a directory");
                    }
                    Ok(extract(rootfs, dest, std::io::stdin().lock(), owner)?)
                });
            }
            let src = absolute(&a.src)?;
            let src = if a.src.ends_with("/.") {
                format!("{src}/.")
            } else if a.src.ends_with('/') {
                format!("{src}/")
            } else {
                src
            };
            let Some(src_kind) = kind(&host, &src, follow)? else {
                bail!("lstat {}: no such file or directory", a.src);
            };
            in_container(&c, dest, |rootfs, dest| -> Result<()> {
                let (dir, name) = placement(&src, src_kind, dest, kind(rootfs, dest, true)?)?;
                through_temp(&host, &src, &name, follow, rootfs, &dir, owner)
            })
        }
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
    }
}

/// Runs `f` with the root a container path lives in and the path inside it: the host
/// directory of a `-v` bind the path is in (as docker copies into volumes), else the
/// container's merged rootfs.
fn in_container(
    c: &Container,
    path: &str,
    f: impl FnOnce(&Path, &str) -> Result<()>,
) -> Result<()> {
    match volume_path(&c.config()?, path) {
        Some((host_dir, rest)) => f(&host_dir, &rest),
        None => with_rootfs(c, |rootfs| f(rootfs, path))?,
    }
}

/// Archives `src` (in `from`) as `name` into an unlinked temp file, then unpacks it into
/// `dir` (in `to`).
fn through_temp(
    from: &Path,
    src: &str,
    name: &str,
    follow: bool,
    to: &Path,
    dir: &str,
    owner: Owner,
) -> Result<()> {
    let mut tmp = tempfile::tempfile()?;
    archive(from, src, name, follow, &mut tmp)?;
    tmp.flush()?;
    tmp.rewind()?;
    extract(to, dir, &mut tmp, owner)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_placement_rules() {
        let p = |s: &str, k, d: &str, dk| placement(s, k, d, dk).ok();
        let pair = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(
            p("/a/dir", Kind::Dir, "/t", Some(Kind::Dir)),
            pair("/t", "dir")
        );
        assert_eq!(
            p("/a/dir/.", Kind::Dir, "/t", Some(Kind::Dir)),
            pair("/t", "")
        );
        assert_eq!(p("/a/dir", Kind::Dir, "/t/new", None), pair("/t", "new"));
        assert_eq!(p("/a/dir", Kind::Dir, "/t/f", Some(Kind::Other)), None);
        assert_eq!(
            p("/a/f", Kind::Other, "/t", Some(Kind::Dir)),
            pair("/t", "f")
        );
        assert_eq!(p("/a/f", Kind::Other, "/t/g", None), pair("/t", "g"));
        assert_eq!(p("/a/f", Kind::Other, "/t/g/", None), None);
        assert_eq!(p("/a/f/", Kind::Other, "/t", Some(Kind::Dir)), None);
        assert_eq!(
            p("/a/f", Kind::Other, "/t/g", Some(Kind::Other)),
            pair("/t", "g")
        );
        assert_eq!(split("web:/etc"), Some(("web", "/etc")));
        assert_eq!(split("./a:b"), None);
    }
}
