//! `cairn cp`'s two halves over any root directory (a container's merged rootfs, or `/` for
//! the host): a path as a tar stream, and a tar stream unpacked into a directory. Every path is
//! resolved beneath the root (`openat2(RESOLVE_IN_ROOT)`: `..` and symlinks, absolute ones
//! included, cannot leave it) and every entry is created relative to its parent's fd without
//! following a final symlink.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;
use tar::EntryType;

use crate::rootfs::{mkdir_all_in_root, open_in_root};
use crate::{Error, Result};

/// What a path is, seen from inside a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Other,
}

fn open_root(root: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", root)(e.into()))
}

fn io(what: &'static str, path: &str) -> impl FnOnce(Errno) -> Error {
    let p = path.to_string();
    move |e| Error::io(what, p)(e.into())
}

/// What `path` is inside `root` (`follow`: a final symlink is followed); None if missing.
pub fn kind(root: &Path, path: &str, follow: bool) -> Result<Option<Kind>> {
    let r = open_root(root)?;
    let flags = if follow {
        OFlags::PATH
    } else {
        OFlags::PATH | OFlags::NOFOLLOW
    };
    match open_in_root(&r, path, flags) {
        Ok(fd) => {
            let st = rustix::fs::fstat(&fd).map_err(io("stat", path))?;
            Ok(Some(match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => Kind::Dir,
                _ => Kind::Other,
            }))
        }
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
        Err(e) => Err(io("resolve", path)(e)),
    }
}

/// Writes `path` (inside `root`) as a tar stream whose top entry is `name` (a directory's
/// contents at the top when `name` is empty).
pub fn archive<W: Write>(root: &Path, path: &str, name: &str, follow: bool, out: W) -> Result<()> {
    let r = open_root(root)?;
    let flags = if follow {
        OFlags::PATH
    } else {
        OFlags::PATH | OFlags::NOFOLLOW
    };
    let fd = open_in_root(&r, path, flags).map_err(io("resolve", path))?;
    let st = rustix::fs::fstat(&fd).map_err(io("stat", path))?;
    let mut b = tar::Builder::new(out);
    let werr = |e: std::io::Error| Error::io("archive", path)(e);
    let top = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory if name.is_empty() => ".",
        _ => name,
    };
    append(&mut b, &fd, &st, top).map_err(werr)?;
    b.into_inner().map_err(werr)?.flush().map_err(werr)
}

/// A tar header with the owner, mode and mtime of `st` and the entry type of its file type.
fn header_of(st: &rustix::fs::Stat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h.set_entry_type(match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => EntryType::Directory,
        FileType::RegularFile => EntryType::Regular,
        FileType::Symlink => EntryType::Symlink,
        FileType::CharacterDevice => EntryType::Char,
        FileType::BlockDevice => EntryType::Block,
        _ => EntryType::Fifo,
    });
    h
}

/// Appends the object `fd` (an `O_PATH|O_NOFOLLOW` fd, `st` its stat) as `name`, a directory
/// with everything below it. Children are opened relative to their parent's fd without
/// following symlinks, so a tree changed meanwhile (a directory swapped for a symlink) cannot
/// lead the walk out of the root.
fn append<W: Write>(
    b: &mut tar::Builder<W>,
    fd: &OwnedFd,
    st: &rustix::fs::Stat,
    name: &str,
) -> std::io::Result<()> {
    let mut h = header_of(st);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            let file = reopen(fd, OFlags::RDONLY)?;
            h.set_size(u64::try_from(st.st_size).unwrap_or(0));
            b.append_data(&mut h, name, std::fs::File::from(file))
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(fd, "", Vec::new())?;
            b.append_link(&mut h, name, target.to_string_lossy().as_ref())
        }
        FileType::Directory => {
            b.append_data(&mut h, name, std::io::empty())?;
            let dir = reopen(fd, OFlags::RDONLY | OFlags::DIRECTORY)?;
            let mut names = Vec::new();
            for e in rustix::fs::Dir::read_from(&dir)? {
                let e = e?;
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(e.file_name().to_owned());
                }
            }
            names.sort();
            for n in names {
                let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let child = match rustix::fs::openat(&dir, &n, flags, Mode::empty()) {
                    Ok(c) => c,
                    Err(Errno::NOENT) => continue, // removed meanwhile
                    Err(e) => return Err(e.into()),
                };
                let cst = rustix::fs::fstat(&child)?;
                let child_name = format!("{}/{}", name.trim_end_matches('/'), n.to_string_lossy());
                append(b, &child, &cst, &child_name)?;
            }
            Ok(())
        }
        _ => {
            let _ = h.set_device_major(rustix::fs::major(st.st_rdev));
            let _ = h.set_device_minor(rustix::fs::minor(st.st_rdev));
            b.append_data(&mut h, name, std::io::empty())
        }
    }
}

/// Opens the object an `O_PATH` fd names, with `flags` (the same inode: no path lookup).
fn reopen(fd: &OwnedFd, flags: OFlags) -> std::io::Result<OwnedFd> {
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::open(
        proc_path.as_str(),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// chmod of `name` in `dir` unless it is (by now) a symlink: the mode goes to the object the
/// name had when opened, never to a symlink's target.
fn chmod_nofollow(dir: &OwnedFd, name: &str, mode: Mode) -> std::result::Result<(), Errno> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        return Ok(());
    }
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmod(proc_path.as_str(), mode)
}

/// Owner of unpacked entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// As recorded in the stream (`cp -a`).
    Keep,
    /// Everything owned by this uid:gid.
    Set(u32, u32),
}

/// Normalised relative components of an entry path; `..` is refused.
fn components(raw: &[u8]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(String::from_utf8_lossy(c).into_owned()),
        }
    }
    Some(out)
}

/// Unpacks a tar stream into directory `dest` (inside `root`, created if missing).
pub fn extract<R: Read>(root: &Path, dest: &str, input: R, owner: Owner) -> Result<()> {
    let r = open_root(root)?;
    let dest = dest.trim_end_matches('/');
    mkdir_all_in_root(&r, dest, false).map_err(io("create", dest))?;
    let mut ar = tar::Archive::new(input);
    let entries = ar
        .entries()
        .map_err(|e| Error::io("read archive", dest)(e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::io("read archive", dest)(e))?;
        let raw = entry.path_bytes().into_owned();
        let Some(comps) = components(&raw) else {
            return Err(io("refusing", &String::from_utf8_lossy(&raw))(Errno::PERM));
        };
        let Some((name, parents)) = comps.split_last() else {
            continue;
        };
        let parent = format!("{dest}/{}", parents.join("/"));
        let full = format!("{parent}/{name}");
        mkdir_all_in_root(&r, &parent, false).map_err(io("create", &parent))?;
        let dir = open_in_root(&r, &parent, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(io("open", &parent))?;
        let h = entry.header().clone();
        let mode = Mode::from_raw_mode(h.mode().unwrap_or(0o644) & 0o7777);
        let existing = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let is_dir =
            |st: &rustix::fs::Stat| FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        let kind = h.entry_type();
        if kind == EntryType::Directory {
            match &existing {
                Some(st) if is_dir(st) => {}
                Some(_) => {
                    return Err(io("cannot overwrite non-directory with directory", &full)(
                        Errno::EXIST,
                    ));
                }
                None => {
                    rustix::fs::mkdirat(&dir, name.as_str(), mode).map_err(io("mkdir", &full))?
                }
            }
        } else {
            if let Some(st) = &existing {
                if is_dir(st) {
                    return Err(io("cannot overwrite directory with non-directory", &full)(
                        Errno::ISDIR,
                    ));
                }
                rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty())
                    .map_err(io("replace", &full))?;
            }
            match kind {
                EntryType::Symlink => {
                    let target = h.link_name_bytes().unwrap_or_default().into_owned();
                    rustix::fs::symlinkat(target.as_slice(), &dir, name.as_str())
                        .map_err(io("symlink", &full))?;
                }
                EntryType::Link => {
                    let target = h.link_name_bytes().unwrap_or_default().into_owned();
                    let Some(tc) = components(&target) else {
                        return Err(io("refusing link", &full)(Errno::PERM));
                    };
                    let src = format!("{dest}/{}", tc.join("/"));
                    let sfd = open_in_root(&r, &src, OFlags::PATH | OFlags::NOFOLLOW)
                        .map_err(io("link source", &src))?;
                    rustix::fs::linkat(&sfd, "", &dir, name.as_str(), AtFlags::EMPTY_PATH)
                        .map_err(io("link", &full))?;
                    continue;
                }
                EntryType::Char | EntryType::Block | EntryType::Fifo => {
                    let ft = match kind {
                        EntryType::Char => FileType::CharacterDevice,
                        EntryType::Block => FileType::BlockDevice,
                        _ => FileType::Fifo,
                    };
                    let dev = rustix::fs::makedev(
                        h.device_major().ok().flatten().unwrap_or(0),
                        h.device_minor().ok().flatten().unwrap_or(0),
                    );
                    rustix::fs::mknodat(&dir, name.as_str(), ft, mode, dev)
                        .map_err(io("mknod", &full))?;
                }
                _ => {
                    let fd = rustix::fs::openat(
                        &dir,
                        name.as_str(),
                        OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::WRONLY
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        mode,
                    )
                    .map_err(io("create", &full))?;
                    let mut f = std::fs::File::from(fd);
                    std::io::copy(&mut entry, &mut f).map_err(|e| Error::io("write", &full)(e))?;
                }
            }
        }
        let (uid, gid) = match owner {
            Owner::Keep => (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32),
            Owner::Set(u, g) => (u, g),
        };
        let _ = rustix::fs::chownat(
            &dir,
            name.as_str(),
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        if kind != EntryType::Symlink {
            chmod_nofollow(&dir, name.as_str(), mode).map_err(io("chmod", &full))?;
        }
        let t = rustix::fs::Timespec {
            tv_sec: h.mtime().unwrap_or(0) as i64,
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        let _ = rustix::fs::utimensat(&dir, name.as_str(), &times, AtFlags::SYMLINK_NOFOLLOW);
        let _ = dir.as_fd();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_stays_beneath_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/f"), "inside").unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        let mut tar = Vec::new();
        archive(&root, "/up/../../etc/f", "g", false, &mut tar).unwrap();
        extract(&root, "/up/../../new", &tar[..], Owner::Keep).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("new/g")).unwrap(),
            "inside"
        );
        assert_eq!(kind(&root, "/new", false).unwrap(), Some(Kind::Dir));
        assert_eq!(kind(&root, "/up", false).unwrap(), Some(Kind::Other));
        assert_eq!(kind(&root, "/nothing", false).unwrap(), None);
        let mut bad = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(EntryType::Regular);
        h.as_gnu_mut().unwrap().name[..8].copy_from_slice(b"../x\0\0\0\0");
        h.set_cksum();
        bad.append(&h, std::io::empty()).unwrap();
        let bad = bad.into_inner().unwrap();
        assert!(extract(&root, "/new", &bad[..], Owner::Keep).is_err());
    }

    #[test]
    fn chmod_and_walk_never_follow_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("secret");
        std::fs::write(&outside, "host").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("d/link")).unwrap();
        std::os::unix::fs::symlink("/", root.join("d/up")).unwrap();
        let dir = rustix::fs::open(
            root.join("d"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        chmod_nofollow(&dir, "link", Mode::from_raw_mode(0o777)).unwrap();
        let mode = std::fs::metadata(&outside).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a symlink's target was chmodded");
        let mut tar = Vec::new();
        archive(&root, "/d", "d", false, &mut tar).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            seen.push((
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
            ));
        }
        assert_eq!(
            seen,
            vec![
                ("d".to_string(), EntryType::Directory),
                ("d/link".to_string(), EntryType::Symlink),
                ("d/up".to_string(), EntryType::Symlink),
            ]
        );
    }
}
