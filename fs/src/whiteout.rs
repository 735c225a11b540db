//! Whiteouts and opaque directories, in both forms: the kernel overlay form (char device 0:0,
//! `trusted.overlay.opaque="y"`, `trusted.overlay.redirect`) read and written everywhere, and the
//! OCI form (`.wh.<name>`, `.wh..wh..opq`) read in lower layers.

use std::ffi::{CStr, OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use rustix::fs::{FileType, Mode};
use rustix::io::Errno;

use crate::error::Result;
use crate::layer::proc_path;

/// Prefix of the overlay-private xattrs, never shown through the mount.
pub const PRIVATE_PREFIX: &[u8] = b"trusted.overlay.";
/// Opaque directory marker.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Redirect of a renamed directory to its lower path.
pub const REDIRECT_XATTR: &str = "trusted.overlay.redirect";
/// The merged view's link count of an indexed hard link, relative to the upper inode's.
pub const NLINK_XATTR: &str = "trusted.overlay.nlink";
/// OCI whiteout file name prefix.
pub const OCI_PREFIX: &[u8] = b".wh.";
/// OCI opaque marker file name.
pub const OCI_OPAQUE: &[u8] = b".wh..wh..opq";

/// What one directory entry of a layer means for the union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// A real entry with this name.
    Entry,
    /// A whiteout hiding `name` in the layers below.
    Whiteout(OsString),
    /// The directory holding this entry is opaque (OCI marker).
    OpaqueMarker,
}

/// Classifies one entry by name and type. `rdev_is_zero` matters only for character devices;
/// `oci` says whether OCI-form names are honoured in this layer.
pub fn classify(name: &OsStr, kind: FileType, rdev_is_zero: bool, oci: bool) -> Class {
    if kind == FileType::CharacterDevice && rdev_is_zero {
        return Class::Whiteout(name.to_os_string());
    }
    let b = name.as_bytes();
    if oci && b.starts_with(OCI_PREFIX) {
        if b == OCI_OPAQUE {
            return Class::OpaqueMarker;
        }
        return Class::Whiteout(OsString::from_vec(b[OCI_PREFIX.len()..].to_vec()));
    }
    Class::Entry
}

/// True for a kernel-form whiteout (char device 0:0) given a stat.
pub fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Prefix under which a user's own `trusted.overlay.*` xattrs are stored in a layer
/// (the kernel's escaping for nested overlays).
pub const ESCAPED_PREFIX: &[u8] = b"trusted.overlay.overlay.";

/// Prefix of fuse-overlayfs' private xattrs (opaque, origin, override_stat): read with its
/// meaning where cairn has one, never shown, never copied up.
pub const FUSE_OVERLAYFS_PREFIX: &[u8] = b"user.fuseoverlayfs.";
/// fuse-overlayfs' opaque marker where `trusted.*` cannot be written (unprivileged).
pub const FUSE_OVERLAYFS_OPAQUE: &str = "user.fuseoverlayfs.opaque";

/// True if a real xattr name is overlay-private (hidden from users, not copied up).
pub fn is_private(name: &[u8]) -> bool {
    (name.starts_with(PRIVATE_PREFIX) && !name.starts_with(ESCAPED_PREFIX))
        || name.starts_with(FUSE_OVERLAYFS_PREFIX)
}

/// The real (stored) name of an xattr name used through the mount: `trusted.overlay.X` is
/// stored escaped as `trusted.overlay.overlay.X`, as the kernel's overlayfs does.
pub fn escape_xattr(name: &[u8]) -> Vec<u8> {
    match name.strip_prefix(PRIVATE_PREFIX) {
        Some(rest) => [ESCAPED_PREFIX, rest].concat(),
        None => name.to_vec(),
    }
}

/// The name shown through the mount for a real xattr name; None for private ones.
pub fn unescape_xattr(real: &[u8]) -> Option<Vec<u8>> {
    match real.strip_prefix(ESCAPED_PREFIX) {
        Some(rest) => Some([PRIVATE_PREFIX, rest].concat()),
        None if is_private(real) => None,
        None => Some(real.to_vec()),
    }
}

/// The overlay markers found on one directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DirMarks {
    /// `trusted.overlay.opaque="y"`.
    pub opaque: bool,
    /// `trusted.overlay.redirect`, if any.
    pub redirect: Option<PathBuf>,
}

/// Reads the overlay markers of directory `name` inside `dir` (one llistxattr when none are set).
pub fn dir_marks(dir: BorrowedFd<'_>, name: &OsStr) -> Result<DirMarks> {
    let path = proc_path(dir, name);
    read_marks(&path)
}

/// Reads the overlay markers of the object named by a /proc path.
pub fn read_marks(path: &CStr) -> Result<DirMarks> {
    let mut marks = DirMarks::default();
    let mut buf = [0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut buf[..]) {
        Ok(n) => n,
        Err(Errno::RANGE) => usize::MAX,
        Err(Errno::NOTSUP) => return Ok(marks),
        Err(e) => return Err(e.into()),
    };
    let has = |prefix: &[u8]| buf[..n].windows(prefix.len()).any(|w| w == prefix);
    if n != usize::MAX && !has(PRIVATE_PREFIX) && !has(FUSE_OVERLAYFS_PREFIX) {
        return Ok(marks);
    }
    let mut v = [0u8; 4096];
    for name in [OPAQUE_XATTR, FUSE_OVERLAYFS_OPAQUE] {
        if let Ok(n) = rustix::fs::lgetxattr(path, name, &mut v[..]) {
            marks.opaque |= &v[..n] == b"y";
        }
    }
    if let Ok(n) = rustix::fs::lgetxattr(path, REDIRECT_XATTR, &mut v[..]) {
        marks.redirect = Some(PathBuf::from(OsStr::from_bytes(&v[..n])));
    }
    Ok(marks)
}

/// Marks a directory opaque: `trusted.overlay.opaque`, or where `trusted.*` cannot be
/// written (no CAP_SYS_ADMIN, as in a rootless user namespace) fuse-overlayfs' user form.
pub fn set_opaque(dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    let path = proc_path(dir, name);
    let flags = rustix::fs::XattrFlags::empty();
    match rustix::fs::lsetxattr(&path, OPAQUE_XATTR, b"y", flags) {
        Err(Errno::PERM) => rustix::fs::lsetxattr(&path, FUSE_OVERLAYFS_OPAQUE, b"y", flags)?,
        r => r?,
    }
    Ok(())
}

/// Records where a renamed directory's lower layers are (an absolute path inside the layers).
pub fn set_redirect(dir: BorrowedFd<'_>, name: &OsStr, target: &std::path::Path) -> Result<()> {
    let path = proc_path(dir, name);
    let mut v = b"/".to_vec();
    v.extend_from_slice(target.as_os_str().as_bytes());
    rustix::fs::lsetxattr(&path, REDIRECT_XATTR, &v, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// Creates a kernel-form whiteout (char device 0:0) named `name` in `dir`.
pub fn make_whiteout(dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    rustix::fs::mknodat(dir, name, FileType::CharacterDevice, Mode::empty(), 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let cases: &[(&str, FileType, bool, bool, Class)] = &[
            ("a", FileType::RegularFile, false, true, Class::Entry),
            (
                "a",
                FileType::CharacterDevice,
                true,
                false,
                Class::Whiteout("a".into()),
            ),
            ("tty", FileType::CharacterDevice, false, true, Class::Entry),
            (
                ".wh.a",
                FileType::RegularFile,
                false,
                true,
                Class::Whiteout("a".into()),
            ),
            (".wh.a", FileType::RegularFile, false, false, Class::Entry),
            (
                ".wh..wh..opq",
                FileType::RegularFile,
                false,
                true,
                Class::OpaqueMarker,
            ),
            (".whx", FileType::RegularFile, false, true, Class::Entry),
        ];
        for (name, kind, rdev0, oci, want) in cases {
            assert_eq!(
                &classify(OsStr::new(name), *kind, *rdev0, *oci),
                want,
                "{name} {kind:?}"
            );
        }
    }

    #[test]
    fn private_xattrs_are_recognised() {
        assert!(is_private(b"trusted.overlay.opaque"));
        assert!(is_private(b"trusted.overlay.origin"));
        assert!(!is_private(b"user.overlay.opaque"));
        assert!(!is_private(b"trusted.other"));
        assert!(!is_private(b"trusted.overlay.overlay.x"));
        assert!(is_private(b"user.fuseoverlayfs.opaque"));
        assert!(is_private(b"user.fuseoverlayfs.override_stat"));
        assert!(!is_private(b"user.fuseoverlayfsx"));
    }

    #[test]
    fn user_overlay_xattrs_are_escaped_like_the_kernel() {
        assert_eq!(
            escape_xattr(b"trusted.overlay.foo"),
            b"trusted.overlay.overlay.foo"
        );
        assert_eq!(escape_xattr(b"user.a"), b"user.a");
        assert_eq!(
            unescape_xattr(b"trusted.overlay.overlay.foo").unwrap(),
            b"trusted.overlay.foo"
        );
        assert_eq!(unescape_xattr(b"trusted.overlay.origin"), None);
        assert_eq!(unescape_xattr(b"user.fuseoverlayfs.origin"), None);
        assert_eq!(unescape_xattr(b"user.a").unwrap(), b"user.a");
    }
}
