//! Image metadata: the config blob (kept as raw bytes — the image ID is the sha256 of exactly
//! those bytes, never of a re-serialisation), `history` rows, configs for `cairn import` with
//! Dockerfile-style changes, OCI manifests and indexes, docker-archive `manifest.json`, the
//! docker `inspect` shape, and the human formatting docker uses (sizes, "2 hours ago").
//!
//! Parsing goes through `oci_spec::image` types; everything this module *writes* goes through
//! private mirror structs with `BTreeMap`s so the bytes are deterministic (oci-spec uses
//! `HashMap` for labels, annotations, ports and volumes).

use oci_spec::image::MediaType;
use sha2::{Digest as _, Sha256};

mod changes;
mod config;
mod human;
mod inspect;
mod manifest;
mod time;

pub use changes::*;
pub use config::*;
pub use human::*;
pub use inspect::*;
pub use manifest::*;
pub use time::*;

// ---------------------------------------------------------------------------------------------
// Media types and annotations
// ---------------------------------------------------------------------------------------------

pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST_V2: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_CONFIG_V1: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// OCI annotation docker/containerd put on index entries: the tag (or a full reference).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation with the full normalised image name, written by Docker 25+ `save`.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a layer media type; unknown types are an error (not a layer cairn can
/// apply).
pub fn layer_compression(media_type: &MediaType) -> Result<LayerCompression, ImageError> {
    use LayerCompression as C;
    match media_type {
        MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => Ok(C::None),
        MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => Ok(C::Gzip),
        MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => Ok(C::Zstd),
        MediaType::Other(s) if s == DOCKER_LAYER_TAR => Ok(C::None),
        MediaType::Other(s) if s == DOCKER_LAYER_GZIP || s == DOCKER_FOREIGN_LAYER_GZIP => {
            Ok(C::Gzip)
        }
        other => Err(ImageError::UnknownMediaType {
            what: "layer",
            media_type: other.to_string(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Errors of this module; each names the field, media type or change it is about.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: missing required field {field:?}")]
    MissingField {
        what: &'static str,
        field: &'static str,
    },
    #[error("{what}: field {field:?} {problem}")]
    InvalidField {
        what: &'static str,
        field: String,
        problem: String,
    },
    #[error(
        "image config: history has more non-empty layers than rootfs.diff_ids has entries ({diff_ids})"
    )]
    HistoryMismatch { diff_ids: usize },
    #[error(
        "schema1 manifests ({media_type}) are no longer supported: push the image again with a current client"
    )]
    Schema1 { media_type: String },
    #[error("unsupported manifest schemaVersion {0} (only 2 is supported)")]
    SchemaVersion(u64),
    #[error("unsupported media type {media_type:?} for {what}")]
    UnknownMediaType {
        what: &'static str,
        media_type: String,
    },
    #[error("expected {expected}, found {found} ({media_type})")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
        media_type: String,
    },
    #[error("invalid digest {digest:?} in {what}")]
    BadDigest { what: &'static str, digest: String },
    #[error("invalid change '{change}': {reason}")]
    InvalidChange { change: String, reason: String },
    #[error(
        "{0} is not a valid change command: only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR are allowed"
    )]
    UnsupportedChange(String),
    #[error("docker archive manifest.json, entry {index}: {problem}")]
    ArchiveEntry { index: usize, problem: String },
    #[error("invalid tag {tag:?} in archive: {source}")]
    ArchiveTag {
        tag: String,
        #[source]
        source: crate::refs::RefError,
    },
}

type Result<T, E = ImageError> = std::result::Result<T, E>;

fn invalid(what: &'static str, field: impl Into<String>, problem: impl Into<String>) -> ImageError {
    ImageError::InvalidField {
        what,
        field: field.into(),
        problem: problem.into(),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in sum {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Chain IDs for a list of diff IDs (OCI image spec): chain(L0) = diff(L0),
/// chain(L0..Ln) = sha256(chain(L0..Ln-1) + " " + diff(Ln)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}
