//! cairn-fs: cairn's FUSE union filesystem. Read-only lower layers and a copy-on-write upper
//! are shown as one tree with the semantics of the kernel's overlayfs (redirect_dir=on):
//! whiteouts, opaque directories, copy-up through a work dir, directory renames by redirect.

pub mod attr;
pub mod copyup;
pub mod error;
pub mod fuse;
pub mod inode;
pub mod io;
pub mod layer;
pub mod mount;
pub mod mount_check;
pub mod namespace;
pub mod overlay;
pub mod readdir;
pub mod view;
pub mod whiteout;

pub use error::{Error, Result};
pub use overlay::{Config, Overlay};
