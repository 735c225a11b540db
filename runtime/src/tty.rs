//! `-t`: the container's console. As runc does, the pseudo-terminal is allocated inside the
//! container (its own devpts instance, so the process sees `/dev/pts/0`): the child opens
//! `/dev/ptmx`, makes the slave its controlling terminal and stdio, and hands the master to
//! the parent over a socket (SCM_RIGHTS). The parent copies between its own stdio and the
//! master (one thread each way), keeps the window size in step (at start and on SIGWINCH),
//! and puts the host terminal in raw mode while stdin is forwarded from a terminal.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::pty::Winsize;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::sys::termios::{SetArg, Termios};

use super::{StartFailure, fail};
use crate::{Error, Result};

/// The socket pair the master travels over: (parent end, child end), both close-on-exec.
pub(super) fn socket_pair() -> Result<(OwnedFd, OwnedFd)> {
    nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|source| Error::Sys {
        what: "socketpair",
        source,
    })
}

/// The window size of the host's terminal (stdin, else stdout, else stderr), if any.
pub(super) fn host_winsize() -> Option<Winsize> {
    (0..3).find_map(|fd| {
        // SAFETY: zeroed winsize is a valid value; TIOCGWINSZ writes one winsize through the
        // pointer, which is valid for the call; a non-terminal fd just fails with ENOTTY.
        let mut ws: Winsize = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        (r == 0).then_some(ws)
    })
}

fn set_winsize(fd: RawFd, ws: &Winsize) -> nix::Result<()> {
    // SAFETY: TIOCSWINSZ reads one valid, initialised winsize through the pointer.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) };
    nix::errno::Errno::result(r).map(drop)
}

/// Child side, after the rootfs is set up and while still root: allocates the console in
/// the container's devpts, makes it the controlling terminal and stdio, sends the master.
pub(super) fn child_console(
    sock: &OwnedFd,
    winsize: Option<&Winsize>,
    uid: u32,
) -> std::result::Result<(), StartFailure> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| fail("open /dev/ptmx", e))?;
    nix::pty::grantpt(&master).map_err(|e| fail("grantpt", e))?;
    nix::pty::unlockpt(&master).map_err(|e| fail("unlockpt", e))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| fail("ptsname", e))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| fail(format_args!("open {name}"), e))?;
    if let Some(ws) = winsize {
        set_winsize(slave.as_raw_fd(), ws).map_err(|e| fail("TIOCSWINSZ", e))?;
    }
    // The caller is a session leader (setsid) without a controlling terminal.
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal), no pointer.
    let r = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    nix::errno::Errno::result(r).map_err(|e| fail("TIOCSCTTY", e))?;
    // The user owns its terminal (best effort, as runc does).
    let _ = nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(uid)), None);
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(b"m")];
    nix::sys::socket::sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| fail("sending the console", e))?;
    drop(master);
    for target in 0..3 {
        // SAFETY: fds 0..2 are the process's standard descriptors; dup2 replaces them and
        // the ManuallyDrop wrapper keeps them from ever being closed through this handle.
        let mut t = std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(target) });
        nix::unistd::dup2(slave.as_fd(), &mut t).map_err(|e| fail("dup2 console", e))?;
    }
    Ok(())
}

/// Parent side: receives the master the child sent.
pub(super) fn recv_master(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|source| Error::Sys {
        what: "receiving the console",
        source,
    })?;
    let cmsgs = msg.cmsgs().map_err(|source| Error::Sys {
        what: "receiving the console",
        source,
    })?;
    for c in cmsgs {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    Err(Error::Start {
        code: 125,
        message: "the container did not send its console".into(),
    })
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(0) => return false,
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Copies from `from` to `to` until EOF or an error (EIO on the master once every slave is
/// closed).
fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut buf = [0u8; 8192];
    loop {
        match rustix::io::read(from, &mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if !write_all(to, &buf[..n]) {
                    return;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// The parent's end of the console: the copy threads and the host terminal's saved mode.
pub struct Relay {
    master: Arc<OwnedFd>,
    output_done: Receiver<()>,
    saved: Mutex<Option<Termios>>,
}

impl Relay {
    /// Starts copying: the master to stdout always, stdin to the master with `interactive`
    /// (then a terminal stdin is switched to raw mode until [`Relay::finish`]). Must be
    /// called with the forwarded signals blocked, so the threads never take them.
    pub(super) fn start(master: OwnedFd, interactive: bool) -> Relay {
        let master = Arc::new(master);
        let mut saved = None;
        let stdin = std::io::stdin();
        if interactive
            && nix::unistd::isatty(stdin.as_fd()).unwrap_or(false)
            && let Ok(t) = nix::sys::termios::tcgetattr(stdin.as_fd())
        {
            let mut raw = t.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            if nix::sys::termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).is_ok() {
                saved = Some(t);
            }
        }
        let (tx, output_done) = channel();
        let m = master.clone();
        std::thread::spawn(move || {
            copy(m.as_fd(), std::io::stdout().as_fd());
            let _ = tx.send(());
        });
        if interactive {
            let m = master.clone();
            std::thread::spawn(move || {
                copy(std::io::stdin().as_fd(), m.as_fd());
                // End of input: the terminal's end-of-file character, as typed.
                let _ = write_all(m.as_fd(), b"\x04");
            });
        }
        let relay = Relay {
            master,
            output_done,
            saved: Mutex::new(saved),
        };
        relay.resize();
        relay
    }

    /// Copies the host terminal's window size to the console (on SIGWINCH).
    pub(super) fn resize(&self) {
        if let Some(ws) = host_winsize() {
            let _ = set_winsize(self.master.as_raw_fd(), &ws);
        }
    }

    /// After pid 1 exited: waits (briefly) for the last output, restores the host terminal.
    pub(super) fn finish(&self) {
        let _ = self.output_done.recv_timeout(Duration::from_secs(2));
        self.restore();
    }

    fn restore(&self) {
        let saved = self.saved.lock().map(|mut s| s.take()).unwrap_or(None);
        if let Some(t) = saved {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &t);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.restore();
    }
}
