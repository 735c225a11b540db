//! Mount options (fuse-overlayfs and mount.fuse compatible), validation with one clear error
//! per problem before anything is mounted, and running the session in the foreground or as a
//! daemon that reports back once the mount is live.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fuser::{MountOption, SessionACL};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::fuse::UnionFs;
use crate::mount_check;
use crate::overlay::{Config, Overlay};
use crate::rules::RedirectDir;

/// Everything needed to mount one union.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub cfg: Config,
    pub mountpoint: PathBuf,
    pub read_only: bool,
    pub allow_other: bool,
    pub threads: usize,
    /// Generic mount flags passed to the kernel (nodev, nosuid, noexec, noatime, ...).
    pub flags: Vec<MountOption>,
    pub fsname: String,
    /// [`spawn_daemon`]: the daemon is killed when the process that spawned it dies (a
    /// container's supervisor: its mount must not outlive it).
    pub die_with_parent: bool,
    /// `-o stats=FILE`: requests per opcode and daemon CPU, written there at unmount and on
    /// SIGUSR1 (see `stats.rs`).
    pub stats: Option<PathBuf>,
    /// `redirect_dir=` was given explicitly (`userxattr` changes only its default).
    redirect_set: bool,
}

impl MountRequest {
    /// A request with defaults for the given mountpoint.
    pub fn new(mountpoint: PathBuf) -> MountRequest {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 8);
        MountRequest {
            cfg: Config {
                lowers: vec![],
                upper: None,
                work: None,
                timeout: Duration::from_secs(86400),
                passthrough: true,
                oci_whiteouts: true,
                ids: Default::default(),
                static_nlink: false,
                fsync: true,
                adopt_upper: false,
                redirect_dir: RedirectDir::On,
                index: true,
                volatile: false,
                userxattr: false,
            },
            mountpoint,
            read_only: false,
            allow_other: rustix::process::geteuid().is_root(),
            threads,
            flags: vec![],
            fsname: "cairn".into(),
            die_with_parent: false,
            stats: None,
            redirect_set: false,
        }
    }

    /// Applies a comma-separated option string (`-o`), fuse-overlayfs style.
    pub fn apply_options(&mut self, opts: &str) -> Result<()> {
        for opt in split_options(opts) {
            self.apply_option(&opt)?;
        }
        Ok(())
    }

    fn apply_option(&mut self, opt: &str) -> Result<()> {
        let (key, val) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        if self.apply_fuse_overlayfs_option(key, val)? {
            return Ok(());
        }
        let need = |v: Option<&str>| {
            v.filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| Error::Config(format!("mount option '{key}' needs a value")))
        };
        match key {
            "lowerdir" => {
                let v = need(val)?;
                mount_check::lowerdir_once(!self.cfg.lowers.is_empty())?;
                self.cfg.lowers = mount_check::lowerdir(&v, split_escaped(&v, ':'))?;
            }
            "upperdir" => self.cfg.upper = Some(need(val)?.into()),
            "workdir" => self.cfg.work = Some(need(val)?.into()),
            "timeout" => self.cfg.timeout = mount_check::timeout(&need(val)?)?,
            "threads" => {
                let v = need(val)?;
                let max = mount_check::MAX_THREADS;
                self.threads = mount_check::bounded_int(key, &v, 1, max)? as usize;
            }
            "passthrough" => self.cfg.passthrough = true,
            "nopassthrough" => self.cfg.passthrough = false,
            "oci_whiteouts" => self.cfg.oci_whiteouts = true,
            "nooci_whiteouts" => self.cfg.oci_whiteouts = false,
            "allow_other" | "allow_root" => self.allow_other = true,
            "ro" => self.read_only = true,
            "rw" => self.read_only = false,
            "fsname" => self.fsname = need(val)?,
            "stats" => self.stats = Some(need(val)?.into()),
            "nodev" => self.flags.push(MountOption::NoDev),
            "nosuid" => self.flags.push(MountOption::NoSuid),
            "noexec" => self.flags.push(MountOption::NoExec),
            "noatime" => self.flags.push(MountOption::NoAtime),
            "sync" => self.flags.push(MountOption::Sync),
            "dirsync" => self.flags.push(MountOption::DirSync),
            // Overlay options, with the kernel's meaning (README, "Overlay options").
            "redirect_dir" => {
                let v = need(val)?;
                self.cfg.redirect_dir = RedirectDir::parse(&v)
                    .ok_or_else(|| Error::Config(format!("bad redirect_dir '{v}'")))?;
                self.redirect_set = true;
            }
            "index" => {
                self.cfg.index = match val {
                    Some("on") => true,
                    Some("off") => false,
                    _ => return Err(Error::Config(format!("bad index '{opt}' (on or off)"))),
                }
            }
            "xino" if matches!(val, Some("off" | "auto" | "on")) => {}
            "uuid" if matches!(val, Some("off" | "null" | "auto" | "on")) => {}
            "metacopy" if matches!(val, Some("off")) => {}
            "volatile" => self.cfg.volatile = true,
            "userxattr" => self.cfg.userxattr = true,
            // Accepted for compatibility with overlayfs/fuse-overlayfs/mount.fuse command lines;
            // cairn always behaves this way or the kernel's defaults already apply.
            "dev"
            | "suid"
            | "exec"
            | "atime"
            | "relatime"
            | "strictatime"
            | "diratime"
            | "nodiratime"
            | "async"
            | "defaults"
            | "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "nofail"
            | "_netdev"
            | "default_permissions"
            | "subtype" => {}
            k if k.starts_with("x-") || k.starts_with("comment") => {}
            _ => return Err(Error::Config(format!("unknown mount option '{opt}'"))),
        }
        Ok(())
    }

    /// `userxattr` as the kernel takes it: redirects are neither created nor followed
    /// (`redirect_dir=nofollow`); any other explicit `redirect_dir=` conflicts.
    fn userxattr_redirects(&mut self) -> Result<()> {
        if !self.cfg.userxattr {
            return Ok(());
        }
        match (self.redirect_set, self.cfg.redirect_dir) {
            (false, _) => self.cfg.redirect_dir = RedirectDir::NoFollow,
            (true, RedirectDir::NoFollow) => {}
            (true, _) => {
                return Err(Error::Config(
                    "conflicting options: userxattr needs redirect_dir=nofollow (the kernel \
                     refuses the others too)"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// Checks everything that can be checked before mounting, with one clear message each.
    pub fn validate(&mut self) -> Result<()> {
        self.userxattr_redirects()?;
        if self.cfg.lowers.is_empty() {
            return Err(Error::Config(
                "no lower layer given (--lower A:B or -o lowerdir=A:B)".into(),
            ));
        }
        for l in &mut self.cfg.lowers {
            *l = check_dir("lower dir", l)?;
        }
        if let Some(u) = &mut self.cfg.upper {
            *u = check_dir("upper dir", u)?;
        }
        if let Some(w) = &mut self.cfg.work {
            *w = check_dir("work dir", w)?;
        }
        self.mountpoint = check_dir("mountpoint", &self.mountpoint)?;
        let mut layers: Vec<(&str, &Path)> = self
            .cfg
            .lowers
            .iter()
            .map(|l| ("lower dir", l.as_path()))
            .collect();
        layers.extend(self.cfg.upper.as_deref().map(|u| ("upper dir", u)));
        layers.extend(self.cfg.work.as_deref().map(|w| ("work dir", w)));
        mount_check::mountpoint_apart(&self.mountpoint, &layers)?;
        if is_mountpoint(&self.mountpoint) {
            return Err(Error::Config(format!(
                "mountpoint {} is busy: something is already mounted there",
                self.mountpoint.display()
            )));
        }
        rustix::fs::open(
            "/dev/fuse",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::sys("cannot open", "/dev/fuse", e))?;
        Ok(())
    }

    fn fuser_config(&self) -> fuser::Config {
        let mut opts = vec![
            MountOption::FSName(self.fsname.clone()),
            MountOption::CUSTOM("subtype=cairn".into()),
            MountOption::DefaultPermissions,
        ];
        if rustix::process::geteuid().is_root() {
            opts.push(MountOption::Dev);
            opts.push(MountOption::Suid);
        }
        opts.push(if self.read_only || self.cfg.upper.is_none() {
            MountOption::RO
        } else {
            MountOption::RW
        });
        opts.extend(self.flags.iter().cloned());
        let mut c = fuser::Config::default();
        c.mount_options = opts;
        c.acl = if self.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        c.n_threads = Some(self.threads);
        c.clone_fd = true;
        c
    }
}

/// Splits a `-o` string at commas (a backslash escapes a comma), dropping empty parts.
fn split_options(s: &str) -> Vec<String> {
    let mut parts = split_escaped(s, ',');
    parts.retain(|p| !p.is_empty());
    parts
}

fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let cur = out.last_mut().expect("nonempty");
                match chars.next() {
                    Some(n) if n == sep => cur.push(n),
                    Some(n) => {
                        cur.push('\\');
                        cur.push(n);
                    }
                    None => cur.push('\\'),
                }
            }
            c if c == sep => out.push(String::new()),
            c => out.last_mut().expect("nonempty").push(c),
        }
    }
    out
}

/// Checks that `p` is a directory and returns its absolute, canonical path.
fn check_dir(what: &'static str, p: &Path) -> Result<PathBuf> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => std::fs::canonicalize(p).map_err(|e| Error::io(what, p, e)),
        Ok(_) => Err(Error::Config(format!(
            "{what} {}: not a directory",
            p.display()
        ))),
        Err(e) => Err(Error::io(what, p, e)),
    }
}

/// True if `p` (canonical) is a mount point according to /proc/self/mountinfo.
pub fn is_mountpoint(p: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape_mountinfo(m) == want)
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|_| b[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts and serves until unmounted (or SIGINT/SIGTERM/SIGHUP, which unmount cleanly).
/// `ready` is called once the mount is live.
pub fn serve(
    req: &MountRequest,
    ready: impl FnOnce(std::result::Result<(), &Error>),
) -> Result<()> {
    let ov = match Overlay::new(req.cfg.clone()) {
        Ok(ov) => ov,
        Err(e) => {
            ready(Err(&e));
            return Err(e);
        }
    };
    raise_nofile();
    // Modes of created objects arrive already masked by the caller's umask.
    rustix::process::umask(rustix::fs::Mode::empty());
    // Block the stop signals before any thread exists so only the waiter thread gets them.
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [
        nix::sys::signal::SIGINT,
        nix::sys::signal::SIGTERM,
        nix::sys::signal::SIGHUP,
        nix::sys::signal::SIGUSR1,
    ] {
        set.add(s);
    }
    let _ = set.thread_block();
    let notifier = ov.notifier.clone();
    let fs = UnionFs::new(ov);
    let stats = (fs.stats.clone(), req.stats.clone());
    // As root, cairn mounts by itself: fuser's own mount handle would unmount the mountpoint
    // *path* when the session ends, which is wrong once something else is mounted there.
    let session = if rustix::process::geteuid().is_root() {
        mount_direct(req).and_then(|(fd, dev)| {
            let config = req.fuser_config();
            match fuser::Session::from_fd(fs, fd, config.acl, config) {
                Ok(s) => Ok((s, Some(dev))),
                Err(e) => {
                    let _ = unmount_if_ours(&req.mountpoint, &dev);
                    Err(Error::io("mount", &req.mountpoint, e))
                }
            }
        })
    } else {
        fuser::Session::new(fs, &req.mountpoint, &req.fuser_config())
            .map(|s| (s, None))
            .map_err(|e| Error::io("mount", &req.mountpoint, e))
    };
    let (mut session, dev) = match session {
        Ok(s) => s,
        Err(e) => {
            ready(Err(&e));
            return Err(e);
        }
    };
    let _ = notifier.set(session.notifier());
    let mut unmounter = session.unmount_callable();
    let mountpoint = req.mountpoint.clone();
    let dump = move || {
        if let (s, Some(path)) = &stats
            && let Err(e) = s.dump(path)
        {
            log::warn!("stats file {}: {e}", path.display());
        }
    };
    let dump_on_signal = dump.clone();
    std::thread::spawn(move || {
        loop {
            match set.wait() {
                Ok(nix::sys::signal::SIGUSR1) => dump_on_signal(),
                Ok(_) => break,
                Err(_) => return,
            }
        }
        {
            match &dev {
                Some(dev) => {
                    let _ = unmount_if_ours(&mountpoint, dev);
                }
                None => {
                    let _ = unmounter.unmount();
                }
            }
        }
    });
    ready(Ok(()));
    let r = session
        .run()
        .map_err(|e| Error::io("session ended on", &req.mountpoint, e));
    dump();
    r
}

/// Mounts a FUSE filesystem on the request's mountpoint with mount(2) (root only); returns the
/// /dev/fuse fd and the new mount's device ("major:minor" from mountinfo).
fn mount_direct(req: &MountRequest) -> Result<(OwnedFd, String)> {
    use rustix::mount::MountFlags;
    use std::os::fd::AsRawFd;
    let fd = rustix::fs::open(
        "/dev/fuse",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::sys("cannot open", "/dev/fuse", e))?;
    let st = rustix::fs::stat(&req.mountpoint)
        .map_err(|e| Error::sys("mountpoint", &req.mountpoint, e))?;
    let mut data = format!(
        "fd={},rootmode={:o},user_id={},group_id={},default_permissions",
        fd.as_raw_fd(),
        st.st_mode & libc::S_IFMT,
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw()
    );
    if req.allow_other {
        data.push_str(",allow_other");
    }
    let mut flags = MountFlags::empty();
    if req.read_only || req.cfg.upper.is_none() {
        flags |= MountFlags::RDONLY;
    }
    for f in &req.flags {
        flags |= match f {
            MountOption::NoDev => MountFlags::NODEV,
            MountOption::NoSuid => MountFlags::NOSUID,
            MountOption::NoExec => MountFlags::NOEXEC,
            MountOption::NoAtime => MountFlags::NOATIME,
            MountOption::Sync => MountFlags::SYNCHRONOUS,
            MountOption::DirSync => MountFlags::DIRSYNC,
            MountOption::CUSTOM(o) => {
                data.push(',');
                data.push_str(o);
                MountFlags::empty()
            }
            _ => MountFlags::empty(),
        };
    }
    let data = std::ffi::CString::new(data).map_err(|_| Error::Config("bad mount data".into()))?;
    rustix::mount::mount(
        req.fsname.as_str(),
        &req.mountpoint,
        "fuse.cairn",
        flags,
        Some(data.as_c_str()),
    )
    .map_err(|e| Error::sys("mount", &req.mountpoint, e))?;
    let dev = mount_dev(&req.mountpoint).ok_or_else(|| {
        Error::Config(format!(
            "{}: mounted but not in mountinfo",
            req.mountpoint.display()
        ))
    })?;
    Ok((fd, dev))
}

/// The device ("major:minor") of the topmost mount at `p`, from /proc/self/mountinfo (no
/// request reaches the filesystem mounted there).
fn mount_dev(p: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = p.to_string_lossy();
    info.lines().rev().find_map(|l| {
        let mut f = l.split(' ');
        let dev = f.nth(2)?;
        let mnt = f.nth(1)?;
        (unescape_mountinfo(mnt) == want).then(|| dev.to_string())
    })
}

/// Unmounts `p` only while the mount there is still the one with device `dev`.
fn unmount_if_ours(p: &Path, dev: &str) -> Result<()> {
    if mount_dev(p).as_deref() == Some(dev) {
        rustix::mount::unmount(p, rustix::mount::UnmountFlags::empty())?;
    }
    Ok(())
}

/// Forks a daemon that mounts and serves; returns its pid once the mount is live (or
/// failed). The daemon is the caller's child: the caller reaps it once it exits (after the
/// unmount).
pub fn spawn_daemon(req: &MountRequest) -> Result<nix::unistd::Pid> {
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let parent = rustix::process::getpid();
    // SAFETY: the process is single-threaded here (the CLI starts no threads before mounting),
    // so the child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() }
        .map_err(|e| Error::Errno(Errno::from_raw_os_error(e as i32)))?
    {
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let mut msg = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut msg);
            if msg == "ok" {
                return Ok(child);
            }
            let _ = nix::sys::wait::waitpid(child, None);
            if msg.is_empty() {
                return Err(Error::Daemon {
                    message: "mount daemon exited before the mount was live".into(),
                    source: None,
                });
            }
            Err(Error::from_wire(&msg))
        }
        nix::unistd::ForkResult::Child => {
            drop(rd);
            if req.die_with_parent {
                let _ = rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ));
                if rustix::process::getppid() != Some(parent) {
                    std::process::exit(1);
                }
            }
            let _ = rustix::process::setsid();
            let _ = std::env::set_current_dir("/");
            let mut wr = Some(std::fs::File::from(wr));
            let r = serve(req, |res| {
                let mut w = wr.take().expect("ready called once");
                let _ = match res {
                    Ok(()) => {
                        let _ = w.write_all(b"ok");
                        drop(w);
                        detach_stdio();
                        Ok(())
                    }
                    Err(e) => w.write_all(e.to_wire().as_bytes()),
                };
            });
            std::process::exit(i32::from(r.is_err()));
        }
    }
}

fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let null: OwnedFd = null.into();
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this process; `null` stays open.
            let target = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let _ = rustix::io::dup2(null.as_fd(), &mut unsafe_owned(target));
        }
    }
}

/// Wraps a standard fd for dup2 without closing it afterwards.
fn unsafe_owned(fd: std::os::fd::BorrowedFd<'_>) -> std::mem::ManuallyDrop<OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: the standard fds 0..3 are open for the life of the process; ManuallyDrop keeps
    // the OwnedFd from closing them.
    std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(fd.as_raw_fd()) })
}

/// Directory nodes hold fds; allow as many as the system lets us.
fn raise_nofile() {
    if let Ok(lim) = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .ok_or(())
    {
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(lim),
                maximum: Some(lim),
            },
        );
    }
}

/// Unmounts a cairn mount (as root directly, otherwise through fusermount3).
pub fn unmount(mountpoint: &Path) -> Result<()> {
    let mp =
        std::fs::canonicalize(mountpoint).map_err(|e| Error::io("mountpoint", mountpoint, e))?;
    if !is_mountpoint(&mp) {
        return Err(Error::Config(format!("{}: not mounted", mp.display())));
    }
    match rustix::mount::unmount(&mp, rustix::mount::UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::PERM) => {
            let st = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(&mp)
                .status()
                .map_err(|e| Error::io("cannot run", "fusermount3", e))?;
            if st.success() {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "fusermount3 -u {} failed",
                    mp.display()
                )))
            }
        }
        Err(e) => Err(Error::sys("umount", mp, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_overlayfs_option_strings_parse() {
        let mut r = MountRequest::new("/mnt".into());
        r.apply_options(
            "rw,lowerdir=/a:/b\\:c,upperdir=/u,workdir=/w,noatime,dev,suid,x-systemd.automount",
        )
        .unwrap();
        assert_eq!(r.cfg.lowers, [PathBuf::from("/a"), PathBuf::from("/b:c")]);
        assert_eq!(r.cfg.upper, Some("/u".into()));
        assert_eq!(r.cfg.work, Some("/w".into()));
        assert!(r.flags.contains(&MountOption::NoAtime));
    }

    #[test]
    fn unknown_options_are_refused_by_name() {
        let mut r = MountRequest::new("/mnt".into());
        let e = r.apply_options("lowerdir=/a,bogus=1").unwrap_err();
        assert!(e.to_string().contains("bogus=1"), "{e}");
        assert!(r.apply_options("upperdir=").is_err());
    }

    #[test]
    fn userxattr_means_redirect_dir_nofollow_as_in_the_kernel() {
        let req = |o: &str| {
            let mut r = MountRequest::new("/mnt".into());
            r.apply_options(o).unwrap();
            r.userxattr_redirects().map(|()| r.cfg)
        };
        let c = req("userxattr").unwrap();
        assert!(c.userxattr && c.ovl().user);
        assert_eq!(c.redirect_dir, RedirectDir::NoFollow);
        let c = req("redirect_dir=nofollow,userxattr").unwrap();
        assert_eq!(c.redirect_dir, RedirectDir::NoFollow);
        for bad in ["on", "follow", "off"] {
            let e = req(&format!("userxattr,redirect_dir={bad}")).unwrap_err();
            assert!(e.to_string().contains("conflicting"), "{e}");
        }
        assert_eq!(req("").unwrap().redirect_dir, RedirectDir::On);
        assert!(!req("").unwrap().userxattr);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
