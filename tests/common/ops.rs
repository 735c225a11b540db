//! Filesystem operations performed through a merged mount, each with a printable label.
//!
//! `Op::apply` returns the observable result as text (empty for plain success) or the OS error;
//! the runner records `label => result` and both backends must produce the same record.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, RenameFlags, Timespec, Timestamps, XattrFlags};

/// `renameat2` flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameMode {
    /// Plain rename(2).
    Plain,
    /// RENAME_NOREPLACE.
    NoReplace,
    /// RENAME_EXCHANGE.
    Exchange,
}

/// One operation on paths relative to the mount root.
#[derive(Clone, Debug)]
pub enum Op {
    /// open(O_CREAT|O_EXCL|O_WRONLY, mode).
    Create(String, u32),
    /// open(O_WRONLY) then pwrite at an offset.
    Write(String, u64, Vec<u8>),
    /// open(O_WRONLY|O_APPEND) then write.
    Append(String, Vec<u8>),
    /// truncate(2).
    Truncate(String, u64),
    /// open(O_WRONLY|O_TRUNC).
    OpenTrunc(String),
    /// unlink(2).
    Unlink(String),
    /// mkdir(2).
    Mkdir(String, u32),
    /// rmdir(2).
    Rmdir(String),
    /// Recursive removal (like `rm -r`).
    RemoveAll(String),
    /// renameat2(from, to, flags).
    Rename(String, String, RenameMode),
    /// link(existing, new).
    Link(String, String),
    /// symlink(target, path).
    Symlink(String, String),
    /// mkfifo(path).
    Mkfifo(String),
    /// mknod(path, S_IFCHR, major:minor).
    Mkchar(String, u32, u32),
    /// chmod(2) (follows symlinks).
    Chmod(String, u32),
    /// lchown(2).
    Chown(String, u32, u32),
    /// lsetxattr(2), no flags.
    SetXattr(String, String, Vec<u8>),
    /// lremovexattr(2).
    RemoveXattr(String, String),
    /// lgetxattr(2): the value.
    GetXattr(String, String),
    /// llistxattr(2): the sorted names.
    ListXattr(String),
    /// utimensat(AT_SYMLINK_NOFOLLOW) setting atime and mtime to the given second.
    Utimens(String, i64),
    /// Read a whole file: its content (escaped, truncated).
    Read(String),
    /// readlink(2).
    Readlink(String),
    /// lstat(2): type, mode, owner, nlink and size (not for directories).
    Stat(String),
    /// readdir: the sorted names.
    ReadDir(String),
    /// Writes through a MAP_SHARED mapping of the first page, msync, munmap.
    MmapWrite(String, u64, Vec<u8>),
}

impl Op {
    /// Runs the op against the mount rooted at `root`.
    pub fn apply(&self, root: &Path) -> io::Result<String> {
        let p = |rel: &str| root.join(rel);
        let done = |r: io::Result<()>| r.map(|()| String::new());
        match self {
            Op::Create(f, mode) => done(
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(*mode)
                    .open(p(f))
                    .map(drop),
            ),
            Op::Write(f, off, data) => done(
                open_nonblock(&p(f), fs::OpenOptions::new().write(true))?.write_all_at(data, *off),
            ),
            Op::Append(f, data) => {
                done(open_nonblock(&p(f), fs::OpenOptions::new().append(true))?.write_all(data))
            }
            Op::Truncate(f, len) => {
                done(nix::unistd::truncate(&p(f), *len as i64).map_err(io::Error::from))
            }
            Op::OpenTrunc(f) => done(
                open_nonblock(&p(f), fs::OpenOptions::new().write(true).truncate(true)).map(drop),
            ),
            Op::Unlink(f) => done(fs::remove_file(p(f))),
            Op::Mkdir(d, mode) => {
                done(rustix::fs::mkdir(p(d), Mode::from_raw_mode(*mode)).map_err(Into::into))
            }
            Op::Rmdir(d) => done(fs::remove_dir(p(d))),
            Op::RemoveAll(d) => done(fs::remove_dir_all(p(d))),
            Op::Rename(a, b, mode) => {
                let flags = match mode {
                    RenameMode::Plain => RenameFlags::empty(),
                    RenameMode::NoReplace => RenameFlags::NOREPLACE,
                    RenameMode::Exchange => RenameFlags::EXCHANGE,
                };
                done(rustix::fs::renameat_with(CWD, p(a), CWD, p(b), flags).map_err(Into::into))
            }
            Op::Link(a, b) => done(fs::hard_link(p(a), p(b))),
            Op::Symlink(target, l) => done(std::os::unix::fs::symlink(target, p(l))),
            Op::Mkfifo(f) => done(mknod(&p(f), FileType::Fifo, 0)),
            Op::Mkchar(f, maj, min) => done(mknod(
                &p(f),
                FileType::CharacterDevice,
                rustix::fs::makedev(*maj, *min),
            )),
            Op::Chmod(f, mode) => {
                done(fs::set_permissions(p(f), fs::Permissions::from_mode(*mode)))
            }
            Op::Chown(f, uid, gid) => done(std::os::unix::fs::lchown(p(f), Some(*uid), Some(*gid))),
            Op::SetXattr(f, name, value) => done(
                rustix::fs::lsetxattr(p(f), name, value, XattrFlags::empty()).map_err(Into::into),
            ),
            Op::RemoveXattr(f, name) => {
                done(rustix::fs::lremovexattr(p(f), name).map_err(Into::into))
            }
            Op::GetXattr(f, name) => {
                let mut buf = vec![0u8; 1 << 16];
                let n = rustix::fs::lgetxattr(p(f), name, &mut buf[..])?;
                Ok(super::snapshot::escape(&buf[..n]))
            }
            Op::ListXattr(f) => {
                let mut buf = vec![0u8; 1 << 16];
                let n = rustix::fs::llistxattr(p(f), &mut buf[..])?;
                let mut names: Vec<String> = buf[..n]
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect();
                names.sort();
                Ok(names.join(","))
            }
            Op::Utimens(f, secs) => done(utimens(&p(f), *secs)),
            Op::Read(f) => {
                let mut data = Vec::new();
                open_nonblock(&p(f), fs::OpenOptions::new().read(true))?.read_to_end(&mut data)?;
                data.truncate(200);
                Ok(super::snapshot::escape(&data))
            }
            Op::Readlink(f) => Ok(fs::read_link(p(f))?.display().to_string()),
            Op::Stat(f) => stat_line(&p(f)),
            Op::ReadDir(d) => {
                let mut names: Vec<String> = fs::read_dir(p(d))?
                    .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect::<io::Result<_>>()?;
                names.sort();
                Ok(names.join(","))
            }
            Op::MmapWrite(f, off, data) => done(mmap_write(&p(f), *off, data)),
        }
    }
}

/// Opens with `opts`, never blocking on a fifo without a peer.
fn open_nonblock(p: &Path, opts: &mut fs::OpenOptions) -> io::Result<fs::File> {
    opts.custom_flags(libc::O_NONBLOCK).open(p)
}

fn mknod(p: &Path, kind: FileType, dev: u64) -> io::Result<()> {
    Ok(rustix::fs::mknodat(
        CWD,
        p,
        kind,
        Mode::from_raw_mode(0o644),
        dev,
    )?)
}

/// Sets atime and mtime of `p` (not following a final symlink) to `secs`.
pub fn utimens(p: &Path, secs: i64) -> io::Result<()> {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let ts = Timestamps {
        last_access: t,
        last_modification: t,
    };
    Ok(rustix::fs::utimensat(
        CWD,
        p,
        &ts,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

fn stat_line(p: &Path) -> io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p)?;
    let size = if m.is_dir() {
        String::new()
    } else {
        format!(" size={}", m.size())
    };
    Ok(format!(
        "type={:o} mode={:04o} uid={} gid={} nlink={}{size}",
        m.mode() >> 12,
        m.mode() & 0o7777,
        m.uid(),
        m.gid(),
        m.nlink()
    ))
}

fn mmap_write(p: &Path, off: u64, data: &[u8]) -> io::Result<()> {
    let f = fs::OpenOptions::new().read(true).write(true).open(p)?;
    let len = usize::try_from(f.metadata()?.len()).expect("file fits in memory");
    let end = usize::try_from(off).expect("offset fits") + data.len();
    assert!(
        end <= len && len > 0,
        "mmap write must stay inside the file"
    );
    use std::os::fd::AsRawFd;
    // SAFETY: mapping a fresh region (null hint) of an open file descriptor; the result is checked
    // against MAP_FAILED before use.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `addr` is a live, writable mapping of `len` bytes and `off + data.len() <= len` was
    // asserted above; the source slice cannot overlap a mapping we just created.
    unsafe {
        std::ptr::copy_nonoverlapping(
            data.as_ptr(),
            addr.cast::<u8>().add(off as usize),
            data.len(),
        );
    }
    // SAFETY: `addr`/`len` describe exactly the mapping created above.
    let synced = unsafe { libc::msync(addr, len, libc::MS_SYNC) };
    let sync_err = (synced != 0).then(io::Error::last_os_error);
    // SAFETY: unmapping exactly the mapping created above; no references into it remain.
    let unmapped = unsafe { libc::munmap(addr, len) };
    match (sync_err, unmapped) {
        (Some(e), _) => Err(e),
        (None, 0) => Ok(()),
        (None, _) => Err(io::Error::last_os_error()),
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = |d: &[u8]| String::from_utf8_lossy(d).into_owned();
        match self {
            Op::Create(p, m) => write!(f, "create {p} {m:04o}"),
            Op::Write(p, o, d) => write!(f, "write {p} @{o} {:?}", data(d)),
            Op::Append(p, d) => write!(f, "append {p} {:?}", data(d)),
            Op::Truncate(p, l) => write!(f, "truncate {p} {l}"),
            Op::OpenTrunc(p) => write!(f, "open-trunc {p}"),
            Op::Unlink(p) => write!(f, "unlink {p}"),
            Op::Mkdir(p, m) => write!(f, "mkdir {p} {m:04o}"),
            Op::Rmdir(p) => write!(f, "rmdir {p}"),
            Op::RemoveAll(p) => write!(f, "rm -r {p}"),
            Op::Rename(a, b, m) => write!(f, "rename {a} -> {b} {m:?}"),
            Op::Link(a, b) => write!(f, "link {a} -> {b}"),
            Op::Symlink(t, l) => write!(f, "symlink {l} -> {t}"),
            Op::Mkfifo(p) => write!(f, "mkfifo {p}"),
            Op::Mkchar(p, a, b) => write!(f, "mknod {p} c {a}:{b}"),
            Op::Chmod(p, m) => write!(f, "chmod {p} {m:04o}"),
            Op::Chown(p, u, g) => write!(f, "chown {p} {u}:{g}"),
            Op::SetXattr(p, n, v) => write!(f, "setxattr {p} {n}={:?}", data(v)),
            Op::RemoveXattr(p, n) => write!(f, "removexattr {p} {n}"),
            Op::GetXattr(p, n) => write!(f, "getxattr {p} {n}"),
            Op::ListXattr(p) => write!(f, "listxattr {p}"),
            Op::Utimens(p, s) => write!(f, "utimens {p} {s}"),
            Op::Read(p) => write!(f, "read {p}"),
            Op::Readlink(p) => write!(f, "readlink {p}"),
            Op::Stat(p) => write!(f, "stat {p}"),
            Op::ReadDir(p) => write!(f, "readdir {p}"),
            Op::MmapWrite(p, o, d) => write!(f, "mmap-write {p} @{o} {:?}", data(d)),
        }
    }
}
