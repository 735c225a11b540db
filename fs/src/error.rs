//! Typed errors of the union filesystem, with the errno each one maps to (chosen in one place).

use std::path::PathBuf;

/// Everything that can go wrong inside cairn-fs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a layer object failed; carries the layer and the path inside it.
    #[error("{op} {path:?} in layer {layer}: {source}")]
    Io {
        op: &'static str,
        layer: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A plain errno answer for the caller (ENOENT, EEXIST, ENOTEMPTY, ...), not a failure.
    #[error("{0}")]
    Errno(rustix::io::Errno),
    /// A mount option or layer argument is not acceptable.
    #[error("{0}")]
    Config(String),
    /// The node id the kernel asked about is unknown (already forgotten).
    #[error("stale node {0}")]
    Stale(u64),
}

impl Error {
    /// The errno the kernel gets for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Errno(e) => e.raw_os_error(),
            Error::Config(_) => libc::EINVAL,
            Error::Stale(_) => libc::ESTALE,
        }
    }

    /// True when this error is the given errno.
    pub fn is(&self, errno: rustix::io::Errno) -> bool {
        self.errno() == errno.raw_os_error()
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
