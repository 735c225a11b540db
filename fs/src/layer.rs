//! One layer directory, opened once. Every access goes through the layer's root fd with `*at()`
//! calls resolved beneath it (openat2 `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so a symlink
//! inside a layer is never followed out of it by cairn itself.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Flags used for every path resolution inside a layer.
pub const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// A layer directory held open for the life of the mount.
#[derive(Debug)]
pub struct Layer {
    /// Position in the stack: 0 is the upper (when there is one), then lowers top to bottom.
    pub idx: usize,
    /// Host path, for messages only.
    pub path: PathBuf,
    /// `O_DIRECTORY` fd of the layer root.
    pub root: OwnedFd,
    /// st_dev of the layer root.
    pub dev: u64,
    /// Whether OCI-form whiteouts (`.wh.*`) are honoured in this layer (lower layers only).
    pub oci_whiteouts: bool,
}

impl Layer {
    /// Opens `path` as a layer; the error names the path.
    pub fn open(idx: usize, path: &Path, oci_whiteouts: bool) -> Result<Layer> {
        let root = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("layer", path, e))?;
        let st = rustix::fs::fstat(&root).map_err(|e| Error::sys("layer", path, e))?;
        Ok(Layer {
            idx,
            path: path.to_path_buf(),
            root,
            dev: st.st_dev,
            oci_whiteouts,
        })
    }

    /// Opens a directory of this layer by its relative path ("" is the root).
    pub fn open_dir(&self, rel: &Path) -> Result<OwnedFd> {
        open_beneath(
            self.root.as_fd(),
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        )
    }

    /// Opens any object of this layer by relative path without following a final symlink.
    pub fn open_path(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd> {
        open_beneath(self.root.as_fd(), rel, flags | OFlags::NOFOLLOW)
    }

    /// lstat of a relative path inside the layer.
    pub fn stat(&self, rel: &Path) -> Result<Stat> {
        let (dir, name) = self.parent_of(rel)?;
        Ok(rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// The parent directory fd and final component of `rel` (which must not be empty).
    pub fn parent_of<'a>(&self, rel: &'a Path) -> Result<(OwnedFd, &'a OsStr)> {
        let name = rel.file_name().ok_or(Error::Errno(Errno::INVAL))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((self.open_dir(parent)?, name))
    }
}

/// openat2 beneath `dir`; an empty path opens `dir` itself again.
pub fn open_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    Ok(rustix::fs::openat2(
        dir,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )?)
}

/// A path through /proc that names `name` inside the directory `dir` without following a final
/// symlink when used with the `l*` calls (lgetxattr, lsetxattr, ...). `name` is one component.
pub fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> CString {
    let mut s = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    s.extend_from_slice(name.as_bytes());
    CString::new(s).unwrap_or_default()
}

/// A /proc path naming the directory an fd refers to, usable with the `l*` calls (the magic
/// link is followed as an inner component; the final "." is the directory itself).
pub fn proc_dir(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}/.", fd.as_raw_fd())).unwrap_or_default()
}
