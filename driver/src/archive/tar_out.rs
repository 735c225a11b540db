//! Export of an overlay-format directory (an extracted layer or a container upper) as an OCI
//! layer tar: char 0:0 whiteouts become `.wh.<name>`, an opaque directory gets a
//! `.wh..wh..opq` entry first among its children, OCI-form marker files pass through as they
//! are. A renamed directory (`trusted.overlay.redirect`) or a metacopy file cannot be expressed
//! and is an error.
//!
//! The output is deterministic: entries sorted by name, USTAR headers with PAX records only
//! where needed (long names, xattrs), numeric uid/gid with empty user/group names, mtime in
//! whole seconds, hardlinks within the tree as link entries, gzip with mtime 0 and no file name.
//! Whiteout entries are written as docker writes them: `.wh.<name>` mode 0600, `.wh..wh..opq`
//! with its directory's permission bits.
//! The same tree always gives the same bytes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use tar::{EntryType, Header};

use super::Compression;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result, errno_err};
use cairn_fs::whiteout::{OCI_OPAQUE, OCI_PREFIX, OPAQUE_XATTR, REDIRECT_XATTR};

/// The overlay metacopy marker (data lives in a lower layer).
const METACOPY_XATTR: &[u8] = b"trusted.overlay.metacopy";
/// Host-specific labels, never part of a layer.
const SELINUX_XATTR: &[u8] = b"security.selinux";

/// Exportable xattrs, (name, value), sorted by name.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportInfo {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// sha256 of the bytes written (equal to `diff_id` when uncompressed).
    pub digest: Digest,
    /// Bytes written.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub diff_size: u64,
    /// Compression used.
    pub compression: Compression,
}

/// A compressing writer over the output.
enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(w: W, c: Compression) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Encoder::None(w),
            Compression::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(w, flate2::Compression::default()),
            ),
            Compression::Zstd => {
                let mut e = zstd::Encoder::new(w, 3)?;
                e.include_checksum(true)?;
                Encoder::Zstd(e)
            }
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// Writes the tree at `dir` as an OCI layer tar to `out`.
pub fn export_dir<W: Write>(dir: &Path, out: W, compression: Compression) -> Result<ExportInfo> {
    export_upper(dir, out, compression, &UpperExport::default())
}

/// Decides which relative paths (no leading `/`) an export leaves out.
pub type SkipFn<'a> = &'a dyn Fn(&[u8]) -> bool;

/// How a container's upper is exported ([`export_upper`]).
#[derive(Default)]
pub struct UpperExport<'a> {
    /// Leaves out every entry (and what is below it) whose relative path (no leading `/`) it
    /// accepts.
    pub skip: Option<SkipFn<'a>>,
    /// The merged view of the upper over its lowers (a mount). A renamed directory
    /// (`trusted.overlay.redirect`) is then written as an opaque directory with its whole
    /// merged contents, which OCI layers can express.
    pub merged: Option<&'a Path>,
    /// SOURCE_DATE_EPOCH: no entry's mtime is later (reproducible layers).
    pub clamp_mtime: Option<u64>,
}

/// [`export_dir`] of a container's upper, with the options of [`UpperExport`].
pub fn export_upper<W: Write>(
    dir: &Path,
    out: W,
    compression: Compression,
    opts: &UpperExport<'_>,
) -> Result<ExportInfo> {
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_err("open directory to export", dir))?;
    let wr_err = |source| Error::Export {
        path: dir.to_path_buf(),
        source,
    };
    let outer = HashingWriter::new(out);
    let enc = Encoder::new(outer, compression).map_err(wr_err)?;
    let inner = HashingWriter::new(enc);
    let mut w = Walker {
        top: dir,
        builder: tar::Builder::new(inner),
        links: HashMap::new(),
        skip: opts.skip.unwrap_or(&|_| false),
        merged: opts.merged,
        clamp_mtime: opts.clamp_mtime.unwrap_or(u64::MAX),
    };
    w.walk(root.as_fd(), b"")?;
    let inner = w.builder.into_inner().map_err(wr_err)?;
    let (diff_id, diff_size) = (inner.digest(), inner.byte_count());
    let mut outer = inner.into_inner().finish().map_err(wr_err)?;
    outer.flush().map_err(wr_err)?;
    Ok(ExportInfo {
        diff_id,
        digest: outer.digest(),
        size: outer.byte_count(),
        diff_size,
        compression,
    })
}

struct Walker<'a, W: Write> {
    top: &'a Path,
    builder: tar::Builder<W>,
    /// (dev, ino) of multiply-linked files already written → their path.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Entries left out.
    skip: SkipFn<'a>,
    /// The merged view, for renamed directories.
    merged: Option<&'a Path>,
    /// Latest mtime written.
    clamp_mtime: u64,
}

/// Metadata of one entry to write.
struct Item<'a> {
    kind: EntryType,
    path: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
    link: Option<&'a [u8]>,
    dev: Option<(u32, u32)>,
    xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

impl<'a> Item<'a> {
    fn from_stat(kind: EntryType, path: &'a [u8], st: &Stat) -> Item<'a> {
        Item {
            kind,
            path,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid.into(),
            gid: st.st_gid.into(),
            mtime: u64::try_from(st.st_mtime).unwrap_or(0),
            size: 0,
            link: None,
            dev: None,
            xattrs: &[],
        }
    }
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

impl<W: Write> Walker<'_, W> {
    fn path_of(&self, rel: &[u8]) -> PathBuf {
        self.top.join(os(rel))
    }

    fn io(&self, op: &'static str, rel: &[u8]) -> impl FnOnce(Errno) -> Error {
        errno_err(op, self.path_of(rel))
    }

    fn walk(&mut self, dir: BorrowedFd<'_>, rel: &[u8]) -> Result<()> {
        let mut names = Vec::new();
        for e in rustix::fs::Dir::read_from(dir).map_err(self.io("read directory", rel))? {
            let e = e.map_err(self.io("read directory", rel))?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
        names.sort();
        for name in names {
            let path = if rel.is_empty() {
                name.clone()
            } else {
                [rel, b"/", &name].concat()
            };
            // The OCI opaque marker file was written right after its directory.
            if name == OCI_OPAQUE || (self.skip)(&path) {
                continue;
            }
            let st = rustix::fs::statat(dir, os(&name), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(self.io("stat", &path))?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::CharacterDevice if st.st_rdev == 0 => {
                    let wh = whiteout_path(rel, &name);
                    let mut it = Item::from_stat(EntryType::Regular, &wh, &st);
                    // As docker writes a whiteout (its layers and ours then match).
                    it.mode = 0o600;
                    self.emit(&it, io::empty())?;
                }
                FileType::Directory => self.dir(dir, &name, &path, &st)?,
                FileType::RegularFile => self.file(dir, &name, &path, &st)?,
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(dir, os(&name), Vec::new())
                        .map_err(self.io("readlink", &path))?;
                    let xattrs = self.xattrs_at(dir, &name, &path)?.0;
                    let mut it = Item::from_stat(EntryType::Symlink, &path, &st);
                    it.link = Some(target.as_bytes());
                    it.xattrs = &xattrs;
                    self.emit(&it, io::empty())?;
                }
                ft @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                    let kind = match ft {
                        FileType::CharacterDevice => EntryType::Char,
                        FileType::BlockDevice => EntryType::Block,
                        _ => EntryType::Fifo,
                    };
                    let xattrs = self.xattrs_at(dir, &name, &path)?.0;
                    let mut it = Item::from_stat(kind, &path, &st);
                    if kind != EntryType::Fifo {
                        it.dev =
                            Some((rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)));
                    }
                    it.xattrs = &xattrs;
                    self.emit(&it, io::empty())?;
                }
                // Sockets are not representable in a layer (docker skips them too).
                _ => {}
            }
        }
        Ok(())
    }

    fn dir(&mut self, parent: BorrowedFd<'_>, name: &[u8], path: &[u8], st: &Stat) -> Result<()> {
        let fd: OwnedFd = rustix::fs::openat(
            parent,
            os(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(self.io("open directory", path))?;
        let (xattrs, marks) = self.xattrs_at(parent, name, path)?;
        let merged_dir = match (marks.redirect, self.merged) {
            (false, _) => None,
            (true, Some(m)) => {
                let p = m.join(os(path));
                let fd = rustix::fs::open(
                    &p,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno_err("open merged directory", &p))?;
                Some(fd)
            }
            (true, None) => {
                return Err(Error::UnsupportedRedirect {
                    path: self.path_of(path),
                });
            }
        };
        let oci_marker = rustix::fs::statat(&fd, os(OCI_OPAQUE), AtFlags::SYMLINK_NOFOLLOW).ok();
        let dpath = [path, b"/"].concat();
        let mut it = Item::from_stat(EntryType::Directory, &dpath, st);
        it.xattrs = &xattrs;
        self.emit(&it, io::empty())?;
        if marks.opaque || oci_marker.is_some() || merged_dir.is_some() {
            let opq = [path, b"/", OCI_OPAQUE].concat();
            let mut it =
                Item::from_stat(EntryType::Regular, &opq, oci_marker.as_ref().unwrap_or(st));
            if oci_marker.is_none() {
                // As docker writes it: the directory's permission bits.
                it.mode = st.st_mode & 0o777;
            }
            self.emit(&it, io::empty())?;
        }
        match &merged_dir {
            // Renamed: everything the merged view shows there, below an opaque marker.
            Some(m) => self.walk(m.as_fd(), path),
            None => self.walk(fd.as_fd(), path),
        }
    }

    fn file(&mut self, parent: BorrowedFd<'_>, name: &[u8], path: &[u8], st: &Stat) -> Result<()> {
        let (xattrs, marks) = self.xattrs_at(parent, name, path)?;
        if marks.metacopy {
            return Err(Error::UnsupportedMetacopy {
                path: self.path_of(path),
            });
        }
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                let mut it = Item::from_stat(EntryType::Link, path, st);
                it.link = Some(&first);
                return self.emit(&it, io::empty());
            }
            self.links.insert(key, path.to_vec());
        }
        let fd = rustix::fs::openat(
            parent,
            os(name),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(self.io("open file", path))?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        let mut it = Item::from_stat(EntryType::Regular, path, st);
        it.size = size;
        it.xattrs = &xattrs;
        let data = Exact {
            inner: File::from(fd),
            left: size,
        };
        self.emit(&it, data)
    }

    /// The exportable xattrs of `name` in `dir` (sorted, private ones hidden, escaped ones
    /// unescaped) and the overlay markers found.
    fn xattrs_at(&self, dir: BorrowedFd<'_>, name: &[u8], path: &[u8]) -> Result<(Xattrs, Marks)> {
        let p = cairn_fs::layer::proc_path(dir, os(name));
        let mut marks = Marks::default();
        let mut out = Vec::new();
        let len = match rustix::fs::llistxattr_query(&p) {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok((out, marks)),
            Err(e) => return Err(self.io("listxattr", path)(e)),
        };
        let mut list = vec![0u8; len];
        let n = rustix::fs::llistxattr(&p, &mut list[..]).map_err(self.io("listxattr", path))?;
        for key in list[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
            let vlen = rustix::fs::lgetxattr_query(&p, key).map_err(self.io("getxattr", path))?;
            let mut v = vec![0u8; vlen];
            let vn =
                rustix::fs::lgetxattr(&p, key, &mut v[..]).map_err(self.io("getxattr", path))?;
            v.truncate(vn);
            if key == OPAQUE_XATTR.as_bytes() {
                marks.opaque = v == b"y";
            } else if key == REDIRECT_XATTR.as_bytes() {
                marks.redirect = true;
            } else if key == METACOPY_XATTR {
                marks.metacopy = true;
            }
            if key == SELINUX_XATTR {
                continue;
            }
            if let Some(shown) = cairn_fs::whiteout::unescape_xattr(key) {
                out.push((shown, v));
            }
        }
        out.sort();
        Ok((out, marks))
    }

    fn emit(&mut self, it: &Item<'_>, data: impl Read) -> Result<()> {
        let wr_err = |source| Error::Export {
            path: self.top.join(os(it.path)),
            source,
        };
        let mut h = Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if !set_ustar_path(&mut h, it.path) {
            pax.push(("path".into(), it.path.to_vec()));
            let cut = &it.path[..it.path.len().min(100)];
            set_ustar_path(&mut h, cut);
        }
        if let Some(link) = it.link {
            if link.len() <= 100 {
                h.set_link_name_literal(link).map_err(wr_err)?;
            } else {
                pax.push(("linkpath".into(), link.to_vec()));
            }
        }
        for (k, v) in it.xattrs {
            let key = std::str::from_utf8(k).map_err(|_| {
                wr_err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "xattr name is not UTF-8",
                ))
            })?;
            pax.push((format!("SCHILY.xattr.{key}"), v.clone()));
        }
        h.set_entry_type(it.kind);
        h.set_mode(it.mode);
        h.set_uid(it.uid);
        h.set_gid(it.gid);
        h.set_mtime(it.mtime.min(self.clamp_mtime));
        h.set_size(it.size);
        let (major, minor) = it.dev.unwrap_or((0, 0));
        h.set_device_major(major).map_err(wr_err)?;
        h.set_device_minor(minor).map_err(wr_err)?;
        h.set_cksum();
        if !pax.is_empty() {
            pax.sort();
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(wr_err)?;
        }
        self.builder.append(&h, data).map_err(wr_err)
    }
}

#[derive(Default)]
struct Marks {
    opaque: bool,
    redirect: bool,
    metacopy: bool,
}

fn whiteout_path(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + name.len() + 5);
    if !rel.is_empty() {
        p.extend_from_slice(rel);
        p.push(b'/');
    }
    p.extend_from_slice(OCI_PREFIX);
    p.extend_from_slice(name);
    p
}

/// Stores `path` in the USTAR name (+ prefix) fields; false when it does not fit.
fn set_ustar_path(h: &mut Header, path: &[u8]) -> bool {
    let Some(u) = h.as_ustar_mut() else {
        return false;
    };
    if path.len() <= u.name.len() {
        u.name[..path.len()].copy_from_slice(path);
        return true;
    }
    // Split at a '/' so that prefix ≤ 155 and name ≤ 100 (and non-empty).
    let split = path.iter().enumerate().find_map(|(i, b)| {
        let name_len = path.len() - i - 1;
        (*b == b'/' && i <= u.prefix.len() && name_len <= u.name.len() && name_len > 0).then_some(i)
    });
    let Some(i) = split else {
        return false;
    };
    u.prefix[..i].copy_from_slice(&path[..i]);
    u.name[..path.len() - i - 1].copy_from_slice(&path[i + 1..]);
    true
}

/// Reads exactly `left` bytes: a file that changed size under us is an error, not a corrupt tar.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being exported",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ustar_path_split() {
        let mut h = Header::new_ustar();
        assert!(set_ustar_path(&mut h, b"short"));
        assert_eq!(&*h.path_bytes(), b"short");
        let long = [vec![b'a'; 120], b"/".to_vec(), vec![b'b'; 90]].concat();
        let mut h = Header::new_ustar();
        assert!(set_ustar_path(&mut h, &long));
        assert_eq!(&*h.path_bytes(), &long[..]);
        let too_long = vec![b'c'; 150];
        assert!(!set_ustar_path(&mut Header::new_ustar(), &too_long));
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(whiteout_path(b"", b"x"), b".wh.x");
        assert_eq!(whiteout_path(b"a/b", b"x"), b"a/b/.wh.x");
    }
}
