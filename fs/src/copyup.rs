//! Copy-up: bring a lower object into the upper layer before it is changed. The copy is built
//! in the work directory (data with holes kept, owner, mode, times, xattrs) and renamed into
//! place in one step, so a crash never leaves a partial object visible in the upper.

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, SeekFrom, Stat, Timestamps};
use rustix::io::Errno;

use crate::error::{Error, Result, errno};
use crate::inode::Node;
use crate::layer::proc_path;
use crate::overlay::{Overlay, open_dir_at};
use crate::readdir::list_dir;
use crate::rules;
use crate::whiteout::is_private;

impl Overlay {
    /// Makes sure `node` (and every directory above it) is in the upper layer.
    pub fn ensure_upper(&self, node: &Arc<Node>) -> Result<()> {
        if node.is_upper() {
            return Ok(());
        }
        if !self.has_upper {
            return errno(Errno::ROFS);
        }
        let _guard = node.copyup.lock();
        if node.is_upper() {
            return Ok(());
        }
        let (parent_id, name) = node.primary().ok_or(Error::Errno(Errno::NOENT))?;
        let parent = self.nodes.get(parent_id)?;
        self.ensure_upper(&parent)?;
        let pfd = self.upper_dir_of(parent_id)?;
        self.copy_up_one(node, &pfd, &name)?;
        self.copy_up_other_names(node)
    }

    /// A hardlinked lower file keeps being one file: every other name it has in its layer
    /// that the merged view shows becomes a hardlink of the copy in the upper too.
    fn copy_up_other_names(&self, node: &Arc<Node>) -> Result<()> {
        let (lower, attr) = {
            let st = node.state.read();
            (st.lowers.first().cloned(), st.lower_attr)
        };
        let (Some(lower), Some(attr)) = (lower, attr) else {
            return Ok(());
        };
        let kind = FileType::from_raw_mode(attr.st_mode);
        if !rules::copy_up_plan(kind, attr.st_nlink, self.cfg.index).link_other_names {
            return Ok(());
        }
        self.link_visible_names(node, &lower, &attr)?;
        // The view keeps reporting the lower count (hidden names included), as the kernel.
        let (pfd, name) = self.upper_loc(node)?;
        let upper = rustix::fs::statat(&*pfd, &name, AtFlags::SYMLINK_NOFOLLOW)?;
        let v = rules::nlink_xattr(attr.st_nlink, upper.st_nlink);
        rustix::fs::lsetxattr(
            proc_path(pfd.as_fd(), &name),
            crate::whiteout::NLINK_XATTR,
            v.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )?;
        Ok(())
    }

    /// Links every other name of a lower hard link that the merged view shows to the copy.
    fn link_visible_names(
        &self,
        node: &Arc<Node>,
        lower: &crate::inode::Lower,
        attr: &Stat,
    ) -> Result<()> {
        let names = self.hardlinks(lower.layer)?;
        let others = names.get(&attr.st_ino).cloned().unwrap_or_default();
        for path in others.iter().filter(|p| **p != lower.path) {
            // Resolve the name through the merged view (it may be whited out or shadowed);
            // these lookups are only ours, so they are forgotten again.
            let mut parent = crate::inode::ROOT;
            let mut seen = Vec::new();
            for comp in path.iter() {
                match self.lookup(parent, comp) {
                    Ok((n, _)) if n.id == node.id => {
                        seen.push(n.id);
                        let _ = self.link_alias_up(node, parent, comp);
                        break;
                    }
                    Ok((n, _)) => {
                        parent = n.id;
                        seen.push(n.id);
                    }
                    Err(_) => break,
                }
            }
            for id in seen {
                self.nodes.forget(id, 1);
            }
        }
        Ok(())
    }

    /// Gives name (parent, name) of an upper hardlinked node a real link in the upper.
    pub fn link_alias_up(&self, node: &Arc<Node>, parent: u64, name: &OsStr) -> Result<()> {
        let pnode = self.nodes.get(parent)?;
        self.ensure_upper(&pnode)?;
        let dst = self.upper_dir_of(parent)?;
        let (src_parent, src_name) = node.primary().ok_or(Error::Errno(Errno::NOENT))?;
        if (src_parent, src_name.as_os_str()) == (parent, name) {
            return Ok(());
        }
        let src = self.upper_dir_of(src_parent)?;
        let dst_st = rustix::fs::fstat(&*dst)?;
        match rustix::fs::linkat(&*src, &src_name, &*dst, name, AtFlags::empty()) {
            // The new name is not a change of the merged directory: keep its times.
            Ok(()) => set_times(dst.as_fd(), None, &dst_st),
            Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn copy_up_one(&self, node: &Node, upper_parent: &OwnedFd, name: &OsStr) -> Result<()> {
        let lower = node
            .state
            .read()
            .lowers
            .first()
            .cloned()
            .ok_or(Error::Errno(Errno::NOENT))?;
        let layer = &self.layers[lower.layer];
        let (lpfd, lname) = layer.parent_of(&lower.path)?;
        let st = rustix::fs::statat(&lpfd, lname, AtFlags::SYMLINK_NOFOLLOW)?;
        let work = self.work()?;
        let tmp = self.tmp_name();
        let parent_st = rustix::fs::fstat(upper_parent)?;
        let made = self.build_copy(&lpfd, lname, &st, work, &tmp);
        let made = made.and_then(|()| {
            Ok(rustix::fs::renameat_with(
                work,
                &tmp,
                upper_parent,
                name,
                RenameFlags::NOREPLACE,
            )?)
        });
        if let Err(e) = made {
            let _ = remove_entry(work.as_fd(), &tmp);
            return Err(e);
        }
        // Creating the entry changed the parent's times; the merged view must not show that.
        set_times(upper_parent.as_fd(), None, &parent_st)?;
        let upper_dir = if node.is_dir() {
            let fd = open_dir_at(upper_parent, name)?;
            // Moving a directory to another parent rewrote its "..": restore its times.
            set_times(fd.as_fd(), None, &st)?;
            Some(Arc::new(fd))
        } else {
            None
        };
        {
            let mut s = node.state.write();
            s.upper = true;
            s.upper_dir = upper_dir;
        }
        // What the kernel cached may change (a directory becomes merged: nlink 1).
        self.invalidate_attr(node.id);
        Ok(())
    }

    /// Builds the copy of lower object (`dir`, `name`) as `tmp` in the work directory.
    fn build_copy(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        st: &Stat,
        work: &OwnedFd,
        tmp: &OsStr,
    ) -> Result<()> {
        let kind = FileType::from_raw_mode(st.st_mode);
        match kind {
            FileType::Directory => rustix::fs::mkdirat(work, tmp, Mode::from_raw_mode(0o700))?,
            FileType::RegularFile => {
                let src = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let dst = rustix::fs::openat(
                    work,
                    tmp,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                copy_data(&src, &dst, st.st_size as u64)?;
                if !self.cfg.volatile && self.cfg.fsync {
                    rustix::fs::fsync(&dst)?;
                }
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), work, tmp)?;
            }
            _ => rustix::fs::mknodat(
                work,
                tmp,
                kind,
                Mode::from_raw_mode(st.st_mode & 0o7777),
                st.st_rdev,
            )?,
        }
        copy_xattrs(&proc_path(dir.as_fd(), name), &proc_path(work.as_fd(), tmp))?;
        set_owner_mode_times(work.as_fd(), tmp, st, kind)
    }
}

/// Applies owner, mode (after chown, which clears set-id bits) and times of `st` to `name`.
pub fn set_owner_mode_times(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    st: &Stat,
    kind: FileType,
) -> Result<()> {
    rustix::fs::chownat(
        dir,
        name,
        Some(rustix::process::Uid::from_raw(st.st_uid)),
        Some(rustix::process::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if kind != FileType::Symlink {
        rustix::fs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )?;
    }
    set_times(dir, Some(name), st)
}

/// Sets atime and mtime of `name` in `dir` (or of `dir` itself) to those of `st`.
pub fn set_times(dir: BorrowedFd<'_>, name: Option<&OsStr>, st: &Stat) -> Result<()> {
    let ts = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    match name {
        Some(n) => rustix::fs::utimensat(dir, n, &ts, AtFlags::SYMLINK_NOFOLLOW)?,
        None => rustix::fs::futimens(dir, &ts)?,
    }
    Ok(())
}

/// Copies file data keeping holes: only the data extents are copied (copy_file_range, which
/// reflinks where the filesystem can), then the size is set.
pub fn copy_data(src: &OwnedFd, dst: &OwnedFd, size: u64) -> Result<()> {
    let mut off = 0u64;
    while off < size {
        let data = match rustix::fs::seek(src, SeekFrom::Data(off)) {
            Ok(d) => d,
            Err(Errno::NXIO) => break,
            Err(_) => off,
        };
        let end = rustix::fs::seek(src, SeekFrom::Hole(data)).unwrap_or(size);
        copy_range(src, dst, data, end)?;
        off = end;
    }
    rustix::fs::ftruncate(dst, size)?;
    Ok(())
}

fn copy_range(src: &OwnedFd, dst: &OwnedFd, start: u64, end: u64) -> Result<()> {
    let mut pos = start;
    while pos < end {
        let (mut i, mut o) = (pos, pos);
        let want = usize::try_from(end - pos)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match rustix::fs::copy_file_range(src, Some(&mut i), dst, Some(&mut o), want) {
            Ok(0) => break,
            Ok(n) => pos += n as u64,
            Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => {
                return copy_range_rw(src, dst, pos, end);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_range_rw(src: &OwnedFd, dst: &OwnedFd, mut pos: u64, end: u64) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    while pos < end {
        let want = buf
            .len()
            .min(usize::try_from(end - pos).unwrap_or(usize::MAX));
        let n = rustix::io::pread(src, &mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        let mut done = 0;
        while done < n {
            done += rustix::io::pwrite(dst, &buf[done..n], pos + done as u64)?;
        }
        pos += n as u64;
    }
    Ok(())
}

/// Copies the user-visible xattrs (not the overlay-private ones) between two /proc paths.
pub fn copy_xattrs(src: &CStr, dst: &CStr) -> Result<()> {
    for name in list_xattrs(src)? {
        if is_private(name.to_bytes()) {
            continue;
        }
        let value = get_xattr(src, &name)?;
        match rustix::fs::lsetxattr(dst, &*name, &value, rustix::fs::XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP | Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// All xattr names of the object at a /proc path.
pub fn list_xattrs(path: &CStr) -> Result<Vec<std::ffi::CString>> {
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => 0,
        Err(e) => return Err(e.into()),
    };
    if size == 0 {
        return Ok(vec![]);
    }
    let mut buf = vec![0u8; size + 256];
    let n = rustix::fs::llistxattr(path, &mut buf[..])?;
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| std::ffi::CString::new(s).ok())
        .collect())
}

/// One xattr value of the object at a /proc path.
pub fn get_xattr(path: &CStr, name: &CStr) -> Result<Vec<u8>> {
    let size = rustix::fs::lgetxattr_query(path, name)?;
    let mut buf = vec![0u8; size + 64];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..])?;
    buf.truncate(n);
    Ok(buf)
}

/// Removes one entry (recursively for directories).
pub fn remove_entry(dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    remove_children(&sub)?;
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

/// Removes everything inside a directory.
pub fn remove_children(dir: &OwnedFd) -> Result<()> {
    for e in list_dir(dir.as_fd(), false)?.entries {
        remove_entry(dir.as_fd(), &e.name)?;
    }
    Ok(())
}
