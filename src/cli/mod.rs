//! One module per command group.

pub mod archive;
pub mod bundle;
pub mod commit;
pub mod container_fs;
pub mod container_opts;
pub mod cp;
pub mod exec;
pub mod format;
pub mod images;
pub mod inspect;
pub mod lifecycle;
pub mod logs;
pub mod mount;
pub mod mount_program;
pub mod progress;
pub mod ps;
pub mod registry;
pub mod run;
pub mod store;
pub mod system;
