//! `impl fuser::Filesystem`: each operation is a thin adapter from the kernel request to an
//! `Overlay` method and back; errors become the errno chosen in `Error::errno`.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle as Fh, FileType as FT, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rustix::fs::{FileType, Stat};

use crate::attr::{SetAttr, SetTime};
use crate::error::Error;
use crate::fuse_open::Created;
use crate::io::{FileHandle, Handles};
use crate::killpriv::{kill_suidgid, lacks_fsetid, needs_daemon_writes};
use crate::namespace::{Caller, New};
use crate::overlay::Overlay;
use crate::stats::{Op, Stats};

/// The FUSE face of an `Overlay`.
#[derive(Debug)]
pub struct UnionFs {
    pub ov: Overlay,
    pub(crate) files: Handles<FileHandle>,
    pub(crate) passthrough: AtomicBool,
    /// Registering a passthrough backing file failed for good: cached I/O from then on.
    pub(crate) no_backing: AtomicBool,
    pub(crate) ttl: Duration,
    /// Requests served, per opcode (`-o stats=FILE`).
    pub stats: Arc<Stats>,
}

impl UnionFs {
    pub fn new(ov: Overlay) -> UnionFs {
        let ttl = ov.cfg.timeout;
        UnionFs {
            ov,
            files: Handles::default(),
            passthrough: AtomicBool::new(false),
            no_backing: AtomicBool::new(false),
            ttl,
            stats: Arc::default(),
        }
    }
}

fn err(e: Error) -> Errno {
    Errno::from_i32(e.errno())
}

fn kind(t: FileType) -> FT {
    match t {
        FileType::Directory => FT::Directory,
        FileType::Symlink => FT::Symlink,
        FileType::Fifo => FT::NamedPipe,
        FileType::Socket => FT::Socket,
        FileType::CharacterDevice => FT::CharDevice,
        FileType::BlockDevice => FT::BlockDevice,
        _ => FT::RegularFile,
    }
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

/// Converts a stat of the real object into the attributes the kernel gets.
pub fn to_attr(st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(st.st_ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec as i64),
        mtime: time(st.st_mtime, st.st_mtime_nsec as i64),
        ctime: time(st.st_ctime, st.st_ctime_nsec as i64),
        crtime: UNIX_EPOCH,
        kind: kind(FileType::from_raw_mode(st.st_mode)),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            SetTime::At(rustix::fs::Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos() as _,
            })
        }
    })
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

impl UnionFs {
    fn entry(&self, reply: ReplyEntry, r: crate::error::Result<(Arc<crate::inode::Node>, Stat)>) {
        match r {
            Ok((_, st)) => reply.entry(&self.ttl, &to_attr(&st), Generation(0)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn make(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        what: New<'_>,
        mode: u32,
        reply: ReplyEntry,
    ) {
        let r = self
            .ov
            .create_obj(parent.0, name, what, mode, caller(req))
            .map(|(n, st, _)| (n, st));
        self.entry(reply, r);
    }
}

impl Filesystem for UnionFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_EXPORT_SUPPORT,
            InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            let _ = config.add_capabilities(cap);
        }
        if self.ov.cfg.passthrough
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.stats.hit(Op::Lookup);
        match self.ov.lookup(parent.0, name) {
            // A negative entry the kernel may cache: every change of the name comes through us.
            Err(e) if e.errno() == libc::ENOENT => {
                let mut attr = to_attr(&zero_stat());
                attr.ino = INodeNo(0);
                reply.entry(&self.ttl, &attr, Generation(0));
            }
            r => self.entry(reply, r),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.stats.hit(Op::Forget);
        self.ov.nodes.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<Fh>, reply: ReplyAttr) {
        self.stats.hit(Op::Getattr);
        let r = match fh.and_then(|fh| self.files.get(fh.0).ok()) {
            Some(h) => rustix::fs::fstat(&*h.fd).map_err(Error::from).map(|st| {
                let mut s = self.ov.stat(&h.node).unwrap_or(st);
                s.st_size = st.st_size;
                s.st_blocks = st.st_blocks;
                s
            }),
            None => self.ov.nodes.get(ino.0).and_then(|n| self.ov.stat(&n)),
        };
        match r {
            Ok(st) => reply.attr(&self.ttl, &to_attr(&st)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<Fh>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.stats.hit(Op::Setattr);
        let a = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: set_time(atime),
            mtime: set_time(mtime),
        };
        let fd = fh
            .and_then(|fh| self.files.get(fh.0).ok())
            .map(|h| h.fd.clone());
        let r = self.ov.setattr(ino.0, &a, fd.clone()).and_then(|st| {
            // A truncate by an unprivileged caller (FATTR_KILL_SUIDGID).
            if a.size.is_none()
                || !needs_daemon_writes(st.st_mode)
                || !lacks_fsetid(req.pid(), req.uid())
            {
                return Ok(st);
            }
            let f = self.ov.open_file(ino.0, libc::O_WRONLY)?;
            let killed = kill_suidgid(&*f.fd, req.pid());
            self.ov.release_file(&f);
            killed?;
            self.ov.nodes.get(ino.0).and_then(|n| self.ov.stat(&n))
        });
        match r {
            Ok(st) => reply.attr(&self.ttl, &to_attr(&st)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.stats.hit(Op::Readlink);
        data(reply, self.ov.readlink(ino.0))
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.stats.hit(Op::Mknod);
        let k = FileType::from_raw_mode(mode);
        let what = if k == FileType::RegularFile {
            New::File
        } else {
            New::Special(k, u64::from(rdev))
        };
        self.make(req, parent, name, what, mode, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.stats.hit(Op::Mkdir);
        self.make(req, parent, name, New::Dir, mode, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.stats.hit(Op::Unlink);
        empty(reply, self.ov.unlink(parent.0, name))
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.stats.hit(Op::Rmdir);
        empty(reply, self.ov.rmdir(parent.0, name))
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.stats.hit(Op::Symlink);
        self.make(req, parent, link_name, New::Symlink(target), 0o777, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.stats.hit(Op::Rename);
        let flags = rustix::fs::RenameFlags::from_bits_retain(flags.bits());
        empty(
            reply,
            self.ov.rename(parent.0, name, newparent.0, newname, flags),
        )
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.stats.hit(Op::Link);
        self.entry(reply, self.ov.link(ino.0, newparent.0, newname));
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.stats.hit(Op::Open);
        let h = match self.ov.open_file(ino.0, flags.0) {
            Ok(h) => h,
            Err(e) => return reply.error(err(e)),
        };
        let mut daemon_writes = false;
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            let mut mode = rustix::fs::fstat(&*h.fd).map_or(0, |st| st.st_mode);
            // An O_TRUNC open by an unprivileged caller (FUSE_OPEN_KILL_SUIDGID).
            if needs_daemon_writes(mode)
                && flags.0 & libc::O_TRUNC != 0
                && lacks_fsetid(req.pid(), req.uid())
            {
                match kill_suidgid(&*h.fd, req.pid()) {
                    Ok(m) => mode = m,
                    Err(e) => {
                        self.ov.release_file(&h);
                        return reply.error(err(e));
                    }
                }
            }
            daemon_writes = needs_daemon_writes(mode);
        }
        self.reply_open(h, FopenFlags::empty(), daemon_writes, reply)
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: Fh,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.stats.hit(Op::Read);
        data(
            reply,
            self.files
                .get(fh.0)
                .and_then(|h| self.ov.read(&h, offset, size)),
        )
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: Fh,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.stats.hit(Op::Write);
        let kill = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        match self.files.get(fh.0).and_then(|h| {
            if kill {
                kill_suidgid(&*h.fd, req.pid())?;
            }
            self.ov.write(&h, offset, data)
        }) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(err(e)),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: Fh, _lo: LockOwner, reply: ReplyEmpty) {
        self.stats.hit(Op::Flush);
        // Nothing to do on close: ENOSYS makes the kernel stop sending FLUSH at all
        // (locks are the kernel's own; data reaches the real file at write time).
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: Fh,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.stats.hit(Op::Release);
        if let Some(h) = self.files.remove(fh.0) {
            self.ov.release_file(&h);
        }
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: Fh, datasync: bool, reply: ReplyEmpty) {
        self.stats.hit(Op::Fsync);
        empty(
            reply,
            self.files
                .get(fh.0)
                .and_then(|h| self.ov.fsync(&h.fd, datasync)),
        )
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.stats.hit(Op::Opendir);
        // Zero-message directories: after one ENOSYS the kernel (>= 5.1) never sends OPENDIR or
        // RELEASEDIR again and caches listings (KEEP_CACHE|CACHE_DIR); READDIR then arrives with
        // fh 0 and the listing lives on the node (`Overlay::dir_stream`).
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: Fh,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.stats.hit(Op::Readdir);
        match self.ov.dir_stream(ino.0, offset) {
            Ok(entries) => {
                for (i, e) in entries.iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(e.ino), (i + 1) as u64, kind(e.kind), &e.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: Fh,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.stats.hit(Op::Readdirplus);
        let entries = match self.ov.dir_stream(ino.0, offset) {
            Ok(e) => e,
            Err(e) => return reply.error(err(e)),
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            let next = (i + 1) as u64;
            if i < 2 {
                let mut attr = to_attr(&zero_stat());
                attr.ino = INodeNo(e.ino);
                attr.kind = FT::Directory;
                if reply.add(
                    INodeNo(e.ino),
                    next,
                    &e.name,
                    &Duration::ZERO,
                    &attr,
                    Generation(0),
                ) {
                    break;
                }
                continue;
            }
            let Ok((node, st)) = self.ov.lookup(ino.0, &e.name) else {
                continue;
            };
            if reply.add(
                INodeNo(node.id),
                next,
                &e.name,
                &self.ttl,
                &to_attr(&st),
                Generation(0),
            ) {
                self.ov.nodes.forget(node.id, 1);
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: Fh,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.stats.hit(Op::Releasedir);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: Fh, datasync: bool, reply: ReplyEmpty) {
        self.stats.hit(Op::Fsyncdir);
        let r = self
            .ov
            .nodes
            .get(ino.0)
            .and_then(|n| match n.state.read().upper_dir.clone() {
                Some(fd) => self.ov.fsync(&fd, datasync),
                None => Ok(()),
            });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.stats.hit(Op::Statfs);
        match self.ov.statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(err(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.stats.hit(Op::Setxattr);
        empty(reply, self.ov.setxattr(ino.0, name, value, flags))
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.stats.hit(Op::Getxattr);
        xattr_reply(self.ov.getxattr(ino.0, name), size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.stats.hit(Op::Listxattr);
        xattr_reply(self.ov.listxattr(ino.0), size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.stats.hit(Op::Removexattr);
        empty(reply, self.ov.removexattr(ino.0, name))
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        self.stats.hit(Op::Access);
        match self.ov.nodes.get(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        self.stats.hit(Op::Create);
        match self
            .ov
            .create_obj(parent.0, name, New::File, mode, caller(req))
        {
            Ok((node, st, Some(fd))) => {
                let h = self.ov.created_handle(node, fd);
                let attr = to_attr(&st);
                let r = Created {
                    reply,
                    ttl: self.ttl,
                    attr: &attr,
                };
                let daemon_writes = needs_daemon_writes(st.st_mode);
                self.reply_open(h, FopenFlags::empty(), daemon_writes, r);
            }
            Ok(_) => reply.error(Errno::EIO),
            Err(e) => reply.error(err(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: Fh,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.stats.hit(Op::Fallocate);
        empty(
            reply,
            self.files
                .get(fh.0)
                .and_then(|h| self.ov.fallocate(&h, offset, length, mode)),
        )
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: Fh,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        self.stats.hit(Op::Lseek);
        match self
            .files
            .get(fh.0)
            .and_then(|h| self.ov.lseek(&h, offset, whence))
        {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(err(e)),
        }
    }
}

fn data(reply: ReplyData, r: crate::error::Result<Vec<u8>>) {
    match r {
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(err(e)),
    }
}

fn empty(reply: ReplyEmpty, r: crate::error::Result<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(err(e)),
    }
}

fn xattr_reply(r: crate::error::Result<Vec<u8>>, size: u32, reply: ReplyXattr) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(err(e)),
    }
}

fn zero_stat() -> Stat {
    // SAFETY: `Stat` is a plain C struct of integers; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}
