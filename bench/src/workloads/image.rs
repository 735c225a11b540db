//! Image-level workloads: the columns are not filesystems but image tools ("importers"), and
//! ratios are taken against a workload's [`ImageWorkload::baseline`] ([`IMAGE_BASELINE`], the
//! skopeo + umoci pipeline, unless it says otherwise: runc for `start`).
//!
//! A workload gets an [`ImageEnv`] (the generated archive, a fresh empty scratch directory) and
//! the [`Importer`] to drive, drops caches if it measures a cold start, times its region with
//! [`timed`] and checks the result outside of it. The runner removes the scratch directory.
//! Later pull / run / build workloads add an [`ImageWorkload`] here (and, for a new tool, an
//! [`ImporterKind`]); a workload that a tool cannot do returns an error naming why.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Measured, timed};
use crate::image_gen::ImageArchive;
use crate::impls::{find_program, run_with_timeout};
use crate::profile::Profile;
use crate::runner::{drop_caches, fmt_duration};

/// The importer image-workload ratios are taken against.
pub const IMAGE_BASELINE: &str = "skopeo+umoci";

/// What an image workload sees during one repetition.
pub struct ImageEnv<'a> {
    pub archive: &'a ImageArchive,
    /// The bench work dir and seed (for a workload that generates an image of its own).
    pub workdir: &'a Path,
    pub seed: u64,
    /// Fresh, empty, removed after the repetition.
    pub scratch: PathBuf,
    /// Longest one command may run.
    pub timeout: Duration,
}

pub trait ImageWorkload {
    /// Stable name, used in reports and by `--workloads`.
    fn name(&self) -> String;
    /// One line: what is measured, with sizes.
    fn about(&self) -> String;
    /// One repetition with `tool`.
    fn run(&self, tool: &Importer, env: &ImageEnv) -> Result<Measured>;
    /// The tool whose median the others' ratios are taken against.
    fn baseline(&self) -> &'static str {
        IMAGE_BASELINE
    }
    /// Whether `tool` takes part (the others get no cell, rather than a failure).
    fn applies_to(&self, tool: &Importer) -> bool {
        !matches!(tool.kind, ImporterKind::Runc(_))
    }
}

#[derive(Clone, Debug)]
pub enum ImporterKind {
    /// `skopeo copy TRANSPORT:ARCHIVE` into an OCI layout, then `umoci unpack` into a bundle.
    /// With `docker-archive` skopeo decompresses every layer (a docker-archive is addressed
    /// by diff_id) and the OCI destination compresses it again; with `oci-archive` it copies
    /// the blobs as they are.
    SkopeoUmoci {
        skopeo: PathBuf,
        umoci: PathBuf,
        transport: &'static str,
    },
    /// The cairn binary.
    Cairn(PathBuf),
    /// runc: only a runtime (the baseline of the `start` workload).
    Runc(PathBuf),
}

/// An image tool under test: one column of the image table.
#[derive(Clone, Debug)]
pub struct Importer {
    pub name: String,
    pub kind: ImporterKind,
}

impl Importer {
    /// The baseline: the archive read as `docker-archive:`, as the issue specifies.
    pub fn skopeo_umoci(skopeo: PathBuf, umoci: PathBuf) -> Self {
        Self {
            name: IMAGE_BASELINE.into(),
            kind: ImporterKind::SkopeoUmoci {
                skopeo,
                umoci,
                transport: "docker-archive",
            },
        }
    }

    /// The same archive read as `oci-archive:` (blobs copied verbatim, no recompression).
    pub fn skopeo_oci_umoci(skopeo: PathBuf, umoci: PathBuf) -> Self {
        Self {
            name: "skopeo-oci+umoci".into(),
            kind: ImporterKind::SkopeoUmoci {
                skopeo,
                umoci,
                transport: "oci-archive",
            },
        }
    }

    pub fn cairn(bin: PathBuf) -> Self {
        Self {
            name: "cairn".into(),
            kind: ImporterKind::Cairn(bin),
        }
    }

    pub fn runc(bin: PathBuf) -> Self {
        Self {
            name: super::start::START_BASELINE.into(),
            kind: ImporterKind::Runc(bin),
        }
    }

    /// Why this tool cannot run (a missing binary), if so.
    pub fn missing(&self) -> Option<String> {
        let programs: Vec<&Path> = match &self.kind {
            ImporterKind::SkopeoUmoci { skopeo, umoci, .. } => vec![skopeo, umoci],
            ImporterKind::Cairn(bin) | ImporterKind::Runc(bin) => vec![bin],
        };
        let absent: Vec<String> = programs
            .into_iter()
            .filter(|p| find_program(p).is_none())
            .map(|p| p.display().to_string())
            .collect();
        (!absent.is_empty()).then(|| format!("{} not found", absent.join(" and ")))
    }

    /// How the tool is invoked by the load workload (runc: by the start workload).
    pub fn describe(&self) -> String {
        match &self.kind {
            ImporterKind::SkopeoUmoci {
                skopeo,
                umoci,
                transport,
            } => format!(
                "{} --insecure-policy copy -q {transport}:ARCHIVE oci:DIR:t && {} unpack --image DIR:t BUNDLE",
                skopeo.display(),
                umoci.display()
            ),
            ImporterKind::Cairn(bin) => {
                format!("{} --root STORE load -q -i ARCHIVE", bin.display())
            }
            ImporterKind::Runc(bin) => {
                format!("{} --root STATE run --bundle BUNDLE ID", bin.display())
            }
        }
    }
}

/// Every image workload for this profile, in run order.
pub fn registry(p: &Profile) -> Vec<Box<dyn ImageWorkload>> {
    let mut list: Vec<Box<dyn ImageWorkload>> = vec![
        Box::new(LoadArchive {
            about: format!(
                "cold: import {} from an archive into a fresh store / OCI dir + bundle",
                describe_image(p)
            ),
        }),
        Box::new(super::start::Start),
    ];
    match super::pull::Pull::new(p) {
        Ok(pull) => list.push(Box::new(pull)),
        Err(why) => eprintln!("skipping image workload pull: {why}"),
    }
    list
}

/// What the generated image of profile `p` holds, in words and sizes.
pub fn describe_image(p: &Profile) -> String {
    let small = (p.image_small_files * p.image_max_small_size / 2) as u64;
    let big = p.image_layers as u64 * p.image_big_files_per_layer as u64 * p.image_big_file_bytes;
    format!(
        "a {}-layer image with gzip layers ({} small files ≈ {} + {} incompressible files of \
         ~{} ≈ {})",
        p.image_layers,
        p.image_small_files,
        fmt_bytes(small),
        p.image_layers * p.image_big_files_per_layer,
        fmt_bytes(p.image_big_file_bytes),
        fmt_bytes(big),
    )
}

/// `1.5 MiB`, `300 KiB`.
pub fn fmt_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 10 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{} KiB", b >> 10),
    }
}

/// `load`: a whole archive into a fresh store, caches dropped first, verified afterwards.
struct LoadArchive {
    about: String,
}

fn command(program: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut cmd = Command::new(program);
    for a in args {
        cmd.arg(a);
    }
    cmd
}

impl ImageWorkload for LoadArchive {
    fn name(&self) -> String {
        "load".into()
    }

    fn about(&self) -> String {
        self.about.clone()
    }

    fn run(&self, tool: &Importer, env: &ImageEnv) -> Result<Measured> {
        let archive = &env.archive.path;
        let counts = (env.archive.layers as u64, env.archive.archive_bytes);
        match &tool.kind {
            ImporterKind::Cairn(bin) => {
                let store = env.scratch.join("store");
                let load = command(
                    bin,
                    &[
                        &"--root",
                        &store,
                        &"load",
                        &"-q",
                        &"-i",
                        &archive.as_os_str(),
                    ],
                );
                drop_caches()?;
                let m = timed(|| {
                    run_with_timeout(load, None, env.timeout)?;
                    Ok(counts)
                })?;
                let out = command(bin, &[&"--root", &store, &"images", &"-q"])
                    .output()
                    .context("running cairn images -q")?;
                let ids: Vec<&str> = std::str::from_utf8(&out.stdout)?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                if !out.status.success() || ids.len() != 1 {
                    bail!(
                        "after cairn load, `cairn images -q` shows {ids:?} (status {}), expected one image",
                        out.status
                    );
                }
                Ok(m)
            }
            ImporterKind::SkopeoUmoci {
                skopeo,
                umoci,
                transport,
            } => {
                let src = format!("{transport}:{}", archive.display());
                skopeo_umoci(
                    skopeo,
                    umoci,
                    &[],
                    &src,
                    env,
                    &env.archive.probe_file,
                    counts,
                )
            }
            ImporterKind::Runc(_) => bail!("runc does not import images"),
        }
    }
}

/// The baseline pipeline, timed: `skopeo copy SRC oci:` then `umoci unpack` (caches dropped
/// before), checking that `probe` (relative to the image root) was unpacked.
pub fn skopeo_umoci(
    skopeo: &Path,
    umoci: &Path,
    copy_flags: &[&str],
    src: &str,
    env: &ImageEnv,
    probe: &str,
    counts: (u64, u64),
) -> Result<Measured> {
    let (oci, bundle) = (env.scratch.join("oci"), env.scratch.join("bundle"));
    let mut copy = Command::new(skopeo);
    copy.args(["--insecure-policy", "copy", "-q"])
        .args(copy_flags)
        .arg(src)
        .arg(format!("oci:{}:t", oci.display()));
    let mut unpack = Command::new(umoci);
    unpack.args(["unpack", "--image"]);
    unpack.arg(format!("{}:t", oci.display())).arg(&bundle);
    drop_caches()?;
    let mut split = Duration::ZERO;
    let m = timed(|| {
        let start = Instant::now();
        run_with_timeout(copy, None, env.timeout)?;
        split = start.elapsed();
        run_with_timeout(unpack, None, env.timeout)?;
        Ok(counts)
    })?;
    eprintln!(
        "    skopeo copy {} + umoci unpack {}",
        fmt_duration(split),
        fmt_duration(m.time.saturating_sub(split))
    );
    let probe = bundle.join("rootfs").join(probe);
    if !probe.is_file() {
        bail!("after umoci unpack, {} is missing", probe.display());
    }
    Ok(m)
}
