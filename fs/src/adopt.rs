//! Taking over an upper directory fuse-overlayfs wrote, so a podman/buildah store keeps working
//! when its `mount_program` changes to cairn. fuse-overlayfs marks changes in forms the kernel
//! (and cairn) do not read in an upper: an opaque directory also holds a `.wh..wh..opq` file,
//! and where it could not mknod it wrote a whiteout as a regular file `.wh.NAME`. One walk at
//! mount time rewrites them in the kernel form both programs read (a char device 0:0 whiteout,
//! `trusted.overlay.opaque`, or fuse-overlayfs' `user.fuseoverlayfs.opaque` where `trusted.*`
//! cannot be written). An upper without such entries is left untouched.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::overlay::open_dir_at;
use crate::readdir::list_dir;
use crate::whiteout::{OCI_OPAQUE, OCI_PREFIX, make_whiteout, set_opaque};

/// What one adoption changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// `.wh..wh..opq` files turned into an opaque xattr.
    pub opaque: usize,
    /// `.wh.NAME` files turned into whiteouts.
    pub whiteouts: usize,
}

/// Rewrites the fuse-overlayfs forms found anywhere in `upper`.
pub fn adopt_fuse_overlayfs_upper(upper: &Path) -> Result<Adopted> {
    let err = |e: Errno| Error::Config(format!("upper dir {}: {e}", upper.display()));
    let root = rustix::fs::open(
        upper,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(err)?;
    let mut done = Adopted::default();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let entries = list_dir(dir.as_fd(), false)?.entries;
        for e in &entries {
            if e.kind == FileType::Directory {
                stack.push(open_dir_at(&dir, &e.name)?);
            }
        }
        adopt_dir(&dir, entries.iter().map(|e| (&*e.name, e.kind)), &mut done)?;
    }
    Ok(done)
}

/// The changes for one directory's entries.
fn adopt_dir<'a>(
    dir: &OwnedFd,
    entries: impl Iterator<Item = (&'a OsStr, FileType)>,
    done: &mut Adopted,
) -> Result<()> {
    for (name, kind) in entries {
        let b = name.as_bytes();
        if kind != FileType::RegularFile || !b.starts_with(OCI_PREFIX) {
            continue;
        }
        if b == OCI_OPAQUE {
            set_opaque(dir.as_fd(), OsStr::new("."))?;
            done.opaque += 1;
        } else {
            let target = OsString::from(OsStr::from_bytes(&b[OCI_PREFIX.len()..]));
            match rustix::fs::statat(dir, &target, AtFlags::SYMLINK_NOFOLLOW) {
                // A name created again after its deletion: the whiteout is stale.
                Ok(_) => {}
                Err(Errno::NOENT) => make_whiteout(dir.as_fd(), &target)?,
                Err(e) => return Err(e.into()),
            }
            done.whiteouts += 1;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_forms_in_an_upper_become_kernel_forms() {
        let t = tempfile::tempdir().unwrap();
        let u = t.path();
        std::fs::create_dir_all(u.join("d/sub")).unwrap();
        std::fs::write(u.join("d/.wh..wh..opq"), "").unwrap();
        std::fs::write(u.join("d/sub/.wh.gone"), "").unwrap();
        std::fs::write(u.join(".wh.again"), "").unwrap();
        std::fs::write(u.join("again"), "back").unwrap();
        std::fs::write(u.join("plain"), "x").unwrap();
        let done = adopt_fuse_overlayfs_upper(u).unwrap();
        if !rustix::process::geteuid().is_root() {
            // Unprivileged: mknod of a whiteout may be refused (kernel < 5.8); the rest holds.
            eprintln!("not root: {done:?}");
        }
        assert_eq!(
            done,
            Adopted {
                opaque: 1,
                whiteouts: 2
            }
        );
        let st = std::fs::symlink_metadata(u.join("d/sub/gone")).unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        assert!(st.file_type().is_char_device() && st.rdev() == 0);
        assert!(!u.join("d/.wh..wh..opq").exists() && !u.join(".wh.again").exists());
        assert_eq!(std::fs::read_to_string(u.join("again")).unwrap(), "back");
        let marks = crate::whiteout::dir_marks(
            rustix::fs::open(u, rustix::fs::OFlags::RDONLY, rustix::fs::Mode::empty())
                .unwrap()
                .as_fd(),
            OsStr::new("d"),
        )
        .unwrap();
        assert!(marks.opaque);
        // A second walk finds nothing left to do.
        assert_eq!(adopt_fuse_overlayfs_upper(u).unwrap(), Adopted::default());
    }
}
