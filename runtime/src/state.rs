//! The truth about a container's state: [`refresh`] records a container whose supervisor died
//! (kill -9, OOM, crash) as exited (137, with an error) and cleans up what is left: processes
//! (cgroup, pid 1), the dead FUSE mount (lazily unmounted), the cgroup; and the private mounts
//! (`mnt-PID`) of commands killed half way. Used by the lifecycle commands, exec, the
//! container filesystem and the supervisor; depends only on the container record.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use crate::Result;
use crate::cgroup::Cgroup;
use crate::container::{Container, ProcessId, State, Status, now};

/// The prefix of the directory (`mnt-PID`) a command mounts a stopped container's union on.
pub(crate) const PRIVATE_MOUNT: &str = "mnt-";

/// Exit status recorded when the supervisor died (its pid 1 got SIGKILL).
const DEAD_SUPERVISOR_CODE: i32 = 137;

/// Running, or waiting to be restarted by its policy (what `ps` lists without `-a`).
pub fn is_running(st: &State) -> bool {
    st.status == Status::Running || st.restarting
}

/// Reads the state, first recording a dead supervisor and cleaning up after it.
pub fn refresh(c: &Container) -> Result<State> {
    let st = c.state_or_new()?;
    match st.supervisor {
        Some(sup) if !sup.alive() => {}
        _ => return Ok(st),
    }
    let _lock = c.lock()?;
    let mut st = c.state_or_new()?;
    match st.supervisor {
        Some(sup) if !sup.alive() => {}
        _ => return Ok(st),
    }
    kill_leftovers(c, &st);
    if is_running(&st) || st.exit_code.is_none() {
        st.exit_code = Some(DEAD_SUPERVISOR_CODE);
        st.finished_at = Some(now());
    }
    st.status = Status::Exited;
    st.pid = None;
    st.pid_start = None;
    st.restarting = false;
    st.supervisor = None;
    st.error = Some("the container's supervisor died".into());
    c.set_state(&st)?;
    Ok(st)
}

/// The container's pid 1, if it still runs.
pub fn pid1(st: &State) -> Option<ProcessId> {
    let p = ProcessId {
        pid: st.pid?,
        start: st.pid_start?,
    };
    p.alive().then_some(p)
}

pub(crate) fn signal(p: ProcessId, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), sig);
}

/// Kills every process of the container (a supervisor still there first: its pid 1 and FUSE
/// daemon die with it), removes its cgroup, unmounts its rootfs.
pub(crate) fn kill_leftovers(c: &Container, st: &State) {
    if let Some(sup) = st.supervisor.filter(|s| s.alive()) {
        signal(sup, Signal::SIGKILL);
    }
    if let Some(p) = pid1(st) {
        signal(p, Signal::SIGKILL);
    }
    let cg = Cgroup::open(&c.id);
    cg.kill_all();
    cg.remove();
    unmount_all_stale(c);
}

/// Lazily unmounts whatever is mounted on the container's rootfs (a FUSE mount whose
/// daemon is gone cannot be resolved or unmounted any other way).
pub fn unmount_stale(c: &Container) {
    if let Ok(dir) = std::fs::canonicalize(&c.dir) {
        detach_mounts(&dir.join("rootfs"));
    }
}

/// [`unmount_stale`], and the private mounts (`mnt-PID`) of commands killed half way, removed
/// (the caller holds the container's lock, which such a command holds while it runs).
pub(crate) fn unmount_all_stale(c: &Container) {
    unmount_stale(c);
    let Ok(dir) = std::fs::canonicalize(&c.dir) else {
        return;
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        if e.file_name().to_string_lossy().starts_with(PRIVATE_MOUNT) {
            let p = e.path();
            detach_mounts(&p);
            let _ = std::fs::remove_dir(&p);
        }
    }
}

/// The private mounts (`mnt-PID`) of a container whose command is gone (killed half way):
/// their FUSE daemon died with it, so they answer ENOTCONN until detached.
pub fn dead_private_mounts(c: &Container) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(&c.dir) else {
        return vec![];
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: i32 = name.strip_prefix(PRIVATE_MOUNT)?.parse().ok()?;
            let alive = crate::container::ProcessId::of(pid).is_some_and(|p| p.alive());
            (!alive).then(|| e.path())
        })
        .collect()
}

/// Detaches a dead private mount (see [`dead_private_mounts`]) and removes its directory.
pub fn remove_private_mount(p: &Path) -> Result<()> {
    let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    detach_mounts(&p);
    std::fs::remove_dir(&p).map_err(crate::Error::io("remove", &p))
}

/// Lazily unmounts what is stacked on `p` (a canonical path).
fn detach_mounts(p: &Path) {
    for _ in 0..8 {
        if !cairn_fs::mount::is_mountpoint(p) {
            return;
        }
        if nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH).is_err() {
            return;
        }
    }
}
