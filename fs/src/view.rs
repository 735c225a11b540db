//! The lower part of one directory: the stack of its lower directories (fds held open), and
//! name lookups across them. A short stack is probed name by name (one `fstatat` per layer,
//! which on a cold cache reads one directory block, not whole directories); a long stack, a
//! directory looked into often, or one already listed answers from the merged listing, built
//! once.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
use smallvec::SmallVec;

use crate::error::Result;
use crate::readdir::{Merged, MergedDir, list_dir, merge};
use crate::whiteout::{OCI_OPAQUE, OCI_PREFIX};

/// Stacks up to this many layers deep are probed instead of listed for lookups...
const PROBE_MAX: usize = 8;
/// ...for this many lookups; a directory looked into more often is listed once instead.
const PROBE_LOOKUPS: u32 = 16;

/// One lower directory of the stack.
#[derive(Debug)]
pub struct LowerDir {
    pub fd: OwnedFd,
    /// OCI-form whiteouts are honoured in this layer.
    pub oci: bool,
    /// This directory holds the OCI opaque marker: nothing below it merges.
    pub oci_opaque: bool,
}

/// The merged view of one stack of lower directories.
#[derive(Debug)]
pub struct LowerView {
    pub dirs: Vec<LowerDir>,
    merged: OnceLock<MergedDir>,
    probes: AtomicU32,
}

fn exists(dir: &OwnedFd, name: &OsStr) -> Result<bool> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        // `.wh.` + a name of NAME_MAX bytes cannot exist.
        Err(Errno::NOENT | Errno::NAMETOOLONG) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl LowerView {
    /// A view over open lower directories (top first).
    pub fn new(dirs: Vec<(OwnedFd, bool)>) -> Result<LowerView> {
        let dirs = dirs
            .into_iter()
            .map(|(fd, oci)| {
                let oci_opaque = oci && exists(&fd, OsStr::from_bytes(OCI_OPAQUE))?;
                Ok(LowerDir {
                    fd,
                    oci,
                    oci_opaque,
                })
            })
            .collect::<Result<_>>()?;
        Ok(LowerView {
            dirs,
            merged: OnceLock::new(),
            probes: AtomicU32::new(0),
        })
    }

    /// The fd of lower directory `i`.
    pub fn fd(&self, i: usize) -> &OwnedFd {
        &self.dirs[i].fd
    }

    /// The merged listing (built on first use).
    pub fn merged(&self) -> Result<&MergedDir> {
        if let Some(m) = self.merged.get() {
            return Ok(m);
        }
        let listings = self
            .dirs
            .iter()
            .map(|d| list_dir(d.fd.as_fd(), d.oci))
            .collect::<Result<Vec<_>>>()?;
        let _ = self.merged.set(merge(&listings));
        Ok(self.merged.get().expect("just set"))
    }

    /// What `name` is in the merged lower view: its topmost layer and, for directories, every
    /// layer where it merges.
    pub fn lookup(&self, name: &OsStr) -> Result<Option<Merged>> {
        if self.merged.get().is_some()
            || self.dirs.len() > PROBE_MAX
            || self.probes.fetch_add(1, Ordering::Relaxed) >= PROBE_LOOKUPS
        {
            return Ok(self.merged()?.get(name).cloned());
        }
        let mut found: Option<Merged> = None;
        for (i, d) in self.dirs.iter().enumerate() {
            match rustix::fs::statat(&d.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    let kind = FileType::from_raw_mode(st.st_mode);
                    if kind == FileType::CharacterDevice && st.st_rdev == 0 {
                        break;
                    }
                    let is_dir = kind == FileType::Directory;
                    match &mut found {
                        None => {
                            let mut dir_layers = SmallVec::new();
                            if is_dir {
                                dir_layers.push(i as u16);
                            }
                            found = Some(Merged {
                                name: name.to_os_string(),
                                kind,
                                top: i,
                                ino: st.st_ino,
                                dir_layers,
                            });
                            if !is_dir {
                                break;
                            }
                        }
                        Some(m) if is_dir => m.dir_layers.push(i as u16),
                        Some(_) => break,
                    }
                }
                Err(Errno::NOENT) => {
                    let mut wh = OsString::from(OsStr::from_bytes(OCI_PREFIX));
                    wh.push(name);
                    if d.oci && exists(&d.fd, &wh)? {
                        break;
                    }
                }
                Err(e) => return Err(e.into()),
            }
            if d.oci_opaque {
                break;
            }
        }
        Ok(found)
    }
}
