//! The container process: `clone` into new mount, pid, uts, ipc (and net) namespaces so the
//! command is pid 1; a start handshake (the parent moves the child into its cgroup, then lets
//! it go; the child reports a failure before exec over a close-on-exec pipe); in the child the
//! rootfs, hostname, working dir, user, no_new_privs, seccomp, capabilities and exec; in the parent
//! signal forwarding and the wait for the exit status (128+N for a signal).

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets};

#[path = "tty.rs"]
mod tty;

use crate::rootfs::EtcFiles;
use crate::spec::{Network, RunSpec, cap_number};
use crate::{Error, Result};

pub use crate::start_failure::StartFailure;

/// Signals the parent forwards to the container's pid 1.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// What the child needs besides the spec.
pub struct ChildSetup<'a> {
    pub rootfs: &'a Path,
    pub spec: &'a RunSpec,
    pub etc: &'a EtcFiles,
    /// Pass the caller's stdin through (`-i`); otherwise /dev/null (or, with `tty`, the
    /// console nobody writes to).
    pub interactive: bool,
    /// Give the container a pseudo-terminal as controlling terminal and stdio (`-t`).
    pub tty: bool,
}

/// A started container process.
#[derive(Debug)]
pub struct Started {
    pub pid: Pid,
    signals: SigSet,
    console: Option<tty::Relay>,
}

impl std::fmt::Debug for tty::Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relay")
    }
}

fn forward_set(tty: bool) -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.add(Signal::SIGCHLD);
    if tty {
        set.add(Signal::SIGWINCH);
    }
    set
}

fn sys(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> Error {
    move |source| Error::Sys { what, source }
}

/// How the child process comes to be.
pub(crate) enum Launch<'a> {
    /// `clone` into new namespaces (`cairn run`).
    Clone(CloneFlags),
    /// A plain `fork`, first entering the pid namespace behind the fd (if any) so the child
    /// is born in it (`cairn exec`); the parent returns to its own pid namespace right after.
    Fork { pid_ns: Option<&'a OwnedFd> },
}

/// The child's side of the console: the socket to send the master over and the window size.
pub(crate) type ChildConsole<'a> = Option<(&'a OwnedFd, Option<&'a nix::pty::Winsize>)>;

/// Starts the container process. `in_cgroup` runs in the parent with the child's pid before
/// the child continues. Returns once the command was exec'd, or the start failure.
pub fn spawn(setup: &ChildSetup<'_>, in_cgroup: impl FnOnce(Pid) -> Result<()>) -> Result<Started> {
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if setup.spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    start(
        Launch::Clone(flags),
        setup.tty,
        setup.interactive,
        in_cgroup,
        &|console| match prepare(setup, console) {
            Ok(exe) => exec(setup.spec, &exe),
            Err(f) => f,
        },
    )
}

/// Starts a child the given way: the start handshake (the parent runs `in_cgroup`, then lets
/// the child go; the child reports a failure before exec over a close-on-exec pipe), the
/// console (`tty`) and the signal set the parent forwards. `body` is the child's life after
/// the go-ahead; it returns only on failure.
pub(crate) fn start(
    launch: Launch<'_>,
    tty: bool,
    interactive: bool,
    in_cgroup: impl FnOnce(Pid) -> Result<()>,
    body: &dyn Fn(ChildConsole<'_>) -> StartFailure,
) -> Result<Started> {
    let (sync_rd, sync_wr) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    let (err_rd, err_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    let console = match tty {
        true => Some(tty::socket_pair()?),
        false => None,
    };
    let winsize = console.as_ref().and_then(|_| tty::host_winsize());
    // The forwarded signals and SIGCHLD (and SIGWINCH with a console) are taken with
    // sigwait; the child unblocks them.
    let signals = forward_set(tty);
    signals.thread_block().map_err(sys("sigprocmask"))?;
    let sync_wr_raw = sync_wr.as_raw_fd();
    let err_rd_raw = err_rd.as_raw_fd();
    let console_parent_raw = console.as_ref().map(|(p, _)| p.as_raw_fd());
    let console_child = console.as_ref().map(|(_, c)| (c, winsize.as_ref()));
    let mut child_fn = || -> isize {
        // The child's copies of the parent's pipe ends must go, or EOF never comes.
        let _ = nix::unistd::close(sync_wr_raw);
        let _ = nix::unistd::close(err_rd_raw);
        if let Some(fd) = console_parent_raw {
            let _ = nix::unistd::close(fd);
        }
        let mut go = [0u8; 1];
        let failure = if matches!(nix::unistd::read(&sync_rd, &mut go), Ok(1)) {
            body(console_child)
        } else {
            StartFailure::setup("the parent went away before the start".into())
        };
        let mut w = std::fs::File::from(err_wr.try_clone().expect("dup err pipe"));
        let _ = w.write_all(&failure.encode());
        failure.code as isize
    };
    let pid = launch_child(launch, &mut child_fn);
    let pid = match pid {
        Ok(p) => p,
        Err(e) => {
            let _ = signals.thread_unblock();
            return Err(e);
        }
    };
    drop(sync_rd);
    drop(err_wr);
    let console_parent = console.map(|(p, _)| p);
    let mut started = Started {
        pid,
        signals,
        console: None,
    };
    if let Err(e) = in_cgroup(pid) {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = started.wait();
        return Err(e);
    }
    let _ = std::fs::File::from(sync_wr).write_all(b"g");
    let mut msg = Vec::new();
    let _ = std::fs::File::from(err_rd).read_to_end(&mut msg);
    if msg.is_empty() {
        if let Some(sock) = console_parent {
            match tty::recv_master(&sock) {
                Ok(m) => started.console = Some(tty::Relay::start(m, interactive)),
                Err(e) => {
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    let _ = started.wait();
                    return Err(e);
                }
            }
        }
        return Ok(started);
    }
    let _ = started.wait();
    let f = StartFailure::decode(&msg);
    Err(Error::Start {
        code: f.code,
        message: f.message,
    })
}

/// Creates the child process; it runs `child_fn` and exits with its value.
fn launch_child(launch: Launch<'_>, child_fn: &mut dyn FnMut() -> isize) -> Result<Pid> {
    match launch {
        Launch::Clone(flags) => {
            let mut stack = vec![0u8; 1 << 20];
            // SAFETY: the caller is single-threaded (the CLI starts no threads; the mount
            // daemon is a separate process), so the child may allocate and run arbitrary code;
            // the stack outlives the child's use of it because the child has its own copy of
            // the address space.
            unsafe { nix::sched::clone(Box::new(child_fn), &mut stack, flags, Some(libc::SIGCHLD)) }
                .map_err(sys("clone"))
        }
        Launch::Fork { pid_ns } => {
            let own = match pid_ns {
                Some(target) => {
                    let own = std::fs::File::open("/proc/self/ns/pid")
                        .map_err(Error::io("open", "/proc/self/ns/pid"))?;
                    nix::sched::setns(target, CloneFlags::CLONE_NEWPID)
                        .map_err(sys("setns pid"))?;
                    Some(OwnedFd::from(own))
                }
                None => None,
            };
            // SAFETY: the caller is single-threaded (see above), so the child may run
            // arbitrary code until it execs or exits.
            let forked = unsafe { nix::unistd::fork() };
            // Threads (the console relay) cannot be created while our children would be born
            // in another pid namespace: back to ours.
            if let Some(own) = &own {
                let _ = nix::sched::setns(own, CloneFlags::CLONE_NEWPID);
            }
            match forked.map_err(sys("fork"))? {
                nix::unistd::ForkResult::Parent { child } => Ok(child),
                nix::unistd::ForkResult::Child => {
                    let code = child_fn();
                    // SAFETY: _exit ends the child without running the parent's atexit
                    // handlers or destructors on its copy of the address space.
                    unsafe { libc::_exit(code as i32) }
                }
            }
        }
    }
}

impl Started {
    /// Forwards signals to the container's pid 1 until it exits; returns its exit status
    /// (128+N when killed by signal N).
    pub fn wait(&self) -> Result<i32> {
        let code = loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, c)) => break c,
                Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::Sys {
                        what: "waitpid",
                        source: e,
                    });
                }
            }
            match self.signals.wait() {
                Ok(Signal::SIGCHLD) | Err(_) => {}
                Ok(Signal::SIGWINCH) => {
                    if let Some(c) = &self.console {
                        c.resize();
                    }
                }
                Ok(s) => {
                    let _ = nix::sys::signal::kill(self.pid, s);
                }
            }
        };
        if let Some(c) = &self.console {
            c.finish();
        }
        let _ = self.signals.thread_unblock();
        Ok(code)
    }
}

pub(crate) fn fail(what: impl std::fmt::Display, e: impl std::fmt::Display) -> StartFailure {
    StartFailure::setup(format!("{what}: {e}"))
}

/// Namespaces, mounts, identity; returns the executable to run.
fn prepare(
    setup: &ChildSetup<'_>,
    console: ChildConsole<'_>,
) -> std::result::Result<PathBuf, StartFailure> {
    let spec = setup.spec;
    // Our own cgroup namespace, rooted at the container's cgroup (we were moved there).
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| fail("unshare cgroup", e))?;
    // Not in the caller's process group: terminal signals reach pid 1 only by forwarding.
    let _ = nix::unistd::setsid();
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    crate::rootfs::setup(setup.rootfs, spec, setup.etc)?;
    nix::unistd::sethostname(&spec.hostname).map_err(|e| fail("sethostname", e))?;
    if spec.network == Network::None {
        bring_up_loopback();
    }
    stdio(console, setup.interactive, spec.user.uid)?;
    std::fs::create_dir_all(&spec.cwd).map_err(|e| {
        fail(
            format_args!("creating the working directory {}", spec.cwd),
            e,
        )
    })?;
    let exe = become_user(spec)?;
    // pid 1 (and with it the whole pid namespace) dies with its supervisor: nothing of a
    // container outlives the process that records its state. (Set after setuid, which
    // clears it; not in become_user, which `exec -d` shares.)
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    Ok(exe)
}

/// The child's standard streams: the console (`-t`), the caller's (`-i`), else stdin from
/// /dev/null.
pub(crate) fn stdio(
    console: ChildConsole<'_>,
    interactive: bool,
    uid: u32,
) -> std::result::Result<(), StartFailure> {
    if let Some((sock, winsize)) = console {
        tty::child_console(sock, winsize, uid)?;
    } else if !interactive {
        let null = std::fs::File::open("/dev/null").map_err(|e| fail("open /dev/null", e))?;
        let mut stdin = std::mem::ManuallyDrop::new(stdin_owned());
        nix::unistd::dup2(null.as_fd(), &mut stdin).map_err(|e| fail("dup2 stdin", e))?;
    }
    Ok(())
}

/// The identity of the spec: the bounding set, no_new_privs, groups, uid and capabilities,
/// then the working dir; returns the executable found on the spec's PATH.
pub(crate) fn become_user(spec: &RunSpec) -> std::result::Result<PathBuf, StartFailure> {
    drop_bounding_set(&spec.capabilities)?;
    if spec.no_new_privileges {
        rustix::thread::set_no_new_privs(true).map_err(|e| fail("no_new_privs", e))?;
    }
    // The seccomp filter, while CAP_SYS_ADMIN still allows loading it without no_new_privs
    // (the calls left before exec are all in docker's default allow-list).
    if let Some(profile) = spec.seccomp.profile() {
        let host = crate::seccomp::Host::current();
        let filter = profile
            .resolve(&host, &spec.capabilities)
            .map_err(|e| fail("seccomp", e))?;
        crate::seccomp::load(&filter).map_err(|e| fail("seccomp", e))?;
    }
    let u = &spec.user;
    let groups: Vec<Gid> = u
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| fail("setgroups", e))?;
    nix::unistd::setgid(Gid::from_raw(u.gid)).map_err(|e| fail("setgid", e))?;
    // setuid to a non-root uid clears the permitted and effective sets (docker: non-root
    // processes start with no effective capabilities).
    nix::unistd::setuid(Uid::from_raw(u.uid)).map_err(|e| fail("setuid", e))?;
    if u.uid == 0 {
        // Only what cairn itself holds can be kept (`--cap-add ALL` under a restricted
        // root, e.g. inside another container, gets the capabilities there are).
        let held = rustix::thread::capabilities(None).map_or(CapabilitySet::all(), |c| c.permitted);
        let keep = capability_set(&spec.capabilities) & held;
        let sets = CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        };
        rustix::thread::set_capabilities(None, sets).map_err(|e| fail("capset", e))?;
    }
    std::env::set_current_dir(&spec.cwd)
        .map_err(|e| fail(format_args!("chdir to cwd (\"{}\")", spec.cwd), e))?;
    let path = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    look_path(&spec.args[0], path)
}

/// The raw standard input as an OwnedFd that must never be dropped.
fn stdin_owned() -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: fd 0 stays open for the life of the process; the caller wraps it in
    // ManuallyDrop so it is never closed through this handle.
    unsafe { OwnedFd::from_raw_fd(0) }
}

fn bring_up_loopback() {
    // Without `ip`: the SIOCSIFFLAGS ioctl on "lo".
    let Ok(sock) = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return;
    };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a valid, initialised ifreq through the pointer for the
    // duration of the call on a socket we own.
    unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
}

/// `CAP_*` names → bits (unknown names ignored).
fn capability_set(names: &[String]) -> CapabilitySet {
    let mut set = CapabilitySet::empty();
    for n in names {
        if let Some(bit) = cap_number(n) {
            set |= CapabilitySet::from_bits_retain(1u64 << bit);
        }
    }
    set
}

/// Drops every capability not in `keep` from the bounding set.
fn drop_bounding_set(keep: &[String]) -> std::result::Result<(), StartFailure> {
    let keep = capability_set(keep);
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    for bit in 0..=last.min(63) {
        let cap = CapabilitySet::from_bits_retain(1u64 << bit);
        if keep.contains(cap) {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(cap) {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(fail(format_args!("dropping capability {bit}"), e)),
        }
    }
    Ok(())
}

/// Finds the executable like Go's exec.LookPath (what runc uses): a name with a slash is
/// used as is; otherwise the first executable regular file on PATH.
fn look_path(name: &str, path: &str) -> std::result::Result<PathBuf, StartFailure> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(name);
        if let Ok(m) = std::fs::metadata(&p)
            && m.is_file()
            && m.permissions().mode() & 0o111 != 0
        {
            return Ok(p);
        }
    }
    Err(StartFailure {
        code: 127,
        message: format!("exec: \"{name}\": executable file not found in $PATH"),
    })
}

/// Resets the signal state and execs; returns the failure when exec does not happen.
pub(crate) fn exec(spec: &RunSpec, exe: &Path) -> StartFailure {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |s: &[u8]| CString::new(s.to_vec());
    let (Ok(file), Ok(args), Ok(env)) = (
        cstr(exe.as_os_str().as_bytes()),
        spec.args
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<std::result::Result<Vec<_>, _>>(),
        spec.env
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<std::result::Result<Vec<_>, _>>(),
    ) else {
        return StartFailure::setup("argument or environment with a NUL byte".into());
    };
    // Everything but stdio is close-on-exec from here on.
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on descriptors ≥ 3.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    for s in FORWARDED
        .iter()
        .chain([Signal::SIGCHLD, Signal::SIGPIPE].iter())
    {
        // SAFETY: restoring the default disposition installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(*s, nix::sys::signal::SigHandler::SigDfl) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let e = nix::unistd::execve(&file, &args, &env).unwrap_err();
    let shown = exe.display();
    match e {
        nix::errno::Errno::ENOENT => StartFailure {
            code: 127,
            message: format!("exec: \"{shown}\": stat {shown}: no such file or directory"),
        },
        nix::errno::Errno::EACCES => StartFailure {
            code: 126,
            message: format!("exec: \"{shown}\": permission denied"),
        },
        e => StartFailure {
            code: 126,
            message: format!("exec: \"{shown}\": {}", e.desc().to_lowercase()),
        },
    }
}
