//! A running container seen from the host: its processes (members of its pid namespace), its
//! cgroups (read from `/proc/PID/cgroup` of its pid 1: joined by `exec`, frozen by `commit`),
//! and `ps -ef`-style facts about each process for `top`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::{Error, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Host pids of every process in the pid namespace of `pid1` (itself included), ascending.
pub fn container_pids(pid1: i32) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(format!("/proc/{pid1}/ns/pid")) else {
        return vec![];
    };
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let mut out: Vec<i32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::metadata(format!("/proc/{p}/ns/pid"))
                .is_ok_and(|m| m.ino() == target.ino() && m.dev() == target.dev())
        })
        .collect();
    out.sort_unstable();
    out
}

/// The cairn cgroups (`…/cairn/<id>`) a container's pid 1 is in: one directory on cgroup v2,
/// one per controller hierarchy on v1. Empty when it runs without one.
#[derive(Debug, Clone, Default)]
pub struct ContainerCgroups {
    dirs: Vec<PathBuf>,
}

impl ContainerCgroups {
    /// Reads `/proc/PID/cgroup`.
    pub fn of_pid(pid: i32) -> ContainerCgroups {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        ContainerCgroups {
            dirs: parse_proc_cgroup(&text)
                .into_iter()
                .filter(|d| d.join("cgroup.procs").exists())
                .collect(),
        }
    }

    /// Moves a process into every directory.
    pub fn add(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            let p = d.join("cgroup.procs");
            std::fs::write(&p, pid.to_string())
                .map_err(|source| Error::Cgroup { path: p, source })?;
        }
        Ok(())
    }

    /// The freezer control of this cgroup: (file, frozen value, thawed value).
    fn freezer(&self) -> Option<(PathBuf, &'static str, &'static str)> {
        self.dirs.iter().find_map(|d| {
            let v2 = d.join("cgroup.freeze");
            let v1 = d.join("freezer.state");
            if v2.exists() {
                Some((v2, "1", "0"))
            } else if v1.exists() {
                Some((v1, "FROZEN", "THAWED"))
            } else {
                None
            }
        })
    }
}

/// `/proc/PID/cgroup` lines → the cairn directories under the cgroup mount.
fn parse_proc_cgroup(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !path.contains("/cairn/") {
            continue;
        }
        let rel = path.trim_start_matches('/');
        let base = match ctrls {
            "" => PathBuf::from(CGROUP_ROOT),
            c => Path::new(CGROUP_ROOT).join(c.strip_prefix("name=").unwrap_or(c)),
        };
        out.push(base.join(rel));
    }
    out
}

/// A paused container: thawed (or sent SIGCONT) when dropped.
#[derive(Debug)]
pub struct Paused {
    freezer: Option<(PathBuf, &'static str)>,
    stopped: Vec<i32>,
}

/// Pauses every process of the container whose pid 1 is `pid1`: the cgroup freezer (v2
/// `cgroup.freeze`, v1 `freezer.state`) when the container has one, else SIGSTOP to each
/// process (pid 1 last).
pub fn pause(pid1: i32) -> Result<Paused> {
    let cgroups = ContainerCgroups::of_pid(pid1);
    if let Some((file, frozen, thawed)) = cgroups.freezer() {
        std::fs::write(&file, frozen).map_err(|source| Error::Cgroup {
            path: file.clone(),
            source,
        })?;
        let paused = Paused {
            freezer: Some((file.clone(), thawed)),
            stopped: vec![],
        };
        for _ in 0..500 {
            if is_frozen(&file) {
                return Ok(paused);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        return Ok(paused);
    }
    let mut stopped = Vec::new();
    // Repeat until no new process appears (a fork between listing and stopping).
    for _ in 0..10 {
        let mut pids: Vec<i32> = container_pids(pid1)
            .into_iter()
            .filter(|p| !stopped.contains(p))
            .collect();
        if pids.is_empty() {
            break;
        }
        pids.sort_by_key(|p| *p == pid1);
        for p in pids {
            if nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGSTOP).is_ok() {
                stopped.push(p);
            }
        }
    }
    Ok(Paused {
        freezer: None,
        stopped,
    })
}

fn is_frozen(file: &Path) -> bool {
    if file.ends_with("cgroup.freeze") {
        let events = file.with_file_name("cgroup.events");
        return std::fs::read_to_string(events).is_ok_and(|t| t.lines().any(|l| l == "frozen 1"));
    }
    std::fs::read_to_string(file).is_ok_and(|t| t.trim() == "FROZEN")
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some((file, thawed)) = &self.freezer {
            let _ = std::fs::write(file, thawed);
        }
        for p in self.stopped.iter().rev() {
            let _ = nix::sys::signal::kill(Pid::from_raw(*p), Signal::SIGCONT);
        }
    }
}

/// What `ps -ef` shows of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub uid: u32,
    pub pid: i32,
    pub ppid: i32,
    /// CPU use over the life of the process, percent.
    pub cpu_percent: u64,
    /// Start time, seconds since the epoch.
    pub start: i64,
    /// Controlling terminal as `pts/N` / `ttyN`, or `?`.
    pub tty: String,
    /// User + system CPU seconds.
    pub cpu_secs: u64,
    /// The command line, or `[comm]` for a kernel-style process without one.
    pub cmd: String,
}

/// Reads `/proc/PID/{stat,status,cmdline}`.
pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after comm: state(0) ppid(1) pgrp session tty_nr(4) ... utime(11) stime(12) ...
    // starttime(19).
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |v| v.max(1) as u64);
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let now = crate::container::now();
    let boot = now - uptime as i64;
    let started_ticks = num(19);
    let cpu_ticks = num(11) + num(12);
    let elapsed = (uptime - started_ticks as f64 / hz as f64).max(0.0);
    let cpu_secs = cpu_ticks / hz;
    let cpu_percent = if elapsed > 0.0 {
        ((cpu_ticks as f64 / hz as f64) * 100.0 / elapsed) as u64
    } else {
        0
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cmd = if args.is_empty() {
        format!("[{comm}]")
    } else {
        args.join(" ")
    };
    Some(ProcInfo {
        uid,
        pid,
        ppid: num(1) as i32,
        cpu_percent,
        start: boot + (started_ticks / hz) as i64,
        tty: tty_name(num(4)),
        cpu_secs,
        cmd,
    })
}

/// `tty_nr` of /proc/PID/stat → `pts/N`, `ttyN`, or `?`.
fn tty_name(nr: u64) -> String {
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_lines() {
        let v1 = "9:name=systemd:/\n6:freezer:/\n4:memory:/cairn/abc\n8:pids:/cairn/abc\n";
        assert_eq!(
            parse_proc_cgroup(v1),
            [
                PathBuf::from("/sys/fs/cgroup/memory/cairn/abc"),
                PathBuf::from("/sys/fs/cgroup/pids/cairn/abc")
            ]
        );
        assert_eq!(
            parse_proc_cgroup("0::/cairn/abc\n"),
            [PathBuf::from("/sys/fs/cgroup/cairn/abc")]
        );
        assert!(parse_proc_cgroup("0::/user.slice\n").is_empty());
    }

    #[test]
    fn our_own_process() {
        let me = std::process::id() as i32;
        let info = proc_info(me).unwrap();
        assert_eq!(info.pid, me);
        assert!(!info.cmd.is_empty());
        assert!(container_pids(me).contains(&me));
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
    }
}
