//! `cairn exec`: a new process in a running container. The parent enters the container's pid
//! namespace only for the fork (so the child is born in it) and moves the child into the
//! container's cgroups; the child joins the cgroup, ipc, uts, net and mount namespaces of the
//! container's pid 1 (`setns` on `/proc/PID/ns/*`), then takes the same identity path as
//! `cairn run`'s pid 1 ([`crate::process::become_user`]): user from the container's
//! `/etc/passwd` and `/etc/group`, the container's environment plus `-e`, its working dir or
//! `-w`, its capability set, exec.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::CloneFlags;

use crate::container::{Container, Status};
use crate::live::ContainerCgroups;
use crate::process::{
    ChildConsole, Launch, StartFailure, Started, become_user, exec, fail, start, stdio,
};
use crate::rootfs::read_image_file;
use crate::spec::{RunSpec, SpecError, apply_env, replace_or_append, resolve_user};
use crate::{Error, Result};

/// Everything `cairn exec` was asked.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// `-e K=V` (or `K` for the caller's value).
    pub env: Vec<String>,
    /// `-w DIR`.
    pub workdir: Option<String>,
    /// `-u USER[:GROUP]`.
    pub user: Option<String>,
    /// Keep stdin attached (`-i`).
    pub interactive: bool,
    /// Allocate a pseudo-terminal (`-t`).
    pub tty: bool,
    /// Start the process and return at once (`-d`).
    pub detach: bool,
}

/// The host pid of a container's pid 1 while it is running (the state refreshed first, so a
/// dead supervisor is noticed; the pid checked against its start time, so a reused pid is
/// not taken for it).
pub fn running_pid(c: &Container) -> Option<i32> {
    let state = crate::state::refresh(c).ok()?;
    (state.status == Status::Running)
        .then(|| crate::state::pid1(&state))
        .flatten()
        .map(|p| p.pid)
}

/// The spec of an exec'd process: the container's, with the command, `-e`, `-w` and `-u` of
/// the request (pure; `passwd` and `group` are the container's files).
pub fn exec_spec(
    base: &RunSpec,
    req: &ExecRequest,
    passwd: Option<&str>,
    group: Option<&str>,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<RunSpec, SpecError> {
    if req.command.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let mut s = base.clone();
    s.args = req.command.clone();
    if let Some(w) = &req.workdir {
        if !w.starts_with('/') {
            return Err(SpecError::RelativeWorkdir(w.clone()));
        }
        s.cwd = w.clone();
    }
    if let Some(u) = &req.user {
        s.user = resolve_user(u, passwd, group)?;
        // HOME follows the user unless the caller names it.
        replace_or_append(&mut s.env, format!("HOME={}", s.user.home));
    }
    apply_env(&mut s.env, &req.env, host_env)?;
    Ok(s)
}

/// Namespaces the child joins, in order (mount last: it changes what paths mean).
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Opens `/proc/PID/ns/NAME` when it differs from ours.
fn foreign_ns(pid: i32, name: &str) -> Result<Option<OwnedFd>> {
    let theirs = format!("/proc/{pid}/ns/{name}");
    let f = std::fs::File::open(&theirs).map_err(Error::io("open", &theirs))?;
    let ours = std::fs::metadata(format!("/proc/self/ns/{name}")).ok();
    let m = f.metadata().map_err(Error::io("stat", &theirs))?;
    if ours.is_some_and(|o| o.ino() == m.ino() && o.dev() == m.dev()) {
        return Ok(None);
    }
    Ok(Some(OwnedFd::from(f)))
}

/// Runs a command in the running container `c`; returns its exit status (128+N for signal
/// N), or 0 at once with `detach`. Errors carry docker's status in [`Error::exit_code`].
pub fn exec_in(c: &Container, req: &ExecRequest) -> Result<i32> {
    let pid = running_pid(c).ok_or_else(|| Error::NotRunning(c.id.clone()))?;
    let cfg = c.config()?;
    let root = format!("/proc/{pid}/root");
    let passwd = read_image_file(Path::new(&root), "/etc/passwd");
    let group = read_image_file(Path::new(&root), "/etc/group");
    let host_env = |k: &str| std::env::var(k).ok();
    let spec = exec_spec(
        &cfg.spec,
        req,
        passwd.as_deref(),
        group.as_deref(),
        &host_env,
    )?;
    let mut joins = Vec::new();
    for (name, flag) in NAMESPACES {
        if let Some(fd) = foreign_ns(pid, name)? {
            joins.push((fd, *flag));
        }
    }
    let pid_ns = foreign_ns(pid, "pid")?;
    let cgroups = ContainerCgroups::of_pid(pid);
    let (tty, interactive) = match req.detach {
        true => (false, false),
        false => (req.tty, req.interactive),
    };
    let body = |console: ChildConsole<'_>| -> StartFailure {
        for (fd, flag) in &joins {
            if let Err(e) = nix::sched::setns(fd, *flag) {
                return fail(format_args!("setns {flag:?}"), e);
            }
        }
        // Not in the caller's process group: terminal signals reach it only by forwarding.
        let _ = nix::unistd::setsid();
        if let Err(f) = stdio(console, interactive, spec.user.uid) {
            return f;
        }
        match become_user(&spec) {
            Ok(exe) => exec(&spec, &exe),
            Err(f) => f,
        }
    };
    let started: Started = start(
        Launch::Fork {
            pid_ns: pid_ns.as_ref(),
        },
        tty,
        interactive,
        |child| cgroups.add(child.as_raw()),
        &body,
    )?;
    if req.detach {
        return Ok(0);
    }
    started.wait()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::User;

    fn base() -> RunSpec {
        RunSpec {
            args: vec!["sleep".into(), "1000".into()],
            env: vec![
                "PATH=/bin".into(),
                "HOSTNAME=abc".into(),
                "A=img".into(),
                "HOME=/root".into(),
            ],
            cwd: "/srv".into(),
            user: User {
                uid: 0,
                gid: 0,
                additional_gids: vec![0],
                home: "/root".into(),
            },
            hostname: "abc".into(),
            network: Default::default(),
            read_only: false,
            volumes: vec![],
            memory: None,
            pids_limit: None,
            capabilities: vec!["CAP_CHOWN".into()],
            no_new_privileges: false,
            masked_paths: vec![],
            readonly_paths: vec![],
            devices: vec![],
            privileged: false,
            seccomp: Default::default(),
        }
    }

    #[test]
    fn command_env_workdir_and_user() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
        let req = ExecRequest {
            command: vec!["env".into()],
            env: vec!["A=cli".into(), "B".into(), "C".into()],
            workdir: Some("/tmp".into()),
            user: Some("app".into()),
            ..Default::default()
        };
        let host = |k: &str| (k == "B").then(|| "host".to_string());
        let s = exec_spec(&base(), &req, Some(passwd), None, &host).unwrap();
        assert_eq!(s.args, ["env"]);
        assert_eq!(s.cwd, "/tmp");
        assert_eq!((s.user.uid, s.user.gid), (1000, 1000));
        assert_eq!(
            s.env,
            [
                "PATH=/bin",
                "HOSTNAME=abc",
                "A=cli",
                "HOME=/home/app",
                "B=host"
            ]
        );
        assert_eq!(s.capabilities, ["CAP_CHOWN"]);
        let plain = ExecRequest {
            command: vec!["id".into()],
            ..Default::default()
        };
        let s = exec_spec(&base(), &plain, None, None, &host).unwrap();
        assert_eq!((s.cwd.as_str(), s.user.uid), ("/srv", 0));
        let rel = ExecRequest {
            workdir: Some("tmp".into()),
            ..plain.clone()
        };
        assert!(matches!(
            exec_spec(&base(), &rel, None, None, &host),
            Err(SpecError::RelativeWorkdir(_))
        ));
        let nobody = ExecRequest {
            user: Some("ghost".into()),
            ..plain
        };
        assert!(matches!(
            exec_spec(&base(), &nobody, Some(passwd), None, &host),
            Err(SpecError::NoSuchUser(_))
        ));
        assert!(matches!(
            exec_spec(&base(), &ExecRequest::default(), None, None, &host),
            Err(SpecError::NoCommand)
        ));
    }
}
