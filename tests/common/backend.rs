//! Environment gating and the two mount backends (kernel overlayfs, cairn's FUSE daemon).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Which implementation serves a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `mount -t overlay` — the oracle.
    Kernel,
    /// `cairn mount` (or the kernel again when `CAIRN_TEST_SELF_CHECK=1`).
    Cairn,
}

impl Backend {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match (self, self_check()) {
            (Backend::Kernel, _) => "kernel",
            (Backend::Cairn, false) => "cairn",
            (Backend::Cairn, true) => "cairn(self-check: kernel)",
        }
    }

    /// Mounts `lowers` (leftmost on top) with an optional `(upper, work)` pair on `mnt`.
    pub fn mount(
        self,
        lowers: &[PathBuf],
        upper: Option<(&Path, &Path)>,
        mnt: &Path,
        options: &str,
    ) -> Result<Mount, String> {
        let lower = join_paths(lowers);
        let mut cmd = if self == Backend::Kernel || self_check() {
            let mut opts = format!("lowerdir={lower}");
            if let Some((u, w)) = upper {
                opts += &format!(",upperdir={},workdir={}", u.display(), w.display());
            }
            if !options.is_empty() {
                opts += ",";
                opts += options;
            }
            let mut c = Command::new("mount");
            c.args(["-t", "overlay", "overlay", "-o", &opts]).arg(mnt);
            c
        } else {
            let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
            c.args(["mount", "--lower", &lower]);
            if let Some((u, w)) = upper {
                c.arg("--upper").arg(u).arg("--work").arg(w);
            }
            if !options.is_empty() {
                c.args(["-o", options]);
            }
            c.arg(mnt);
            c
        };
        run_command(&mut cmd).map_err(|e| format!("{} mount failed: {e}", self.name()))?;
        Ok(Mount {
            mnt: mnt.to_path_buf(),
            backend: self,
            live: true,
        })
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    let parts: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    parts.join(":")
}

/// True when `CAIRN_TEST_SELF_CHECK=1`: the cairn side is served by the kernel too.
pub fn self_check() -> bool {
    std::env::var("CAIRN_TEST_SELF_CHECK").is_ok_and(|v| v == "1")
}

fn run_command(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A live mount; unmounted lazily on drop (e.g. when a test panics).
pub struct Mount {
    mnt: PathBuf,
    backend: Backend,
    live: bool,
}

impl Mount {
    /// The merged view's root.
    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// Unmounts cleanly, with the backend's own command (on failure, drop unmounts lazily).
    pub fn unmount(mut self) -> Result<(), String> {
        let mut cmd = if self.backend == Backend::Kernel || self_check() {
            Command::new("umount")
        } else {
            let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
            c.arg("umount");
            c
        };
        cmd.arg(&self.mnt);
        // A file this thread had open on the mount can be briefly held by a child that another
        // test thread is forking (the fd is only closed at its exec), making the mount "busy".
        let mut tries = 0;
        loop {
            match run_command(&mut cmd) {
                Ok(()) => {
                    self.live = false;
                    return Ok(());
                }
                Err(e) if e.contains("busy") && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(format!("{} unmount failed: {e}", self.backend.name())),
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.live {
            // Best effort: a lazy unmount never blocks on a busy or dead mount.
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).output();
        }
    }
}

/// Whether root, FUSE and overlayfs are available. Prints the reason and returns false when not,
/// except under `CI=true`, where a missing prerequisite is a failure.
pub fn env_ready() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    match READY.get_or_init(probe) {
        Ok(()) => true,
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but the end-to-end tests cannot run: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping end-to-end test: {reason}");
            false
        }
    }
}

fn probe() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("not running as root".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing".into());
    }
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let dirs: Vec<PathBuf> = ["l0", "l1", "u", "w", "m"]
        .iter()
        .map(|d| tmp.path().join(d))
        .collect();
    for d in &dirs {
        std::fs::create_dir(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    }
    let m = Backend::Kernel
        .mount(&dirs[..2], Some((&dirs[2], &dirs[3])), &dirs[4], "")
        .map_err(|e| format!("overlayfs unavailable: {e}"))?;
    m.unmount()
}
