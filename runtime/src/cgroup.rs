//! Resource limits through cgroups: `cairn/<id>` under the unified hierarchy (v2, when
//! `/sys/fs/cgroup/cgroup.controllers` exists) or under the v1 `memory`, `pids` and `cpu`
//! hierarchies. `--memory` → `memory.max` / `memory.limit_in_bytes` (swap as docker: total
//! twice the memory), `--pids-limit` → `pids.max`, `--cpus` → `cpu.max` /
//! `cpu.cfs_quota_us` + `cpu.cfs_period_us`. On v1 the container also gets a `freezer`
//! cgroup (for pausing it). The device policy ([`crate::devices`]) goes into the v1 `devices`
//! cgroup or, on v2, a device program attached to the container's directory. Removed after
//! the container exits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Error, Result};

const ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The host's layout.
pub fn version() -> Version {
    if Path::new(ROOT).join("cgroup.controllers").exists() {
        Version::V2
    } else {
        Version::V1
    }
}

/// The cgroup directories of one container.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|source| Error::Cgroup {
        path: path.to_path_buf(),
        source,
    })
}

fn mkdir(path: &Path) -> Result<()> {
    match std::fs::create_dir_all(path) {
        Ok(()) => Ok(()),
        Err(source) => Err(Error::Cgroup {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The limits of one container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<u64>,
    /// Processes (≤ 0: unlimited).
    pub pids: Option<i64>,
    /// Billionths of a CPU (docker's NanoCPUs).
    pub nano_cpus: Option<u64>,
}

/// A cgroup path's error.
fn cg_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Cgroup {
        path: path.to_path_buf(),
        source,
    }
}

impl Limits {
    /// Whether any limit is set (then a cgroup is required, not just bookkeeping).
    pub fn any(&self) -> bool {
        self.memory.is_some() || self.pids.is_some() || self.nano_cpus.is_some()
    }
}

/// The v1 directory of the cpu controller (`cpu,cpuacct` co-mounted, or `cpu` alone).
fn v1_cpu_base() -> Option<PathBuf> {
    ["cpu,cpuacct", "cpu"]
        .iter()
        .map(|c| Path::new(ROOT).join(c))
        .find(|p| p.join("cgroup.procs").exists())
}

/// The v1 controllers a container gets a directory in. The freezer carries no limit: it is
/// there for `commit --pause` (and `pause`).
const V1_CONTROLLERS: [&str; 5] = ["memory", "pids", "cpu", "freezer", "devices"];

/// The v1 hierarchy of controller `ctl`.
fn v1_base(ctl: &str) -> PathBuf {
    match ctl {
        "cpu" => v1_cpu_base().unwrap_or_else(|| Path::new(ROOT).join("cpu")),
        _ => Path::new(ROOT).join(ctl),
    }
}

impl Cgroup {
    /// Creates `cairn/<id>` and writes the memory and pids limits (every device allowed).
    pub fn create(id: &str, memory: Option<u64>, pids: Option<i64>) -> Result<Cgroup> {
        let limits = Limits {
            memory,
            pids,
            nano_cpus: None,
        };
        Cgroup::create_with(id, &limits, &crate::devices::policy(&[], true))
    }

    /// Creates `cairn/<id>`, writes the limits and applies the device policy `devices`.
    pub fn create_with(
        id: &str,
        limits: &Limits,
        devices: &[crate::devices::Rule],
    ) -> Result<Cgroup> {
        let mut cg = Cgroup { dirs: vec![] };
        let r = match version() {
            Version::V2 => cg.create_v2(id, limits, devices),
            Version::V1 => cg.create_v1(id, limits, devices),
        };
        if let Err(e) = r {
            cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    fn create_v2(
        &mut self,
        id: &str,
        limits: &Limits,
        devices: &[crate::devices::Rule],
    ) -> Result<()> {
        let (memory, pids) = (limits.memory, limits.pids);
        let root = Path::new(ROOT);
        let parent = root.join("cairn");
        mkdir(&parent)?;
        // Delegate the controllers down to cairn/ and cairn/<id> (best effort: a controller
        // the host does not offer fails on its own below, when a limit needs it).
        for c in ["+memory", "+pids", "+cpu"] {
            let _ = std::fs::write(root.join("cgroup.subtree_control"), c);
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), c);
        }
        let dir = parent.join(id);
        mkdir(&dir)?;
        self.dirs.push(dir.clone());
        if let Some(m) = memory {
            write(&dir.join("memory.max"), &m.to_string())?;
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                write(&swap, &m.to_string())?;
            }
        }
        if let Some(p) = pids {
            write(&dir.join("pids.max"), &pids_max(p))?;
        }
        if let Some(n) = limits.nano_cpus {
            let quota = crate::spec::cpu_quota_us(n);
            let period = crate::spec::CPU_PERIOD_US;
            write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
        }
        crate::devices::bpf::attach(&dir, devices)?;
        Ok(())
    }

    fn create_v1(
        &mut self,
        id: &str,
        limits: &Limits,
        devices: &[crate::devices::Rule],
    ) -> Result<()> {
        let (memory, pids) = (limits.memory, limits.pids);
        for ctl in V1_CONTROLLERS {
            let base = v1_base(ctl);
            if !base.join("cgroup.procs").exists() {
                let needed = match ctl {
                    "memory" => memory.is_some(),
                    "pids" => pids.is_some(),
                    "freezer" => false,
                    // The device policy is not optional (unless it allows everything).
                    "devices" => devices.iter().any(|r| !r.allow),
                    _ => limits.nano_cpus.is_some(),
                };
                if needed {
                    return Err(Error::Cgroup {
                        path: base,
                        source: std::io::Error::from_raw_os_error(libc::ENOENT),
                    });
                }
                continue;
            }
            let dir = base.join("cairn").join(id);
            mkdir(&dir)?;
            self.dirs.push(dir.clone());
            match ctl {
                "memory" => {
                    if let Some(m) = memory {
                        write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                        let memsw = dir.join("memory.memsw.limit_in_bytes");
                        if memsw.exists() {
                            write(&memsw, &(m.saturating_mul(2)).to_string())?;
                        }
                    }
                }
                "cpu" => {
                    if let Some(n) = limits.nano_cpus {
                        let period = crate::spec::CPU_PERIOD_US;
                        write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                        let quota = crate::spec::cpu_quota_us(n);
                        write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                    }
                }
                "freezer" => {}
                "devices" => crate::devices::apply_v1(&dir, devices).map_err(cg_err(&dir))?,
                _ => {
                    if let Some(p) = pids {
                        write(&dir.join("pids.max"), &pids_max(p))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves a process into every directory of this cgroup.
    pub fn add(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Removes the directories (retrying while the last processes finish exiting).
    pub fn remove(&self) {
        for d in self.dirs.iter().rev() {
            for _ in 0..100 {
                match std::fs::remove_dir(d) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
        }
    }

    /// The directories of container `id`'s cgroup that exist (to kill and remove what a
    /// dead supervisor left).
    pub fn open(id: &str) -> Cgroup {
        let root = Path::new(ROOT);
        let candidates = match version() {
            Version::V2 => vec![root.join("cairn").join(id)],
            Version::V1 => V1_CONTROLLERS
                .iter()
                .map(|ctl| v1_base(ctl).join("cairn").join(id))
                .collect(),
        };
        Cgroup {
            dirs: candidates.into_iter().filter(|d| d.is_dir()).collect(),
        }
    }

    /// Sends SIGKILL to every process in the cgroup (`cgroup.kill` where there is one), then
    /// thaws it: a frozen (paused) process only dies once thawed.
    pub fn kill_all(&self) {
        for d in &self.dirs {
            if std::fs::write(d.join("cgroup.kill"), "1").is_err() {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            // Whichever of the two freezers this directory has.
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            let _ = std::fs::write(d.join("cgroup.freeze"), "0");
        }
    }

    /// The directories (for reporting).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

/// `pids.max` for a pids limit (v1 and v2 alike): `max` for none (≤ 0), else the number.
fn pids_max(limit: i64) -> String {
    if limit <= 0 {
        "max".to_string()
    } else {
        limit.to_string()
    }
}
