//! cairn-graphdriver: cairn as a Docker graphdriver plugin (dockerd 20.10–27, experimental
//! mode; Docker 28 removed graphdriver plugins).
//!
//! - [`layers`]: docker's layers as overlay-format directories under the driver's home, their
//!   union mounts (a cairn FUSE mount of the whole parent chain, reference-counted across
//!   `Get`/`Put`), and their tars through cairn's archive code;
//! - [`server`]: the legacy plugin protocol (JSON over HTTP/1.1 on a unix socket) mapped onto
//!   [`layers::Layers`], one thread per request.

pub mod layers;
pub mod server;

use std::path::PathBuf;

/// Errors of the graphdriver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call before `GraphDriver.Init`.
    #[error("graphdriver is not initialised (no GraphDriver.Init yet)")]
    NotInitialised,
    /// A layer id that is not a single path component.
    #[error("invalid layer id {0:?}")]
    InvalidId(String),
    #[error("layer {0} does not exist")]
    NoSuchLayer(String),
    #[error("layer {0} already exists")]
    LayerExists(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The layer tar could not be read or written.
    #[error("layer {id}: {source}")]
    Archive {
        id: String,
        #[source]
        source: cairn_driver::Error,
    },
    /// Mounting or unmounting the union failed.
    #[error("layer {id}: {msg}")]
    Mount { id: String, msg: String },
    /// A request body that is not the protocol's JSON.
    #[error("{endpoint}: bad request: {source}")]
    Request {
        endpoint: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("unknown endpoint {0}")]
    UnknownEndpoint(String),
}

/// Result of the graphdriver.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { what, path, source }
}
