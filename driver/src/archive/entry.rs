//! Per-entry helpers of the layer import: header/PAX metadata parsing, path normalisation,
//! and the fd-relative filesystem calls that never follow a symlink (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, `O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::error::EntryError;

/// The metadata of one entry, PAX overrides applied.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: Timespec,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(super) type EResult<T> = std::result::Result<T, EntryError>;

pub(super) fn eio(op: &'static str) -> impl FnOnce(Errno) -> EntryError {
    move |e| EntryError::Io {
        op,
        source: e.into(),
    }
}

pub(super) fn header_err(field: &'static str) -> impl FnOnce(io::Error) -> EntryError {
    move |source| EntryError::Header { field, source }
}

pub(super) fn parse_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> EResult<Meta> {
    let h = entry.header();
    let id = |v: u64, field| {
        u32::try_from(v).map_err(|_| EntryError::Header {
            field,
            source: io::Error::new(io::ErrorKind::InvalidData, "id out of range"),
        })
    };
    let old = h.as_old();
    let mut meta = Meta {
        mode: u32::try_from(lenient(h.mode().map(u64::from), &old.mode, "mode")? & 0o7777)
            .unwrap_or(0),
        uid: id(lenient(h.uid(), &old.uid, "uid")?, "uid")?,
        gid: id(lenient(h.gid(), &old.gid, "gid")?, "gid")?,
        mtime: Timespec {
            tv_sec: i64::try_from(lenient(h.mtime(), &old.mtime, "mtime")?).unwrap_or(i64::MAX),
            tv_nsec: 0,
        },
        xattrs: Vec::new(),
    };
    let Some(pax) = entry.pax_extensions().map_err(header_err("pax"))? else {
        return Ok(meta);
    };
    for ext in pax {
        let ext = ext.map_err(header_err("pax"))?;
        let key = ext.key_bytes();
        let value = ext.value_bytes();
        let num = |field| {
            std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| EntryError::Header {
                    field,
                    source: io::Error::new(io::ErrorKind::InvalidData, "not a number"),
                })
        };
        match key {
            b"uid" => meta.uid = id(num("pax uid")?, "pax uid")?,
            b"gid" => meta.gid = id(num("pax gid")?, "pax gid")?,
            b"mtime" => {
                meta.mtime = parse_pax_time(value).ok_or_else(|| EntryError::Header {
                    field: "pax mtime",
                    source: io::Error::new(io::ErrorKind::InvalidData, "not a time"),
                })?
            }
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    let stored = cairn_fs::whiteout::escape_xattr(name);
                    meta.xattrs.push((stored, value.to_vec()));
                }
            }
        }
    }
    Ok(meta)
}

/// A numeric header field; an empty one (all NUL or spaces) reads as 0, as in Go's archive/tar.
fn lenient(v: io::Result<u64>, raw: &[u8], field: &'static str) -> EResult<u64> {
    match v {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        Err(source) => Err(EntryError::Header { field, source }),
    }
}

/// Parses a PAX time, `<seconds>[.<fraction>]` (possibly negative).
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = sec.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    let mut tv_nsec: i64 = digits.parse().ok()?;
    if s.starts_with('-') && tv_nsec > 0 {
        // -1.5 means 1.5 s before the epoch.
        return Some(Timespec {
            tv_sec: tv_sec - 1,
            tv_nsec: 1_000_000_000 - tv_nsec,
        });
    }
    tv_nsec = tv_nsec.clamp(0, 999_999_999);
    Some(Timespec { tv_sec, tv_nsec })
}

/// Splits an entry path into safe components: leading `/` and `.` dropped, `..` refused,
/// each component at most 255 bytes.
pub fn normalize(path: &[u8]) -> EResult<Vec<&[u8]>> {
    let mut out = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(EntryError::DotDot),
            c if c.len() > 255 => return Err(EntryError::NameTooLong { len: c.len() }),
            c => out.push(c),
        }
    }
    Ok(out)
}

pub(super) fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

pub(super) fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

pub(super) fn resolve_errno(e: Errno) -> EntryError {
    match e {
        Errno::LOOP | Errno::XDEV => EntryError::ThroughSymlink,
        Errno::NOTDIR => EntryError::ParentNotDir,
        e => EntryError::Io {
            op: "open parent directory",
            source: e.into(),
        },
    }
}

/// Opens `path` (relative, no symlinks anywhere, never above `root`) as a directory.
pub(super) fn open_beneath(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlags,
) -> std::result::Result<OwnedFd, Errno> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    // No O_NOFOLLOW here: with it a final symlink gives ENOTDIR; RESOLVE_NO_SYMLINKS already
    // refuses symlinks in every component, the last included, with ELOOP.
    let flags = flags | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rustix::fs::openat2(root, os(path), flags, Mode::empty(), BENEATH) {
        Err(Errno::NOSYS) => {
            let flags = flags | OFlags::NOFOLLOW;
            // Kernels before 5.6: one component at a time, each with O_NOFOLLOW.
            let mut cur = rustix::fs::openat(root, ".", flags, Mode::empty())?;
            for c in path
                .split(|b| *b == b'/')
                .filter(|c| !c.is_empty() && *c != b".")
            {
                if c == b".." {
                    return Err(Errno::XDEV);
                }
                cur = match rustix::fs::openat(&cur, os(c), flags, Mode::empty()) {
                    Err(Errno::NOTDIR) if is_symlink(cur.as_fd(), c) => return Err(Errno::LOOP),
                    r => r?,
                };
            }
            Ok(cur)
        }
        r => r,
    }
}

fn is_symlink(dir: BorrowedFd<'_>, name: &[u8]) -> bool {
    rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
        .unwrap_or(false)
}

pub(super) fn times(mtime: Timespec) -> Timestamps {
    Timestamps {
        last_access: mtime,
        last_modification: mtime,
    }
}

/// Copies an entry's data into the file, telling stream errors from write errors.
pub(super) fn copy_data(src: &mut impl Read, dst: &mut File) -> EResult<()> {
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(EntryError::Io {
                    op: "read entry data from layer stream",
                    source,
                });
            }
        };
        dst.write_all(&buf[..n]).map_err(|source| EntryError::Io {
            op: "write file",
            source,
        })?;
    }
}

/// Removes `name` in `dir` and everything below it, following no symlinks.
pub(super) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> std::result::Result<(), Errno> {
    let fd = rustix::fs::openat(
        dir,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(&fd)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push((n.to_vec(), e.file_type() == FileType::Directory));
        }
    }
    for (n, is_dir) in names {
        if is_dir {
            remove_all_at(fd.as_fd(), &n)?;
        } else {
            match rustix::fs::unlinkat(&fd, os(&n), AtFlags::empty()) {
                Err(Errno::ISDIR) => remove_all_at(fd.as_fd(), &n)?,
                r => r?,
            }
        }
    }
    rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        assert_eq!(
            normalize(b"/etc//passwd").unwrap(),
            vec![&b"etc"[..], b"passwd"]
        );
        assert_eq!(normalize(b"./a/./b/").unwrap(), vec![&b"a"[..], b"b"]);
        assert!(normalize(b"./").unwrap().is_empty());
        assert!(matches!(normalize(b"a/../b"), Err(EntryError::DotDot)));
        assert!(matches!(normalize(b"../x"), Err(EntryError::DotDot)));
        let long = vec![b'x'; 256];
        assert!(matches!(
            normalize(&long),
            Err(EntryError::NameTooLong { len: 256 })
        ));
        assert_eq!(normalize(&long[..255]).unwrap().len(), 1);
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        let t = parse_pax_time(b"42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        assert!(parse_pax_time(b"x").is_none());
        assert!(parse_pax_time(b"1.x").is_none());
    }
}
