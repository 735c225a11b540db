//! Copy-up: bring a lower object into the upper layer before it is changed. The copy is built
//! in the work directory (data with holes kept, owner, mode, times, xattrs) and renamed into
//! place in one step, so a crash never leaves a partial object visible in the upper.

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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
        self.ensure_upper_with(node, true)
    }

    /// [`Overlay::ensure_upper`] for a file about to be truncated to size 0 (an O_TRUNC open):
    /// its data is not copied.
    pub fn ensure_upper_truncated(&self, node: &Arc<Node>) -> Result<()> {
        self.ensure_upper_with(node, false)
    }

    fn ensure_upper_with(&self, node: &Arc<Node>, data: bool) -> Result<()> {
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
        self.copy_up_one(node, &pfd, &name, data)?;
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

    fn copy_up_one(
        &self,
        node: &Node,
        upper_parent: &OwnedFd,
        name: &OsStr,
        data: bool,
    ) -> Result<()> {
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
        let made = self.build_copy(&lpfd, lname, &st, work, &tmp, data);
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
        // What the kernel cached may change (a directory becomes merged: nlink 1). A copied
        // file keeps its size, mode, times and st_ino (the node id): nothing to tell.
        if node.is_dir() {
            self.invalidate_attr(node.id);
        }
        Ok(())
    }

    /// Builds the copy of lower object (`dir`, `name`) as `tmp` in the work directory; a
    /// regular file without its data when `data` is false (it is being truncated to 0).
    fn build_copy(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        st: &Stat,
        work: &OwnedFd,
        tmp: &OsStr,
        data: bool,
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
                if data {
                    copy_data(&src, &dst, st)?;
                    self.copy_sync.settle(&dst)?;
                }
                copy_xattrs(&proc_path(dir.as_fd(), name), &proc_path(work.as_fd(), tmp))?;
                return set_owner_mode_times_fd(&dst, st);
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

/// How a copied file's data is made safe before the copy is renamed into place, so that a
/// crash never shows the new name with missing data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopySync {
    /// `volatile`: nothing (the kernel's volatile skips its copy-up fsync too).
    Nothing,
    /// ext4 in ordered (or journal) data mode: write the data out and wait for it
    /// (sync_file_range). The rename then commits in the same or a later journal transaction
    /// than the blocks' allocation, and the commit's cache flush covers the written data. It is
    /// atomic like the fsync, but not durable by itself (no journal commit per file).
    WriteOut,
    /// Any other file system: fsync, as the kernel's overlayfs.
    Fsync,
}

impl CopySync {
    /// The mode for an upper whose root is `root`.
    pub fn for_upper(root: BorrowedFd<'_>, volatile: bool) -> CopySync {
        const EXT4_SUPER_MAGIC: u64 = 0xEF53;
        if volatile {
            return CopySync::Nothing;
        }
        let ext4 = rustix::fs::fstatfs(root).is_ok_and(|s| s.f_type as u64 == EXT4_SUPER_MAGIC);
        let dev = rustix::fs::fstat(root).map(|st| st.st_dev);
        let ordered = dev.is_ok_and(|dev| {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let key = format!(" {}:{} ", rustix::fs::major(dev), rustix::fs::minor(dev));
            let mut lines = info.lines().filter(|l| l.contains(&key)).peekable();
            lines.peek().is_some() && lines.all(|l| !l.contains("data=writeback"))
        });
        if ext4 && ordered {
            CopySync::WriteOut
        } else {
            CopySync::Fsync
        }
    }

    /// Makes the data written to `fd` safe as described for each mode.
    pub fn settle(self, fd: &OwnedFd) -> Result<()> {
        match self {
            CopySync::Nothing => {}
            CopySync::Fsync => rustix::fs::fsync(fd)?,
            CopySync::WriteOut => {
                let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER;
                // SAFETY: sync_file_range only reads its integer arguments; fd is open.
                let r = unsafe { libc::sync_file_range(fd.as_raw_fd(), 0, 0, flags) };
                if r != 0 {
                    return Err(Errno::from_raw_os_error(
                        std::io::Error::last_os_error()
                            .raw_os_error()
                            .unwrap_or(libc::EIO),
                    )
                    .into());
                }
            }
        }
        Ok(())
    }
}

/// [`set_owner_mode_times`] on an open regular file.
fn set_owner_mode_times_fd(fd: &OwnedFd, st: &Stat) -> Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::process::Uid::from_raw(st.st_uid)),
        Some(rustix::process::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    set_times(fd.as_fd(), None, st)
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
/// reflinks where the filesystem can), then the size is set. A file with as many blocks as
/// its size needs has no holes: it is copied in one range, without the SEEK_DATA scan.
pub fn copy_data(src: &OwnedFd, dst: &OwnedFd, st: &Stat) -> Result<()> {
    let size = st.st_size as u64;
    if (st.st_blocks as u64) * 512 >= size {
        return copy_range(src, dst, 0, size);
    }
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
