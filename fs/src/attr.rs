//! Attribute changes and extended attributes on the merged view. Changing anything about a
//! lower object copies it up first; overlay-private `trusted.overlay.*` xattrs stay hidden,
//! as in the kernel's overlayfs
//! (a user's own `trusted.overlay.X` is stored escaped as `trusted.overlay.overlay.X`).

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::copyup::{get_xattr, list_xattrs};
use crate::error::{Result, errno};
use crate::inode::Node;
use crate::layer::{proc_dir, proc_path};
use crate::overlay::Overlay;
use crate::whiteout::{escape_xattr, is_private, unescape_xattr};

/// A time to set: now, or a given instant.
#[derive(Debug, Clone, Copy)]
pub enum SetTime {
    Now,
    At(Timespec),
}

/// The changes of one setattr call.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

/// A real object addressed for the `l*` xattr calls, with the fd its /proc path needs.
struct RealPath {
    _fd: Arc<OwnedFd>,
    path: CString,
}

fn ts(t: Option<SetTime>) -> Timespec {
    match t {
        None => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        Some(SetTime::Now) => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(SetTime::At(t)) => t,
    }
}

impl Overlay {
    /// chmod, chown, truncate and utimens in one call, through `fh` when the kernel gave one.
    pub fn setattr(&self, id: u64, a: &SetAttr, fh: Option<Arc<OwnedFd>>) -> Result<Stat> {
        let node = self.nodes.get(id)?;
        if !self.has_upper {
            return errno(Errno::ROFS);
        }
        if node.kind == FileType::Symlink && a.mode.is_some() {
            return errno(Errno::OPNOTSUPP);
        }
        let linked = !node.state.read().links.is_empty();
        if linked {
            self.ensure_upper(&node)?;
        }
        if let Some(size) = a.size {
            match &fh {
                Some(fd) => rustix::fs::ftruncate(&**fd, size)?,
                None => {
                    let f = self.open_real(&node, OFlags::WRONLY)?;
                    rustix::fs::ftruncate(&f, size)?;
                }
            }
        }
        // An unlinked file is reachable only through an open fd.
        let fd = if linked {
            None
        } else {
            fh.or_else(|| node.io.lock().any_fd())
        };
        let uid = a.uid.map(|u| Uid::from_raw(self.cfg.ids.stored_uid(u)));
        let gid = a.gid.map(|g| Gid::from_raw(self.cfg.ids.stored_gid(g)));
        let times = (a.atime.is_some() || a.mtime.is_some()).then(|| Timestamps {
            last_access: ts(a.atime),
            last_modification: ts(a.mtime),
        });
        let dir_fd = node.state.read().upper_dir.clone();
        if let Some(fd) = fd.or(dir_fd) {
            if uid.is_some() || gid.is_some() {
                rustix::fs::fchown(&*fd, uid, gid)?;
            }
            if let Some(m) = a.mode {
                rustix::fs::fchmod(&*fd, Mode::from_raw_mode(m & 0o7777))?;
            }
            if let Some(t) = &times {
                rustix::fs::futimens(&*fd, t)?;
            }
        } else if a.mode.is_some() || uid.is_some() || gid.is_some() || times.is_some() {
            let (pfd, name) = self.upper_loc(&node)?;
            if uid.is_some() || gid.is_some() {
                rustix::fs::chownat(&*pfd, &name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            if let Some(m) = a.mode {
                rustix::fs::chmodat(
                    &*pfd,
                    &name,
                    Mode::from_raw_mode(m & 0o7777),
                    AtFlags::empty(),
                )?;
            }
            if let Some(t) = &times {
                rustix::fs::utimensat(&*pfd, &name, t, AtFlags::SYMLINK_NOFOLLOW)?;
            }
        }
        self.stat(&node)
    }

    /// Reads the target of a symlink.
    pub fn readlink(&self, id: u64) -> Result<Vec<u8>> {
        let node = self.nodes.get(id)?;
        let rp = self.real_path(&node)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
        let n = rustix::fs::readlinkat_raw(rustix::fs::CWD, rp.path.as_c_str(), &mut buf[..])?;
        buf.truncate(n);
        Ok(buf)
    }

    fn real_path(&self, node: &Node) -> Result<RealPath> {
        let (upper, upper_dir, lower) = {
            let st = node.state.read();
            (st.upper, st.upper_dir.clone(), st.lowers.first().cloned())
        };
        if let Some(fd) = upper_dir {
            let path = proc_dir(fd.as_fd());
            return Ok(RealPath { _fd: fd, path });
        }
        let (dir, name) = if upper {
            self.upper_loc(node)?
        } else {
            let l = lower.ok_or(rustix::io::Errno::NOENT)?;
            let layer = &self.layers[l.layer];
            if l.path.as_os_str().is_empty() {
                let fd = Arc::new(layer.open_dir(&l.path)?);
                let path = proc_dir(fd.as_fd());
                return Ok(RealPath { _fd: fd, path });
            }
            let (fd, name) = layer.parent_of(&l.path)?;
            (Arc::new(fd), name.to_os_string())
        };
        let path = proc_path(dir.as_fd(), &name);
        Ok(RealPath { _fd: dir, path })
    }

    /// One xattr value; overlay-private names are not reachable.
    pub fn getxattr(&self, id: u64, name: &OsStr) -> Result<Vec<u8>> {
        let cname = xattr_name(name, Errno::NODATA)?;
        let rp = self.real_path(&*self.nodes.get(id)?)?;
        get_xattr(&rp.path, &cname)
    }

    /// The xattr names, NUL-separated, without the overlay-private ones.
    pub fn listxattr(&self, id: u64) -> Result<Vec<u8>> {
        let rp = self.real_path(&*self.nodes.get(id)?)?;
        let mut out = Vec::new();
        for n in list_xattrs(&rp.path)? {
            if let Some(shown) = unescape_xattr(n.to_bytes()) {
                out.extend_from_slice(&shown);
                out.push(0);
            }
        }
        Ok(out)
    }

    /// Sets an xattr (copying the object up first).
    pub fn setxattr(&self, id: u64, name: &OsStr, value: &[u8], flags: i32) -> Result<()> {
        let cname = xattr_name(name, Errno::PERM)?;
        if !self.has_upper {
            return errno(Errno::ROFS);
        }
        let node = self.nodes.get(id)?;
        self.ensure_upper(&node)?;
        let rp = self.real_path(&node)?;
        let flags = XattrFlags::from_bits_truncate(flags as _);
        rustix::fs::lsetxattr(&rp.path, &*cname, value, flags)?;
        Ok(())
    }

    /// Removes an xattr; a name the lower object lacks is ENODATA without a copy-up.
    pub fn removexattr(&self, id: u64, name: &OsStr) -> Result<()> {
        let cname = xattr_name(name, Errno::PERM)?;
        if !self.has_upper {
            return errno(Errno::ROFS);
        }
        let node = self.nodes.get(id)?;
        if !node.is_upper() {
            get_xattr(&self.real_path(&node)?.path, &cname)?;
        }
        self.ensure_upper(&node)?;
        let rp = self.real_path(&node)?;
        rustix::fs::lremovexattr(&rp.path, &*cname)?;
        Ok(())
    }
}

/// The stored name of an xattr named through the mount; `hidden` is the answer for a name
/// that stays private (fuse-overlayfs' `user.fuseoverlayfs.*`).
fn xattr_name(name: &OsStr, hidden: Errno) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    let stored = escape_xattr(name.as_bytes());
    if is_private(&stored) {
        return errno(hidden);
    }
    CString::new(stored).map_err(|_| Errno::INVAL.into())
}
