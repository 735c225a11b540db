//! Seeded generation of layer stacks in the kernel overlayfs format, cached by seed and profile.
//!
//! Layout of a generated set under `<workdir>/stacks/<profile>-s<seed>-v<GENERATOR_VERSION>/`:
//! `main/<i>` (i = 0 is the bottom layer) and `d<N>/<i>` for every lookup depth N. A set is built
//! in a `.tmp` sibling and renamed into place when complete, so an interrupted run never leaves a
//! half-built set that a later run would trust. Lower layers are shared read-only by all
//! implementations; every measured run gets a fresh upper and work directory (see `runner`).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::profile::Profile;

/// Bump when the generated content changes, so stale caches are not reused.
pub const GENERATOR_VERSION: u32 = 1;

/// Longest `lowerdir=` value passed with absolute paths; longer stacks are mounted with the
/// layer parent as working directory and relative layer names (mount options are one page).
const MAX_ABSOLUTE_LOWERDIR: usize = 2048;

/// One stack of lower layers, as a mount would take it.
#[derive(Clone, Debug)]
pub struct Stack {
    /// Short label used in reports: `main`, `L16`, `user`.
    pub label: String,
    /// Layer directories, top layer first (the `lowerdir=` order).
    pub layers: Vec<PathBuf>,
}

impl Stack {
    /// The bottom (last) layer.
    pub fn bottom(&self) -> &Path {
        self.layers.last().expect("a stack has at least one layer")
    }

    /// The `lowerdir=` value and the working directory the mount command must run in.
    /// Absolute paths when short enough; otherwise names relative to the common parent.
    pub fn lowerdir(&self) -> (String, Option<PathBuf>) {
        let absolute = join(self.layers.iter().map(|p| p.to_string_lossy().into_owned()));
        if absolute.len() <= MAX_ABSOLUTE_LOWERDIR {
            return (absolute, None);
        }
        let parent = self.layers[0].parent().map(Path::to_path_buf);
        match parent {
            Some(parent) if self.layers.iter().all(|l| l.parent() == Some(&parent)) => {
                let names = self.layers.iter().map(|l| {
                    l.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                });
                (join(names), Some(parent))
            }
            _ => (absolute, None),
        }
    }
}

fn join(parts: impl Iterator<Item = String>) -> String {
    parts.collect::<Vec<_>>().join(":")
}

/// The stacks a run works on: the main stack and the lookup-depth stacks (absent for a
/// user-given stack).
#[derive(Clone, Debug)]
pub struct StackSet {
    pub main: Stack,
    pub depth: Vec<(usize, Stack)>,
}

/// A stack given on the command line, top layer first.
pub fn user_stack(lowerdir: &str) -> Result<StackSet> {
    let mut layers = Vec::new();
    for part in lowerdir.split(':').filter(|p| !p.is_empty()) {
        let path = fs::canonicalize(part).with_context(|| format!("layer {part}"))?;
        if !path.is_dir() {
            bail!("layer {} is not a directory", path.display());
        }
        layers.push(path);
    }
    if layers.is_empty() {
        bail!("--layers needs at least one directory");
    }
    Ok(StackSet {
        main: Stack {
            label: "user".into(),
            layers,
        },
        depth: Vec::new(),
    })
}

/// Return the cached stack set for (profile, seed), generating it first if needed.
pub fn generated(workdir: &Path, profile: &Profile, seed: u64) -> Result<StackSet> {
    let stacks_dir = workdir.join("stacks");
    let key = format!("{}-s{}-v{}", profile.name, seed, GENERATOR_VERSION);
    let root = stacks_dir.join(&key);
    if !root.join(".complete").exists() {
        let tmp = stacks_dir.join(format!("{key}.tmp"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)
                .with_context(|| format!("removing stale {}", tmp.display()))?;
        }
        if root.exists() {
            fs::remove_dir_all(&root)?;
        }
        fs::create_dir_all(&tmp)?;
        eprintln!(
            "generating {} stacks (seed {seed}) in {}",
            profile.name,
            root.display()
        );
        let started = std::time::Instant::now();
        generate_main(&tmp.join("main"), profile, seed)?;
        for &n in &profile.depth_layers {
            generate_depth(&tmp.join(format!("d{n}")), n, profile, seed)?;
        }
        File::create(tmp.join(".complete"))?;
        rustix::fs::sync();
        fs::rename(&tmp, &root)?;
        eprintln!("generated in {:.1} s", started.elapsed().as_secs_f64());
    } else {
        eprintln!("using cached stacks {}", root.display());
    }
    let stack = |dir: &str, n: usize, label: String| Stack {
        label,
        layers: (0..n)
            .rev()
            .map(|i| root.join(dir).join(i.to_string()))
            .collect(),
    };
    Ok(StackSet {
        main: stack("main", profile.main_layers, "main".into()),
        depth: profile
            .depth_layers
            .iter()
            .map(|&n| (n, stack(&format!("d{n}"), n, format!("L{n}"))))
            .collect(),
    })
}

/// Per-purpose RNG streams derived from the seed, so one part's size never shifts another's.
fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn write_random(path: &Path, len: usize, rng: &mut ChaCha8Rng) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut buf = vec![0u8; len];
    rng.fill_bytes(&mut buf);
    fs::write(path, &buf).with_context(|| format!("writing {}", path.display()))
}

fn write_big(path: &Path, len: u64, rng: &mut ChaCha8Rng) -> Result<()> {
    fs::create_dir_all(path.parent().expect("big file has a parent"))?;
    let mut file = File::create(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Kernel-format whiteout: a character device 0:0.
fn whiteout(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .with_context(|| format!("mknod whiteout {} (needs root)", path.display()))
}

/// Kernel-format opaque directory: xattr `trusted.overlay.opaque=y`.
fn make_opaque(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    rustix::fs::setxattr(
        dir,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .with_context(|| format!("setting opaque xattr on {} (needs root)", dir.display()))
}

/// Relative path of small file `i` in `tree/`.
fn tree_file(i: usize, per_dir: usize) -> PathBuf {
    let dir = i / per_dir;
    PathBuf::from(format!(
        "tree/d{:03}/s{:05}/f{:04}",
        dir / 16,
        dir,
        i % per_dir
    ))
}

/// Main stack: a tree of small files, a big file and a big directory at the bottom; every layer
/// above changes ~3 % of the tree, whites out ~1 %, adds a directory of new files, makes one
/// leaf directory opaque, and whites out / adds 0.5 % of the big directory.
fn generate_main(dir: &Path, p: &Profile, seed: u64) -> Result<()> {
    let bottom = dir.join("0");
    let mut r = rng(seed, 1);
    for i in 0..p.small_files {
        let len = r.random_range(0..=p.max_small_size);
        write_random(&bottom.join(tree_file(i, p.files_per_dir)), len, &mut r)?;
    }
    write_big(
        &bottom.join("big/file0"),
        p.big_file_bytes,
        &mut rng(seed, 2),
    )?;
    let bigdir = bottom.join("bigdir");
    fs::create_dir_all(&bigdir)?;
    for i in 0..p.big_dir_entries {
        File::create(bigdir.join(format!("e{i:06}")))?;
    }
    let leaf_dirs = p.small_files.div_ceil(p.files_per_dir);
    for layer in 1..p.main_layers {
        let top = dir.join(layer.to_string());
        fs::create_dir_all(&top)?;
        let mut r = rng(seed, 100 + layer as u64);
        for i in 0..p.small_files {
            let roll: f64 = r.random();
            let rel = tree_file(i, p.files_per_dir);
            if roll < 0.03 {
                let len = r.random_range(0..=p.max_small_size);
                write_random(&top.join(&rel), len, &mut r)?;
            } else if roll < 0.04 {
                whiteout(&top.join(&rel))?;
            }
        }
        for j in 0..p.files_per_dir {
            let len = r.random_range(0..=p.max_small_size);
            write_random(&top.join(format!("tree/new{layer}/f{j:04}")), len, &mut r)?;
        }
        let leaf = r.random_range(0..leaf_dirs);
        let opaque = top.join(tree_file(leaf * p.files_per_dir, p.files_per_dir));
        let opaque = opaque.parent().expect("tree file has a parent");
        if opaque.exists() {
            fs::remove_dir_all(opaque)?;
        }
        make_opaque(opaque)?;
        for j in 0..3 {
            write_random(&opaque.join(format!("o{j}")), 100, &mut r)?;
        }
        let changes = (p.big_dir_entries / 200).max(1);
        fs::create_dir_all(top.join("bigdir"))?;
        for j in 0..changes {
            let gone = top.join(format!(
                "bigdir/e{:06}",
                r.random_range(0..p.big_dir_entries)
            ));
            if fs::symlink_metadata(&gone).is_err() {
                whiteout(&gone)?;
            }
            File::create(top.join(format!("bigdir/n{layer}_{j:05}")))?;
        }
    }
    Ok(())
}

/// Depth stack of `n` layers: the bottom holds `deep/f*` (the lookup targets, never touched
/// above) and every layer above changes one file, whites out one, adds files to `deep/` and a
/// directory of its own; the middle layer makes `opq/` opaque.
fn generate_depth(dir: &Path, n: usize, p: &Profile, seed: u64) -> Result<()> {
    let mut r = rng(seed, 1000 + n as u64);
    let bottom = dir.join("0");
    for i in 0..p.depth_files {
        let len = r.random_range(64..=512);
        write_random(&bottom.join(format!("deep/f{i:05}")), len, &mut r)?;
    }
    for i in 1..n {
        write_random(&bottom.join(format!("deep/c{i}")), 64, &mut r)?;
        write_random(&bottom.join(format!("deep/x{i}")), 64, &mut r)?;
    }
    for j in 0..10 {
        write_random(&bottom.join(format!("opq/o{j}")), 64, &mut r)?;
    }
    for j in 0..50 {
        write_random(&bottom.join(format!("common/k{j}")), 64, &mut r)?;
    }
    for i in 1..n {
        let top = dir.join(i.to_string());
        write_random(&top.join(format!("deep/c{i}")), 80, &mut r)?;
        whiteout(&top.join(format!("deep/x{i}")))?;
        for j in 0..8 {
            write_random(&top.join(format!("deep/l{i}_{j}")), 64, &mut r)?;
        }
        write_random(&top.join(format!("common/k{}", i % 50)), 80, &mut r)?;
        for j in 0..4 {
            write_random(&top.join(format!("own{i}/g{j}")), 64, &mut r)?;
        }
        if i == n / 2 {
            make_opaque(&top.join("opq"))?;
            write_random(&top.join("opq/new"), 64, &mut r)?;
        }
    }
    if n == 1 {
        fs::create_dir_all(&bottom)?;
    }
    Ok(())
}

/// A tiny two-layer stack used to check that an implementation mounts at all.
pub fn probe_stack(workdir: &Path) -> Result<Stack> {
    let root = workdir.join("probe");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    let (top, bottom) = (root.join("1"), root.join("0"));
    fs::create_dir_all(bottom.join("d"))?;
    fs::write(bottom.join("d/a"), b"a")?;
    fs::write(bottom.join("d/gone"), b"x")?;
    fs::create_dir_all(top.join("d"))?;
    fs::write(top.join("d/b"), b"b")?;
    whiteout(&top.join("d/gone"))?;
    Ok(Stack {
        label: "probe".into(),
        layers: vec![top, bottom],
    })
}
