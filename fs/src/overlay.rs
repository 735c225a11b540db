//! The union itself: the layer stack, name resolution across it (upper probe, cached merged
//! views of the lower directories, opaque dirs and redirects), node creation and attributes.
//! Every method returns a `Result`; the FUSE adapter only translates.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lru::LruCache;
use parking_lot::Mutex;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use smallvec::smallvec;

use crate::error::{Error, Result, errno};
use crate::inode::{Lower, Node, NodeState, NodeTable, ROOT};
use crate::layer::Layer;
use crate::readdir::{Merged, list_dir};
use crate::rules::{
    self, Identity, LowerDirMarks, LowerEntry, RedirectDir, StackNext, UpperEntry, UpperVerdict,
    Winner,
};
pub use crate::view::LowerView;
use crate::whiteout::{dir_marks, is_whiteout, make_whiteout};

/// Inode number → the paths of its names, for the hardlinked files of one layer.
pub type LinkMap = HashMap<u64, Vec<PathBuf>>;

/// How the union is put together.
#[derive(Debug, Clone)]
pub struct Config {
    /// Lower layers, top first.
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    /// Kernel cache lifetime of entries and attributes.
    pub timeout: std::time::Duration,
    /// Use FUSE passthrough for file data when the kernel offers it.
    pub passthrough: bool,
    /// Honour OCI-form whiteouts (`.wh.*`) in lower layers.
    pub oci_whiteouts: bool,
    /// Owners shown mapped (fuse-overlayfs `uidmapping=`, `gidmapping=`, `squash_to_*`).
    pub ids: crate::idmap::IdMap,
    /// Every directory shows a link count of 1 (fuse-overlayfs `static_nlink`).
    pub static_nlink: bool,
    /// fsync reaches the disk; false with fuse-overlayfs' `fsync=0` (fsync and copy-up syncs
    /// skipped, without `volatile`'s mark on the work dir).
    pub fsync: bool,
    /// The upper may hold fuse-overlayfs' forms: rewrite them at mount ([`crate::adopt`]).
    pub adopt_upper: bool,
    /// `redirect_dir=`: whether directory renames record redirects and lookups follow them.
    pub redirect_dir: RedirectDir,
    /// `index=on` (cairn's default): the names of a lower hard link stay one file across
    /// copy-up; off (the kernel's default): a copy-up breaks the link.
    pub index: bool,
    /// `volatile`: no fsync reaches the upper; the work dir is marked so that no later mount
    /// uses this upper (after a crash it may be inconsistent), as the kernel does.
    pub volatile: bool,
}

/// What a name resolves to in a directory.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived, returned once per lookup
pub enum Found {
    Missing,
    Obj {
        kind: FileType,
        upper: Option<Stat>,
        lowers: Vec<Lower>,
        lower_attr: Option<Stat>,
    },
}

/// The union filesystem.
#[derive(Debug)]
pub struct Overlay {
    /// Upper first (when there is one), then lowers top to bottom.
    pub layers: Vec<Layer>,
    pub has_upper: bool,
    /// `workdir/work`, where objects are prepared before they appear in the upper.
    pub work: Option<OwnedFd>,
    pub nodes: NodeTable,
    views: Mutex<LruCache<Arc<[Lower]>, Arc<LowerView>>>,
    tmp: AtomicU64,
    /// Per lower layer: inode → paths of its files with more than one link (built on demand).
    hardlinks: Mutex<HashMap<usize, Arc<LinkMap>>>,
    /// Kernel cache invalidation, once the session exists.
    pub notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    /// Name (in the work dir) of the whiteout inode new whiteouts are hardlinks of.
    shared_whiteout: Mutex<Option<OsString>>,
    pub cfg: Config,
    /// How copy-up makes copied data safe before the rename.
    pub copy_sync: crate::copyup::CopySync,
}

impl Overlay {
    /// Opens every layer, prepares the work directory and the root node.
    pub fn new(cfg: Config) -> Result<Overlay> {
        if let (true, Some(u)) = (cfg.adopt_upper, &cfg.upper) {
            crate::adopt::adopt_fuse_overlayfs_upper(u)?;
        }
        let mut layers = Vec::new();
        if let Some(u) = &cfg.upper {
            layers.push(Layer::open(0, u, false)?);
        }
        for l in &cfg.lowers {
            layers.push(Layer::open(layers.len(), l, cfg.oci_whiteouts)?);
        }
        if layers.len() == usize::from(cfg.upper.is_some()) {
            return Err(Error::Config("no lower layer given".into()));
        }
        let work = match (&cfg.upper, &cfg.work) {
            (Some(_), Some(w)) => Some(prepare_work(w, &layers[0], cfg.volatile)?),
            (Some(_), None) => return Err(Error::Config("an upper layer needs a work dir".into())),
            (None, Some(_)) => return Err(Error::Config("a work dir needs an upper layer".into())),
            (None, None) => None,
        };
        let has_upper = cfg.upper.is_some();
        let first_lower = usize::from(has_upper);
        let lowers: Arc<[Lower]> = (first_lower..layers.len())
            .map(|layer| Lower {
                layer,
                path: PathBuf::new(),
            })
            .collect();
        let lower_attr = Some(rustix::fs::fstat(&layers[first_lower].root)?);
        let upper_dir = if has_upper {
            Some(Arc::new(layers[0].root.try_clone().map_err(io_err)?))
        } else {
            None
        };
        let copy_sync =
            crate::copyup::CopySync::for_upper(layers[0].root.as_fd(), cfg.volatile || !cfg.fsync);
        let ov = Overlay {
            copy_sync,
            layers,
            has_upper,
            work,
            nodes: NodeTable::default(),
            views: Mutex::new(LruCache::new(NonZeroUsize::new(1024).expect("nonzero"))),
            tmp: AtomicU64::new(0),
            shared_whiteout: Mutex::new(None),
            hardlinks: Mutex::new(HashMap::new()),
            notifier: Arc::default(),
            cfg,
        };
        ov.nodes.insert(
            FileType::Directory,
            NodeState {
                links: smallvec![],
                upper: has_upper,
                upper_dir,
                lowers,
                lower_attr,
                keys: smallvec![],
            },
            Some(ROOT),
        );
        Ok(ov)
    }

    /// A fresh temporary name for the work directory.
    pub fn tmp_name(&self) -> OsString {
        let n = self.tmp.fetch_add(1, Ordering::Relaxed);
        OsString::from(format!("#cairn.{}.{n}", std::process::id()))
    }

    /// The work directory fd (only mounts with an upper have one).
    pub fn work(&self) -> Result<&OwnedFd> {
        self.work.as_ref().ok_or(Error::Errno(Errno::ROFS))
    }

    /// Creates a whiteout `name` in `dir` as a hardlink of one shared whiteout inode, as the
    /// kernel does: no inode allocation per whiteout. Falls back to mknod.
    pub fn whiteout(&self, dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
        let work = self.work()?;
        let mut shared = self.shared_whiteout.lock();
        for _ in 0..2 {
            let cur = match shared.as_ref() {
                Some(n) => n.clone(),
                None => {
                    let n = self.tmp_name();
                    match make_whiteout(work.as_fd(), &n) {
                        Ok(()) => *shared = Some(n.clone()),
                        Err(_) => break,
                    }
                    n
                }
            };
            match rustix::fs::linkat(work, &cur, dir, name, AtFlags::empty()) {
                Ok(()) => return Ok(()),
                Err(Errno::MLINK) => *shared = None,
                Err(Errno::EXIST) => return errno(Errno::EXIST),
                Err(_) => break,
            }
        }
        drop(shared);
        make_whiteout(dir, name)
    }

    /// Tells the kernel to drop its cached attributes of a node (changed behind its back).
    pub fn invalidate_attr(&self, id: u64) {
        if let Some(n) = self.notifier.get() {
            let _ = n.inval_inode(fuser::INodeNo(id), -1, 0);
        }
    }

    /// The hardlinked files of a lower layer by inode (one walk of the layer, then cached).
    pub fn hardlinks(&self, layer: usize) -> Result<Arc<LinkMap>> {
        if let Some(m) = self.hardlinks.lock().get(&layer) {
            return Ok(m.clone());
        }
        let mut map: HashMap<u64, Vec<PathBuf>> = HashMap::new();
        let root = self.layers[layer].open_dir(Path::new(""))?;
        let mut stack = vec![(root, PathBuf::new())];
        while let Some((dir, rel)) = stack.pop() {
            for e in list_dir(dir.as_fd(), false)?.entries {
                let path = rel.join(&e.name);
                match e.kind {
                    FileType::Directory => stack.push((open_dir_at(&dir, &e.name)?, path)),
                    _ => {
                        let st = rustix::fs::statat(&dir, &e.name, AtFlags::SYMLINK_NOFOLLOW)?;
                        if st.st_nlink > 1 {
                            map.entry(st.st_ino).or_default().push(path);
                        }
                    }
                }
            }
        }
        let map = Arc::new(map);
        self.hardlinks.lock().insert(layer, map.clone());
        Ok(map)
    }

    /// The merged lower view of a stack of lower directories (cached).
    pub fn view(&self, lowers: &Arc<[Lower]>) -> Result<Arc<LowerView>> {
        if let Some(v) = self.views.lock().get(lowers) {
            return Ok(v.clone());
        }
        let mut dirs = Vec::with_capacity(lowers.len());
        for l in lowers.iter() {
            let layer = &self.layers[l.layer];
            dirs.push((layer.open_dir(&l.path)?, layer.oci_whiteouts));
        }
        let view = Arc::new(LowerView::new(dirs)?);
        self.views.lock().put(lowers.clone(), view.clone());
        Ok(view)
    }

    /// Resolves `name` inside directory node `dir` across the stack: observes the upper entry
    /// and the lower view, and lets [`rules::upper_verdict`] and [`rules::winner`] decide.
    pub fn resolve(&self, dir: &Node, name: &OsStr) -> Result<Found> {
        let (upper_dir, dir_lowers) = {
            let st = dir.state.read();
            (st.upper_dir.clone(), st.lowers.clone())
        };
        let (entry, upper) = match &upper_dir {
            Some(ud) => upper_entry(ud, name)?,
            None => (UpperEntry::Absent, None),
        };
        let redirects = self.cfg.redirect_dir;
        let obj = |kind, lowers: Vec<Lower>, lower_attr| Found::Obj {
            kind,
            upper,
            lowers,
            lower_attr,
        };
        let upper_kind = upper.map(|st| FileType::from_raw_mode(st.st_mode));
        let lower_name = match rules::upper_verdict(&entry, name, !dir_lowers.is_empty(), redirects)
        {
            UpperVerdict::Missing => return Ok(Found::Missing),
            UpperVerdict::UpperOnly => {
                return Ok(obj(upper_kind.expect("upper entry"), vec![], None));
            }
            UpperVerdict::MergeAt(abs) => {
                let (lowers, attr) = self.redirect_stack(usize::from(self.has_upper), &abs)?;
                return Ok(obj(FileType::Directory, lowers, attr));
            }
            UpperVerdict::MergeName(n) => n,
            UpperVerdict::Lowers if dir_lowers.is_empty() => return Ok(Found::Missing),
            UpperVerdict::Lowers => name.to_os_string(),
        };
        let view = self.view(&dir_lowers)?;
        let m = view.lookup(&lower_name)?;
        let lower = match &m {
            None => LowerEntry::Absent,
            Some(m) if m.kind == FileType::Directory => LowerEntry::Dir,
            Some(_) => LowerEntry::NonDir,
        };
        match (rules::winner(upper.is_some(), lower), m) {
            (Winner::Missing, _) => Ok(Found::Missing),
            (Winner::UpperDirAlone, _) => Ok(obj(FileType::Directory, vec![], None)),
            (Winner::MergedDir, Some(m)) => {
                let (lowers, attr) = self.view_stack(&dir_lowers, &view, &lower_name, &m)?;
                Ok(obj(FileType::Directory, lowers, attr))
            }
            (_, Some(m)) => {
                let l = &dir_lowers[m.top];
                let st = rustix::fs::statat(view.fd(m.top), name, AtFlags::SYMLINK_NOFOLLOW)?;
                Ok(obj(
                    m.kind,
                    vec![Lower {
                        layer: l.layer,
                        path: l.path.join(name),
                    }],
                    Some(st),
                ))
            }
            (_, None) => Ok(Found::Missing),
        }
    }

    /// The lower directories a merged subdirectory `name` stacks, from its parent's view.
    fn view_stack(
        &self,
        parent: &[Lower],
        view: &LowerView,
        name: &OsStr,
        m: &Merged,
    ) -> Result<(Vec<Lower>, Option<Stat>)> {
        let mut out = Vec::new();
        let mut attr = None;
        for &li in &m.dir_layers {
            let li = usize::from(li);
            let l = &parent[li];
            let fd = view.fd(li).as_fd();
            if attr.is_none() {
                attr = Some(rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)?);
            }
            let path = l.path.join(name);
            let next = rules::stack_next(&path, &lower_marks(fd, name)?, self.cfg.redirect_dir);
            out.push(Lower {
                layer: l.layer,
                path,
            });
            match next {
                StackNext::Continue => {}
                StackNext::Stop => break,
                StackNext::Jump(target) => {
                    out.extend(self.redirect_stack(l.layer + 1, &target)?.0);
                    break;
                }
            }
        }
        Ok((out, attr))
    }

    /// The lower directories found at `path` in layers `from..`, following redirects.
    fn redirect_stack(&self, from: usize, path: &Path) -> Result<(Vec<Lower>, Option<Stat>)> {
        let mut out = Vec::new();
        let mut attr = None;
        let mut path = path.to_path_buf();
        for layer in self.layers.iter().skip(from) {
            let Ok((pfd, name)) = layer.parent_of(&path) else {
                continue;
            };
            let st = match rustix::fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT | Errno::NOTDIR) => continue,
                Err(e) => return Err(e.into()),
            };
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                break;
            }
            attr.get_or_insert(st);
            let next = rules::stack_next(
                &path,
                &lower_marks(pfd.as_fd(), name)?,
                self.cfg.redirect_dir,
            );
            out.push(Lower {
                layer: layer.idx,
                path: path.clone(),
            });
            match next {
                StackNext::Continue => {}
                StackNext::Stop => break,
                StackNext::Jump(target) => path = target,
            }
        }
        Ok((out, attr))
    }

    /// Looks up `name` in `parent`, creating or reusing its node (counts one kernel lookup).
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<(Arc<Node>, Stat)> {
        if let Some(n) = self.nodes.lookup_cached(parent, name) {
            return match self.stat(&n) {
                Ok(st) => Ok((n, st)),
                Err(e) => {
                    self.nodes.forget(n.id, 1);
                    Err(e)
                }
            };
        }
        let dir = self.nodes.get(parent)?;
        if !dir.is_dir() {
            return errno(Errno::NOTDIR);
        }
        match self.resolve(&dir, name)? {
            Found::Missing => errno(Errno::NOENT),
            Found::Obj {
                kind,
                upper,
                lowers,
                lower_attr,
            } => {
                let node = self.make_node(parent, name, kind, upper, lowers, lower_attr)?;
                let st = self.stat(&node)?;
                Ok((node, st))
            }
        }
    }

    /// Creates (or, for another name of a hardlinked object, reuses) the node of a resolved name.
    pub fn make_node(
        &self,
        parent: u64,
        name: &OsStr,
        kind: FileType,
        upper: Option<Stat>,
        lowers: Vec<Lower>,
        lower_attr: Option<Stat>,
    ) -> Result<Arc<Node>> {
        let mut keys = smallvec![];
        if kind != FileType::Directory {
            let ino_nlink = |st: &Stat| (st.st_ino, st.st_nlink);
            let key = match rules::identity(
                upper.as_ref().map(ino_nlink),
                lower_attr.as_ref().map(ino_nlink),
                self.cfg.index,
                self.has_upper,
            ) {
                Identity::Upper(ino) => Some((self.layers[0].dev, ino)),
                Identity::Lower(ino) => Some((self.layers[lowers[0].layer].dev, ino)),
                Identity::Own => None,
            };
            if let Some(key) = key {
                if let Some(n) = self.nodes.lookup_link(key) {
                    n.state.write().links.push((parent, name.to_os_string()));
                    self.nodes.bind(parent, name, n.id);
                    if upper.is_none() && n.is_upper() {
                        // Another name of a lower hardlink that was copied up: link it too.
                        self.link_alias_up(&n, parent, name)?;
                    }
                    return Ok(n);
                }
                keys.push(key);
            }
        }
        let upper_dir = match (&upper, kind) {
            (Some(_), FileType::Directory) => {
                let pfd = self.upper_dir_of(parent)?;
                Some(Arc::new(open_dir_at(&pfd, name)?))
            }
            _ => None,
        };
        let node = self.nodes.insert(
            kind,
            NodeState {
                links: smallvec![(parent, name.to_os_string())],
                upper: upper.is_some(),
                upper_dir,
                lowers: lowers.into(),
                lower_attr,
                keys: keys.clone(),
            },
            None,
        );
        for k in keys {
            self.nodes.add_link_key(k, node.id);
        }
        Ok(node)
    }

    /// The upper directory fd of directory node `id`.
    pub fn upper_dir_of(&self, id: u64) -> Result<Arc<OwnedFd>> {
        self.nodes
            .get(id)?
            .state
            .read()
            .upper_dir
            .clone()
            .ok_or(Error::Errno(Errno::NOENT))
    }

    /// Where an upper node lives: its parent's upper fd and its name.
    pub fn upper_loc(&self, node: &Node) -> Result<(Arc<OwnedFd>, OsString)> {
        let links = node.state.read().links.clone();
        for (p, name) in links {
            if let Ok(fd) = self.upper_dir_of(p) {
                return Ok((fd, name));
            }
        }
        errno(Errno::NOENT)
    }

    /// Attributes of a node as the merged view shows them.
    pub fn stat(&self, node: &Node) -> Result<Stat> {
        let (upper, upper_dir, nlower, lower_attr) = {
            let st = node.state.read();
            (
                st.upper,
                st.upper_dir.clone(),
                st.lowers.len(),
                st.lower_attr,
            )
        };
        let mut st = if let Some(fd) = upper_dir {
            rustix::fs::fstat(&*fd)?
        } else if upper {
            match self.upper_loc(node) {
                Ok((pfd, name)) => {
                    let mut st = rustix::fs::statat(&*pfd, &name, AtFlags::SYMLINK_NOFOLLOW)?;
                    if self.cfg.index {
                        st.st_nlink = indexed_nlink(pfd.as_fd(), &name, st.st_nlink);
                    }
                    st
                }
                Err(e) => match node.io.lock().any_fd() {
                    Some(fd) => rustix::fs::fstat(&*fd)?,
                    None => return Err(e),
                },
            }
        } else {
            lower_attr.ok_or(Error::Errno(Errno::NOENT))?
        };
        st.st_ino = node.id;
        if node.is_dir() && (self.cfg.static_nlink || usize::from(upper) + nlower > 1) {
            st.st_nlink = 1;
        }
        if !self.cfg.ids.is_identity() {
            (st.st_uid, st.st_gid) = self.cfg.ids.shown(st.st_uid, st.st_gid);
        }
        Ok(st)
    }

    /// Opens the real object of a node (upper if copied up, else lower) with `flags`.
    pub fn open_real(&self, node: &Node, flags: OFlags) -> Result<OwnedFd> {
        let (upper, upper_dir, lower) = {
            let st = node.state.read();
            (st.upper, st.upper_dir.clone(), st.lowers.first().cloned())
        };
        if let Some(fd) = upper_dir {
            return Ok(rustix::fs::openat(
                &*fd,
                ".",
                flags | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
        }
        if upper {
            let (pfd, name) = self.upper_loc(node)?;
            return Ok(rustix::fs::openat(
                &*pfd,
                &name,
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
        }
        let l = lower.ok_or(Error::Errno(Errno::NOENT))?;
        self.layers[l.layer].open_path(&l.path, flags)
    }

    /// True if `name` is visible in the lower layers of directory node `dir` (so removing it
    /// from the upper needs a whiteout).
    pub fn lower_positive(&self, dir: &Node, name: &OsStr) -> Result<bool> {
        let lowers = dir.state.read().lowers.clone();
        if lowers.is_empty() {
            return Ok(false);
        }
        Ok(self.view(&lowers)?.lookup(name)?.is_some())
    }
}

/// Opens a directory `name` inside `dir` (no symlink following).
pub fn open_dir_at(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn io_err(e: std::io::Error) -> Error {
    Error::Errno(Errno::from_io_error(&e).unwrap_or(Errno::IO))
}

/// Checks the work dir (same filesystem as the upper, neither inside the other), creates
/// `work/work` like the kernel does and empties it of leftovers from a crash.
/// A volatile mount leaves `work/incompat/volatile` behind; later mounts refuse the upper.
fn prepare_work(work: &Path, upper: &Layer, volatile: bool) -> Result<OwnedFd> {
    let wl = Layer::open(0, work, false)?;
    if wl.dev != upper.dev {
        return Err(Error::Config(format!(
            "work dir {} is not on the same filesystem as upper dir {}",
            work.display(),
            upper.path.display()
        )));
    }
    let (w, u) = (canonical(work)?, canonical(&upper.path)?);
    if w.starts_with(&u) || u.starts_with(&w) {
        return Err(Error::Config(format!(
            "work dir {} and upper dir {} must not be inside each other",
            work.display(),
            upper.path.display()
        )));
    }
    match rustix::fs::mkdirat(&wl.root, "work", Mode::empty()) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(Error::sys("work dir", work.join("work"), e)),
    }
    let fd = open_dir_at(&wl.root, OsStr::new("work"))?;
    let marker = Path::new("incompat/volatile");
    match rustix::fs::statat(&fd, marker, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => {
            return Err(Error::Config(format!(
                "{}/work/{}: left by a volatile mount; the upper {} may be inconsistent: \
                 remove the upper and work dirs (or, if the system did not crash, that \
                 directory)",
                work.display(),
                marker.display(),
                upper.path.display()
            )));
        }
        Err(Errno::NOENT) => {}
        Err(e) => return Err(Error::sys("work dir", work.join("work").join(marker), e)),
    }
    crate::copyup::remove_children(&fd)?;
    if volatile {
        // The kernel's layout: work/incompat/volatile/dirty.
        let mark = |d: &str, e| Error::sys("work dir", work.join("work").join(d), e);
        for d in ["incompat", "incompat/volatile"] {
            rustix::fs::mkdirat(&fd, d, Mode::from_raw_mode(0o700)).map_err(|e| mark(d, e))?;
        }
        let dirty = "incompat/volatile/dirty";
        rustix::fs::openat(
            &fd,
            dirty,
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| mark(dirty, e))?;
    }
    Ok(fd)
}

fn canonical(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| Error::io("canonicalize", p, e))
}

/// What the upper directory `dir` holds at `name`, and its attributes when it holds something.
fn upper_entry(dir: &OwnedFd, name: &OsStr) -> Result<(UpperEntry, Option<Stat>)> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if is_whiteout(&st) => Ok((UpperEntry::Whiteout, None)),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            let marks = dir_marks(dir.as_fd(), name)?;
            let e = UpperEntry::Dir {
                opaque: marks.opaque,
                redirect: marks.redirect,
            };
            Ok((e, Some(st)))
        }
        Ok(st) => Ok((UpperEntry::NonDir, Some(st))),
        Err(Errno::NOENT) => Ok((UpperEntry::Absent, None)),
        Err(e) => Err(e.into()),
    }
}

/// The overlay markers of lower directory `name` in `dir`, for the stacking rule.
fn lower_marks(dir: BorrowedFd<'_>, name: &OsStr) -> Result<LowerDirMarks> {
    let m = dir_marks(dir, name)?;
    Ok(LowerDirMarks {
        opaque: m.opaque,
        redirect: m.redirect,
    })
}

/// The merged view's link count of upper file `name` in `dir` (index=on): the upper's own,
/// adjusted by the kernel's persistent overlay nlink xattr when the file is an indexed link.
fn indexed_nlink(dir: BorrowedFd<'_>, name: &OsStr, upper_nlink: u64) -> u64 {
    let mut buf = [0u8; 16];
    let path = crate::layer::proc_path(dir, name);
    match rustix::fs::lgetxattr(&path, crate::whiteout::NLINK_XATTR, &mut buf[..]) {
        Ok(n) => rules::overlay_nlink(upper_nlink, Some(&buf[..n])),
        Err(_) => upper_nlink,
    }
}
