//! `start`: container start latency, end to end — `cairn run --rm IMG true` against
//! `runc run` of a prepared bundle, on the same one-layer busybox image.
//!
//! Untimed preparation per repetition: a rootfs with `/bin/busybox` (+ `true`, `sh` links);
//! for cairn, `cairn --root STORE import` of its tar; for runc, a kernel overlay mount of the
//! same directory as lower (fresh upper) as the bundle's rootfs, and `runc spec`'s default
//! config.json with args `["true"]`, `terminal: false`, root `rootfs`. One warm-up start
//! each, then [`STARTS`] timed starts; the repetition's time is their median, so a run's
//! figure is a median of medians. cairn mounts its union, makes a container directory and
//! upper, and removes it all (`--rm`) inside the timed region; runc reuses the one overlay
//! mount (as a runtime is handed a ready bundle by its engine).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Measured;
use super::image::{ImageEnv, ImageWorkload, Importer, ImporterKind};
use crate::impls::run_with_timeout;

/// Timed starts per repetition.
pub const STARTS: usize = 15;

/// The baseline of this workload.
pub const START_BASELINE: &str = "runc";

pub struct Start;

impl ImageWorkload for Start {
    fn name(&self) -> String {
        "start".into()
    }

    fn about(&self) -> String {
        format!(
            "start latency: median of {STARTS} `cairn run --rm IMG true` vs `runc run` of a \
             prepared bundle (rootfs: kernel overlay of the same busybox layer); ratio to runc"
        )
    }

    fn baseline(&self) -> &'static str {
        START_BASELINE
    }

    fn applies_to(&self, tool: &Importer) -> bool {
        matches!(tool.kind, ImporterKind::Cairn(_) | ImporterKind::Runc(_))
    }

    fn run(&self, tool: &Importer, env: &ImageEnv) -> Result<Measured> {
        let rootfs = env.scratch.join("rootfs");
        busybox_rootfs(&rootfs)?;
        match &tool.kind {
            ImporterKind::Cairn(bin) => {
                let store = env.scratch.join("store");
                let tar = env.scratch.join("rootfs.tar");
                let mut t = Command::new("tar");
                t.arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".");
                run_with_timeout(t, None, env.timeout)?;
                let mut import = Command::new(bin);
                import.arg("--root").arg(&store).arg("import");
                import
                    .args(["-c", "CMD [\"/bin/true\"]"])
                    .arg(&tar)
                    .arg("start:bench");
                run_with_timeout(import, None, env.timeout)?;
                let run = || {
                    let mut c = Command::new(bin);
                    c.arg("--root").arg(&store);
                    c.args(["run", "--rm", "start:bench", "true"]);
                    c
                };
                median_of_starts(run, env.timeout)
            }
            ImporterKind::Runc(runc) => {
                let bundle = env.scratch.join("bundle");
                let mnt = bundle.join("rootfs");
                let (upper, work) = (env.scratch.join("upper"), env.scratch.join("work"));
                for d in [&mnt, &upper, &work] {
                    std::fs::create_dir_all(d)?;
                }
                let opts = format!(
                    "lowerdir={},upperdir={},workdir={}",
                    rootfs.display(),
                    upper.display(),
                    work.display()
                );
                let mut m = Command::new("mount");
                m.args(["-t", "overlay", "overlay", "-o", &opts]).arg(&mnt);
                run_with_timeout(m, None, env.timeout)?;
                let result = runc_starts(runc, &bundle, env);
                let mut u = Command::new("umount");
                u.arg(&mnt);
                let unmounted = run_with_timeout(u, None, env.timeout);
                let measured = result?;
                unmounted?;
                Ok(measured)
            }
            _ => bail!("{} is not a container runtime", tool.name),
        }
    }
}

fn runc_starts(runc: &Path, bundle: &Path, env: &ImageEnv) -> Result<Measured> {
    let mut spec = Command::new(runc);
    spec.arg("spec").arg("--bundle").arg(bundle);
    run_with_timeout(spec, None, env.timeout)?;
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let mut config: serde_json::Value = serde_json::from_str(&text)?;
    config["process"]["args"] = serde_json::json!(["true"]);
    config["process"]["terminal"] = serde_json::json!(false);
    config["root"] = serde_json::json!({"path": "rootfs", "readonly": false});
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    let state = env.scratch.join("runc-state");
    let mut n = 0;
    let run = || {
        n += 1;
        let mut c = Command::new(runc);
        c.arg("--root").arg(&state);
        c.args(["run", "--bundle"]).arg(bundle);
        c.arg(format!("cairn-bench-{}-{n}", std::process::id()));
        c
    };
    median_of_starts(run, env.timeout)
}

/// One untimed warm-up, then [`STARTS`] timed runs; the median.
fn median_of_starts(mut cmd: impl FnMut() -> Command, timeout: Duration) -> Result<Measured> {
    run_with_timeout(cmd(), None, timeout).context("warm-up start")?;
    let mut times = Vec::with_capacity(STARTS);
    for _ in 0..STARTS {
        let c = cmd();
        let start = Instant::now();
        run_with_timeout(c, None, timeout)?;
        times.push(start.elapsed());
    }
    times.sort();
    let mid = times.len() / 2;
    let median = match times.len() % 2 {
        1 => times[mid],
        _ => (times[mid - 1] + times[mid]) / 2,
    };
    eprintln!(
        "    {STARTS} starts: min {:?}, median {:?}, max {:?}",
        times[0],
        median,
        times[times.len() - 1]
    );
    Ok(Measured {
        time: median,
        ops: STARTS as u64,
        bytes: 0,
        daemon: None,
    })
}

/// A minimal busybox rootfs: `/bin/busybox` with `true` and `sh` linked to it.
fn busybox_rootfs(root: &Path) -> Result<()> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("no /bin/busybox (apt-get install busybox-static)");
    }
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let bin: PathBuf = root.join("bin/busybox");
    std::fs::copy(busybox, &bin)?;
    for name in ["true", "sh"] {
        std::fs::hard_link(&bin, root.join("bin").join(name))?;
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    Ok(())
}
