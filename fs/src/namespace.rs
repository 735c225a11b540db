//! Operations that change names: create, mknod, mkdir, symlink, link, unlink, rmdir, rename.
//! Objects replacing a whiteout are built in the work dir and exchanged with it atomically;
//! removing a name that lower layers also have leaves a whiteout (RENAME_WHITEOUT).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;

use crate::copyup::{remove_children, remove_entry};
use crate::error::{Result, errno};
use crate::inode::Node;
use crate::overlay::{Found, Overlay};
use crate::readdir::{RawEntry, list_dir};
use crate::rules::{self, CreatePlan, DirMark, RemovePlan, RenameWay, Side, UpperName};
use crate::whiteout::{is_whiteout, set_opaque, set_redirect};

/// The caller of an operation (owner of what it creates).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// What `create_obj` makes.
#[derive(Debug, Clone, Copy)]
pub enum New<'a> {
    File,
    Dir,
    Special(FileType, u64),
    Symlink(&'a Path),
}

fn upper_name(dir: &OwnedFd, name: &OsStr) -> Result<UpperName> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if is_whiteout(&st) => Ok(UpperName::Whiteout),
        Ok(_) => Ok(UpperName::Present),
        Err(Errno::NOENT) => Ok(UpperName::Absent),
        Err(e) => Err(e.into()),
    }
}

impl Overlay {
    /// The node at (parent, name); the kernel always looked it up before changing it.
    fn child(&self, parent: u64, name: &OsStr) -> Result<Arc<Node>> {
        if let Some(n) = self.nodes.peek(parent, name) {
            return Ok(n);
        }
        let (node, _) = self.lookup(parent, name)?;
        self.nodes.forget(node.id, 1);
        Ok(node)
    }

    fn child_opt(&self, parent: u64, name: &OsStr) -> Result<Option<Arc<Node>>> {
        match self.child(parent, name) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.is(Errno::NOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A writable upper directory for a change inside directory node `parent`.
    fn writable_dir(&self, parent: u64) -> Result<(Arc<Node>, Arc<OwnedFd>)> {
        if !self.has_upper {
            return errno(Errno::ROFS);
        }
        let dir = self.nodes.get(parent)?;
        if !dir.is_dir() {
            return errno(Errno::NOTDIR);
        }
        self.ensure_upper(&dir)?;
        let fd = self.upper_dir_of(parent)?;
        Ok((dir, fd))
    }

    /// Creates a new object `name` in `parent`, owned by the caller; returns its node, its
    /// attributes and, for regular files, an open read-write fd.
    pub fn create_obj(
        &self,
        parent: u64,
        name: &OsStr,
        what: New<'_>,
        mode: u32,
        caller: Caller,
    ) -> Result<(Arc<Node>, Stat, Option<OwnedFd>)> {
        let caller = Caller {
            uid: self.cfg.ids.stored_uid(caller.uid),
            gid: self.cfg.ids.stored_gid(caller.gid),
        };
        let (dir, pfd) = self.writable_dir(parent)?;
        let state = upper_name(&pfd, name)?;
        let lower_positive = state == UpperName::Absent && self.lower_positive(&dir, name)?;
        let plan = rules::create_plan(state, lower_positive)?;
        let pst = rustix::fs::fstat(&*pfd)?;
        let sgid_parent = pst.st_mode & libc::S_ISGID != 0;
        let in_work = plan == CreatePlan::OverWhiteout;
        // The group the filesystem gives what root creates at the target (work has no set-gid).
        let default_gid = if sgid_parent && !in_work {
            pst.st_gid
        } else {
            0
        };
        let gid = if sgid_parent { pst.st_gid } else { caller.gid };
        let mut perm = mode & 0o7777;
        let tmp;
        let (tdir, tname): (&OwnedFd, &OsStr) = if in_work {
            tmp = self.tmp_name();
            (self.work()?, &tmp)
        } else {
            (&pfd, name)
        };
        let mut file = None;
        // The daemon runs with umask 0: `perm` (already masked by the caller's umask) is final.
        let kind = match what {
            New::File => {
                file = Some(rustix::fs::openat(
                    tdir,
                    tname,
                    OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                    Mode::from_raw_mode(perm),
                )?);
                FileType::RegularFile
            }
            New::Dir => {
                rustix::fs::mkdirat(tdir, tname, Mode::from_raw_mode(perm))?;
                if sgid_parent {
                    perm |= libc::S_ISGID;
                }
                FileType::Directory
            }
            New::Special(kind, rdev) => {
                rustix::fs::mknodat(tdir, tname, kind, Mode::from_raw_mode(perm), rdev)?;
                kind
            }
            New::Symlink(target) => {
                rustix::fs::symlinkat(target, tdir, tname)?;
                FileType::Symlink
            }
        };
        let finish = || -> Result<()> {
            if caller.uid != 0 || gid != default_gid {
                rustix::fs::chownat(
                    tdir,
                    tname,
                    Some(rustix::process::Uid::from_raw(caller.uid)),
                    Some(rustix::process::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
                // chown cleared set-id bits; put the requested mode back.
                if kind != FileType::Symlink && perm & 0o6000 != 0 {
                    rustix::fs::chmodat(tdir, tname, Mode::from_raw_mode(perm), AtFlags::empty())?;
                }
            }
            if in_work && kind == FileType::Directory {
                if sgid_parent {
                    rustix::fs::chmodat(tdir, tname, Mode::from_raw_mode(perm), AtFlags::empty())?;
                }
                set_opaque(tdir.as_fd(), tname)?;
            }
            if in_work {
                let work = self.work()?;
                rustix::fs::renameat_with(work, tname, &*pfd, name, RenameFlags::EXCHANGE)?;
                rustix::fs::unlinkat(work, tname, AtFlags::empty())?;
            }
            Ok(())
        };
        if let Err(e) = finish() {
            let _ = remove_entry(tdir.as_fd(), tname);
            return Err(e);
        }
        let mut st = match &file {
            Some(f) => rustix::fs::fstat(f)?,
            None => rustix::fs::statat(&*pfd, name, AtFlags::SYMLINK_NOFOLLOW)?,
        };
        let node = self.make_node(parent, name, kind, Some(st), vec![], None)?;
        st.st_ino = node.id;
        Ok((node, st, file))
    }

    /// Adds name (newparent, newname) for the object of node `id`.
    pub fn link(&self, id: u64, newparent: u64, newname: &OsStr) -> Result<(Arc<Node>, Stat)> {
        let node = self.nodes.get(id)?;
        if node.is_dir() {
            return errno(Errno::PERM);
        }
        let (dir, pfd) = self.writable_dir(newparent)?;
        if let Found::Obj { .. } = self.resolve(&dir, newname)? {
            return errno(Errno::EXIST);
        }
        self.ensure_upper(&node)?;
        let (src, src_name) = self.upper_loc(&node)?;
        match upper_name(&pfd, newname)? {
            UpperName::Present => return errno(Errno::EXIST),
            UpperName::Whiteout => {
                let (work, tmp) = (self.work()?, self.tmp_name());
                rustix::fs::linkat(&*src, &src_name, work, &tmp, AtFlags::empty())?;
                if let Err(e) = rustix::fs::renameat(work, &tmp, &*pfd, newname) {
                    let _ = rustix::fs::unlinkat(work, &tmp, AtFlags::empty());
                    return Err(e.into());
                }
            }
            UpperName::Absent => {
                rustix::fs::linkat(&*src, &src_name, &*pfd, newname, AtFlags::empty())?
            }
        }
        let st = rustix::fs::statat(&*pfd, newname, AtFlags::SYMLINK_NOFOLLOW)?;
        self.nodes
            .add_link_key((self.layers[0].dev, st.st_ino), node.id);
        {
            let mut s = node.state.write();
            s.links.push((newparent, newname.to_os_string()));
            s.keys.push((self.layers[0].dev, st.st_ino));
        }
        self.nodes.bind(newparent, newname, node.id);
        node.nlookup
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let st = self.stat(&node)?;
        Ok((node, st))
    }

    /// Removes a non-directory name.
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let (dir, pfd) = self.writable_dir(parent)?;
        let node = self.child(parent, name)?;
        if node.is_dir() {
            return errno(Errno::ISDIR);
        }
        self.copy_up_indexed(&node)?;
        self.remove_name(&dir, &pfd, name, false)?;
        self.drop_link(&node, parent, name);
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        let (dir, pfd) = self.writable_dir(parent)?;
        let node = self.child(parent, name)?;
        if !node.is_dir() {
            return errno(Errno::NOTDIR);
        }
        if !self.dir_entries(&node)?.is_empty() {
            return errno(Errno::NOTEMPTY);
        }
        self.remove_name(&dir, &pfd, name, true)?;
        self.drop_link(&node, parent, name);
        Ok(())
    }

    /// Takes `name` out of the merged view: a whiteout where lower layers have it.
    fn remove_name(&self, dir: &Node, pfd: &OwnedFd, name: &OsStr, is_dir: bool) -> Result<()> {
        let positive = self.lower_positive(dir, name)?;
        match rules::remove_plan(upper_name(pfd, name)?, positive)? {
            RemovePlan::ExchangeWithWhiteout => {
                // A whiteout made in work is exchanged with the entry in one step.
                let (work, tmp) = (self.work()?, self.tmp_name());
                self.whiteout(work.as_fd(), &tmp)?;
                if let Err(e) =
                    rustix::fs::renameat_with(work, &tmp, pfd, name, RenameFlags::EXCHANGE)
                {
                    let _ = rustix::fs::unlinkat(work, &tmp, AtFlags::empty());
                    return Err(e.into());
                }
                remove_entry(work.as_fd(), &tmp)
            }
            RemovePlan::Unlink => {
                let flags = if is_dir {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                match rustix::fs::unlinkat(pfd, name, flags) {
                    Err(Errno::NOTEMPTY) => {
                        // Only whiteouts are left inside; move it out and clean it in work.
                        let (work, tmp) = (self.work()?, self.tmp_name());
                        rustix::fs::renameat(pfd, name, work, &tmp)?;
                        remove_entry(work.as_fd(), &tmp)
                    }
                    r => Ok(r?),
                }
            }
            RemovePlan::Whiteout => self.whiteout(pfd.as_fd(), name),
        }
    }

    fn drop_link(&self, node: &Node, parent: u64, name: &OsStr) {
        node.state
            .write()
            .links
            .retain(|(p, n)| !(*p == parent && n == name));
        self.nodes.unbind(parent, name, node.id);
    }

    /// The merged entries of a directory node (whiteouts resolved, no "." or "..").
    pub fn dir_entries(&self, node: &Node) -> Result<Vec<RawEntry>> {
        let (upper_dir, lowers) = {
            let st = node.state.read();
            (st.upper_dir.clone(), st.lowers.clone())
        };
        let upper = match upper_dir {
            Some(ud) => list_dir(ud.as_fd(), false)?.entries,
            None => vec![],
        };
        if lowers.is_empty() {
            return Ok(rules::merge_listing(upper, &[], false));
        }
        let view = self.view(&lowers)?;
        Ok(rules::merge_listing(upper, &view.merged()?.entries, true))
    }

    /// rename(2) / renameat2(2) with RENAME_NOREPLACE or RENAME_EXCHANGE.
    pub fn rename(
        &self,
        p1: u64,
        n1: &OsStr,
        p2: u64,
        n2: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        let exchange = flags.contains(RenameFlags::EXCHANGE);
        let (d1, fd1) = self.writable_dir(p1)?;
        let (d2, fd2) = self.writable_dir(p2)?;
        let src = self.child(p1, n1)?;
        let tgt = self.child_opt(p2, n2)?;
        let side = |n: &Node, list: bool| -> Result<Side> {
            Ok(Side {
                id: n.id,
                is_dir: n.is_dir(),
                empty: !(list && n.is_dir()) || self.dir_entries(n)?.is_empty(),
                has_lowers: !n.state.read().lowers.is_empty(),
            })
        };
        let tside = match &tgt {
            Some(t) => Some(side(t, !exchange && src.is_dir() && t.id != src.id)?),
            None => None,
        };
        if !rules::rename_check(side(&src, false)?, tside, flags, self.cfg.redirect_dir)? {
            return Ok(());
        }
        // Refused before anything is copied up (EXDEV makes `mv` copy instead).
        let mark1 = self.moved_mark(&src, &d2)?;
        let mark2 = match tgt.as_ref().filter(|_| exchange) {
            Some(t) => self.moved_mark(t, &d1)?,
            None => DirMark::None,
        };
        self.ensure_upper(&src)?;
        match tgt.as_ref() {
            Some(t) if exchange => self.ensure_upper(t)?,
            Some(t) => self.copy_up_indexed(t)?,
            None => {}
        }
        apply_mark(&mark1, &fd1, n1)?;
        if exchange {
            apply_mark(&mark2, &fd2, n2)?;
            rustix::fs::renameat_with(&*fd1, n1, &*fd2, n2, RenameFlags::EXCHANGE)?;
        } else {
            let tstate = upper_name(&fd2, n2)?;
            let clear = tgt
                .as_ref()
                .filter(|t| t.is_dir() && tstate == UpperName::Present);
            if let Some(ud) = clear.and_then(|t| t.state.read().upper_dir.clone()) {
                // Merged-empty: whatever is left in the upper dir is whiteouts.
                remove_children(&ud)?;
            }
            let positive = self.lower_positive(&d1, n1)?;
            let (rflags, cleanup) = match rules::rename_way(positive, tstate, src.is_dir()) {
                RenameWay::ExchangeWhiteout => (RenameFlags::EXCHANGE, false),
                RenameWay::LeaveWhiteout => (RenameFlags::WHITEOUT, false),
                RenameWay::ExchangeThenUnlink => (RenameFlags::EXCHANGE, true),
                RenameWay::Plain => (RenameFlags::empty(), false),
            };
            rustix::fs::renameat_with(&*fd1, n1, &*fd2, n2, rflags)?;
            if cleanup {
                rustix::fs::unlinkat(&*fd1, n1, AtFlags::empty())?;
            }
        }
        self.move_link(&src, (p1, n1), (p2, n2));
        if let Some(t) = tgt {
            if exchange {
                self.move_link(&t, (p2, n2), (p1, n1));
            } else {
                t.state
                    .write()
                    .links
                    .retain(|(p, n)| !(*p == p2 && n == n2));
            }
        }
        Ok(())
    }

    /// Before one name of a lower hard link goes away with index=on, the file is copied up so
    /// that its other names count one link less (the kernel's ovl_nlink_start).
    fn copy_up_indexed(&self, node: &Arc<Node>) -> Result<()> {
        let lower_links = node.state.read().lower_attr.map_or(0, |st| st.st_nlink);
        if self.cfg.index && !node.is_dir() && !node.is_upper() && lower_links > 1 {
            self.ensure_upper(node)?;
        }
        Ok(())
    }

    /// How a node moving into directory `to` is marked first ([`rules::moved_dir_mark`]).
    fn moved_mark(&self, node: &Node, to: &Node) -> Result<DirMark> {
        let lower = node.state.read().lowers.first().map(|l| l.path.clone());
        let dest_lowers = !to.state.read().lowers.is_empty();
        Ok(rules::moved_dir_mark(
            node.is_dir(),
            lower.as_deref(),
            dest_lowers,
            self.cfg.redirect_dir,
        )?)
    }

    fn move_link(&self, node: &Node, from: (u64, &OsStr), to: (u64, &OsStr)) {
        {
            let mut s = node.state.write();
            let to_owned: (u64, OsString) = (to.0, to.1.to_os_string());
            match s
                .links
                .iter_mut()
                .find(|(p, n)| *p == from.0 && n == from.1)
            {
                Some(l) => *l = to_owned,
                None => s.links.insert(0, to_owned),
            }
        }
        self.nodes.unbind(from.0, from.1, node.id);
        self.nodes.bind(to.0, to.1, node.id);
    }
}

/// Marks a directory about to move (redirect or opaque), as [`rules::moved_dir_mark`] decided.
fn apply_mark(mark: &DirMark, fd: &OwnedFd, name: &OsStr) -> Result<()> {
    match mark {
        DirMark::None => Ok(()),
        DirMark::Redirect(p) => set_redirect(fd.as_fd(), name, p),
        DirMark::Opaque => set_opaque(fd.as_fd(), name),
    }
}
