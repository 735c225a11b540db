//! Shared harness for the end-to-end union-filesystem tests.
//!
//! The same scenario runs against two backends — kernel overlayfs (the oracle) and cairn — each on
//! its own freshly built copy of the layers, and every observation (op results, tree snapshots,
//! snapshots after remount, and "cross" mounts of one backend over the upper the other one wrote)
//! must be identical. Modules:
//! - [`backend`]: environment gating, mounting and unmounting both backends.
//! - [`layers`]: deterministic builder for lower layer directories (overlay and OCI whiteouts).
//! - [`ops`]: the filesystem operations a scenario performs, each with a printable label.
//! - [`snapshot`]: the tree snapshot of a merged mount and a readable diff of two snapshots.
//! - [`runner`]: runs a scenario on both backends and compares everything.
//!
//! Set `CAIRN_TEST_SELF_CHECK=1` to put the kernel on the cairn side too (proves the harness), and
//! `CAIRN_TEST_VERBOSE=1` (with `--nocapture`) to print the kernel's op log and tree per scenario.

// Each test binary uses a different subset of the harness.
#![allow(dead_code)]

pub mod backend;
pub mod layers;
pub mod ops;
pub mod runner;
pub mod snapshot;

pub use layers::Layers;
pub use ops::{Op, RenameMode};
pub use runner::{Ctx, Scenario};
