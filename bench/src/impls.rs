//! The union filesystem implementations under test: how each is mounted and unmounted.
//!
//! - `kernel`: `mount -t overlay` (mount(8), like the others a spawned command) with
//!   `redirect_dir=on`.
//! - templates (fuse-overlayfs and every `--impl`): a command line with `{lowerdir}`,
//!   `{upperdir}`, `{workdir}` and `{mnt}` placeholders, unmounted with `fusermount3 -u`
//!   or umount(2).
//! - `cairn`: `cairn mount -o stats=FILE --lower .. --upper .. --work .. MNT` / `cairn umount
//!   MNT`; FILE (beside MNT) holds the daemon's request counts, CPU and peak RSS at unmount.
//!
//! Mount commands run with stdout/stderr in an anonymous file (never a pipe: a daemon that
//! keeps its stderr would make us wait for EOF forever) and with a timeout.

use std::io::{Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::stack::Stack;
use crate::workloads::Daemon;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const MOUNT_APPEAR_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub enum Kind {
    /// Kernel overlayfs through mount(2).
    Kernel,
    /// A fuse-overlayfs-compatible command line template.
    Template(String),
    /// The cairn binary.
    Cairn(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Impl {
    pub name: String,
    pub kind: Kind,
}

/// The default template of a fuse-overlayfs-compatible binary.
pub fn fuse_template(binary: &str) -> String {
    format!("{binary} -o lowerdir={{lowerdir}},upperdir={{upperdir}},workdir={{workdir}} {{mnt}}")
}

impl Impl {
    /// `name=template` from `--impl`; a template without placeholders is taken as a binary path.
    pub fn parse_extra(spec: &str) -> Result<Self> {
        let (name, template) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--impl expects name=command, got {spec:?}"))?;
        if name.is_empty() || template.trim().is_empty() {
            bail!("--impl expects name=command, got {spec:?}");
        }
        let template = if template.contains('{') {
            template.to_string()
        } else {
            fuse_template(template)
        };
        Ok(Self {
            name: name.to_string(),
            kind: Kind::Template(template),
        })
    }

    /// Human-readable description of how this implementation is invoked.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Kernel => {
                "mount -t overlay -o lowerdir=..,upperdir=..,workdir=..,redirect_dir=on".into()
            }
            Kind::Template(t) => t.clone(),
            Kind::Cairn(bin) => format!(
                "{} mount --lower .. --upper .. --work .. MNT",
                bin.display()
            ),
        }
    }

    /// Why this implementation cannot run, if that is clear without trying (missing binary).
    pub fn missing(&self) -> Option<String> {
        let program = match &self.kind {
            Kind::Kernel => {
                let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
                let loaded = fs.lines().any(|l| l.trim_end().ends_with("overlay"));
                if !loaded {
                    // The module may autoload on mount; only say so if modprobe also fails.
                    let _ = Command::new("modprobe").arg("overlay").status();
                    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
                    if !fs.lines().any(|l| l.trim_end().ends_with("overlay")) {
                        return Some("overlay is not in /proc/filesystems".into());
                    }
                }
                return None;
            }
            Kind::Template(t) => PathBuf::from(t.split_whitespace().next().unwrap_or_default()),
            Kind::Cairn(bin) => bin.clone(),
        };
        match (find_program(&program), &self.kind) {
            (Some(_), _) => None,
            (None, Kind::Cairn(_)) => Some(format!(
                "{} not found (default: `cairn` beside cairn-bench, else on PATH; build it with \
                 `cargo build --release` or pass --cairn PATH)",
                program.display()
            )),
            (None, _) => Some(format!("{} not found", program.display())),
        }
    }

    /// Mount `stack` with a fresh `upper`/`work` on `mnt`; returns once the mount is visible.
    pub fn mount(&self, stack: &Stack, upper: &Path, work: &Path, mnt: &Path) -> Result<()> {
        let (lowerdir, cwd) = stack.lowerdir();
        match &self.kind {
            Kind::Kernel => {
                let data = format!(
                    "lowerdir={lowerdir},upperdir={},workdir={},redirect_dir=on",
                    upper.display(),
                    work.display()
                );
                let mut cmd = Command::new("mount");
                cmd.args(["-t", "overlay", "overlay", "-o", &data]).arg(mnt);
                run(cmd, cwd.as_deref())?;
            }
            Kind::Template(t) => {
                let mut words = t.split_whitespace().map(|w| {
                    w.replace("{lowerdir}", &lowerdir)
                        .replace("{upperdir}", &upper.to_string_lossy())
                        .replace("{workdir}", &work.to_string_lossy())
                        .replace("{mnt}", &mnt.to_string_lossy())
                });
                let mut cmd = Command::new(words.next().unwrap_or_default());
                cmd.args(words);
                run(cmd, cwd.as_deref())?;
            }
            Kind::Cairn(bin) => {
                let stats = stats_path(mnt);
                let _ = std::fs::remove_file(&stats);
                let mut cmd = Command::new(bin);
                cmd.arg("mount")
                    .arg("-o")
                    .arg(format!("stats={}", stats.display()))
                    .args(["--lower", &lowerdir])
                    .arg("--upper")
                    .arg(upper)
                    .arg("--work")
                    .arg(work)
                    .arg(mnt);
                run(cmd, cwd.as_deref())?;
            }
        }
        wait_mounted(mnt)
    }

    /// Unmount `mnt`, retrying while busy and detaching lazily as a last resort.
    pub fn unmount(&self, mnt: &Path) -> Result<()> {
        let first = match &self.kind {
            Kind::Kernel => umount(mnt),
            Kind::Template(_) => {
                let mut cmd = Command::new("fusermount3");
                cmd.arg("-u").arg(mnt);
                if find_program(Path::new("fusermount3")).is_some() {
                    run(cmd, None)
                } else {
                    umount(mnt)
                }
            }
            Kind::Cairn(bin) => {
                let mut cmd = Command::new(bin);
                cmd.arg("umount").arg(mnt);
                run(cmd, None)
            }
        };
        if first.is_ok() && !is_mountpoint(mnt) {
            return Ok(());
        }
        force_unmount(mnt).with_context(|| match first {
            Err(e) => format!("{} unmount failed: {e:#}", self.name),
            Ok(()) => format!(
                "{} unmount returned but {} is still mounted",
                self.name,
                mnt.display()
            ),
        })
    }
}

/// Where cairn's daemon writes its counters for the mount on `mnt`.
fn stats_path(mnt: &Path) -> PathBuf {
    mnt.with_file_name("cairn-stats")
}

/// The counters cairn's daemon wrote when `mnt` was unmounted (it exits just after the
/// unmount returns, so they are waited for briefly); `None` for other implementations.
pub fn daemon_stats(imp: &Impl, mnt: &Path) -> Option<Daemon> {
    let Kind::Cairn(_) = imp.kind else {
        return None;
    };
    let path = stats_path(mnt);
    let start = Instant::now();
    let text = loop {
        match std::fs::read_to_string(&path) {
            Ok(t) => break t,
            Err(_) if start.elapsed() < Duration::from_secs(3) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => return None,
        }
    };
    let _ = std::fs::remove_file(&path);
    let get = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.trim().parse::<f64>().ok())
    };
    Some(Daemon {
        requests: get("total")? as u64,
        cpu_s: get("cpu_user")? + get("cpu_sys")?,
        maxrss_kib: get("maxrss_kib")? as u64,
    })
}

/// umount(2), retried while EBUSY, then MNT_DETACH. Used for cleanup of anything left mounted.
pub fn force_unmount(mnt: &Path) -> Result<()> {
    for _ in 0..50 {
        if !is_mountpoint(mnt) {
            return Ok(());
        }
        if umount(mnt).is_ok() && !is_mountpoint(mnt) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    rustix::mount::unmount(mnt, rustix::mount::UnmountFlags::DETACH)
        .with_context(|| format!("lazy unmount of {}", mnt.display()))?;
    bail!("{} was busy and had to be detached lazily", mnt.display())
}

fn umount(mnt: &Path) -> Result<()> {
    rustix::mount::unmount(mnt, rustix::mount::UnmountFlags::empty())
        .with_context(|| format!("umount {}", mnt.display()))
}

/// Abort the FUSE connection behind `mnt` (fusectl), so that calls blocked on a hung daemon
/// fail with ENOTCONN. Best effort: does nothing for non-FUSE mounts.
pub fn abort_fuse(mnt: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(mnt) else {
        return;
    };
    let dev = meta.dev();
    if rustix::fs::major(dev) != 0 {
        return;
    }
    let conns = Path::new("/sys/fs/fuse/connections");
    if std::fs::read_dir(conns).map_or(true, |mut d| d.next().is_none()) {
        let _ = Command::new("mount")
            .args(["-t", "fusectl", "fusectl"])
            .arg(conns)
            .status();
    }
    let abort = conns.join(rustix::fs::minor(dev).to_string()).join("abort");
    if let Err(e) = std::fs::write(&abort, "1") {
        eprintln!("could not abort {}: {e}", abort.display());
    }
}

/// True when `path` is the root of a mount (its device differs from its parent's).
pub fn is_mountpoint(path: &Path) -> bool {
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (
        std::fs::symlink_metadata(path),
        std::fs::symlink_metadata(parent),
    ) {
        (Ok(me), Ok(up)) => me.dev() != up.dev() || me.ino() == up.ino(),
        _ => false,
    }
}

fn wait_mounted(mnt: &Path) -> Result<()> {
    let start = Instant::now();
    while !is_mountpoint(mnt) {
        if start.elapsed() > MOUNT_APPEAR_TIMEOUT {
            bail!(
                "mount command succeeded but {} did not become a mount point",
                mnt.display()
            );
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// Run a command to completion with output captured in an anonymous file; error with its output.
fn run(cmd: Command, cwd: Option<&Path>) -> Result<()> {
    run_with_timeout(cmd, cwd, COMMAND_TIMEOUT)
}

/// [`run`] with a given time limit; the command is killed when it runs longer.
pub fn run_with_timeout(mut cmd: Command, cwd: Option<&Path>, timeout: Duration) -> Result<()> {
    let mut log = tempfile::tempfile()?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().with_context(|| format!("spawning {shown}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{shown} timed out after {timeout:?}");
        }
        // Fine polling for quick commands (mounts), coarse for long ones (image imports) so
        // the harness does not take CPU from the measured command.
        let long = start.elapsed() > Duration::from_millis(100);
        std::thread::sleep(Duration::from_micros(if long { 2000 } else { 100 }));
    };
    if status.success() {
        return Ok(());
    }
    let mut output = String::new();
    log.rewind()?;
    log.read_to_string(&mut output)?;
    let output = output.trim();
    let output: String = output.chars().take(600).collect();
    bail!("{shown} failed ({status}): {output}")
}

/// Resolve a program name the way Command does: a path with a slash as is, else along PATH.
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.as_os_str().is_empty() {
        return None;
    }
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
