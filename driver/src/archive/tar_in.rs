//! Import of a layer tar stream into an overlay-format directory, in one pass: the compression
//! is detected by magic, the stream as received is hashed (blob digest), the decompressed
//! stream is hashed (diff_id) while the `tar` crate parses it and each entry is created.
//!
//! Hostile input never escapes the target directory:
//! - `..` components are refused, a leading `/` is stripped, components over 255 bytes refused;
//! - parents are opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` and every final
//!   component is created with `O_EXCL`/`O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW` (or through an
//!   `O_PATH` fd of it), so nothing is written through a symlink;
//! - hardlink targets must be earlier non-directory entries of this layer;
//! - free space of the target filesystem is checked before each file ("layer bomb").
//!
//! The stream may end with the end-of-archive blocks or right after its last entry (umoci,
//! Go's archive/tar without Close); one cut inside a header or an entry is truncated. PAX
//! sparse files are written with their holes ([`pax_sparse`]).
//!
//! OCI whiteouts become kernel overlay whiteouts: `.wh.<name>` → char device 0:0 `<name>`,
//! `.wh..wh..opq` → `trusted.overlay.opaque="y"` on the directory (OCI-form files are kept
//! instead when that is not permitted, unprivileged). A user's own `trusted.overlay.*` xattrs
//! are stored escaped (`trusted.overlay.overlay.*`), as the kernel does, so a layer cannot
//! forge overlay markers.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec};
use rustix::io::Errno;
use tar::EntryType;

use super::entry::{
    EResult, Meta, copy_data, eio, header_err, join, normalize, open_beneath, os, parse_meta,
    remove_all_at, resolve_errno, times,
};
use super::limits::{Counting, ExpandGuard};
use super::{Compression, WhiteoutForm, pax_sparse};
use crate::digest::{Digest, HashingReader};
use crate::error::{EntryError, Error, Result};

pub use super::limits::ImportLimits;

/// What one import pass saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extracted {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// sha256 of the stream as received (equal to `diff_id` when uncompressed).
    pub blob: Digest,
    /// Size of the stream as received.
    pub blob_size: u64,
    /// Compression found by magic.
    pub compression: Compression,
    /// Regular-file bytes written.
    pub size: u64,
    /// How whiteouts were written.
    pub whiteouts: WhiteoutForm,
}

/// Reads a layer stream through decompression and hashing, handing the decompressed stream to
/// `f`, then drains both levels so the digests cover the whole stream.
fn with_stream<R: Read, T>(
    reader: R,
    limits: Option<&ImportLimits>,
    f: impl FnOnce(&mut dyn Read, Compression) -> Result<T>,
) -> Result<(T, Extracted)> {
    let raw_count = Cell::new(0u64);
    let mut raw = HashingReader::new(Counting {
        inner: reader,
        count: &raw_count,
    });
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match raw.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Stream {
                    compression: Compression::None,
                    source,
                });
            }
        }
    }
    let compression = Compression::detect(&magic[..n]);
    let stream_err = |source| Error::Stream {
        compression,
        source,
    };
    let input = io::Cursor::new(&magic[..n]).chain(&mut raw);
    let decoder: Box<dyn Read> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::Decoder::new(input).map_err(stream_err)?),
    };
    let tripped = Cell::new(false);
    let mut plain = HashingReader::new(ExpandGuard {
        inner: decoder,
        raw: &raw_count,
        plain: 0,
        max: limits.and_then(|l| l.max_expand),
        floor: limits.map_or(0, |l| l.expand_floor),
        tripped: &tripped,
    });
    let value = f(&mut plain, compression);
    if tripped.get() {
        return Err(Error::TooExpanded {
            limit: limits.and_then(|l| l.max_expand).unwrap_or(0),
            uncompressed: plain.byte_count(),
            compressed: raw_count.get(),
        });
    }
    let value = value?;
    let (diff_id, _) = plain.drain().map_err(stream_err)?;
    drop(plain);
    let (blob, blob_size) = raw.drain().map_err(stream_err)?;
    Ok((
        value,
        Extracted {
            diff_id,
            blob,
            blob_size,
            compression,
            size: 0,
            whiteouts: WhiteoutForm::Overlay,
        },
    ))
}

/// Hashes a layer stream without extracting it (for a layer already in the store).
pub fn digest_stream<R: Read>(reader: R) -> Result<Extracted> {
    Ok(with_stream(reader, None, |_, _| Ok(()))?.1)
}

/// Extracts a layer stream into the directory `root` (an fd of an empty directory).
pub fn extract<R: Read>(
    reader: R,
    root: BorrowedFd<'_>,
    limits: &ImportLimits,
) -> Result<Extracted> {
    let ((size, whiteouts), mut ex) = with_stream(reader, Some(limits), |plain, compression| {
        let mut x = Extractor::new(root, *limits)?;
        let seen = Cell::new(Seen::default());
        let stream_err = |source| Error::Stream {
            compression,
            source: truncation(source, seen.get()),
        };
        {
            // The stream may end with the two zero blocks, or (umoci, Go's archive/tar
            // without Close) right after the last entry's data, without even its padding:
            // the missing padding is supplied as zeros, then the tar crate stops at a clean
            // end of input at a header boundary and fails on one inside a header or entry.
            let padded = PadToBlock {
                inner: plain,
                seen: &seen,
            };
            let mut archive = tar::Archive::new(padded);
            for entry in archive.entries().map_err(stream_err)? {
                let mut entry = entry.map_err(stream_err)?;
                let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                x.entry(&mut entry).map_err(|problem| Error::Entry {
                    entry: name,
                    problem,
                })?;
                // Padding zeros stand in for missing block padding, never for data.
                let stored = match entry.header().entry_type() {
                    EntryType::GNUSparse => entry.header().entry_size().unwrap_or(u64::MAX),
                    _ => entry.size(),
                };
                let end = entry.raw_file_position().saturating_add(stored);
                if seen.get().padded && seen.get().total < end {
                    return Err(stream_err(io::Error::from(io::ErrorKind::UnexpectedEof)));
                }
            }
        }
        if seen.get().total == 0 {
            return Err(stream_err(io::Error::new(
                io::ErrorKind::InvalidData,
                "empty layer stream (not even an end-of-archive block)",
            )));
        }
        x.finish()?;
        Ok((x.size, x.whiteouts))
    })?;
    ex.size = size;
    ex.whiteouts = whiteouts;
    Ok(ex)
}

/// What [`PadToBlock`] saw of its input.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// Bytes of real input (the zeros supplied not counted).
    total: u64,
    /// The input ended inside a 512-byte block, completed with zeros …
    padded: bool,
    /// … this many.
    supplied: u64,
}

/// Passes the input through; when it ends inside a 512-byte block, supplies zeros up to the
/// block's end (the padding a writer never wrote after its last entry).
struct PadToBlock<'a, R> {
    inner: R,
    seen: &'a Cell<Seen>,
}

impl<R: Read> Read for PadToBlock<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut seen = self.seen.get();
        let n = match seen.padded {
            true => 0,
            false => self.inner.read(buf)?,
        };
        // (Once padded, the inner reader is at its end for good.)
        if n > 0 || buf.is_empty() {
            seen.total += n as u64;
            self.seen.set(seen);
            return Ok(n);
        }
        // End of input: zeros to the end of the block, once.
        let missing = match seen.total % 512 {
            0 => 0,
            r => 512 - r,
        };
        let rest = (missing - seen.supplied).min(buf.len() as u64) as usize;
        buf[..rest].fill(0);
        seen.supplied += rest as u64;
        seen.padded |= rest > 0;
        self.seen.set(seen);
        Ok(rest)
    }
}

/// The tar crate's errors for input ending inside a header or an entry's data (or anything
/// failing once the input ended inside a block), as one "truncated" error; others unchanged.
fn truncation(e: io::Error, seen: Seen) -> io::Error {
    let msg = e.to_string();
    let cut = seen.padded
        || e.kind() == io::ErrorKind::UnexpectedEof
        || msg.contains("unexpected EOF")
        || msg.contains("failed to read entire block");
    match cut {
        true => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("tar stream truncated inside an entry ({msg})"),
        ),
        false => e,
    }
}

struct Extractor<'a> {
    root: BorrowedFd<'a>,
    limits: ImportLimits,
    privileged: bool,
    /// Directory metadata applied at the end (after their children), by path.
    dirs: HashMap<Vec<u8>, (u32, Timespec)>,
    /// Non-directory paths created so far (valid hardlink targets).
    extracted: HashSet<Vec<u8>>,
    /// The last parent opened, reused while entries stay in one directory.
    cache: Option<(Vec<u8>, OwnedFd)>,
    size: u64,
    whiteouts: WhiteoutForm,
}

impl<'a> Extractor<'a> {
    fn new(root: BorrowedFd<'a>, limits: ImportLimits) -> Result<Self> {
        Ok(Extractor {
            root,
            limits,
            privileged: rustix::process::geteuid().is_root(),
            dirs: HashMap::new(),
            extracted: HashSet::new(),
            cache: None,
            size: 0,
            whiteouts: WhiteoutForm::Overlay,
        })
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> EResult<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let sparse = match kind {
            EntryType::Regular => pax_sparse::detect(entry)?,
            _ => None,
        };
        let path = match &sparse {
            Some(s) => s.name.clone(),
            None => entry.path_bytes().into_owned(),
        };
        let comps = normalize(&path)?;
        let meta = parse_meta(entry)?;
        let Some((name, parent)) = comps.split_last() else {
            if kind.is_dir() {
                // The layer root itself: owner and xattrs now, mode and mtime at the end.
                let fd = open_beneath(self.root, b"", OFlags::RDONLY).map_err(resolve_errno)?;
                self.own_fd(fd.as_fd(), &meta)?;
                self.dirs.insert(Vec::new(), (meta.mode, meta.mtime));
                return Ok(());
            }
            return Err(EntryError::EmptyPath);
        };
        let full = join(&comps);
        let parent_path = join(parent);
        if let Some(target) = name.strip_prefix(b".wh.") {
            return self.whiteout(&parent_path, name, target, &meta);
        }
        let dir = self.parent(&parent_path)?;
        let dir = dir.as_fd();
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = entry.size();
                self.reserve(size)?;
                self.clear_slot(dir, name, false)?;
                let fd = rustix::fs::openat(
                    dir,
                    os(name),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(eio("create file"))?;
                let mut file = File::from(fd);
                match &sparse {
                    Some(s) => pax_sparse::write(s, entry, &file)?,
                    None => copy_data(entry, &mut file)?,
                }
                self.own_fd(file.as_fd(), &meta)?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode)).map_err(eio("chmod"))?;
                let t = times(meta.mtime);
                rustix::fs::futimens(&file, &t).map_err(eio("set times"))?;
                self.extracted.insert(full);
            }
            EntryType::Directory => {
                if !self.clear_slot(dir, name, true)? {
                    rustix::fs::mkdirat(dir, os(name), Mode::from_raw_mode(0o700))
                        .map_err(eio("mkdir"))?;
                }
                let fd = rustix::fs::openat(
                    dir,
                    os(name),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(eio("open directory"))?;
                self.own_fd(fd.as_fd(), &meta)?;
                self.dirs.insert(full, (meta.mode, meta.mtime));
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or(EntryError::MissingLinkName)?
                    .into_owned();
                self.clear_slot(dir, name, false)?;
                rustix::fs::symlinkat(os(&target), dir, os(name)).map_err(eio("symlink"))?;
                self.own_at(dir, name, &meta)?;
                self.extracted.insert(full);
            }
            EntryType::Link => {
                let raw = entry
                    .link_name_bytes()
                    .ok_or(EntryError::MissingLinkName)?
                    .into_owned();
                let lossy = || String::from_utf8_lossy(&raw).into_owned();
                let tcomps =
                    normalize(&raw).map_err(|_| EntryError::LinkOutside { target: lossy() })?;
                let tfull = join(&tcomps);
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(EntryError::LinkOutside { target: lossy() });
                };
                if !self.extracted.contains(&tfull) || tfull == full {
                    return Err(EntryError::LinkTargetMissing { target: lossy() });
                }
                let tdir =
                    open_beneath(self.root, &join(tparent), OFlags::PATH).map_err(resolve_errno)?;
                self.clear_slot(dir, name, false)?;
                rustix::fs::linkat(&tdir, os(tname), dir, os(name), AtFlags::empty()).map_err(
                    |e| {
                        if e == Errno::NOENT {
                            EntryError::LinkTargetMissing { target: lossy() }
                        } else {
                            eio("link")(e)
                        }
                    },
                )?;
                self.extracted.insert(full);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                let (ft, dev) = match kind {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = h
                            .device_major()
                            .map_err(header_err("devmajor"))?
                            .unwrap_or(0);
                        let minor = h
                            .device_minor()
                            .map_err(header_err("devminor"))?
                            .unwrap_or(0);
                        let ft = if kind == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                self.clear_slot(dir, name, false)?;
                rustix::fs::mknodat(dir, os(name), ft, Mode::from_raw_mode(meta.mode), dev)
                    .map_err(eio("mknod"))?;
                self.finish_node(dir, name, &meta)?;
                self.extracted.insert(full);
            }
            other => return Err(EntryError::UnsupportedType(other.as_byte())),
        }
        Ok(())
    }

    /// `.wh.<target>` in `parent`: a whiteout, or the opaque marker.
    fn whiteout(&mut self, parent: &[u8], name: &[u8], target: &[u8], meta: &Meta) -> EResult<()> {
        let dir = self.parent(parent)?;
        let dir = dir.as_fd();
        if name == cairn_fs::whiteout::OCI_OPAQUE {
            let path = cairn_fs::layer::proc_dir(dir);
            let set = rustix::fs::lsetxattr(
                &path,
                cairn_fs::whiteout::OPAQUE_XATTR,
                b"y",
                rustix::fs::XattrFlags::empty(),
            );
            return match set {
                Ok(()) => Ok(()),
                Err(Errno::PERM) if !self.privileged => self.oci_marker(dir, name, meta),
                Err(e) => Err(eio("set opaque xattr")(e)),
            };
        }
        if target.starts_with(b".wh.") {
            // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content, skipped like docker does.
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(EntryError::BadWhiteout);
        }
        self.clear_slot(dir, target, false)?;
        match rustix::fs::mknodat(
            dir,
            os(target),
            FileType::CharacterDevice,
            Mode::from_raw_mode(meta.mode),
            0,
        ) {
            Ok(()) => self.finish_node(dir, target, meta),
            Err(Errno::PERM) if !self.privileged => self.oci_marker(dir, name, meta),
            Err(e) => Err(eio("mknod whiteout")(e)),
        }
    }

    /// Keeps an OCI-form marker as an empty file (unprivileged fallback).
    fn oci_marker(&mut self, dir: BorrowedFd<'_>, name: &[u8], meta: &Meta) -> EResult<()> {
        self.whiteouts = WhiteoutForm::Oci;
        self.clear_slot(dir, name, false)?;
        let fd = rustix::fs::openat(
            dir,
            os(name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(meta.mode),
        )
        .map_err(eio("create whiteout file"))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode)).map_err(eio("chmod"))?;
        rustix::fs::futimens(&fd, &times(meta.mtime)).map_err(eio("set times"))
    }

    /// Mode, owner, xattrs and times of a just-made device node, fifo or whiteout, through an
    /// `O_PATH|O_NOFOLLOW` fd of it (never through a symlink).
    fn finish_node(&mut self, dir: BorrowedFd<'_>, name: &[u8], meta: &Meta) -> EResult<()> {
        let fd = rustix::fs::openat(
            dir,
            os(name),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(eio("open node"))?;
        self.own_at(dir, name, meta)?;
        // chmod through the fd's /proc magic link: the inode itself, whatever its name.
        let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
        rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(meta.mode)).map_err(eio("chmod"))
    }

    /// Owner, xattrs and times by name (for symlinks and nodes), never following the name.
    fn own_at(&mut self, dir: BorrowedFd<'_>, name: &[u8], meta: &Meta) -> EResult<()> {
        let r = rustix::fs::chownat(
            dir,
            os(name),
            Some(rustix::fs::Uid::from_raw(meta.uid)),
            Some(rustix::fs::Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        self.tolerate(r, "chown")?;
        let path = cairn_fs::layer::proc_path(dir, os(name));
        for (k, v) in &meta.xattrs {
            let r = rustix::fs::lsetxattr(&path, &k[..], v, rustix::fs::XattrFlags::empty());
            self.tolerate(r, "setxattr")?;
        }
        rustix::fs::utimensat(dir, os(name), &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(eio("set times"))
    }

    /// Owner and xattrs through an open fd (files and directories).
    fn own_fd(&mut self, fd: BorrowedFd<'_>, meta: &Meta) -> EResult<()> {
        let r = rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(meta.uid)),
            Some(rustix::fs::Gid::from_raw(meta.gid)),
        );
        self.tolerate(r, "chown")?;
        for (k, v) in &meta.xattrs {
            let r = rustix::fs::fsetxattr(fd, &k[..], v, rustix::fs::XattrFlags::empty());
            self.tolerate(r, "setxattr")?;
        }
        Ok(())
    }

    /// Unprivileged, ownership and privileged xattrs cannot be kept: EPERM is not an error then.
    fn tolerate(&self, r: std::result::Result<(), Errno>, op: &'static str) -> EResult<()> {
        match r {
            Err(Errno::PERM) if !self.privileged => Ok(()),
            r => r.map_err(eio(op)),
        }
    }

    /// Makes room for a new entry `name` in `dir`: an existing directory is kept when the new
    /// entry is a directory (returns true), anything else is removed (never followed).
    fn clear_slot(&mut self, dir: BorrowedFd<'_>, name: &[u8], new_is_dir: bool) -> EResult<bool> {
        let st = match rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(eio("stat existing")(e)),
        };
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if is_dir && new_is_dir {
            return Ok(true);
        }
        self.cache = None;
        if is_dir {
            remove_all_at(dir, name).map_err(eio("remove existing directory"))?;
        } else {
            rustix::fs::unlinkat(dir, os(name), AtFlags::empty())
                .map_err(eio("remove existing"))?;
        }
        Ok(false)
    }

    /// The parent directory of an entry, created (0755) where missing, never via a symlink.
    fn parent(&mut self, path: &[u8]) -> EResult<OwnedFd> {
        if let Some((p, fd)) = &self.cache
            && p == path
        {
            return rustix::io::dup(fd).map_err(eio("dup"));
        }
        let fd = match open_beneath(self.root, path, OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let mut cur = open_beneath(self.root, b"", OFlags::PATH).map_err(resolve_errno)?;
                for c in path.split(|b| *b == b'/') {
                    cur = match open_beneath(cur.as_fd(), c, OFlags::PATH) {
                        Err(Errno::NOENT) => {
                            match rustix::fs::mkdirat(&cur, os(c), Mode::from_raw_mode(0o755)) {
                                Ok(()) | Err(Errno::EXIST) => {}
                                Err(e) => return Err(eio("mkdir parent")(e)),
                            }
                            open_beneath(cur.as_fd(), c, OFlags::PATH).map_err(resolve_errno)?
                        }
                        r => r.map_err(resolve_errno)?,
                    };
                }
                cur
            }
            Err(e) => return Err(resolve_errno(e)),
        };
        let dup = rustix::io::dup(&fd).map_err(eio("dup"))?;
        self.cache = Some((path.to_vec(), fd));
        Ok(dup)
    }

    /// Counts `size` bytes against the limits and the free space of the target filesystem.
    fn reserve(&mut self, size: u64) -> EResult<()> {
        self.size = self.size.saturating_add(size);
        if let Some(limit) = self.limits.max_layer_bytes
            && self.size > limit
        {
            return Err(EntryError::TooLarge { limit });
        }
        if size == 0 {
            return Ok(());
        }
        let st = rustix::fs::fstatvfs(self.root).map_err(eio("statvfs"))?;
        let available = st
            .f_bavail
            .saturating_mul(st.f_frsize)
            .saturating_sub(self.limits.min_free_bytes);
        if size > available {
            return Err(EntryError::NoSpace {
                needed: size,
                available,
            });
        }
        Ok(())
    }

    /// Directory modes and times, deepest first, after all children exist.
    fn finish(&mut self) -> Result<()> {
        let mut dirs: Vec<_> = self.dirs.drain().collect();
        dirs.sort_by_key(|(p, _)| {
            std::cmp::Reverse(p.iter().filter(|b| **b == b'/').count() + usize::from(!p.is_empty()))
        });
        for (path, (mode, mtime)) in dirs {
            let entry = || String::from_utf8_lossy(&path).into_owned();
            let fd = match open_beneath(self.root, &path, OFlags::RDONLY) {
                Ok(fd) => fd,
                // Replaced by a later entry or removed by a whiteout: nothing to apply.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => {
                    return Err(Error::Entry {
                        entry: entry(),
                        problem: eio("open directory")(e),
                    });
                }
            };
            let apply = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(eio("chmod"))
                .and_then(|()| rustix::fs::futimens(&fd, &times(mtime)).map_err(eio("set times")));
            apply.map_err(|problem| Error::Entry {
                entry: entry(),
                problem,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_ending_inside_a_block_is_completed_once() {
        let seen = Cell::new(Seen::default());
        let mut r = PadToBlock {
            inner: &[7u8; 600][..],
            seen: &seen,
        };
        let mut out = Vec::new();
        // Small reads, so the padding comes in pieces.
        let mut buf = [0u8; 100];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out.len(), 1024);
        assert!(out[600..].iter().all(|b| *b == 0));
        let s = seen.get();
        assert_eq!((s.total, s.padded, s.supplied), (600, true, 424));
        // Input ending on a block boundary gets nothing.
        let seen = Cell::new(Seen::default());
        let mut r = PadToBlock {
            inner: &[7u8; 512][..],
            seen: &seen,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 512);
        assert!(!seen.get().padded);
    }
}
