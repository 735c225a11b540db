//! The union rules as pure functions over a small model of what each layer holds at a name:
//! which layer wins a lookup, what whiteouts, opaque directories and redirects decide, how a
//! name is created, removed or renamed in the upper (the plan), what a moved directory is
//! marked with, what a copy-up builds, and how a directory listing merges with its lowers.
//! No system calls here: overlay.rs, namespace.rs, copyup.rs and readdir.rs observe the
//! layers, ask these functions, and carry the answer out. Table-tested below without root.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, RenameFlags};
use rustix::io::Errno;

use crate::readdir::{Merged, RawEntry};

/// `redirect_dir=`: whether renaming a directory that has lower layers records a redirect
/// (and so works) and whether lookups follow the redirects found in the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectDir {
    /// Create and follow redirects (rename of lower/merged directories works).
    #[default]
    On,
    /// Follow redirects already there; renaming a lower/merged directory is EXDEV.
    Follow,
    /// Neither create nor follow; renaming a lower/merged directory is EXDEV.
    NoFollow,
    /// As the kernel's `off`: like `follow` (the kernel's default for
    /// `redirect_always_follow`), renaming a lower/merged directory is EXDEV.
    Off,
}

impl RedirectDir {
    /// Parses the value of `redirect_dir=`.
    pub fn parse(v: &str) -> Option<RedirectDir> {
        Some(match v {
            "on" => RedirectDir::On,
            "follow" => RedirectDir::Follow,
            "nofollow" => RedirectDir::NoFollow,
            "off" => RedirectDir::Off,
            _ => return None,
        })
    }

    /// Whether a rename may record a redirect.
    pub fn creates(self) -> bool {
        self == RedirectDir::On
    }

    /// Whether lookups follow redirects found in the layers.
    pub fn follows(self) -> bool {
        self != RedirectDir::NoFollow
    }
}

/// What the upper layer holds at a name, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpperEntry {
    Absent,
    Whiteout,
    NonDir,
    Dir {
        opaque: bool,
        redirect: Option<PathBuf>,
    },
}

/// The upper's part of a lookup: what its entry decides before any lower is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpperVerdict {
    /// A whiteout: the name does not exist.
    Missing,
    /// The upper object alone is the answer (a non-directory, an opaque directory, or a
    /// directory whose parent has no lowers).
    UpperOnly,
    /// A directory merged with the lowers found at this absolute path (from the layer root).
    MergeAt(PathBuf),
    /// A directory merged with what the parent's lowers hold under this name (its own, or
    /// the old name a relative redirect records).
    MergeName(OsString),
    /// Nothing in the upper: the lowers decide.
    Lowers,
}

/// Lookup, upper part: `name` in a directory whose lowers exist (`parent_has_lowers`).
pub fn upper_verdict(
    e: &UpperEntry,
    name: &OsStr,
    parent_has_lowers: bool,
    redirects: RedirectDir,
) -> UpperVerdict {
    match e {
        UpperEntry::Absent => UpperVerdict::Lowers,
        UpperEntry::Whiteout => UpperVerdict::Missing,
        UpperEntry::NonDir | UpperEntry::Dir { opaque: true, .. } => UpperVerdict::UpperOnly,
        UpperEntry::Dir { redirect, .. } => {
            let redirect = redirect.as_ref().filter(|_| redirects.follows());
            match redirect {
                Some(r) if r.has_root() => UpperVerdict::MergeAt(strip_root(r)),
                _ if !parent_has_lowers => UpperVerdict::UpperOnly,
                Some(r) => UpperVerdict::MergeName(r.as_os_str().to_os_string()),
                None => UpperVerdict::MergeName(name.to_os_string()),
            }
        }
    }
}

/// What the lowers' topmost entry under a name is, as the merged lower view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowerEntry {
    Absent,
    Dir,
    NonDir,
}

/// The final answer of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    Missing,
    /// The upper directory, with no lower directory under it.
    UpperDirAlone,
    /// A directory stacked from the upper (if any) and the lower directories of that name.
    MergedDir,
    /// The topmost lower object (a non-directory, or a lower-only directory).
    Lower,
}

/// Lookup, lower part: the upper holds a directory that merges (`upper_dir`) or nothing.
pub fn winner(upper_dir: bool, lower: LowerEntry) -> Winner {
    match (upper_dir, lower) {
        (_, LowerEntry::Dir) => Winner::MergedDir,
        (true, _) => Winner::UpperDirAlone,
        (false, LowerEntry::Absent) => Winner::Missing,
        (false, LowerEntry::NonDir) => Winner::Lower,
    }
}

/// The layer-relative path a redirect xattr on the directory at `dir_path` points to:
/// an absolute redirect from the layer root, a relative one beside the directory.
pub fn redirect_target(dir_path: &Path, redirect: &Path) -> PathBuf {
    if redirect.has_root() {
        strip_root(redirect)
    } else {
        dir_path.parent().unwrap_or(Path::new("")).join(redirect)
    }
}

fn strip_root(p: &Path) -> PathBuf {
    p.strip_prefix("/").unwrap_or(p).to_path_buf()
}

/// One lower directory of a stack, top first, as observed while stacking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerDirMarks {
    pub opaque: bool,
    pub redirect: Option<PathBuf>,
}

/// How the stack under a merged directory continues after one lower directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackNext {
    /// The next layer's directory at the same path merges too.
    Continue,
    /// Opaque: nothing below merges.
    Stop,
    /// Redirected: the layers below merge at this path instead.
    Jump(PathBuf),
}

/// Stacking rule for one lower directory at `path`.
pub fn stack_next(path: &Path, marks: &LowerDirMarks, redirects: RedirectDir) -> StackNext {
    if marks.opaque {
        return StackNext::Stop;
    }
    match &marks.redirect {
        Some(r) if redirects.follows() => StackNext::Jump(redirect_target(path, r)),
        _ => StackNext::Continue,
    }
}

/// What the upper holds at a name, for changes (a directory's marks do not matter there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpperName {
    Absent,
    Whiteout,
    Present,
}

/// How a new object is made at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatePlan {
    /// Straight in the upper directory.
    InPlace,
    /// Built in the work dir and exchanged with the whiteout in one step (a new directory
    /// there is made opaque, so nothing below shows through).
    OverWhiteout,
}

/// create/mkdir/mknod/symlink/link at a name: EEXIST if the merged view shows it.
pub fn create_plan(upper: UpperName, lower_positive: bool) -> Result<CreatePlan, Errno> {
    match upper {
        UpperName::Present => Err(Errno::EXIST),
        UpperName::Whiteout => Ok(CreatePlan::OverWhiteout),
        UpperName::Absent if lower_positive => Err(Errno::EXIST),
        UpperName::Absent => Ok(CreatePlan::InPlace),
    }
}

/// How a name leaves the merged view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovePlan {
    /// The upper entry is exchanged with a whiteout made in work (lowers have the name).
    ExchangeWithWhiteout,
    /// The upper entry is simply removed (nothing below).
    Unlink,
    /// Only the lowers have it: a whiteout is created.
    Whiteout,
}

/// unlink/rmdir of a name (already checked to exist and to have the right type).
pub fn remove_plan(upper: UpperName, lower_positive: bool) -> Result<RemovePlan, Errno> {
    match (upper, lower_positive) {
        (UpperName::Present, true) => Ok(RemovePlan::ExchangeWithWhiteout),
        (UpperName::Present, false) => Ok(RemovePlan::Unlink),
        (UpperName::Absent, true) => Ok(RemovePlan::Whiteout),
        _ => Err(Errno::NOENT),
    }
}

/// One side of a rename, as the merged view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    /// Node identity (two names of one hard-linked object are equal).
    pub id: u64,
    pub is_dir: bool,
    /// For directories: the merged listing is empty.
    pub empty: bool,
    /// A lower or merged directory (one with lower directories under it).
    pub has_lowers: bool,
}

impl Side {
    /// Whether it may move without copying a directory tree up (the kernel's ovl_can_move).
    fn can_move(&self, redirects: RedirectDir) -> bool {
        redirects.creates() || !self.is_dir || !self.has_lowers
    }
}

/// rename(2) checks in the kernel's order (the VFS's first, then overlayfs' EXDEV before
/// ENOTEMPTY); `Ok(false)` is the POSIX no-op (same object).
pub fn rename_check(
    src: Side,
    tgt: Option<Side>,
    flags: RenameFlags,
    redirects: RedirectDir,
) -> Result<bool, Errno> {
    if !(RenameFlags::NOREPLACE | RenameFlags::EXCHANGE).contains(flags)
        || flags == RenameFlags::NOREPLACE | RenameFlags::EXCHANGE
    {
        return Err(Errno::INVAL);
    }
    let exchange = flags.contains(RenameFlags::EXCHANGE);
    match tgt {
        Some(_) if flags.contains(RenameFlags::NOREPLACE) => Err(Errno::EXIST),
        None if exchange => Err(Errno::NOENT),
        Some(t) if t.id == src.id => Ok(false),
        Some(t) if !exchange => match (src.is_dir, t.is_dir) {
            (true, false) => Err(Errno::NOTDIR),
            (false, true) => Err(Errno::ISDIR),
            _ if !src.can_move(redirects) => Err(Errno::XDEV),
            (true, true) if !t.empty => Err(Errno::NOTEMPTY),
            _ => Ok(true),
        },
        Some(t) if !src.can_move(redirects) || !t.can_move(redirects) => Err(Errno::XDEV),
        _ if !src.can_move(redirects) => Err(Errno::XDEV),
        _ => Ok(true),
    }
}

/// What a directory is marked with before it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirMark {
    None,
    /// It has lower layers: record where they are (absolute, from the layer root).
    Redirect(PathBuf),
    /// A pure upper directory moving into a merged parent: nothing below may show through.
    Opaque,
}

/// The mark of a moving object: `lower_path` is the path of its topmost lower directory
/// (None for pure-upper or non-directories); EXDEV when redirects may not be created, as the
/// kernel answers so that `mv` falls back to copy and delete.
pub fn moved_dir_mark(
    is_dir: bool,
    lower_path: Option<&Path>,
    dest_parent_has_lowers: bool,
    redirects: RedirectDir,
) -> Result<DirMark, Errno> {
    if !is_dir {
        return Ok(DirMark::None);
    }
    match lower_path {
        Some(_) if !redirects.creates() => Err(Errno::XDEV),
        Some(p) => Ok(DirMark::Redirect(p.to_path_buf())),
        None if dest_parent_has_lowers => Ok(DirMark::Opaque),
        None => Ok(DirMark::None),
    }
}

/// How the upper rename of a non-exchange rename is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameWay {
    /// Plain rename(2).
    Plain,
    /// RENAME_WHITEOUT: the lowers still have the source name.
    LeaveWhiteout,
    /// RENAME_EXCHANGE with the whiteout at the target: the lowers have the source name, and
    /// the exchanged whiteout now hides it.
    ExchangeWhiteout,
    /// RENAME_EXCHANGE with the whiteout at the target, then the whiteout (now at the
    /// source) removed: a directory may not replace a whiteout by plain rename.
    ExchangeThenUnlink,
}

/// The upper rename: whether the lowers have the source name and what is at the target.
pub fn rename_way(src_lower_positive: bool, target: UpperName, src_is_dir: bool) -> RenameWay {
    match (src_lower_positive, target == UpperName::Whiteout) {
        (true, true) => RenameWay::ExchangeWhiteout,
        (true, false) => RenameWay::LeaveWhiteout,
        (false, true) if src_is_dir => RenameWay::ExchangeThenUnlink,
        _ => RenameWay::Plain,
    }
}

/// Which real inode makes two names one merged object (one node, one st_ino).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Its own object: no other name shares it.
    Own,
    /// Every name of this upper inode is the same object (upper hard links).
    Upper(u64),
    /// Every name of this lower inode is the same object (index=on only).
    Lower(u64),
}

/// The identity of a non-directory from its upper and lower `(ino, nlink)`. With index=off
/// (the kernel's default) the names of a lower hard link are separate objects that copy up
/// separately (the link breaks); with index=on, or on a mount without an upper (nothing is
/// ever copied up), they are one object, as the kernel's ovl_hash_bylower decides.
pub fn identity(
    upper: Option<(u64, u64)>,
    lower: Option<(u64, u64)>,
    index: bool,
    has_upper: bool,
) -> Identity {
    match (upper, lower) {
        (Some((ino, n)), _) if n > 1 => Identity::Upper(ino),
        (None, Some((ino, n))) if n > 1 && (index || !has_upper) => Identity::Lower(ino),
        _ => Identity::Own,
    }
}

/// The kernel's persistent overlay nlink of an indexed hard link (`trusted.overlay.nlink`,
/// "U%+i"): what the merged view reports minus the upper inode's own link count. Set at
/// copy-up from the lower count (which also counts names the merged view does not show), it
/// stays constant while names are linked and unlinked in the upper.
pub fn nlink_xattr(lower_nlink: u64, upper_nlink: u64) -> String {
    format!("U{:+}", lower_nlink as i64 - upper_nlink as i64)
}

/// The link count the merged view reports for an upper inode with an overlay nlink xattr
/// (`None`, or a value the kernel would not accept, keeps the upper's own count).
pub fn overlay_nlink(upper_nlink: u64, xattr: Option<&[u8]>) -> u64 {
    let parsed = xattr.and_then(|v| {
        let (kind, num) = v.split_first()?;
        let num = std::str::from_utf8(num).ok()?;
        if *kind != b'U' || !(num.starts_with('+') || num.starts_with('-')) {
            return None;
        }
        num.parse::<i64>().ok()
    });
    match parsed.map(|d| upper_nlink as i64 + d) {
        Some(n) if n > 0 => n as u64,
        _ => upper_nlink,
    }
}

/// What a copy-up builds in the work dir before renaming it into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyUpPlan {
    /// The object made first (its contents follow for regular files).
    pub make: FileType,
    /// Copy the data (regular files only; holes kept) and make it durable before the
    /// rename, so a crash never shows a partial file.
    pub copy_data: bool,
    /// Other names of a hard-linked lower file become links of the copy (index=on; with
    /// index=off the copy-up breaks the link, as the kernel's does).
    pub link_other_names: bool,
}

/// The copy-up of a lower object of `kind` with `nlink` names.
pub fn copy_up_plan(kind: FileType, nlink: u64, index: bool) -> CopyUpPlan {
    CopyUpPlan {
        make: kind,
        copy_data: kind == FileType::RegularFile,
        link_other_names: index && kind != FileType::Directory && nlink > 1,
    }
}

/// The directories to copy up, outermost first, before `chain` (the node's ancestors from
/// the root down, with whether each is already in the upper).
pub fn copy_up_order<T: Copy>(chain: &[(T, bool)]) -> Vec<T> {
    let first = chain.iter().rposition(|(_, up)| *up).map_or(0, |i| i + 1);
    chain[first..].iter().map(|(id, _)| *id).collect()
}

/// A directory's merged listing: the upper's entries (whiteouts consumed), then every lower
/// name the upper does not mention.
pub fn merge_listing(upper: Vec<RawEntry>, lower: &[Merged], has_lowers: bool) -> Vec<RawEntry> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(upper.len() + lower.len());
    for e in upper {
        if has_lowers {
            seen.insert(e.name.clone());
        }
        if !(e.kind == FileType::CharacterDevice && e.rdev_zero) {
            out.push(e);
        }
    }
    out.extend(
        lower
            .iter()
            .filter(|m| !seen.contains(&m.name))
            .map(|m| RawEntry {
                name: m.name.clone(),
                kind: m.kind,
                ino: m.ino,
                rdev_zero: false,
            }),
    );
    out
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
