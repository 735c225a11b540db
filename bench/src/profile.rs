//! Size profiles: how large the generated stacks and the workloads are.
//!
//! `--smoke` runs in seconds (CI), `--quick` in a few minutes on 2 cores, `--large` is issue
//! 21's Python-like 10-layer stack, and the full profile follows the sizes of the first bench
//! issue (tens of thousands of files, 1 GiB, 100k entries, 128 layers).

use serde::Serialize;

/// Everything that scales with the chosen mode. Part of the cache key of generated stacks and
/// image archives (through `name`), so changing a field here must bump
/// `stack::GENERATOR_VERSION` (stack fields) or `image_gen::IMAGE_GENERATOR_VERSION` (`image_*`).
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    /// `smoke`, `quick` or `full`.
    pub name: &'static str,
    /// Small files in the bottom layer's `tree/`.
    pub small_files: usize,
    /// Files per leaf directory of `tree/`.
    pub files_per_dir: usize,
    /// Small file sizes are uniform in `0..=max_small_size` bytes.
    pub max_small_size: usize,
    /// Size of `big/file0` in the bottom layer.
    pub big_file_bytes: u64,
    /// Entries of `bigdir/` in the bottom layer.
    pub big_dir_entries: usize,
    /// Layers of the main stack (each above the bottom changes and whites out part of the tree).
    pub main_layers: usize,
    /// Layer counts of the lookup-depth stacks.
    pub depth_layers: Vec<usize>,
    /// Bottom-layer files looked up in the depth stacks.
    pub depth_files: usize,
    /// Files touched by copy-up, unlink and rename workloads.
    pub many_ops: usize,
    /// Files created by the create workload.
    pub create_files: usize,
    /// Bytes written by the big-write workload.
    pub big_write_bytes: u64,
    /// 4 KiB random reads.
    pub random_reads: usize,
    /// Default repetitions of each workload.
    pub repeats: usize,
    /// Layers of the generated image archive (image workloads).
    pub image_layers: usize,
    /// Small files of the image, spread evenly over its layers.
    pub image_small_files: usize,
    /// Their sizes are uniform in `0..=image_max_small_size` bytes.
    pub image_max_small_size: usize,
    /// Large incompressible files in every image layer.
    pub image_big_files_per_layer: usize,
    /// Their nominal size; each is uniform in 0.5–1.5 × this.
    pub image_big_file_bytes: u64,
}

const MIB: u64 = 1024 * 1024;

impl Profile {
    pub fn smoke() -> Self {
        Self {
            name: "smoke",
            small_files: 300,
            files_per_dir: 50,
            max_small_size: 4096,
            big_file_bytes: 4 * MIB,
            big_dir_entries: 1000,
            main_layers: 3,
            depth_layers: vec![1, 4],
            depth_files: 100,
            many_ops: 100,
            create_files: 200,
            big_write_bytes: 4 * MIB,
            random_reads: 256,
            repeats: 1,
            image_layers: 3,
            image_small_files: 300,
            image_max_small_size: 4096,
            image_big_files_per_layer: 1,
            image_big_file_bytes: 256 * 1024,
        }
    }

    pub fn quick() -> Self {
        Self {
            name: "quick",
            small_files: 10_000,
            files_per_dir: 100,
            max_small_size: 4096,
            big_file_bytes: 256 * MIB,
            big_dir_entries: 20_000,
            main_layers: 4,
            depth_layers: vec![1, 16, 64],
            depth_files: 1000,
            many_ops: 1000,
            create_files: 5000,
            big_write_bytes: 256 * MIB,
            random_reads: 4096,
            repeats: 3,
            image_layers: 5,
            image_small_files: 5_000,
            image_max_small_size: 8192,
            image_big_files_per_layer: 2,
            image_big_file_bytes: 4 * MIB,
        }
    }

    /// Issue 21's measurements: a Python-like tree (46k files, 10 per directory) as 10 layers,
    /// a 1 GiB file, 2000 files copied up / unlinked, 5000 created.
    pub fn large() -> Self {
        Self {
            name: "large",
            small_files: 46_000,
            files_per_dir: 10,
            max_small_size: 8192,
            big_file_bytes: 1024 * MIB,
            big_dir_entries: 5_000,
            main_layers: 10,
            depth_layers: vec![],
            depth_files: 2000,
            many_ops: 2000,
            create_files: 5000,
            big_write_bytes: 512 * MIB,
            ..Self::full()
        }
    }

    pub fn full() -> Self {
        Self {
            name: "full",
            small_files: 50_000,
            files_per_dir: 100,
            max_small_size: 8192,
            big_file_bytes: 1024 * MIB,
            big_dir_entries: 100_000,
            main_layers: 8,
            depth_layers: vec![1, 16, 64, 128],
            depth_files: 2000,
            many_ops: 5000,
            create_files: 5000,
            big_write_bytes: 1024 * MIB,
            random_reads: 16_384,
            repeats: 3,
            image_layers: 5,
            image_small_files: 25_000,
            image_max_small_size: 16384,
            image_big_files_per_layer: 2,
            image_big_file_bytes: 30 * MIB,
        }
    }
}
