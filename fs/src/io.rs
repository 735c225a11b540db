//! Open files and directories: handle tables, data I/O on the real file (upper after copy-up,
//! else lower), and directory streams over the merged entries.

use std::collections::HashMap;
use std::ffi::OsString;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use rustix::fs::{FallocateFlags, FileType, OFlags, SeekFrom};
use rustix::io::Errno;

use crate::error::{Error, Result, errno};
use crate::inode::Node;
use crate::overlay::Overlay;

/// Per-node open state shared by all its handles.
#[derive(Debug, Default)]
pub struct NodeIo {
    /// Open handles of the node.
    pub opens: usize,
    /// The fd of the latest open (to stat a file that was unlinked while open).
    pub fd: Option<Arc<OwnedFd>>,
    /// The FUSE passthrough backing file registered for this node, and whether it is the upper.
    pub backing: Option<(Arc<fuser::BackingId>, bool)>,
}

impl NodeIo {
    /// Any open fd of the node.
    pub fn any_fd(&self) -> Option<Arc<OwnedFd>> {
        self.fd.clone()
    }
}

/// An open regular file.
#[derive(Debug)]
pub struct FileHandle {
    pub node: Arc<Node>,
    pub fd: Arc<OwnedFd>,
    /// The real file is in the upper layer.
    pub upper: bool,
}

/// One entry of a directory stream.
#[derive(Debug, Clone)]
pub struct DirEnt {
    pub name: OsString,
    pub kind: FileType,
    pub ino: u64,
}

/// A directory stream's merged entries, kept on the node from a read at offset 0 (a rewind)
/// until the read past the end: the kernel sends no OPENDIR, so there is no handle to keep
/// them on, and it serves repeat listings from its own cache.
pub type Listing = Mutex<Option<Arc<Vec<DirEnt>>>>;

const SHARDS: usize = 16;

/// fh → handle, sharded.
#[derive(Debug)]
pub struct Handles<T> {
    shards: Vec<RwLock<HashMap<u64, Arc<T>>>>,
    next: AtomicU64,
}

impl<T> Default for Handles<T> {
    fn default() -> Self {
        Handles {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            next: AtomicU64::new(1),
        }
    }
}

impl<T> Handles<T> {
    /// Stores a handle and returns its number.
    pub fn insert(&self, h: T) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.shards[fh as usize % SHARDS]
            .write()
            .insert(fh, Arc::new(h));
        fh
    }
    /// The handle with this number.
    pub fn get(&self, fh: u64) -> Result<Arc<T>> {
        self.shards[fh as usize % SHARDS]
            .read()
            .get(&fh)
            .cloned()
            .ok_or(Error::Errno(Errno::BADF))
    }
    /// Removes and returns a handle.
    pub fn remove(&self, fh: u64) -> Option<Arc<T>> {
        self.shards[fh as usize % SHARDS].write().remove(&fh)
    }
}

impl Overlay {
    /// Opens a regular file; opening for writing (or O_TRUNC) copies it up first. The real fd
    /// of an upper file is always read-write so one passthrough backing serves every open.
    pub fn open_file(&self, id: u64, flags: i32) -> Result<FileHandle> {
        let node = self.nodes.get(id)?;
        let acc = flags & libc::O_ACCMODE;
        let trunc = flags & libc::O_TRUNC != 0;
        if acc != libc::O_RDONLY || trunc {
            if !self.has_upper {
                return errno(Errno::ROFS);
            }
            if trunc {
                // The kernel's overlayfs copies up with size 0 too.
                self.ensure_upper_truncated(&node)?;
            } else {
                self.ensure_upper(&node)?;
            }
        }
        let upper = node.is_upper();
        let mut oflags = if upper { OFlags::RDWR } else { OFlags::RDONLY };
        if trunc {
            oflags |= OFlags::TRUNC;
        }
        let fd = Arc::new(self.open_real(&node, oflags)?);
        {
            let mut io = node.io.lock();
            io.opens += 1;
            io.fd = Some(fd.clone());
        }
        Ok(FileHandle { node, fd, upper })
    }

    /// Wraps a freshly created file's fd as a handle.
    pub fn created_handle(&self, node: Arc<Node>, fd: OwnedFd) -> FileHandle {
        let fd = Arc::new(fd);
        let mut io = node.io.lock();
        io.opens += 1;
        io.fd = Some(fd.clone());
        drop(io);
        FileHandle {
            node,
            fd,
            upper: true,
        }
    }

    /// Closes a handle: the node's shared state goes with its last handle.
    pub fn release_file(&self, h: &FileHandle) {
        let mut io = h.node.io.lock();
        io.opens = io.opens.saturating_sub(1);
        if io.opens == 0 {
            io.fd = None;
            io.backing = None;
        }
    }

    /// Reads up to `size` bytes at `offset`.
    pub fn read(&self, h: &FileHandle, offset: u64, size: u32) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match rustix::io::pread(&*h.fd, &mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    /// Writes `data` at `offset`.
    pub fn write(&self, h: &FileHandle, offset: u64, data: &[u8]) -> Result<u32> {
        let mut done = 0;
        while done < data.len() {
            match rustix::io::pwrite(&*h.fd, &data[done..], offset + done as u64) {
                Ok(n) => done += n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done as u32)
    }

    /// fsync / fdatasync of the real file (nothing with `volatile`).
    pub fn fsync(&self, fd: &OwnedFd, datasync: bool) -> Result<()> {
        if self.cfg.volatile || !self.cfg.fsync {
            return Ok(());
        }
        if datasync {
            rustix::fs::fdatasync(fd)?;
        } else {
            rustix::fs::fsync(fd)?;
        }
        Ok(())
    }

    /// fallocate on the real file.
    pub fn fallocate(&self, h: &FileHandle, offset: u64, len: u64, mode: i32) -> Result<()> {
        let flags = FallocateFlags::from_bits_retain(mode as _);
        rustix::fs::fallocate(&*h.fd, flags, offset, len)?;
        Ok(())
    }

    /// lseek with SEEK_DATA / SEEK_HOLE (and the plain ones) on the real file.
    pub fn lseek(&self, h: &FileHandle, offset: i64, whence: i32) -> Result<i64> {
        let pos = match whence {
            libc::SEEK_SET => SeekFrom::Start(offset as u64),
            libc::SEEK_CUR => SeekFrom::Current(offset),
            libc::SEEK_END => SeekFrom::End(offset),
            libc::SEEK_DATA => SeekFrom::Data(offset as u64),
            libc::SEEK_HOLE => SeekFrom::Hole(offset as u64),
            _ => return errno(Errno::INVAL),
        };
        Ok(rustix::fs::seek(&*h.fd, pos)? as i64)
    }

    /// The entries of directory `id`, including "." and "..", for a read at `offset`.
    pub fn dir_stream(&self, id: u64, offset: u64) -> Result<Arc<Vec<DirEnt>>> {
        let node = self.nodes.get(id)?;
        if !node.is_dir() {
            return errno(Errno::NOTDIR);
        }
        let mut cur = node.listing.lock();
        if let Some(v) = cur
            .as_ref()
            .filter(|v| offset != 0 && offset as usize >= v.len())
        {
            // The read past the end: the stream is done, its memory goes.
            let v = v.clone();
            *cur = None;
            return Ok(v);
        }
        if offset == 0 || cur.is_none() {
            let h = &node;
            let parent = h.node_parent();
            let mut v = vec![
                DirEnt {
                    name: ".".into(),
                    kind: FileType::Directory,
                    ino: h.id,
                },
                DirEnt {
                    name: "..".into(),
                    kind: FileType::Directory,
                    ino: parent,
                },
            ];
            for e in self.dir_entries(h)? {
                let ino = match self.nodes.peek(h.id, &e.name) {
                    Some(n) => n.id,
                    None => synthetic_ino(h.id, &e.name),
                };
                v.push(DirEnt {
                    name: e.name,
                    kind: e.kind,
                    ino,
                });
            }
            *cur = Some(Arc::new(v));
        }
        Ok(cur.clone().expect("filled above"))
    }

    /// Filesystem statistics of the upper layer (or the top lower layer).
    pub fn statfs(&self) -> Result<rustix::fs::StatVfs> {
        Ok(rustix::fs::fstatvfs(&self.layers[0].root)?)
    }
}

/// An inode number for a readdir entry the kernel has not looked up yet (never 0 or 1).
fn synthetic_ino(dir: u64, name: &OsString) -> u64 {
    let mut s = DefaultHasher::new();
    dir.hash(&mut s);
    name.hash(&mut s);
    (s.finish() | (1 << 63)) & !1
}
