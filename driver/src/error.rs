//! Typed errors of the storage driver. Every variant carries what it is about: the path, the
//! digest, the layer or the tar entry; nothing is flattened into strings.

use std::io;
use std::path::PathBuf;

use crate::archive::Compression;
use crate::digest::Digest;

/// Which digest a mismatch is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    /// A blob in `blobs/sha256/`.
    Blob,
    /// The digest of an uncompressed layer tar (diff_id).
    DiffId,
    /// The digest of a layer stream as received (possibly compressed).
    LayerBlob,
}

impl std::fmt::Display for DigestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DigestKind::Blob => "blob",
            DigestKind::DiffId => "layer diff_id",
            DigestKind::LayerBlob => "layer blob",
        })
    }
}

/// Everything that can go wrong in cairn-driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A digest string is not `sha256:<64 lowercase hex>`.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest { input: String, reason: &'static str },
    /// Content did not hash to what was expected; nothing was made visible.
    #[error("{kind} digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        kind: DigestKind,
        expected: Digest,
        actual: Digest,
    },
    /// A system call on a store path failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A metadata file could not be encoded or decoded.
    #[error("metadata {path:?}: {source}")]
    Meta {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// One tar entry was refused or could not be extracted.
    #[error("tar entry {entry:?}: {problem}")]
    Entry {
        entry: String,
        #[source]
        problem: EntryError,
    },
    /// The layer stream itself is unreadable (truncated or corrupt compression or tar framing).
    #[error("layer stream ({compression}): {source}")]
    Stream {
        compression: Compression,
        #[source]
        source: io::Error,
    },
    /// No layer with this chain id is in the store.
    #[error("layer {chain} not found")]
    LayerNotFound { chain: Digest },
    /// The parent chain named for an import is not in the store.
    #[error("parent layer {parent} not found")]
    ParentNotFound { parent: Digest },
    /// A layer cannot be removed while another layer names it as parent.
    #[error("layer {chain} is the parent of layer {child}")]
    LayerInUse { chain: Digest, child: Digest },
    /// A directory of an upper has `trusted.overlay.redirect`, which OCI layers cannot express.
    #[error(
        "{path:?}: Unsupported redirect (renamed directory, trusted.overlay.redirect) in an OCI layer"
    )]
    UnsupportedRedirect { path: PathBuf },
    /// A file of an upper is a metacopy (data only in a lower layer), which OCI layers cannot express.
    #[error("{path:?}: Unsupported metacopy file (trusted.overlay.metacopy) in an OCI layer")]
    UnsupportedMetacopy { path: PathBuf },
    /// Writing the exported layer tar failed.
    #[error("writing layer tar (at {path:?}): {source}")]
    Export {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A compressed layer stream expands beyond the configured ratio ("layer bomb").
    #[error(
        "layer expands more than {limit} times its compressed size ({uncompressed} bytes from {compressed}); refused (CAIRN_MAX_EXPAND=RATIO or off changes the limit)"
    )]
    TooExpanded {
        limit: u64,
        uncompressed: u64,
        compressed: u64,
    },
    /// An import limit in the environment cannot be parsed.
    #[error("invalid {var}={value:?}: expected a number (sizes may end in k, m, g, t) or off")]
    BadLimit { var: &'static str, value: String },
    /// No store root could be determined from the environment.
    #[error("no store root: CAIRN_ROOT, XDG_DATA_HOME and HOME are all unset")]
    NoRoot,
}

/// Why one tar entry was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// A `..` component: the entry would leave the layer.
    #[error("path has a `..` component")]
    DotDot,
    /// A path component longer than NAME_MAX.
    #[error("path component of {len} bytes exceeds 255")]
    NameTooLong { len: usize },
    /// The path names nothing (or only the layer root where that makes no sense).
    #[error("empty path")]
    EmptyPath,
    /// A parent component is a symlink; nothing is ever written through one.
    #[error("refusing to write through a symlink in the path")]
    ThroughSymlink,
    /// A parent component exists but is not a directory.
    #[error("a parent path component is not a directory")]
    ParentNotDir,
    /// A hardlink target has a `..` component or is otherwise outside the layer.
    #[error("hardlink target {target:?} is outside the layer")]
    LinkOutside { target: String },
    /// A hardlink target was not extracted (earlier in this layer) before the link.
    #[error("hardlink target {target:?} is not an earlier entry of this layer")]
    LinkTargetMissing { target: String },
    /// A link entry without a link name.
    #[error("link entry without a link name")]
    MissingLinkName,
    /// An entry type cairn does not extract (e.g. GNU sparse/multivolume, contiguous).
    #[error("unsupported entry type {0:#04x}")]
    UnsupportedType(u8),
    /// `.wh.` with nothing, `.`, or `..` after it.
    #[error("invalid whiteout name")]
    BadWhiteout,
    /// The store's filesystem would drop below its reserve ("layer bomb" guard).
    #[error("not enough space: {needed} bytes needed, {available} available above the reserve")]
    NoSpace { needed: u64, available: u64 },
    /// The layer exceeds the configured size limit.
    #[error("layer exceeds the size limit of {limit} bytes (CAIRN_MAX_LAYER_SIZE)")]
    TooLarge { limit: u64 },
    /// A header field (uid, mode, device number, PAX record) cannot be parsed.
    #[error("bad header field {field}: {source}")]
    Header {
        field: &'static str,
        #[source]
        source: io::Error,
    },
    /// A system call while creating the entry failed.
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an `Error::Io` closure for `map_err`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}

/// Builds an `Error::Io` closure from an errno for `map_err`.
pub(crate) fn errno_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(rustix::io::Errno) -> Error {
    let path = path.into();
    move |e| Error::Io {
        op,
        path,
        source: e.into(),
    }
}
