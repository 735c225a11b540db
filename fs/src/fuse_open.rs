//! Open and create replies: FUSE passthrough to the real file when the kernel offers it (one
//! backing id per node), cached I/O when passthrough is off for good, direct I/O when the two
//! would mix on one inode or the writes must reach the daemon (set-id files, `killpriv.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fuser::{FileAttr, FileHandle as Fh, FopenFlags, Generation, ReplyCreate, ReplyOpen};

use crate::fuse::UnionFs;
use crate::io::FileHandle;

impl UnionFs {
    /// Replies to an open with passthrough when the kernel offers it, else cached I/O.
    /// `daemon_writes`: the writes must reach the daemon (see `killpriv.rs`).
    pub(crate) fn reply_open(
        &self,
        h: FileHandle,
        flags: FopenFlags,
        daemon_writes: bool,
        reply: impl OpenReply,
    ) {
        let node = h.node.clone();
        let upper = h.upper;
        let fd = h.fd.clone();
        let fh = self.files.insert(h);
        if self.passthrough.load(Ordering::Relaxed) {
            if daemon_writes {
                return reply.plain(Fh(fh), flags | FopenFlags::FOPEN_DIRECT_IO);
            }
            let mut io = node.io.lock();
            let backing = match &io.backing {
                Some((b, u)) if *u == upper => Some(b.clone()),
                Some(_) => None,
                None if self.no_backing.load(Ordering::Relaxed) => None,
                None => match reply.backing(&fd) {
                    Ok(b) => {
                        let b = Arc::new(b);
                        io.backing = Some((b.clone(), upper));
                        Some(b)
                    }
                    Err(e) => {
                        // A layer on a stacked fs (ELOOP) fails every time: stop trying.
                        let transient = matches!(
                            e.raw_os_error(),
                            Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
                        );
                        self.no_backing.store(!transient, Ordering::Relaxed);
                        None
                    }
                },
            };
            // Cached I/O once passthrough is off for good, for a file no open of which is
            // passthrough (the kernel refuses to mix the two); direct I/O otherwise.
            let cached_ok = io.backing.is_none() && self.no_backing.load(Ordering::Relaxed);
            drop(io);
            match backing {
                Some(b) => return reply.passthrough(Fh(fh), flags, &b),
                None if cached_ok => {}
                None => return reply.plain(Fh(fh), flags | FopenFlags::FOPEN_DIRECT_IO),
            }
        }
        reply.plain(Fh(fh), flags | FopenFlags::FOPEN_KEEP_CACHE);
    }
}

/// What open and create replies have in common.
pub(crate) trait OpenReply {
    fn backing(&self, fd: &std::os::fd::OwnedFd) -> std::io::Result<fuser::BackingId>;
    fn passthrough(self, fh: Fh, flags: FopenFlags, b: &fuser::BackingId);
    fn plain(self, fh: Fh, flags: FopenFlags);
}

impl OpenReply for ReplyOpen {
    fn backing(&self, fd: &std::os::fd::OwnedFd) -> std::io::Result<fuser::BackingId> {
        self.open_backing(fd)
    }
    fn passthrough(self, fh: Fh, flags: FopenFlags, b: &fuser::BackingId) {
        self.opened_passthrough(fh, flags, b)
    }
    fn plain(self, fh: Fh, flags: FopenFlags) {
        self.opened(fh, flags)
    }
}

pub(crate) struct Created<'a> {
    pub reply: ReplyCreate,
    pub ttl: Duration,
    pub attr: &'a FileAttr,
}

impl OpenReply for Created<'_> {
    fn backing(&self, fd: &std::os::fd::OwnedFd) -> std::io::Result<fuser::BackingId> {
        self.reply.open_backing(fd)
    }
    fn passthrough(self, fh: Fh, flags: FopenFlags, b: &fuser::BackingId) {
        self.reply
            .created_passthrough(&self.ttl, self.attr, Generation(0), fh, flags, b)
    }
    fn plain(self, fh: Fh, flags: FopenFlags) {
        self.reply
            .created(&self.ttl, self.attr, Generation(0), fh, flags)
    }
}
