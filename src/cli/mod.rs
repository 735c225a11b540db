//! One module per command group.

pub mod archive;
pub mod bundle;
pub mod container_opts;
pub mod format;
pub mod images;
pub mod lifecycle;
pub mod logs;
pub mod mount;
pub mod ps;
pub mod run;
pub mod store;
pub mod system;
