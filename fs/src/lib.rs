//! cairn-fs: cairn's FUSE union filesystem. Read-only lower layers and a copy-on-write upper
//! are shown as one tree with the semantics of the kernel's overlayfs (index=, redirect_dir=):
//! whiteouts, opaque directories, copy-up through a work dir, directory renames by redirect.

pub mod adopt;
pub mod attr;
pub mod copyup;
pub mod error;
mod fo_options;
pub mod fuse;
mod fuse_open;
pub mod idmap;
pub mod inode;
pub mod io;
pub mod killpriv;
pub mod layer;
pub mod mount;
pub mod mount_check;
pub mod namespace;
pub mod overlay;
pub mod readdir;
pub mod rules;
pub mod stats;
pub mod view;
pub mod whiteout;

pub use error::{Error, Result};
pub use overlay::{Config, Overlay};
