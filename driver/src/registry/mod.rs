//! A client of the OCI distribution spec (docker registries): pull into the store, push out of
//! it, log in, search a catalog.
//!
//! - [`client`]: one registry's HTTP client: scheme choice (plain HTTP for loopback and
//!   insecure registries), auth (anonymous, Basic, Bearer tokens from `WWW-Authenticate`,
//!   cached per scope), redirects followed by hand so `Authorization` never leaves its host;
//! - [`auth`]: `WWW-Authenticate` parsing and token responses (pure);
//! - [`credentials`]: the docker-config-compatible credentials file and the insecure list;
//! - [`platform`]: `os/arch[/variant]` and manifest-list selection (pure);
//! - [`blob`]: a blob download that resumes with `Range` after a broken connection;
//! - [`pull`], [`push`], [`search`]: the operations. None of them prints: progress goes to a
//!   [`Progress`] the caller implements.

pub mod auth;
pub mod blob;
pub mod client;
pub mod credentials;
mod error;
pub mod platform;
pub mod pull;
pub mod push;
pub mod search;

pub use client::{Client, ClientOptions};
pub use error::{RegistryError, Result};
pub use platform::Platform;

use crate::digest::Digest;

/// Something that happened to one blob during a pull or push, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobEvent {
    /// Pull: the layer will be fetched (`Pulling fs layer`). Push: queued (`Preparing`).
    Queued,
    /// Pull: the layer is already in the store (`Already exists`). Push: the registry has the
    /// blob (`Layer already exists`).
    Exists,
    /// Push: the blob was mounted from another repository of the registry.
    Mounted,
    /// Bytes moved so far of `total`.
    Progress { done: u64, total: u64 },
    /// A broken transfer is retried (resumed at `offset`) after a pause.
    Retrying { attempt: u32, offset: u64 },
    /// Pull: all bytes arrived (`Download complete`).
    Downloaded,
    /// Pull: verified and in the store (`Pull complete`). Push: uploaded (`Pushed`).
    Done,
}

/// Receives progress; implemented by the CLI (plain lines or progress bars). Called from
/// several threads at once.
pub trait Progress: Sync {
    /// An event about the blob with `digest`.
    fn blob(&self, digest: &Digest, event: BlobEvent);

    /// Push: the blob was mounted from repository `from` of the same registry.
    fn mounted(&self, digest: &Digest, from: &str) {
        let _ = from;
        self.blob(digest, BlobEvent::Mounted);
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn blob(&self, _: &Digest, _: BlobEvent) {}
}
