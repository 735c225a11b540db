//! cairn-driver: the storage side of cairn (issue 4).
//!
//! - [`digest`]: sha256 digests, streaming hashers, OCI chain ids;
//! - [`store`]: the on-disk store (`blobs/`, `layers/`, `tmp/`, `lock`), atomic writes, fsck;
//! - [`archive`]: layer tar import (OCI → overlay format) and export (overlay → OCI tar);
//! - [`layer`]: the layer store API over all of the above;
//! - [`image`], [`images`], [`refs`]: image manifests/configs, the image index, references.

pub mod archive;
pub mod commit;
pub mod diff;
pub mod digest;
pub mod error;
pub mod image;
pub mod images;
pub mod layer;
pub mod load;
pub mod refs;
pub mod registry;
pub mod save;
pub mod store;

pub use digest::{Digest, chain_id};
pub use error::{Error, Result};
pub use layer::{LayerInfo, LayerStore};
pub use store::Store;
