//! What a stack looks like through a mount: the files, sizes and directories workloads pick
//! their targets from. Taken once per stack through the reference implementation (kernel
//! overlayfs when available), outside every measured region, so generated and user-given
//! stacks are treated alike.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Files larger than this are "big": excluded from read-all, copy-up and friends.
pub const SMALL_LIMIT: u64 = 16 << 20;

#[derive(Clone, Debug, Default)]
pub struct StackInfo {
    /// Regular files visible in the merged view (relative paths, sizes), sorted by path.
    pub files: Vec<(PathBuf, u64)>,
    /// All entries visible in the merged view (files, dirs, symlinks, ...).
    pub entries: usize,
    /// The largest regular file.
    pub biggest_file: Option<(PathBuf, u64)>,
    /// The directory with the most entries.
    pub biggest_dir: Option<(PathBuf, usize)>,
    /// Regular files of the bottom layer that are visible unchanged through the stack.
    pub bottom_files: Vec<PathBuf>,
}

impl StackInfo {
    /// Walk the mounted view at `mnt`; `bottom` is the bottom layer directory.
    pub fn scan(mnt: &Path, bottom: &Path) -> Result<Self> {
        let mut info = StackInfo::default();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let mut count = 0;
            for entry in fs::read_dir(mnt.join(&rel))
                .with_context(|| format!("scanning {}", rel.display()))?
            {
                let entry = entry?;
                let meta = entry.metadata()?;
                let child = rel.join(entry.file_name());
                count += 1;
                if meta.is_dir() {
                    stack.push(child);
                } else if meta.is_file() {
                    info.files.push((child, meta.len()));
                }
            }
            info.entries += count;
            if info.biggest_dir.as_ref().is_none_or(|(_, n)| count > *n) {
                info.biggest_dir = Some((rel, count));
            }
        }
        info.files.sort();
        info.biggest_file = info.files.iter().max_by_key(|(_, size)| *size).cloned();
        let visible: HashSet<&Path> = info.files.iter().map(|(p, _)| p.as_path()).collect();
        let mut bottom_files = Vec::new();
        collect_files(bottom, Path::new(""), &mut bottom_files)?;
        bottom_files.retain(|p| visible.contains(p.as_path()));
        bottom_files.sort();
        info.bottom_files = bottom_files;
        Ok(info)
    }

    /// Regular files small enough to read or copy up many of.
    pub fn small_files(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|(_, s)| *s <= SMALL_LIMIT)
            .map(|(p, _)| p.clone())
            .collect()
    }
}

fn collect_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let child = rel.join(entry.file_name());
        if ty.is_dir() {
            collect_files(root, &child, out)?;
        } else if ty.is_file() {
            out.push(child);
        }
    }
    Ok(())
}

/// A seeded sample of `n` items (all if fewer), returned in sorted order.
pub fn sample(items: &[PathBuf], n: usize, seed: u64) -> Vec<PathBuf> {
    let mut picked = items.to_vec();
    picked.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    picked.truncate(n);
    picked.sort();
    picked
}
