//! Runs workloads against implementations: one fresh upper/work per repetition, caches dropped
//! for cold runs, repetitions interleaved across implementations so drift hits all alike.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::image_gen::ImageArchive;
use crate::impls::{self, Impl};
use crate::profile::Profile;
use crate::scan::StackInfo;
use crate::stack::Stack;
use crate::workloads::image::{ImageEnv, ImageWorkload, Importer};
use crate::workloads::{Measured, StackRef, Workload};

/// What a workload sees during one repetition: a not-yet-mounted mount point over a fresh
/// upper, and helpers to mount it warm or cold. The runner unmounts and cleans up afterwards.
pub struct Env<'a> {
    pub imp: &'a Impl,
    pub stack: &'a Stack,
    pub info: &'a StackInfo,
    pub profile: &'a Profile,
    pub seed: u64,
    pub threads: usize,
    pub mnt: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    mounted: bool,
}

impl Env<'_> {
    /// Mount the stack (page cache as it is).
    pub fn mount(&mut self) -> Result<()> {
        self.imp
            .mount(self.stack, &self.upper, &self.work, &self.mnt)?;
        self.mounted = true;
        Ok(())
    }

    /// Drop the page, dentry and inode caches, then mount: a cold start.
    pub fn mount_cold(&mut self) -> Result<()> {
        drop_caches()?;
        self.mount()
    }

    /// A path inside the mounted view.
    pub fn path(&self, rel: &Path) -> PathBuf {
        self.mnt.join(rel)
    }
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`.
pub fn drop_caches() -> Result<()> {
    rustix::fs::sync();
    fs::write("/proc/sys/vm/drop_caches", "3").context("dropping caches (needs root)")
}

/// Per-run directories under `<workdir>/run`.
pub struct Runner<'a> {
    pub workdir: PathBuf,
    pub profile: &'a Profile,
    pub seed: u64,
    pub threads: usize,
    /// Longest a repetition may take before a hung FUSE mount is aborted.
    pub timeout: Duration,
}

/// Outcome of one workload on one implementation over all repetitions.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub samples: Vec<Measured>,
    pub error: Option<String>,
}

impl Runner<'_> {
    fn run_dir(&self) -> PathBuf {
        self.workdir.join("run")
    }

    /// Unmount and remove whatever a previous (maybe interrupted) run left behind.
    pub fn clean(&self) -> Result<()> {
        let dir = self.run_dir();
        let mnt = dir.join("mnt");
        if impls::is_mountpoint(&mnt) {
            impls::force_unmount(&mnt)?;
        }
        for sub in ["upper", "work", "image"] {
            let p = dir.join(sub);
            if p.exists() {
                fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        fs::create_dir_all(&mnt)?;
        Ok(())
    }

    /// One repetition of `workload` on `imp`.
    pub fn once(
        &self,
        workload: &dyn Workload,
        imp: &Impl,
        stack: &Stack,
        info: &StackInfo,
    ) -> Result<Measured> {
        self.clean()?;
        let dir = self.run_dir();
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        fs::create_dir_all(&upper)?;
        fs::create_dir_all(&work)?;
        // Flush what earlier repetitions left dirty (deleted uppers, written files) so their
        // writeback does not land in this repetition's measured region.
        rustix::fs::sync();
        let mut env = Env {
            imp,
            stack,
            info,
            profile: self.profile,
            seed: self.seed,
            threads: self.threads,
            mnt: dir.join("mnt"),
            upper,
            work,
            mounted: false,
        };
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let result = std::thread::scope(|s| {
            let (mnt, timeout, name) = (env.mnt.clone(), self.timeout, workload.name());
            s.spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(timeout) {
                    eprintln!(
                        "{name} exceeded {timeout:?}: aborting the FUSE connection of {}",
                        mnt.display()
                    );
                    impls::abort_fuse(&mnt);
                }
            });
            let result = workload.run(&mut env);
            drop(done);
            result
        });
        let unmounted = if env.mounted {
            imp.unmount(&env.mnt)
        } else {
            Ok(())
        };
        let mut measured = result?;
        unmounted?;
        measured.daemon = impls::daemon_stats(imp, &env.mnt);
        Ok(measured)
    }

    /// Mount `stack` with `imp` on a fresh upper and hand the mount point to `f`; always unmounts.
    fn with_mount<T>(
        &self,
        imp: &Impl,
        stack: &Stack,
        f: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<T> {
        self.clean()?;
        let dir = self.run_dir();
        let (upper, work, mnt) = (dir.join("upper"), dir.join("work"), dir.join("mnt"));
        fs::create_dir_all(&upper)?;
        fs::create_dir_all(&work)?;
        imp.mount(stack, &upper, &work, &mnt)?;
        let result = f(&mnt);
        let unmounted = imp.unmount(&mnt);
        let value = result?;
        unmounted?;
        Ok(value)
    }

    /// Check that `imp` mounts the probe stack with overlay semantics (merge + whiteout).
    pub fn probe(&self, imp: &Impl, probe: &Stack) -> Result<()> {
        self.with_mount(imp, probe, |mnt| {
            let mut names: Vec<String> = fs::read_dir(mnt.join("d"))?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<std::io::Result<_>>()?;
            names.sort();
            if names != ["a", "b"] {
                anyhow::bail!(
                    "merged view of the probe stack is {names:?}, expected [\"a\", \"b\"]"
                );
            }
            Ok(())
        })
    }

    /// Describe `stack` as seen through `imp` (untimed).
    pub fn scan(&self, imp: &Impl, stack: &Stack) -> Result<StackInfo> {
        self.with_mount(imp, stack, |mnt| StackInfo::scan(mnt, stack.bottom()))
    }

    /// Run every workload `repeats` times on every implementation, interleaved, reporting
    /// progress on stderr.
    pub fn run_all(
        &self,
        workloads: &[Box<dyn Workload>],
        impls: &[Impl],
        stacks: &BTreeMap<StackRef, (Stack, StackInfo)>,
        repeats: usize,
    ) -> Vec<BTreeMap<String, Outcome>> {
        let mut all = Vec::new();
        for (wi, w) in workloads.iter().enumerate() {
            let Some((stack, info)) = stacks.get(&w.stack()) else {
                let mut outcomes = BTreeMap::new();
                for imp in impls {
                    let error = format!("stack {:?} not available", w.stack());
                    outcomes.insert(
                        imp.name.clone(),
                        Outcome {
                            samples: vec![],
                            error: Some(error),
                        },
                    );
                }
                all.push(outcomes);
                continue;
            };
            let label = format!("[{}/{}] {}", wi + 1, workloads.len(), w.name());
            let outcomes = interleaved(
                &label,
                impls,
                |i| &i.name,
                repeats,
                |imp| self.once(w.as_ref(), imp, stack, info),
            );
            all.push(outcomes);
        }
        if let Err(e) = self.clean() {
            eprintln!("cleanup failed: {e:#}");
        }
        all
    }
}

/// `repeats` repetitions of one workload on every implementation, interleaved (a, b, a, b, …)
/// so drift hits all alike. A failed repetition is retried once; a second failure ends the
/// workload for that implementation. Progress goes to stderr.
fn interleaved<I>(
    label: &str,
    impls: &[I],
    name: impl Fn(&I) -> &str,
    repeats: usize,
    once: impl Fn(&I) -> Result<Measured>,
) -> BTreeMap<String, Outcome> {
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    for rep in 0..repeats {
        for imp in impls {
            let outcome = outcomes.entry(name(imp).to_string()).or_default();
            if outcome.error.is_some() {
                continue;
            }
            let label = format!("{label} rep {}/{repeats} {}", rep + 1, name(imp));
            // One retry: a failure caused by something outside (a concurrent unmount, a full
            // disk cleaned meanwhile) should not cost the whole workload.
            let result = once(imp).or_else(|e| {
                eprintln!("{label}: failed ({e:#}); retrying once");
                once(imp)
            });
            match result {
                Ok(m) => {
                    eprintln!("{label}: {}", fmt_duration(m.time));
                    outcome.samples.push(m);
                }
                Err(e) => {
                    eprintln!("{label}: FAILED: {e:#}");
                    outcome.error = Some(format!("{e:#}"));
                }
            }
        }
    }
    outcomes
}

impl Runner<'_> {
    /// One repetition of an image workload with `tool` in a fresh `<workdir>/run/image`.
    fn once_image(
        &self,
        workload: &dyn ImageWorkload,
        tool: &Importer,
        archive: &ImageArchive,
    ) -> Result<Measured> {
        self.clean()?;
        let scratch = self.run_dir().join("image");
        fs::create_dir_all(&scratch)?;
        rustix::fs::sync();
        let env = ImageEnv {
            archive,
            workdir: &self.workdir,
            seed: self.seed,
            scratch: scratch.clone(),
            timeout: self.timeout,
        };
        let result = workload.run(tool, &env);
        let removed =
            fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()));
        let measured = result?;
        removed?;
        Ok(measured)
    }

    /// Run every image workload `repeats` times with every tool, interleaved.
    pub fn run_images(
        &self,
        workloads: &[Box<dyn ImageWorkload>],
        tools: &[Importer],
        archive: &ImageArchive,
        repeats: usize,
    ) -> Vec<BTreeMap<String, Outcome>> {
        let all = workloads
            .iter()
            .enumerate()
            .map(|(wi, w)| {
                let label = format!("[image {}/{}] {}", wi + 1, workloads.len(), w.name());
                let tools: Vec<Importer> =
                    tools.iter().filter(|t| w.applies_to(t)).cloned().collect();
                interleaved(
                    &label,
                    &tools,
                    |t| &t.name,
                    repeats,
                    |tool| self.once_image(w.as_ref(), tool, archive),
                )
            })
            .collect();
        if let Err(e) = self.clean() {
            eprintln!("cleanup failed: {e:#}");
        }
        all
    }
}

pub fn fmt_duration(d: Duration) -> String {
    fmt_secs(d.as_secs_f64())
}

pub fn fmt_secs(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.01 {
        format!("{:.0} ms", s * 1e3)
    } else if s >= 0.001 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}
