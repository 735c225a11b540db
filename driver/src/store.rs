//! The on-disk store: layout, the metadata lock, atomic writes, staging and `fsck`.
//!
//! ```text
//! <root>/lock                      flock(LOCK_EX) while metadata changes (Store::lock)
//! <root>/blobs/sha256/<hex>        content-addressed blobs, verified before they appear
//! <root>/layers/<chain-hex>/diff   an extracted layer, kernel overlay format
//! <root>/layers/<chain-hex>/meta.json
//! <root>/tmp/                      staging, same filesystem; every entry flock'ed by its writer
//! ```
//!
//! Everything is written under `tmp/`, fsynced, then renamed into place, and the parent
//! directory fsynced: readers never see half-written state. Each staging entry is flock'ed by
//! its owner for its whole life, so `fsck` can tell abandoned staging (unlocked and older than
//! a few seconds) from staging in use. Creating staging does not take the store lock, so
//! callers may hold [`Store::lock`] while writing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::digest::{Digest, HashingReader, HashingWriter, chain_next};
use crate::error::{DigestKind, Error, Result, errno_err, io_err};
use crate::layer::LayerMeta;

/// Name of the lock file under the root.
const LOCK_FILE: &str = "lock";

/// The on-disk store rooted at one directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
}

/// The exclusive store lock; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _fd: OwnedFd,
}

/// A blob that was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its digest (the file name).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A private staging directory under `tmp/`, removed on drop unless persisted.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    dir: OwnedFd,
    persisted: bool,
}

/// What `fsck` found wrong with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsckProblem {
    /// A blob's content does not hash to its name.
    BlobMismatch { actual: Digest },
    /// A blob could not be read.
    BlobUnreadable { kind: io::ErrorKind },
    /// An entry under `blobs/sha256/` is not a regular file.
    NotAFile,
    /// An entry's name is not a 64-hex digest (orphan).
    BadName,
    /// A layer has no `diff` directory.
    LayerMissingDiff,
    /// A layer's `meta.json` is missing or unreadable.
    LayerBadMeta,
    /// A layer's meta names a chain id other than its directory, or one its
    /// parent and diff_id do not give.
    LayerChainMismatch { recorded: Digest },
    /// A layer's parent is not in the store (orphan).
    LayerMissingParent { parent: Digest },
    /// A staging entry under `tmp/` whose writer is gone (orphan).
    StaleStaging,
}

/// One finding of `fsck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckIssue {
    /// The entry, absolute.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: FsckProblem,
}

/// The result of `fsck`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Blobs whose content was hashed.
    pub blobs_checked: usize,
    /// Layer directories looked at.
    pub layers_checked: usize,
    /// Entries whose content is wrong.
    pub damaged: Vec<FsckIssue>,
    /// Entries nothing valid refers to (stray names, stale staging, layers without parent).
    pub orphans: Vec<FsckIssue>,
    /// True when the listed entries were removed.
    pub repaired: bool,
}

impl FsckReport {
    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.orphans.is_empty()
    }
}

impl Store {
    /// The default root: `$CAIRN_ROOT` if set, else `/var/lib/cairn` as root, else
    /// `$XDG_DATA_HOME/cairn` (or `~/.local/share/cairn`).
    pub fn default_root() -> Result<PathBuf> {
        let env = |k| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(r) = env("CAIRN_ROOT") {
            return Ok(PathBuf::from(r));
        }
        if rustix::process::geteuid().is_root() {
            return Ok(PathBuf::from("/var/lib/cairn"));
        }
        if let Some(x) = env("XDG_DATA_HOME") {
            return Ok(PathBuf::from(x).join("cairn"));
        }
        match env("HOME") {
            Some(h) => Ok(PathBuf::from(h).join(".local/share/cairn")),
            None => Err(Error::NoRoot),
        }
    }

    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for sub in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(io_err("create directory", p))?;
        }
        let lock = root.join(LOCK_FILE);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock)
            .map_err(io_err("create lock file", lock))?;
        Ok(Store { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `tmp/`, where staging lives.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// `layers/`.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// Takes the exclusive metadata lock (blocking). Each call opens the lock file anew, so the
    /// lock excludes other threads of this process as well as other processes.
    pub fn lock(&self) -> Result<StoreLock> {
        let p = self.root.join(LOCK_FILE);
        let fd = rustix::fs::open(&p, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(errno_err("open lock file", &p))?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive).map_err(errno_err("flock", &p))?;
        Ok(StoreLock { _fd: fd })
    }

    /// Where the blob with this digest lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// True when the blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let p = self.blob_path(d);
        File::open(&p).map_err(io_err("open blob", p))
    }

    /// Stores a blob from `reader`. The content is hashed on the way to a temp file and, when
    /// `expected` is given, must match it before the blob becomes visible.
    pub fn put_blob<R: Read>(&self, mut reader: R, expected: Option<&Digest>) -> Result<BlobInfo> {
        let mut w = self.blob_writer()?;
        let mut buf = io::BufWriter::new(&mut w);
        let tmp = self.tmp_dir();
        io::copy(&mut reader, &mut buf).map_err(io_err("write blob", &tmp))?;
        buf.flush().map_err(io_err("write blob", &tmp))?;
        drop(buf);
        w.commit(expected)
    }

    /// A writer for a new blob: bytes go to a flock'ed temp file in `tmp/` and are hashed;
    /// [`BlobWriter::commit`] makes the blob visible, dropping it without commit removes it.
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let (path, file) = self.temp_file()?;
        Ok(BlobWriter {
            store: self,
            out: HashingWriter::new(file),
            guard: scopeguard(path),
        })
    }

    /// Removes a blob; false when it was not there.
    pub fn remove_blob(&self, d: &Digest) -> Result<bool> {
        let p = self.blob_path(d);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove blob", p)(e)),
        }
    }

    /// All blobs present (names that are not digests are skipped; `fsck` reports them).
    pub fn blobs(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("blobs/sha256");
        let mut out: Vec<Digest> = read_names(&dir)?
            .iter()
            .filter_map(|n| Digest::from_hex(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Writes `data` to `rel` (relative to the root) atomically: temp file in `tmp/`, fsync,
    /// rename, fsync of the parent. Parents are created. Callers changing metadata should hold
    /// [`Store::lock`].
    pub fn write_atomic(&self, rel: &Path, data: &[u8]) -> Result<()> {
        let dest = self.root.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
        }
        let (tmp_path, mut file) = self.temp_file()?;
        let cleanup = scopeguard(tmp_path.clone());
        file.write_all(data).map_err(io_err("write", &tmp_path))?;
        file.sync_all().map_err(io_err("fsync", &tmp_path))?;
        std::fs::rename(&tmp_path, &dest).map_err(io_err("rename into place", &dest))?;
        cleanup.defuse();
        fsync_dir(dest.parent().unwrap_or(&self.root))
    }

    /// Creates a private staging directory `tmp/<unique>/`, flock'ed for its life.
    pub fn staging(&self) -> Result<Staging> {
        let tmp = self.tmp_dir();
        loop {
            let path = tmp.join(unique_name());
            match std::fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create staging directory", path)(e)),
            }
            let dir = rustix::fs::open(
                &path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno_err("open staging directory", &path))?;
            rustix::fs::flock(&dir, FlockOperation::NonBlockingLockExclusive)
                .map_err(errno_err("flock staging directory", &path))?;
            return Ok(Staging {
                path,
                dir,
                persisted: false,
            });
        }
    }

    /// A new flock'ed temp file in `tmp/`.
    fn temp_file(&self) -> Result<(PathBuf, File)> {
        loop {
            let path = self.tmp_dir().join(unique_name());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => {
                    rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive)
                        .map_err(errno_err("flock temp file", &path))?;
                    return Ok((path, f));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create temp file", path)(e)),
            }
        }
    }

    /// Bytes available to unprivileged writers on the store's filesystem.
    pub fn free_space(&self) -> Result<u64> {
        let st = rustix::fs::statvfs(&self.root).map_err(errno_err("statvfs", &self.root))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Checks every blob digest, every layer's presence and metadata, and staging leftovers.
    /// With `repair`, removes what it reports. Holds the store lock throughout.
    pub fn fsck(&self, repair: bool) -> Result<FsckReport> {
        let _lock = self.lock()?;
        let mut rep = FsckReport::default();
        let blobs = self.root.join("blobs/sha256");
        for name in read_names(&blobs)? {
            let path = blobs.join(&name);
            let Ok(d) = Digest::from_hex(&name) else {
                rep.orphans.push(issue(path, FsckProblem::BadName));
                continue;
            };
            if !path
                .symlink_metadata()
                .map(|m| m.is_file())
                .unwrap_or(false)
            {
                rep.damaged.push(issue(path, FsckProblem::NotAFile));
                continue;
            }
            rep.blobs_checked += 1;
            let actual = File::open(&path).and_then(|f| HashingReader::new(f).drain());
            match actual {
                Ok((a, _)) if a == d => {}
                Ok((actual, _)) => rep
                    .damaged
                    .push(issue(path, FsckProblem::BlobMismatch { actual })),
                Err(e) => rep
                    .damaged
                    .push(issue(path, FsckProblem::BlobUnreadable { kind: e.kind() })),
            }
        }
        self.fsck_layers(&mut rep)?;
        let tmp = self.tmp_dir();
        for name in read_names(&tmp)? {
            let path = tmp.join(&name);
            if is_stale(&path) {
                rep.orphans.push(issue(path, FsckProblem::StaleStaging));
            }
        }
        if repair {
            for i in rep.damaged.iter().chain(&rep.orphans) {
                remove_tree(&i.path)?;
            }
            fsync_dir(&blobs)?;
            fsync_dir(&self.layers_dir())?;
            rep.repaired = true;
        }
        Ok(rep)
    }

    fn fsck_layers(&self, rep: &mut FsckReport) -> Result<()> {
        let layers = self.layers_dir();
        let mut good: BTreeMap<Digest, (PathBuf, Option<Digest>)> = BTreeMap::new();
        for name in read_names(&layers)? {
            let path = layers.join(&name);
            let Ok(chain) = Digest::from_hex(&name) else {
                rep.orphans.push(issue(path, FsckProblem::BadName));
                continue;
            };
            rep.layers_checked += 1;
            let Ok(meta) = LayerMeta::read(&path.join("meta.json")) else {
                rep.damaged.push(issue(path, FsckProblem::LayerBadMeta));
                continue;
            };
            if meta.chain_id != chain || chain_next(meta.parent.as_ref(), &meta.diff_id) != chain {
                let recorded = meta.chain_id;
                rep.damaged
                    .push(issue(path, FsckProblem::LayerChainMismatch { recorded }));
                continue;
            }
            let diff = path.join("diff");
            if !diff.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false) {
                rep.damaged.push(issue(path, FsckProblem::LayerMissingDiff));
                continue;
            }
            good.insert(chain, (path, meta.parent));
        }
        // Layers whose parent is missing, transitively.
        let mut bad: BTreeSet<Digest> = BTreeSet::new();
        loop {
            let mut changed = false;
            for (chain, (path, parent)) in &good {
                let Some(p) = parent else { continue };
                if !bad.contains(chain) && (!good.contains_key(p) || bad.contains(p)) {
                    bad.insert(*chain);
                    let problem = FsckProblem::LayerMissingParent { parent: *p };
                    rep.orphans.push(issue(path.clone(), problem));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(())
    }
}

impl Staging {
    /// The staging directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An fd of the staging directory.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Renames the staging directory to `dest` (under `layers/`), unless `dest` exists. The
    /// caller holds the store lock. Returns false (and leaves the staging to be removed on
    /// drop) when `dest` was already there.
    pub fn persist(mut self, dest: &Path) -> Result<bool> {
        if dest.symlink_metadata().is_ok() {
            return Ok(false);
        }
        std::fs::rename(&self.path, dest).map_err(io_err("rename layer into place", dest))?;
        self.persisted = true;
        fsync_dir(dest.parent().unwrap_or(dest))?;
        Ok(true)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.persisted {
            // Best effort: a leftover is reported as stale staging by fsck.
            let _ = remove_tree(&self.path);
        }
    }
}

/// A blob being written (see [`Store::blob_writer`]).
pub struct BlobWriter<'a> {
    store: &'a Store,
    out: HashingWriter<File>,
    guard: TempGuard,
}

impl BlobWriter<'_> {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.out.byte_count()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        self.out.digest()
    }

    /// Checks the content against `expected` (when given), fsyncs it and renames it to its
    /// digest under `blobs/sha256/`. On a mismatch nothing becomes visible.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<BlobInfo> {
        let info = BlobInfo {
            digest: self.out.digest(),
            size: self.out.byte_count(),
        };
        if let Some(e) = expected
            && *e != info.digest
        {
            return Err(Error::DigestMismatch {
                kind: DigestKind::Blob,
                expected: *e,
                actual: info.digest,
            });
        }
        let tmp_path = self.guard.0.clone().unwrap_or_default();
        self.out
            .get_ref()
            .sync_all()
            .map_err(io_err("fsync", &tmp_path))?;
        let dest = self.store.blob_path(&info.digest);
        std::fs::rename(&tmp_path, &dest).map_err(io_err("rename blob into place", &dest))?;
        self.guard.0 = None;
        fsync_dir(&self.store.root.join("blobs/sha256"))?;
        Ok(info)
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn issue(path: PathBuf, problem: FsckProblem) -> FsckIssue {
    FsckIssue { path, problem }
}

/// Staging younger than this is never stale: its writer may not have flock'ed it yet.
const STAGING_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// True when a staging entry is not flock'ed by a live writer (and not brand new, unless the
/// writer its name records — `[removing-]<pid hex>-…` — is gone).
fn is_stale(path: &Path) -> bool {
    let writer_gone = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .and_then(|n| {
            let n = n.strip_prefix("removing-").unwrap_or(&n).to_string();
            let pid = n.split('-').next()?.to_string();
            u32::from_str_radix(&pid, 16).ok()
        })
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
    let young = !writer_gone
        && path
            .symlink_metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < STAGING_GRACE);
    if young {
        return false;
    }
    let Ok(fd) = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return true;
    };
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) != Err(Errno::WOULDBLOCK)
}

/// The names in a directory, sorted.
pub(crate) fn read_names(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let e = e.map_err(io_err("read directory", dir))?;
        out.push(e.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

/// fsync of a directory (makes renames in it durable).
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_err("open directory", dir))?;
    rustix::fs::fsync(&fd).map_err(errno_err("fsync directory", dir))
}

/// Removes a file or a whole tree without following symlinks; directories without write
/// permission (read-only dirs of an extracted layer) are made writable first.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    let md = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("stat", path)(e)),
    };
    if !md.is_dir() {
        return std::fs::remove_file(path).map_err(io_err("remove", path));
    }
    if md.permissions().mode() & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    }
    for e in std::fs::read_dir(path).map_err(io_err("read directory", path))? {
        let e = e.map_err(io_err("read directory", path))?;
        remove_tree(&e.path())?;
    }
    std::fs::remove_dir(path).map_err(io_err("remove directory", path))
}

/// A name unique among concurrent writers: pid, time, counter.
pub(crate) fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}-{:x}", std::process::id(), t, n)
}

/// Removes a temp file on drop unless defused.
struct TempGuard(Option<PathBuf>);

fn scopeguard(p: PathBuf) -> TempGuard {
    TempGuard(Some(p))
}

impl TempGuard {
    fn defuse(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_blob_verifies_before_visible() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let abc = Digest::of(b"abc");
        let info = s.put_blob(&b"abc"[..], Some(&abc)).unwrap();
        assert_eq!(
            info,
            BlobInfo {
                digest: abc,
                size: 3
            }
        );
        assert!(s.has_blob(&abc));
        let err = s.put_blob(&b"abd"[..], Some(&abc)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::DigestMismatch {
                    kind: DigestKind::Blob,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!s.has_blob(&Digest::of(b"abd")));
        assert!(read_names(&s.tmp_dir()).unwrap().is_empty());
        assert_eq!(s.blobs().unwrap(), vec![abc]);
    }

    #[test]
    fn write_atomic_and_lock() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let _l = s.lock().unwrap();
        s.write_atomic(Path::new("images/x.json"), b"{}").unwrap();
        assert_eq!(
            std::fs::read(t.path().join("images/x.json")).unwrap(),
            b"{}"
        );
        assert!(read_names(&s.tmp_dir()).unwrap().is_empty());
    }

    #[test]
    fn fsck_finds_and_repairs() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let good = s.put_blob(&b"good"[..], None).unwrap().digest;
        let bad = s.put_blob(&b"bad"[..], None).unwrap().digest;
        std::fs::write(s.blob_path(&bad), b"tampered").unwrap();
        std::fs::write(t.path().join("blobs/sha256/junk"), b"").unwrap();
        let leftover = t.path().join("tmp/leftover");
        std::fs::create_dir(&leftover).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::open(&leftover).unwrap().set_modified(old).unwrap();
        let live = s.staging().unwrap();
        // Old enough to be judged by its flock alone.
        File::open(live.path()).unwrap().set_modified(old).unwrap();
        let rep = s.fsck(false).unwrap();
        assert_eq!(rep.blobs_checked, 2);
        assert_eq!(rep.damaged.len(), 1);
        assert_eq!(rep.damaged[0].path, s.blob_path(&bad));
        assert!(matches!(
            rep.damaged[0].problem,
            FsckProblem::BlobMismatch { .. }
        ));
        let orphans: Vec<_> = rep.orphans.iter().map(|i| i.path.clone()).collect();
        assert!(orphans.contains(&t.path().join("blobs/sha256/junk")));
        assert!(orphans.contains(&t.path().join("tmp/leftover")));
        assert!(
            !orphans.contains(&live.path().to_path_buf()),
            "live staging is not stale"
        );
        let rep = s.fsck(true).unwrap();
        assert!(rep.repaired);
        assert!(s.fsck(false).unwrap().is_clean());
        assert!(s.has_blob(&good));
        assert!(live.path().exists());
        drop(live);
        assert!(read_names(&s.tmp_dir()).unwrap().is_empty());
    }

    #[test]
    fn default_root_honours_cairn_root() {
        // Only reads the environment; CAIRN_ROOT may legitimately be set by the caller.
        let r = Store::default_root();
        if let Some(v) = std::env::var_os("CAIRN_ROOT").filter(|v| !v.is_empty()) {
            assert_eq!(r.unwrap(), PathBuf::from(v));
        } else if rustix::process::geteuid().is_root() {
            assert_eq!(r.unwrap(), PathBuf::from("/var/lib/cairn"));
        }
    }
}
