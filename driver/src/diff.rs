//! `docker diff` of a container: the changes its upper directory (kernel overlay format,
//! OCI-form whiteouts read too) makes to the merged view of its lower layers, as `A`/`C`/`D`
//! lines. Like docker's comparison of the two trees:
//!
//! - a whiteout deletes (`D`) what the lowers show at its path (only that path, not below);
//! - an entry in the upper is `C` when the lowers show something at its path, else `A`;
//! - a directory present in both is `C` when something below it changed, it is opaque or
//!   redirected, or its mode / owner differ (a directory only copied up, e.g. for a mount
//!   point, is not a change);
//! - an opaque directory deletes every lower entry the upper does not have again; a
//!   redirected (renamed) directory also brings its origin's contents, which are added.
//!
//! `skip` leaves out paths the runtime made (mount points), as docker's init layer does.
//! Output is sorted by path components: a directory before its contents, as docker prints.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use cairn_fs::whiteout::{OCI_OPAQUE, OCI_PREFIX, read_marks};

use crate::error::{Result, io_err};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Modify,
    Add,
    Delete,
}

impl ChangeKind {
    /// docker's letter.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modify => 'C',
            ChangeKind::Add => 'A',
            ChangeKind::Delete => 'D',
        }
    }
}

/// One changed path (absolute, inside the container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path)
    }
}

/// The changes of `upper` over `lowers` (top first).
pub fn changes(
    upper: &Path,
    lowers: &[PathBuf],
    skip: &dyn Fn(&str) -> bool,
) -> Result<Vec<Change>> {
    let mut d = Differ {
        upper,
        lowers,
        skip,
        out: Vec::new(),
    };
    d.walk("", Some(""))?;
    let mut out = d.out;
    out.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

struct Differ<'a> {
    upper: &'a Path,
    lowers: &'a [PathBuf],
    skip: &'a dyn Fn(&str) -> bool,
    out: Vec<Change>,
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn meta(p: &Path) -> Option<Metadata> {
    std::fs::symlink_metadata(p).ok()
}

fn join(rel: &str, name: &str) -> String {
    format!("{rel}/{name}")
}

/// The path of `rel` (absolute in the container) under a layer directory.
fn under(layer: &Path, rel: &str) -> PathBuf {
    layer.join(rel.trim_start_matches('/'))
}

fn marks(p: &Path) -> cairn_fs::whiteout::DirMarks {
    CString::new(p.as_os_str().as_bytes())
        .ok()
        .and_then(|c| read_marks(&c).ok())
        .unwrap_or_default()
}

/// Names in a directory (none when it cannot be read), sorted.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl Differ<'_> {
    /// What the lowers show at `rel`, honouring whiteouts and opaque directories.
    fn lower(&self, rel: &str) -> Option<Metadata> {
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        for layer in self.lowers {
            let mut cur = layer.clone();
            let mut stop = false;
            for (i, c) in comps.iter().enumerate() {
                if cur.join(format!(".wh.{c}")).exists() {
                    return None;
                }
                let p = cur.join(c);
                let m = meta(&p);
                if m.as_ref().is_some_and(is_whiteout) {
                    return None;
                }
                if i + 1 == comps.len() {
                    if m.is_some() {
                        return m;
                    }
                    break;
                }
                match m {
                    Some(m) if m.is_dir() => {
                        let mk = marks(&p);
                        stop |= mk.opaque || p.join(".wh..wh..opq").exists();
                        cur = p;
                    }
                    Some(_) => return None,
                    None => break,
                }
            }
            if stop {
                return None;
            }
        }
        None
    }

    /// Names the lowers show in directory `rel`.
    fn lower_names(&self, rel: &str) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for layer in self.lowers {
            all.extend(names(&under(layer, rel)));
        }
        all.into_iter()
            .filter(|n| !n.as_bytes().starts_with(OCI_PREFIX))
            .filter(|n| self.lower(&join(rel, n)).is_some())
            .collect()
    }

    fn push(&mut self, kind: ChangeKind, path: String) {
        if !(self.skip)(&path) {
            self.out.push(Change { kind, path });
        }
    }

    /// Walks upper directory `rel`. `origin` is where its lower contents come from when the
    /// directory (or one above it) was renamed; `None` when its lower contents are hidden.
    fn walk(&mut self, rel: &str, origin: Option<&str>) -> Result<()> {
        let dir = under(self.upper, rel);
        let upper_names = names(&dir);
        let mut present: BTreeSet<String> = BTreeSet::new();
        let mut whited: BTreeSet<String> = BTreeSet::new();
        for name in &upper_names {
            if name.as_bytes() == OCI_OPAQUE {
                continue;
            }
            if let Some(gone) = name.strip_prefix(std::str::from_utf8(OCI_PREFIX).unwrap_or("")) {
                whited.insert(gone.to_string());
                let path = join(rel, gone);
                if self.lower(&path).is_some() {
                    self.push(ChangeKind::Delete, path);
                }
                continue;
            }
            let path = join(rel, name);
            if (self.skip)(&path) {
                present.insert(name.clone());
                continue;
            }
            let p = dir.join(name);
            let m = std::fs::symlink_metadata(&p).map_err(io_err("stat", &p))?;
            if is_whiteout(&m) {
                whited.insert(name.clone());
                if self.lower(&path).is_some() {
                    self.push(ChangeKind::Delete, path);
                }
                continue;
            }
            present.insert(name.clone());
            let old = self.lower(&path);
            if !m.is_dir() {
                let kind = if old.is_some() {
                    ChangeKind::Modify
                } else {
                    ChangeKind::Add
                };
                self.push(kind, path);
                continue;
            }
            let mk = marks(&p);
            let opaque = mk.opaque || p.join(".wh..wh..opq").exists();
            let child_origin: Option<String> = match (&mk.redirect, opaque) {
                (_, true) => None,
                (Some(r), false) => {
                    let r = r.to_string_lossy();
                    Some(if r.starts_with('/') {
                        r.into_owned()
                    } else {
                        join(rel, &r)
                    })
                }
                (None, false) => origin.map(|o| join(o, name)),
            };
            let before = self.out.len();
            self.walk(&path, child_origin.as_deref())?;
            let hides = child_origin.as_deref() != Some(path.as_str());
            let changed = self.out.len() > before
                || hides
                || old
                    .as_ref()
                    .is_none_or(|o| (o.mode(), o.uid(), o.gid()) != (m.mode(), m.uid(), m.gid()));
            if changed {
                let kind = if old.is_some() {
                    ChangeKind::Modify
                } else {
                    ChangeKind::Add
                };
                self.push(kind, path);
            }
        }
        // Lower entries the merged view gets from the origin (a renamed directory) are new
        // at this path, and what the lowers had here is gone when the origin is elsewhere.
        if origin != Some(rel) {
            if let Some(o) = origin {
                for name in self.lower_names(o) {
                    if !present.contains(&name) && !whited.contains(&name) {
                        present.insert(name.clone());
                        self.added_tree(&join(o, &name), &join(rel, &name));
                    }
                }
            }
            for name in self.lower_names(rel) {
                if !present.contains(&name) && !whited.contains(&name) {
                    self.push(ChangeKind::Delete, join(rel, &name));
                }
            }
        }
        Ok(())
    }

    /// A lower tree at `from` that now shows at `to`: every path `A` (`C` where the lowers
    /// had something at `to` already).
    fn added_tree(&mut self, from: &str, to: &str) {
        let kind = match self.lower(to) {
            Some(_) => ChangeKind::Modify,
            None => ChangeKind::Add,
        };
        self.push(kind, to.to_string());
        if self.lower(from).is_some_and(|m| m.is_dir()) {
            for n in self.lower_names(from) {
                self.added_tree(&join(from, &n), &join(to, &n));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn lines(c: &[Change]) -> Vec<String> {
        c.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn oci_whiteouts_opaque_and_plain_changes() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (t.path().join("l"), t.path().join("u"));
        for d in ["etc", "d/sub", "keep"] {
            fs::create_dir_all(low.join(d)).unwrap();
        }
        for f in ["etc/a", "etc/b", "d/x", "d/sub/y", "keep/k"] {
            fs::write(low.join(f), "lower").unwrap();
        }
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::create_dir_all(up.join("d")).unwrap();
        fs::create_dir_all(up.join("keep")).unwrap();
        fs::create_dir_all(up.join("proc")).unwrap();
        fs::write(up.join("etc/a"), "changed").unwrap();
        fs::write(up.join("etc/.wh.b"), "").unwrap();
        fs::write(up.join("etc/new"), "").unwrap();
        fs::write(up.join("d/.wh..wh..opq"), "").unwrap();
        fs::write(up.join("d/x"), "again").unwrap();
        fs::write(up.join("d/n"), "new").unwrap();
        let skip = |p: &str| p == "/proc";
        let c = changes(&up, &[low], &skip).unwrap();
        assert_eq!(
            lines(&c),
            [
                "C /d",
                "A /d/n",
                "D /d/sub",
                "C /d/x",
                "C /etc",
                "C /etc/a",
                "D /etc/b",
                "A /etc/new",
            ]
        );
    }
}
