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
use crate::layer::{Layer, describe};
use crate::readdir::{Merged, list_dir};
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
    /// fsync reaches the disk; false with `volatile`/`fsync=0` (fsync and copy-up syncs skipped).
    pub fsync: bool,
    /// The upper may hold fuse-overlayfs' forms: rewrite them at mount ([`crate::adopt`]).
    pub adopt_upper: bool,
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
            (Some(_), Some(w)) => Some(prepare_work(w, &layers[0])?),
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
        let ov = Overlay {
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

    /// Resolves `name` inside directory node `dir` across the stack.
    pub fn resolve(&self, dir: &Node, name: &OsStr) -> Result<Found> {
        let (upper_dir, dir_lowers) = {
            let st = dir.state.read();
            (st.upper_dir.clone(), st.lowers.clone())
        };
        let mut upper = None;
        let mut redirect = None;
        if let Some(ud) = &upper_dir {
            match rustix::fs::statat(ud.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if is_whiteout(&st) => return Ok(Found::Missing),
                Ok(st) => {
                    let kind = FileType::from_raw_mode(st.st_mode);
                    if kind != FileType::Directory {
                        return Ok(Found::Obj {
                            kind,
                            upper: Some(st),
                            lowers: vec![],
                            lower_attr: None,
                        });
                    }
                    let marks = dir_marks(ud.as_fd(), name)?;
                    let obj = Found::Obj {
                        kind,
                        upper: Some(st),
                        lowers: vec![],
                        lower_attr: None,
                    };
                    if marks.opaque {
                        return Ok(obj);
                    }
                    if let Some(abs) = marks
                        .redirect
                        .as_ref()
                        .and_then(|r| r.strip_prefix("/").ok())
                    {
                        let (lowers, lower_attr) =
                            self.redirect_stack(usize::from(self.has_upper), abs)?;
                        return Ok(Found::Obj {
                            kind,
                            upper: Some(st),
                            lowers,
                            lower_attr,
                        });
                    }
                    if dir_lowers.is_empty() {
                        return Ok(obj);
                    }
                    upper = Some(st);
                    redirect = marks.redirect;
                }
                Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if dir_lowers.is_empty() {
            return Ok(Found::Missing);
        }
        let view = self.view(&dir_lowers)?;
        let dir_obj = |lowers: Vec<Lower>, lower_attr| Found::Obj {
            kind: FileType::Directory,
            upper,
            lowers,
            lower_attr,
        };
        if let Some(r) = redirect {
            // A relative redirect names the directory's old name in the same parent.
            let (lowers, attr) = match view.lookup(r.as_os_str())? {
                Some(m) if m.kind == FileType::Directory => {
                    self.view_stack(&dir_lowers, &view, r.as_os_str(), &m)?
                }
                _ => (vec![], None),
            };
            return Ok(dir_obj(lowers, attr));
        }
        match view.lookup(name)? {
            None if upper.is_some() => Ok(dir_obj(vec![], None)),
            None => Ok(Found::Missing),
            Some(m) if m.kind == FileType::Directory => {
                let (lowers, attr) = self.view_stack(&dir_lowers, &view, name, &m)?;
                Ok(dir_obj(lowers, attr))
            }
            Some(_) if upper.is_some() => Ok(dir_obj(vec![], None)),
            Some(m) => {
                let l = &dir_lowers[m.top];
                let st = rustix::fs::statat(view.fd(m.top), name, AtFlags::SYMLINK_NOFOLLOW)?;
                Ok(Found::Obj {
                    kind: m.kind,
                    upper: None,
                    lowers: vec![Lower {
                        layer: l.layer,
                        path: l.path.join(name),
                    }],
                    lower_attr: Some(st),
                })
            }
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
            let marks = dir_marks(fd, name)?;
            out.push(Lower {
                layer: l.layer,
                path: l.path.join(name),
            });
            if marks.opaque {
                break;
            }
            if let Some(r) = marks.redirect {
                let target = match r.strip_prefix("/") {
                    Ok(abs) => abs.to_path_buf(),
                    Err(_) => l.path.join(&r),
                };
                out.extend(self.redirect_stack(l.layer + 1, &target)?.0);
                break;
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
            let marks = dir_marks(pfd.as_fd(), name)?;
            out.push(Lower {
                layer: layer.idx,
                path: path.clone(),
            });
            if marks.opaque {
                break;
            }
            if let Some(r) = marks.redirect {
                path = match r.strip_prefix("/") {
                    Ok(abs) => abs.to_path_buf(),
                    Err(_) => path.parent().unwrap_or(Path::new("")).join(r),
                };
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
            let key = match (&upper, &lower_attr) {
                (Some(u), _) if u.st_nlink > 1 => Some((self.layers[0].dev, u.st_ino)),
                (None, Some(l)) if l.st_nlink > 1 => {
                    Some((self.layers[lowers[0].layer].dev, l.st_ino))
                }
                _ => None,
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
                Ok((pfd, name)) => rustix::fs::statat(&*pfd, &name, AtFlags::SYMLINK_NOFOLLOW)?,
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
fn prepare_work(work: &Path, upper: &Layer) -> Result<OwnedFd> {
    let cfg = |msg: String| Error::Config(msg);
    let wl = Layer::open(0, work, false)?;
    if wl.dev != upper.dev {
        return Err(cfg(format!(
            "work dir {} is not on the same filesystem as upper dir {}",
            work.display(),
            upper.path.display()
        )));
    }
    let (w, u) = (canonical(work)?, canonical(&upper.path)?);
    if w.starts_with(&u) || u.starts_with(&w) {
        return Err(cfg(format!(
            "work dir {} and upper dir {} must not be inside each other",
            work.display(),
            upper.path.display()
        )));
    }
    match rustix::fs::mkdirat(&wl.root, "work", Mode::empty()) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(cfg(format!("{}/work: {}", work.display(), describe(e)))),
    }
    let fd = open_dir_at(&wl.root, OsStr::new("work"))?;
    crate::copyup::remove_children(&fd)?;
    Ok(fd)
}

fn canonical(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| Error::Config(format!("{}: {e}", p.display())))
}
