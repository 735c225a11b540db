//! The supervisor of one container (daemonless, like podman's conmon): the process that
//! mounts the container's rootfs (its FUSE daemon dies with it), starts pid 1 (which also
//! dies with it), copies pid 1's stdout and stderr into the json-file log (and, attached, to
//! its own stdout and stderr), forwards signals, records the state, applies the restart
//! policy, and at the end removes the cgroup and unmounts (and with `--rm` removes the
//! container). It is the CLI itself in the foreground ([`supervise`]) or a forked, setsid'd
//! child with detached stdio ([`detach`]).
//!
//! State changes happen under the container's lock; `state.supervisor` (pid + start time)
//! lets commands tell a dead supervisor from a live one ([`crate::state::refresh`]).

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::container::{
    Container, ContainerConfig, ProcessId, RestartPolicy, Status, now, reap_daemon, unmount_rootfs,
};
use crate::launch::{Launch, cgroup_for, write_etc_files, write_new_config};
use crate::logs::{LogWriter, Stream};
use crate::process::{ChildSetup, FORWARDED, spawn};
use crate::{Error, Result};

fn sys(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> Error {
    move |source| Error::Sys { what, source }
}

/// What of this process's stdio the container is attached to, besides its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Detached: the log only.
    None,
    /// Its stdout and stderr copied to ours.
    Output,
    /// Also our stdin as its stdin (`-i`).
    OutputAndStdin,
}

/// Supervises a container until it exits for good (restart policy included); returns the
/// last exit status of pid 1. `ready` is called once:
/// with Ok when pid 1 first runs, or with the error that prevented it.
pub fn supervise(
    launch: Launch,
    attach: Attach,
    ready: &mut dyn FnMut(&Result<()>),
) -> Result<i32> {
    let c = launch.container().clone();
    let mut sup = Supervisor {
        c: c.clone(),
        mounted: false,
        daemon: None,
        cgroup: None,
        auto_remove: false,
        rootfs_lost: false,
    };
    let result = sup.run(launch, attach, ready);
    if let Err(e) = &result {
        ready(&Err(Error::Start {
            code: e.exit_code(),
            message: e.to_string(),
        }));
    }
    let cleanup = sup.cleanup();
    let code = result?;
    cleanup?;
    Ok(code)
}

/// Forks a detached supervisor for the container (new session, stdio on /dev/null);
/// returns once pid 1 runs, or with the error that prevented it.
pub fn detach(launch: Launch) -> Result<()> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    // SAFETY: the CLI is single-threaded when it starts a container, so the child may run
    // arbitrary code after fork.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(wr);
            // Up to the NUL that ends the message: the FUSE daemon the supervisor forks
            // holds a copy of the write end, so end of file never comes.
            let mut msg = Vec::new();
            let mut rd = std::fs::File::from(rd);
            let mut buf = [0u8; 512];
            while let Ok(n @ 1..) = rd.read(&mut buf) {
                msg.extend_from_slice(&buf[..n]);
                if let Some(end) = msg.iter().position(|b| *b == 0) {
                    msg.truncate(end);
                    break;
                }
            }
            match msg.as_slice() {
                b"ok" => Ok(()),
                [] => Err(Error::Start {
                    code: 125,
                    message: "the container's supervisor exited before the start".into(),
                }),
                m => {
                    let m = String::from_utf8_lossy(m);
                    let (code, message) = m.split_once('\n').unwrap_or(("125", &m));
                    Err(Error::Start {
                        code: code.parse().unwrap_or(125),
                        message: message.to_string(),
                    })
                }
            }
        }
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let _ = nix::unistd::setsid();
            let _ = std::env::set_current_dir("/");
            null_stdio();
            close_inherited();
            let mut wr = Some(std::fs::File::from(wr));
            let mut ready = |r: &Result<()>| {
                if let Some(mut w) = wr.take() {
                    let _ = match r {
                        Ok(()) => w.write_all(b"ok\0"),
                        Err(e) => w.write_all(format!("{}\n{e}\0", e.exit_code()).as_bytes()),
                    };
                }
            };
            let r = supervise(launch, Attach::None, &mut ready);
            std::process::exit(i32::from(r.is_err()));
        }
    }
}

/// Points fds 0–2 at /dev/null.
fn null_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            dup_onto(null.as_fd(), fd);
        }
    }
}

/// Closes the descriptors above 2 that the command inherited from its caller (those
/// without close-on-exec; every one this process opened has it): the supervisor outlives
/// the command, and must not hold its caller's pipes open (`x=$(cairn run -d … 3>&1)`
/// would never see end of file), nor hand them to the FUSE daemon.
fn close_inherited() {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: fcntl on a number only reads its flags (EBADF for the directory's own
        // descriptor, closed by now); a descriptor without FD_CLOEXEC was not opened by
        // this program, so nothing here owns it and closing it invalidates no handle.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::close(fd);
            }
        }
    }
}

/// dup2 `from` onto the standard descriptor `target`.
fn dup_onto(from: BorrowedFd<'_>, target: i32) {
    // SAFETY: `target` is a standard descriptor of this process; it is replaced by dup2 and
    // the ManuallyDrop wrapper keeps it from being closed through this handle.
    let mut t = std::mem::ManuallyDrop::new(unsafe {
        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(target)
    });
    let _ = nix::unistd::dup2(from, &mut t);
}

/// What has to be undone at the end.
struct Supervisor {
    c: Container,
    mounted: bool,
    /// The rootfs's FUSE daemon, our child: watched while pid 1 runs, reaped at the end.
    daemon: Option<Pid>,
    cgroup: Option<crate::cgroup::Cgroup>,
    auto_remove: bool,
    /// The FUSE daemon serving the rootfs died: pid 1 was killed, no restart.
    rootfs_lost: bool,
}

/// Restart delay: docker's, doubling from 100 ms, reset after 10 s of running.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

impl Supervisor {
    fn run(
        &mut self,
        launch: Launch,
        attach: Attach,
        ready: &mut dyn FnMut(&Result<()>),
    ) -> Result<i32> {
        let c = self.c.clone();
        c.update_state(|st| {
            st.supervisor = ProcessId::current();
            st.error = None;
        })?;
        let rootfs = c.rootfs();
        crate::state::unmount_stale(&c);
        let cfg = match &launch {
            Launch::New(new) => {
                let mut lowers = new.lowers.clone();
                if lowers.is_empty() {
                    let empty = c.dir.join("empty");
                    std::fs::create_dir_all(&empty).map_err(Error::io("create", &empty))?;
                    lowers.push(empty);
                }
                self.daemon = Some(c.mount_rootfs_tied(&rootfs, &lowers)?);
                self.mounted = true;
                self.auto_remove = new.req.remove;
                write_new_config(new, &lowers)?
            }
            Launch::Existing(_) => {
                let cfg = c.config()?;
                self.daemon = Some(c.mount_rootfs_tied(&rootfs, &cfg.lowers)?);
                self.mounted = true;
                cfg
            }
        };
        self.auto_remove = cfg.auto_remove;
        let interactive = attach == Attach::OutputAndStdin;
        let attach = attach != Attach::None;
        self.cgroup = cgroup_for(&c, &cfg)?;
        let mut log = LogWriter::open(&c.log_path())?;
        let mut backoff = FIRST_BACKOFF;
        let mut first = true;
        loop {
            let started_at = Instant::now();
            let mut started = || {
                if first {
                    ready(&Ok(()));
                    first = false;
                }
            };
            let code = match self.once(&cfg, attach, interactive, &mut log, &mut started) {
                Ok(code) => code,
                Err(e) => {
                    let code = e.exit_code();
                    c.update_state(|st| {
                        st.status = Status::Exited;
                        st.pid = None;
                        st.exit_code = Some(code);
                        st.finished_at = Some(now());
                        st.restarting = false;
                        st.error = Some(e.to_string());
                    })?;
                    return Err(e);
                }
            };
            if started_at.elapsed() > Duration::from_secs(10) {
                backoff = FIRST_BACKOFF;
            }
            let st = c.update_state(|st| {
                st.status = Status::Exited;
                st.pid = None;
                st.pid_start = None;
                st.exit_code = Some(code);
                st.finished_at = Some(now());
                st.restarting = !st.stopped_by_user
                    && !self.rootfs_lost
                    && restarts(cfg.restart, code, st.restart_count);
                if st.restarting {
                    st.restart_count += 1;
                }
            })?;
            if !st.restarting {
                return Ok(code);
            }
            if !self.backoff(backoff) {
                return Ok(code);
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    /// Sleeps before a restart; false if the container was stopped meanwhile.
    fn backoff(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            let stopped = self.c.state().map_or(true, |s| s.stopped_by_user);
            if stopped {
                let _ = self.c.update_state(|st| st.restarting = false);
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    /// Starts pid 1 once (calls `started` once it runs) and supervises it until it exits;
    /// its exit status.
    fn once(
        &mut self,
        cfg: &ContainerConfig,
        attach: bool,
        interactive: bool,
        log: &mut LogWriter,
        started: &mut dyn FnMut(),
    ) -> Result<i32> {
        let c = &self.c;
        let own_netns = cfg.spec.network == crate::spec::Network::None;
        let etc = write_etc_files(c, &cfg.spec, own_netns)?;
        let rootfs = c.rootfs();
        let setup = ChildSetup {
            rootfs: &rootfs,
            spec: &cfg.spec,
            etc: &etc,
            interactive,
            tty: cfg.tty,
        };
        let mut mask = SigSet::empty();
        for s in FORWARDED {
            mask.add(*s);
        }
        mask.add(Signal::SIGCHLD);
        mask.thread_block().map_err(sys("sigprocmask"))?;
        let cgroup = self.cgroup.as_ref();
        let in_cgroup = |pid: Pid| match cgroup {
            Some(cg) => cg.add(pid.as_raw()),
            None => Ok(()),
        };
        if cfg.tty {
            return self.once_tty(&setup, in_cgroup, attach, log, started);
        }
        // pid 1's stdout and stderr are pipes to us: fds 1 and 2 are pointed at them for
        // the clone (the child inherits them), then restored.
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let saved_out = nix::unistd::dup(std::io::stdout().as_fd()).map_err(sys("dup"))?;
        let saved_err = nix::unistd::dup(std::io::stderr().as_fd()).map_err(sys("dup"))?;
        dup_onto(out_w.as_fd(), 1);
        dup_onto(err_w.as_fd(), 2);
        let child = spawn(&setup, in_cgroup);
        dup_onto(saved_out.as_fd(), 1);
        dup_onto(saved_err.as_fd(), 2);
        drop((out_w, err_w, saved_out, saved_err));
        let pid = child?.pid;
        self.mark_running(pid)?;
        started();
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(sys("signalfd"))?;
        let mut pipes = [Some(out_r), Some(err_r)];
        let code = loop {
            if let Some(code) = reap(pid) {
                break code;
            }
            if !self.rootfs_lost && self.daemon.is_some_and(exited) {
                // Without its FUSE daemon the rootfs answers ENOTCONN forever, so the
                // container ends, with the reason. Other children of this process (a
                // builder's earlier mounts) are none of our business: only our own pids
                // are waited for.
                self.daemon = None;
                self.rootfs_lost = true;
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                c.update_state(|st| {
                    st.error = Some("the FUSE server of the container's rootfs died".into())
                })?;
            }
            let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            let open: Vec<usize> = (0..2).filter(|i| pipes[*i].is_some()).collect();
            for i in &open {
                let fd = pipes[*i].as_ref().expect("open pipe").as_fd();
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(sys("poll")(e)),
            }
            let ready: Vec<bool> = fds[1..]
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            for (i, r) in open.iter().zip(ready) {
                if r {
                    pump(&mut pipes[*i], *i, log, attach);
                }
            }
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = Signal::try_from(info.ssi_signo as i32);
                if let Ok(s) = sig
                    && s != Signal::SIGCHLD
                {
                    let _ = nix::sys::signal::kill(pid, s);
                }
            }
        };
        // Everything in the pid namespace is gone with pid 1: read what is left.
        for (i, pipe) in pipes.iter_mut().enumerate() {
            if let Some(p) = pipe {
                let _ = nix::fcntl::fcntl(
                    &*p,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
            }
            while pump(pipe, i, log, attach) {}
        }
        log.finish(Stream::Stdout);
        log.finish(Stream::Stderr);
        Ok(code)
    }

    /// [`Supervisor::once`] with a pty: the console relay copies the pty to fd 1, which
    /// points at a pipe meanwhile; a thread copies that into the log (all as stdout, as
    /// docker logs a tty) and, attached, to the real stdout. The thread starts after the
    /// clone and ends before the next one.
    fn once_tty(
        &self,
        setup: &ChildSetup<'_>,
        in_cgroup: impl FnOnce(Pid) -> Result<()>,
        attach: bool,
        log: &mut LogWriter,
        started: &mut dyn FnMut(),
    ) -> Result<i32> {
        let (out_r, out_w) = pipe()?;
        let saved_out = nix::unistd::dup(std::io::stdout().as_fd()).map_err(sys("dup"))?;
        dup_onto(out_w.as_fd(), 1);
        drop(out_w);
        let child = match spawn(setup, in_cgroup) {
            Ok(c) => c,
            Err(e) => {
                dup_onto(saved_out.as_fd(), 1);
                return Err(e);
            }
        };
        let marked = self.mark_running(child.pid);
        if marked.is_ok() {
            started();
        }
        let code = std::thread::scope(|s| {
            s.spawn(|| {
                let mut buf = [0u8; 32 * 1024];
                loop {
                    match nix::unistd::read(out_r.as_fd(), &mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            log.write(Stream::Stdout, &buf[..n]);
                            if attach {
                                write_all(saved_out.as_fd(), &buf[..n]);
                            }
                        }
                        Err(nix::errno::Errno::EINTR) => {}
                        Err(_) => return,
                    }
                }
            });
            let code = child.wait();
            // Closes the pipe's last write end: the copy thread reads to the end and stops.
            dup_onto(saved_out.as_fd(), 1);
            code
        });
        log.finish(Stream::Stdout);
        marked?;
        code
    }

    fn mark_running(&self, pid: Pid) -> Result<()> {
        let st = self.c.update_state(|st| {
            st.status = Status::Running;
            st.pid = Some(pid.as_raw());
            st.pid_start = crate::container::proc_start_time(pid.as_raw());
            st.started_at = Some(now());
            st.restarting = false;
            st.error = None;
        })?;
        if st.stopped_by_user {
            // Stopped while this start was on its way: it does not run.
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        Ok(())
    }

    fn cleanup(&mut self) -> Result<()> {
        if let Some(cg) = self.cgroup.take() {
            cg.remove();
        }
        let mut result = Ok(());
        if self.mounted {
            result = unmount_rootfs(&self.c.rootfs());
            if result.is_err() {
                // A FUSE daemon that died cannot even be resolved: detach what is left.
                crate::state::unmount_stale(&self.c);
                if !cairn_fs::mount::is_mountpoint(&self.c.rootfs()) {
                    result = Ok(());
                }
            }
            self.mounted = false;
        }
        if let Some(pid) = self.daemon.take() {
            reap_daemon(pid);
        }
        if self.auto_remove {
            let _lock = self.c.lock();
            return self.c.remove();
        }
        // A supervisor that ended normally leaves no supervisor behind to check for.
        let _ = self.c.update_state(|st| {
            st.supervisor = None;
            st.restarting = false;
        });
        result
    }
}

/// Whether the policy restarts after exit status `code` with `count` restarts so far.
fn restarts(policy: RestartPolicy, code: i32, count: u32) -> bool {
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max } => code != 0 && (max == 0 || count < max),
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))
}

/// pid 1's exit status, if it has exited (128+N for signal N).
fn reap(pid: Pid) -> Option<i32> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return Some(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Some(128 + s as i32),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Some(255),
            Ok(_) => return None,
        }
    }
}

/// Whether our child `pid` (the FUSE daemon) has exited (then it is reaped).
fn exited(pid: Pid) -> bool {
    reap(pid).is_some()
}

/// Reads one chunk of stream `i` into the log (and to fd 1 or 2 when attached); closes the
/// pipe at end of file. False when nothing was read.
fn pump(pipe: &mut Option<OwnedFd>, i: usize, log: &mut LogWriter, attach: bool) -> bool {
    let Some(fd) = pipe else {
        return false;
    };
    let mut buf = [0u8; 32 * 1024];
    match nix::unistd::read(fd.as_fd(), &mut buf) {
        Ok(0) => {
            *pipe = None;
            false
        }
        Ok(n) => {
            let stream = if i == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            log.write(stream, &buf[..n]);
            if attach {
                match stream {
                    Stream::Stdout => write_all(std::io::stdout().as_fd(), &buf[..n]),
                    Stream::Stderr => write_all(std::io::stderr().as_fd(), &buf[..n]),
                }
            }
            true
        }
        Err(nix::errno::Errno::EINTR) => true,
        Err(nix::errno::Errno::EAGAIN) => false,
        Err(_) => {
            *pipe = None;
            false
        }
    }
}

/// Writes to a descriptor, giving up on error (a reader that went away).
fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf = &buf[n..],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert!(!restarts(RestartPolicy::No, 1, 0));
        assert!(restarts(RestartPolicy::Always, 0, 100));
        assert!(restarts(RestartPolicy::UnlessStopped, 0, 0));
        let two = RestartPolicy::OnFailure { max: 2 };
        assert!(restarts(two, 3, 0) && restarts(two, 3, 1) && !restarts(two, 3, 2));
        assert!(!restarts(two, 0, 0));
        assert!(restarts(RestartPolicy::OnFailure { max: 0 }, 1, 1000));
    }
}
