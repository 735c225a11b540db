//! The `Workload` trait and the registry of workloads a run chooses from.
//!
//! A workload gets an [`Env`]: a fresh upper, an unmounted mount point and helpers to mount
//! warm or cold. It does its own untimed setup, times only the region it measures with
//! [`timed`], and returns the measurement; the runner unmounts and cleans up. Workloads that
//! do not need a union mount at all (image pull, run, build in later issues) simply ignore the
//! mount helpers: add a module here and push them in [`registry`].

mod fs_ops;
pub mod image;
pub mod pull;
pub mod start;

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::profile::Profile;
use crate::runner::Env;
use crate::stack::StackSet;

/// Which stack of the [`StackSet`] a workload runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum StackRef {
    Main,
    /// The lookup-depth stack with this many layers.
    Depth(usize),
}

/// One measured repetition.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Measured {
    pub time: Duration,
    /// Operations done in the measured region (files, lookups, reads...).
    pub ops: u64,
    /// Bytes read or written in the measured region.
    pub bytes: u64,
    /// What the daemon reported for the whole mount (cairn's `-o stats=FILE`).
    pub daemon: Option<Daemon>,
}

/// A FUSE daemon's counters over one mount's life: untimed setup (a warm-up walk) included.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Daemon {
    /// FUSE requests served.
    pub requests: u64,
    /// CPU time (user + system) of the daemon process.
    pub cpu_s: f64,
    /// Peak resident set size.
    pub maxrss_kib: u64,
}

pub trait Workload {
    /// Stable name, used in reports and by `--workloads`.
    fn name(&self) -> String;
    /// One line: what is measured, with sizes.
    fn about(&self) -> String;
    /// The stack to mount.
    fn stack(&self) -> StackRef {
        StackRef::Main
    }
    /// One repetition.
    fn run(&self, env: &mut Env) -> Result<Measured>;
}

/// Time `f`, which returns (ops, bytes).
pub fn timed(f: impl FnOnce() -> Result<(u64, u64)>) -> Result<Measured> {
    let start = Instant::now();
    let (ops, bytes) = f()?;
    Ok(Measured {
        time: start.elapsed(),
        ops,
        bytes,
        daemon: None,
    })
}

/// A workload defined by a plain function.
struct FnWorkload {
    name: &'static str,
    about: String,
    run: fn(&mut Env) -> Result<Measured>,
}

impl Workload for FnWorkload {
    fn name(&self) -> String {
        self.name.to_string()
    }
    fn about(&self) -> String {
        self.about.clone()
    }
    fn run(&self, env: &mut Env) -> Result<Measured> {
        (self.run)(env)
    }
}

/// Every workload for this profile and stack set, in run order.
pub fn registry(p: &Profile, stacks: &StackSet) -> Vec<Box<dyn Workload>> {
    let f =
        |name, about: String, run| Box::new(FnWorkload { name, about, run }) as Box<dyn Workload>;
    let mib = |b: u64| b >> 20;
    let mut list = vec![
        f(
            "walk-stat-cold",
            "cold mount, readdir + lstat of every entry".into(),
            fs_ops::walk_cold,
        ),
        f(
            "walk-stat-warm",
            "walk once untimed, then readdir + lstat of every entry".into(),
            fs_ops::walk_warm,
        ),
        f(
            "read-all-cold",
            "cold mount, read every file ≤ 16 MiB".into(),
            fs_ops::read_all_cold,
        ),
        f(
            "seq-read-cold",
            "cold mount, read the biggest file, 1 MiB reads".into(),
            fs_ops::seq_read_cold,
        ),
        f(
            "seq-read-warm",
            "read the biggest file once untimed, then again".into(),
            fs_ops::seq_read_warm,
        ),
        f(
            "rand-read-4k-cold",
            format!(
                "cold mount, {} random 4 KiB preads of the biggest file",
                p.random_reads
            ),
            fs_ops::rand_read_cold,
        ),
        f(
            "create-small",
            format!(
                "create {} files of 1 KiB in a new directory",
                p.create_files
            ),
            fs_ops::create_small,
        ),
        f(
            "create-4k-sync",
            format!(
                "create {} files of 4 KiB in a new directory, then sync",
                p.create_files
            ),
            fs_ops::create_4k_sync,
        ),
        f(
            "big-write-fsync",
            format!(
                "write a {} MiB new file, 1 MiB writes, then fsync",
                mib(p.big_write_bytes)
            ),
            fs_ops::big_write_fsync,
        ),
        f(
            "copy-up",
            format!("append 1 byte to {} lower files (data copy-up)", p.many_ops),
            fs_ops::copy_up,
        ),
        f(
            "unlink-lower",
            format!("unlink {} lower files", p.many_ops),
            fs_ops::unlink_lower,
        ),
        f(
            "rename-lower",
            format!("rename {} lower files in place", p.many_ops),
            fs_ops::rename_lower,
        ),
        f(
            "readdir-bigdir-cold",
            "cold mount, list the largest directory (names only)".into(),
            fs_ops::readdir_bigdir_cold,
        ),
    ];
    if stacks.depth.is_empty() {
        list.push(Box::new(fs_ops::Lookup {
            stack: StackRef::Main,
            label: "user".into(),
            count: p.depth_files,
        }));
    }
    for (n, stack) in &stacks.depth {
        list.push(Box::new(fs_ops::Lookup {
            stack: StackRef::Depth(*n),
            label: stack.label.clone(),
            count: p.depth_files,
        }));
    }
    let deepest = stacks
        .depth
        .iter()
        .map(|(n, s)| (StackRef::Depth(*n), s.label.clone()))
        .next_back();
    let (stack, label) = deepest.unwrap_or((StackRef::Main, stacks.main.label.clone()));
    list.push(Box::new(fs_ops::MountFirstStat { stack, label }));
    list.push(f(
        "parallel-read-cold",
        "cold mount, read every file ≤ 16 MiB with one thread per core".into(),
        fs_ops::parallel_read_cold,
    ));
    list
}
