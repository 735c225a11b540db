//! Filesystem workloads on a mounted stack: walks, reads, writes, copy-up, unlink, rename,
//! readdir, lookups across depth, mount latency and parallel readers.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Measured, StackRef, Workload, timed};
use crate::runner::{Env, drop_caches};
use crate::scan::sample;

const READ_BUF: usize = 1 << 20;

/// readdir + lstat of everything below `dir`; returns the number of entries.
fn walk(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("readdir {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        n += 1;
        if meta.is_dir() {
            n += walk(&entry.path())?;
        }
    }
    Ok(n)
}

/// Read a whole file into `buf` chunk by chunk; returns bytes read.
fn read_file(path: &Path, buf: &mut [u8]) -> Result<u64> {
    let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut total = 0;
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

fn read_all(env: &Env, files: &[PathBuf]) -> Result<(u64, u64)> {
    let mut buf = vec![0u8; READ_BUF];
    let mut bytes = 0;
    for f in files {
        bytes += read_file(&env.path(f), &mut buf)?;
    }
    Ok((files.len() as u64, bytes))
}

fn biggest(env: &Env) -> Result<(PathBuf, u64)> {
    let (rel, size) = env
        .info
        .biggest_file
        .clone()
        .ok_or_else(|| anyhow!("stack has no regular file"))?;
    Ok((env.path(&rel), size))
}

fn lower_targets(env: &Env, what: &str) -> Result<Vec<PathBuf>> {
    let targets = sample(&env.info.small_files(), env.profile.many_ops, env.seed);
    if targets.is_empty() {
        bail!("stack has no small files to {what}");
    }
    Ok(targets.iter().map(|t| env.path(t)).collect())
}

pub fn walk_cold(env: &mut Env) -> Result<Measured> {
    env.mount_cold()?;
    timed(|| Ok((walk(&env.mnt)?, 0)))
}

pub fn walk_warm(env: &mut Env) -> Result<Measured> {
    env.mount()?;
    walk(&env.mnt)?;
    timed(|| Ok((walk(&env.mnt)?, 0)))
}

pub fn read_all_cold(env: &mut Env) -> Result<Measured> {
    let files = env.info.small_files();
    env.mount_cold()?;
    timed(|| read_all(env, &files))
}

pub fn seq_read_cold(env: &mut Env) -> Result<Measured> {
    let (path, _) = biggest(env)?;
    let mut buf = vec![0u8; READ_BUF];
    env.mount_cold()?;
    timed(|| Ok((1, read_file(&path, &mut buf)?)))
}

pub fn seq_read_warm(env: &mut Env) -> Result<Measured> {
    let (path, _) = biggest(env)?;
    let mut buf = vec![0u8; READ_BUF];
    env.mount()?;
    read_file(&path, &mut buf)?;
    timed(|| Ok((1, read_file(&path, &mut buf)?)))
}

pub fn rand_read_cold(env: &mut Env) -> Result<Measured> {
    let (path, size) = biggest(env)?;
    let blocks = (size / 4096).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(env.seed);
    let offsets: Vec<u64> = (0..env.profile.random_reads)
        .map(|_| rng.random_range(0..blocks) * 4096)
        .collect();
    let mut buf = vec![0u8; 4096];
    env.mount_cold()?;
    let file = File::open(&path)?;
    timed(|| {
        let mut bytes = 0;
        for &off in &offsets {
            bytes += file.read_at(&mut buf, off)? as u64;
        }
        Ok((offsets.len() as u64, bytes))
    })
}

/// Mounts, makes the empty directory `cairn-bench-new` and returns the paths of the
/// `create_files` files the create workloads write there.
fn new_file_names(env: &mut Env) -> Result<Vec<PathBuf>> {
    env.mount()?;
    let dir = env.path(Path::new("cairn-bench-new"));
    fs::create_dir(&dir)?;
    Ok((0..env.profile.create_files)
        .map(|i| dir.join(format!("n{i:06}")))
        .collect())
}

pub fn create_small(env: &mut Env) -> Result<Measured> {
    let content = [b'c'; 1024];
    let names = new_file_names(env)?;
    let n = names.len();
    timed(|| {
        for name in &names {
            File::create(name)?.write_all(&content)?;
        }
        Ok((n as u64, (n * content.len()) as u64))
    })
}

pub fn create_4k_sync(env: &mut Env) -> Result<Measured> {
    let content = [b'c'; 4096];
    let names = new_file_names(env)?;
    let n = names.len();
    timed(|| {
        for name in &names {
            File::create_new(name)?.write_all(&content)?;
        }
        rustix::fs::sync();
        Ok((n as u64, (n * content.len()) as u64))
    })
}

pub fn big_write_fsync(env: &mut Env) -> Result<Measured> {
    let total = env.profile.big_write_bytes;
    let mut chunk = vec![0u8; READ_BUF];
    ChaCha8Rng::seed_from_u64(env.seed).fill_bytes(&mut chunk);
    env.mount()?;
    let path = env.path(Path::new("cairn-bench-big"));
    timed(|| {
        let mut file = File::create(&path)?;
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        Ok((1, total))
    })
}

pub fn copy_up(env: &mut Env) -> Result<Measured> {
    let targets = lower_targets(env, "copy up")?;
    env.mount()?;
    timed(|| {
        for t in &targets {
            OpenOptions::new().append(true).open(t)?.write_all(b"x")?;
        }
        Ok((targets.len() as u64, targets.len() as u64))
    })
}

pub fn unlink_lower(env: &mut Env) -> Result<Measured> {
    let targets = lower_targets(env, "unlink")?;
    env.mount()?;
    timed(|| {
        for t in &targets {
            fs::remove_file(t).with_context(|| format!("unlink {}", t.display()))?;
        }
        Ok((targets.len() as u64, 0))
    })
}

pub fn rename_lower(env: &mut Env) -> Result<Measured> {
    let targets = lower_targets(env, "rename")?;
    let renamed: Vec<PathBuf> = targets
        .iter()
        .map(|t| {
            let mut name = t.clone().into_os_string();
            name.push(".mv");
            PathBuf::from(name)
        })
        .collect();
    env.mount()?;
    timed(|| {
        for (from, to) in targets.iter().zip(&renamed) {
            fs::rename(from, to).with_context(|| format!("rename {}", from.display()))?;
        }
        Ok((targets.len() as u64, 0))
    })
}

pub fn readdir_bigdir_cold(env: &mut Env) -> Result<Measured> {
    let (rel, _) = env
        .info
        .biggest_dir
        .clone()
        .ok_or_else(|| anyhow!("stack has no directory"))?;
    let dir = env.path(&rel);
    env.mount_cold()?;
    timed(|| {
        let mut n = 0;
        for entry in fs::read_dir(&dir)? {
            entry?;
            n += 1;
        }
        Ok((n, 0))
    })
}

pub fn parallel_read_cold(env: &mut Env) -> Result<Measured> {
    let files = env.info.small_files();
    let threads = env.threads.max(1);
    env.mount_cold()?;
    let env = &*env;
    timed(|| {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let mine: Vec<PathBuf> =
                        files.iter().skip(t).step_by(threads).cloned().collect();
                    s.spawn(move || read_all(env, &mine))
                })
                .collect();
            let mut total = (0, 0);
            for h in handles {
                let (ops, bytes) = h.join().map_err(|_| anyhow!("reader thread panicked"))??;
                total = (total.0 + ops, total.1 + bytes);
            }
            Ok(total)
        })
    })
}

/// lstat of bottom-layer files through a stack of a given depth, on a cold mount.
pub struct Lookup {
    pub stack: StackRef,
    pub label: String,
    pub count: usize,
}

impl Workload for Lookup {
    fn name(&self) -> String {
        format!("lookup-bottom-{}", self.label)
    }
    fn about(&self) -> String {
        format!(
            "cold mount, lstat {} bottom-layer files through the {} stack",
            self.count, self.label
        )
    }
    fn stack(&self) -> StackRef {
        self.stack
    }
    fn run(&self, env: &mut Env) -> Result<Measured> {
        let targets: Vec<PathBuf> = sample(&env.info.bottom_files, self.count, env.seed)
            .iter()
            .map(|t| env.path(t))
            .collect();
        if targets.is_empty() {
            bail!("no bottom-layer file is visible through the stack");
        }
        env.mount_cold()?;
        timed(|| {
            for t in &targets {
                fs::symlink_metadata(t).with_context(|| format!("lstat {}", t.display()))?;
            }
            Ok((targets.len() as u64, 0))
        })
    }
}

/// Time from starting the mount command to the first lstat of a bottom-layer file returning.
pub struct MountFirstStat {
    pub stack: StackRef,
    pub label: String,
}

impl Workload for MountFirstStat {
    fn name(&self) -> String {
        format!("mount-first-stat-{}", self.label)
    }
    fn about(&self) -> String {
        format!(
            "caches dropped, then mount the {} stack + lstat of one bottom-layer file",
            self.label
        )
    }
    fn stack(&self) -> StackRef {
        self.stack
    }
    fn run(&self, env: &mut Env) -> Result<Measured> {
        let target = sample(&env.info.bottom_files, 1, env.seed)
            .pop()
            .ok_or_else(|| anyhow!("no bottom-layer file is visible through the stack"))?;
        let target = env.path(&target);
        drop_caches()?;
        timed(|| {
            env.mount()?;
            fs::symlink_metadata(&target).with_context(|| format!("lstat {}", target.display()))?;
            Ok((1, 0))
        })
    }
}
