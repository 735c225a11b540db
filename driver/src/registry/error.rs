//! Errors of the registry client. Each names the registry, repository, reference or digest it
//! is about; transport errors keep their cause.

use std::path::PathBuf;

use crate::digest::Digest;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image name is not a valid reference.
    #[error(transparent)]
    Reference(#[from] crate::refs::RefError),
    /// No connection could be made (refused, unknown host, timeout, TLS).
    #[error("registry {registry} is unreachable ({url}): {source}")]
    Unreachable {
        registry: String,
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    /// A connection broke while reading a response (after the retries, for blobs).
    #[error("{registry}: reading {what}: {source}")]
    Transfer {
        registry: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The registry refused our credentials (or wants some).
    #[error("unauthorized: {message}")]
    Unauthorized { registry: String, message: String },
    /// The registry denied the operation (403).
    #[error("denied: {message} ({what})")]
    Denied { what: String, message: String },
    /// The manifest (tag or digest) does not exist.
    #[error("manifest for {reference} not found: manifest unknown: {message}")]
    ManifestUnknown { reference: String, message: String },
    /// The repository does not exist.
    #[error("repository {repository} not found: name unknown: {message}")]
    NameUnknown { repository: String, message: String },
    /// Any other unexpected HTTP status.
    #[error("{registry}: {what}: HTTP {status}: {message}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        message: String,
    },
    /// A response that breaks the protocol (missing header, bad JSON, bad Location).
    #[error("{registry}: {what}: {problem}")]
    BadResponse {
        registry: String,
        what: String,
        problem: String,
    },
    /// The manifest is not one cairn can pull (schema1, unknown media type, malformed).
    #[error("{reference}: {source}")]
    Manifest {
        reference: String,
        #[source]
        source: crate::image::ImageError,
    },
    /// The manifest list has no entry for the wanted platform.
    #[error(
        "{reference}: no matching manifest for {wanted} in the manifest list entries (available: {available})"
    )]
    NoPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    /// The image is for another platform than the one asked for.
    #[error("{reference}: image is for {actual}, not the requested platform {wanted}")]
    PlatformMismatch {
        reference: String,
        wanted: String,
        actual: String,
    },
    /// An `--platform` value that is not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    BadPlatform(String),
    /// Content did not hash to the digest it was fetched by.
    #[error("{what} from {registry}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        registry: String,
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    /// A blob is bigger than its descriptor says (or than a manifest may be).
    #[error("{what} {digest} from {registry}: larger than the {limit} bytes expected")]
    TooLarge {
        registry: String,
        what: &'static str,
        digest: String,
        limit: u64,
    },
    /// A layer could not be stored (its digest, the store error).
    #[error("layer {digest}: {source}")]
    Layer {
        digest: Digest,
        #[source]
        source: crate::error::Error,
    },
    /// The image's config names diff_ids that do not match its manifest's layers.
    #[error("{reference}: config lists {diff_ids} layers, the manifest {layers}")]
    LayerCount {
        reference: String,
        diff_ids: usize,
        layers: usize,
    },
    /// A layer of an image to push has no blob in the store.
    #[error("image {image}: the data of layer {diff_id} is not in the store")]
    MissingBlob { image: Digest, diff_id: Digest },
    /// Too many redirects.
    #[error("{registry}: too many redirects ({url})")]
    Redirects { registry: String, url: String },
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] crate::error::Error),
    /// An image index operation failed.
    #[error(transparent)]
    Images(#[from] crate::images::ImagesError),
    /// The credentials or registries file could not be read or written.
    #[error("{path:?}: {source}")]
    ConfigIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The credentials or registries file is not valid.
    #[error("{path:?}: {problem}")]
    ConfigFormat { path: PathBuf, problem: String },
}

/// Result alias of this module.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
