//! Typed errors of the union filesystem, with the errno each one maps to (chosen in one place).
//!
//! Configuration mistakes (`Config`) and failed system calls (`Io`, `Daemon` when the call
//! failed in the mount daemon) are different variants; the failed calls keep their
//! `io::Error`, so the errno reaches the caller unchanged (a layer dir that cannot be opened
//! is EACCES or ENOENT, not EINVAL).

use std::path::PathBuf;

/// Everything that can go wrong inside cairn-fs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a path failed while the union was being set up or torn down
    /// (opening or canonicalizing a layer or work dir, /dev/fuse, mount(2), umount(2)).
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A plain errno answer for the caller (ENOENT, EEXIST, ENOTEMPTY, or an errno of the
    /// upper or lower file system passed through unchanged).
    #[error("{0}")]
    Errno(rustix::io::Errno),
    /// A mount option or layer argument is not acceptable.
    #[error("{0}")]
    Config(String),
    /// The mount daemon failed before the mount was live; its message and, when a system
    /// call failed there, that call's errno.
    #[error("{message}")]
    Daemon {
        message: String,
        #[source]
        source: Option<std::io::Error>,
    },
    /// The node id the kernel asked about is unknown (already forgotten).
    #[error("stale node {0}")]
    Stale(u64),
}

impl Error {
    /// A failed system call on `path`; `what` names the object ("lower dir", "mount", ...).
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// Like [`Error::io`] from a rustix errno.
    pub fn sys(what: &'static str, path: impl Into<PathBuf>, e: rustix::io::Errno) -> Error {
        Error::io(
            what,
            path,
            std::io::Error::from_raw_os_error(e.raw_os_error()),
        )
    }

    /// The errno the kernel gets for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Errno(e) => e.raw_os_error(),
            Error::Config(_) => libc::EINVAL,
            Error::Daemon { source, .. } => source
                .as_ref()
                .map_or(libc::EINVAL, |s| s.raw_os_error().unwrap_or(libc::EIO)),
            Error::Stale(_) => libc::ESTALE,
        }
    }

    /// True when this error is the given errno.
    pub fn is(&self, errno: rustix::io::Errno) -> bool {
        self.errno() == errno.raw_os_error()
    }

    /// True for a configuration mistake (as opposed to a failed system call).
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config(_)) || matches!(self, Error::Daemon { source: None, .. })
    }

    /// The one-line form the mount daemon sends to its parent: `errno message` (errno 0 for a
    /// configuration mistake).
    pub fn to_wire(&self) -> String {
        let errno = if self.is_config() { 0 } else { self.errno() };
        format!("{errno} {self}")
    }

    /// Reads what [`Error::to_wire`] wrote.
    pub fn from_wire(s: &str) -> Error {
        let (n, message) = s.split_once(' ').unwrap_or(("0", s));
        let source = match n.parse::<i32>() {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(std::io::Error::from_raw_os_error(n)),
        };
        let message = if n.parse::<i32>().is_ok() { message } else { s };
        Error::Daemon {
            message: message.to_string(),
            source,
        }
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Errno(e)
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand: an errno as an error value.
pub fn errno<T>(e: rustix::io::Errno) -> Result<T> {
    Err(Error::Errno(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_failures_keep_their_errno_and_config_mistakes_are_einval() {
        let denied = Error::io(
            "lower dir",
            "/x",
            std::io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(denied.errno(), libc::EACCES);
        assert!(!denied.is_config());
        assert!(denied.to_string().contains("/x"));
        let cfg = Error::Config("unknown mount option 'x'".into());
        assert_eq!(cfg.errno(), libc::EINVAL);
        assert!(cfg.is_config());
    }

    #[test]
    fn daemon_errors_cross_the_pipe_with_their_errno() {
        let e = Error::sys("upper dir", "/u", rustix::io::Errno::ROFS);
        let back = Error::from_wire(&e.to_wire());
        assert_eq!(back.errno(), libc::EROFS);
        assert_eq!(back.to_string(), e.to_string());
        let c = Error::from_wire(&Error::Config("bad threads 'x'".into()).to_wire());
        assert!(c.is_config());
        assert_eq!(c.to_string(), "bad threads 'x'");
    }
}
