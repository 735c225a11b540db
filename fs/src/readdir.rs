//! Merging the entries of one directory across layers: whiteouts hide names below them, an
//! opaque marker ends the merge, a non-directory ends the merge of a name, and directories of
//! the same name merge down. Pure logic over listings; `list_dir` reads one listing from disk.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, RawDir};
use smallvec::SmallVec;

use crate::error::Result;
use crate::whiteout::{Class, classify};

/// One entry as read from one layer directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub name: OsString,
    pub kind: FileType,
    pub ino: u64,
    /// For character devices: whether rdev is 0 (a whiteout).
    pub rdev_zero: bool,
}

/// The entries of one layer directory.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub entries: Vec<RawEntry>,
    /// Honour OCI-form names in this listing.
    pub oci: bool,
}

/// A name visible in the merged lower view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub name: OsString,
    pub kind: FileType,
    /// Index (into the listings) of the topmost layer holding the name.
    pub top: usize,
    /// d_ino in that layer.
    pub ino: u64,
    /// For directories: every listing index where the name is a directory that merges.
    pub dir_layers: SmallVec<[u16; 4]>,
}

#[derive(Debug)]
struct State {
    merged: Option<Merged>,
    open: bool,
}

/// The merged view of several layer listings (top first). Whiteouts are consumed, not listed.
#[derive(Debug, Default)]
pub struct MergedDir {
    pub entries: Vec<Merged>,
    pub index: HashMap<OsString, usize>,
}

impl MergedDir {
    /// Looks a name up in the merged view.
    pub fn get(&self, name: &OsStr) -> Option<&Merged> {
        self.index.get(name).map(|&i| &self.entries[i])
    }
}

/// Merges listings, top layer first.
pub fn merge(listings: &[Listing]) -> MergedDir {
    let mut order: Vec<OsString> = Vec::new();
    let mut states: HashMap<OsString, State> = HashMap::new();
    for (li, listing) in listings.iter().enumerate() {
        let mut opaque_here = false;
        for e in &listing.entries {
            match classify(&e.name, e.kind, e.rdev_zero, listing.oci) {
                Class::OpaqueMarker => opaque_here = true,
                Class::Whiteout(target) => match states.get_mut(&target) {
                    Some(st) => st.open = false,
                    None => {
                        states.insert(
                            target.clone(),
                            State {
                                merged: None,
                                open: false,
                            },
                        );
                    }
                },
                Class::Entry => {
                    let is_dir = e.kind == FileType::Directory;
                    match states.get_mut(&e.name) {
                        Some(st) if st.open => match (&mut st.merged, is_dir) {
                            (Some(m), true) => m.dir_layers.push(li as u16),
                            _ => st.open = false,
                        },
                        Some(_) => {}
                        None => {
                            let mut dir_layers = SmallVec::new();
                            if is_dir {
                                dir_layers.push(li as u16);
                            }
                            order.push(e.name.clone());
                            states.insert(
                                e.name.clone(),
                                State {
                                    merged: Some(Merged {
                                        name: e.name.clone(),
                                        kind: e.kind,
                                        top: li,
                                        ino: e.ino,
                                        dir_layers,
                                    }),
                                    open: is_dir,
                                },
                            );
                        }
                    }
                }
            }
        }
        if opaque_here {
            break;
        }
    }
    let mut out = MergedDir::default();
    for name in order {
        if let Some(State {
            merged: Some(m), ..
        }) = states.remove(&name)
        {
            out.index.insert(name, out.entries.len());
            out.entries.push(m);
        }
    }
    out
}

/// Reads all entries of an open directory (without "." and ".."). Character devices and
/// entries of unknown type are stat'ed to learn what they are.
pub fn list_dir(dir: BorrowedFd<'_>, oci: bool) -> Result<Listing> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut raw = RawDir::new(&fd, &mut buf);
    let mut entries = Vec::new();
    while let Some(ent) = raw.next() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name).to_os_string();
        let mut kind = ent.file_type();
        let mut rdev_zero = false;
        if kind == FileType::CharacterDevice || kind == FileType::Unknown {
            let st = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)?;
            kind = FileType::from_raw_mode(st.st_mode);
            rdev_zero = st.st_rdev == 0;
        }
        entries.push(RawEntry {
            name,
            kind,
            ino: ent.ino(),
            rdev_zero,
        });
    }
    Ok(Listing { entries, oci })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, kind: FileType) -> RawEntry {
        RawEntry {
            name: name.into(),
            kind,
            ino: 1,
            rdev_zero: kind == FileType::CharacterDevice,
        }
    }
    fn listing(entries: Vec<RawEntry>) -> Listing {
        Listing { entries, oci: true }
    }
    fn names(m: &MergedDir) -> Vec<String> {
        let mut v: Vec<String> = m
            .entries
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
    const F: FileType = FileType::RegularFile;
    const D: FileType = FileType::Directory;
    const WH: FileType = FileType::CharacterDevice;

    #[test]
    fn upper_names_shadow_lower_and_whiteouts_hide() {
        let m = merge(&[
            listing(vec![e("a", F), e("b", WH)]),
            listing(vec![e("a", D), e("b", F), e("c", F)]),
        ]);
        assert_eq!(names(&m), ["a", "c"]);
        let a = m.get(OsStr::new("a")).unwrap();
        assert_eq!((a.kind, a.top), (F, 0));
        assert!(a.dir_layers.is_empty());
    }

    #[test]
    fn directories_merge_until_a_non_directory_or_whiteout() {
        let m = merge(&[
            listing(vec![e("d", D)]),
            listing(vec![]),
            listing(vec![e("d", D)]),
            listing(vec![e("d", F)]),
            listing(vec![e("d", D)]),
        ]);
        assert_eq!(
            m.get(OsStr::new("d")).unwrap().dir_layers.as_slice(),
            [0, 2]
        );
        let m = merge(&[
            listing(vec![e("d", D)]),
            listing(vec![e("d", WH)]),
            listing(vec![e("d", D)]),
        ]);
        assert_eq!(m.get(OsStr::new("d")).unwrap().dir_layers.as_slice(), [0]);
    }

    #[test]
    fn oci_whiteouts_and_opaque_markers() {
        let m = merge(&[
            listing(vec![e(".wh.x", F), e("y", F)]),
            listing(vec![e("x", F), e(".wh..wh..opq", F), e("z", F)]),
            listing(vec![e("w", F)]),
        ]);
        assert_eq!(names(&m), ["y", "z"]);
        // OCI names are plain entries where OCI form is not honoured.
        let m = merge(&[Listing {
            entries: vec![e(".wh.x", F)],
            oci: false,
        }]);
        assert_eq!(names(&m), [".wh.x"]);
    }

    #[test]
    fn whiteout_in_top_layer_hides_everything_below() {
        let m = merge(&[listing(vec![e("gone", WH)]), listing(vec![e("gone", D)])]);
        assert!(m.get(OsStr::new("gone")).is_none());
        assert!(m.entries.is_empty());
    }
}
