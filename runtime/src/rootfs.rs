//! The container's filesystem view, built by the child inside its new mount namespace: the
//! union rootfs bind-mounted onto itself `nodev` (device nodes of the image, or made in the
//! container outside /dev, cannot be opened), /proc, /sys (read-only), a tmpfs /dev with the
//! standard nodes, /dev/pts, /dev/shm, /dev/mqueue, the generated /etc files, `-v` binds, then
//! pivot_root, docker's masked and read-only paths, and `--read-only`.
//!
//! Every path inside the rootfs is resolved with `openat2(RESOLVE_IN_ROOT)`, so symlinks in
//! the image cannot point a mount outside of it; mounts go through `/proc/self/fd/N`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::spec::{RunSpec, Volume};
use crate::start_failure::StartFailure;

type Res<T> = std::result::Result<T, StartFailure>;

fn fail(what: impl std::fmt::Display, e: impl std::fmt::Display) -> StartFailure {
    StartFailure::setup(format!("{what}: {e}"))
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` (absolute, inside the container) under `root` with symlinks resolved in it.
pub fn open_in_root(root: &OwnedFd, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    loop {
        match rustix::fs::openat2(
            root.as_fd(),
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// Creates `path` inside the root (directories, and the last component as an empty file when
/// `file`), like `mkdir -p`; returns an O_PATH fd of it.
pub fn mkdir_all_in_root(root: &OwnedFd, path: &str, file: bool) -> rustix::io::Result<OwnedFd> {
    let comps: Vec<String> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let mut prefix = String::new();
    for (i, c) in comps.iter().enumerate() {
        let parent = prefix.clone();
        prefix.push('/');
        prefix.push_str(c);
        let last = i + 1 == comps.len();
        match open_in_root(root, &prefix, OFlags::PATH) {
            Ok(fd) if last => return Ok(fd),
            Ok(_) => continue,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
        let dir = open_in_root(root, &parent, OFlags::PATH | OFlags::DIRECTORY)?;
        if last && file {
            let created = rustix::fs::openat(
                dir.as_fd(),
                c.as_str(),
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            );
            match created {
                Ok(_) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        } else {
            match rustix::fs::mkdirat(dir.as_fd(), c.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }
    open_in_root(root, &prefix, OFlags::PATH)
}

fn mount_at(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: &str,
) -> Res<()> {
    mount(src, target, fstype, flags, data).map_err(|e| fail(format_args!("mounting {what}"), e))
}

/// Mounts a filesystem at a container path (created if missing).
fn mount_fs(
    root: &OwnedFd,
    path: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Res<()> {
    let fd = mkdir_all_in_root(root, path, false)
        .map_err(|e| fail(format_args!("creating mountpoint {path}"), e))?;
    mount_at(
        Some(fstype),
        &fd_path(&fd),
        Some(fstype),
        flags,
        data,
        &format!("{fstype} at {path}"),
    )
}

/// Bind-mounts a host path at a container path (a file or directory made to match).
fn bind(root: &OwnedFd, host: &Path, path: &str, read_only: bool) -> Res<()> {
    let is_dir = host.is_dir();
    let fd = mkdir_all_in_root(root, path, !is_dir)
        .map_err(|e| fail(format_args!("creating mountpoint {path}"), e))?;
    let what = format!("{} at {path}", host.display());
    mount_at(
        Some(&*host.to_string_lossy()),
        &fd_path(&fd),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        &what,
    )?;
    if read_only {
        let fd = open_in_root(root, path, OFlags::PATH)
            .map_err(|e| fail(format_args!("reopening {path}"), e))?;
        mount_at(
            None::<&str>,
            &fd_path(&fd),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
            None,
            &what,
        )?;
    }
    Ok(())
}

const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Makes the device nodes of a privileged container: a copy of each node directly in the
/// host's /dev that the container's /dev does not have yet.
fn host_devices(dev: &OwnedFd) -> Res<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let entries = std::fs::read_dir("/dev").map_err(|e| fail("reading /dev", e))?;
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        let ft = meta.file_type();
        let kind = if ft.is_char_device() {
            rustix::fs::FileType::CharacterDevice
        } else if ft.is_block_device() {
            rustix::fs::FileType::BlockDevice
        } else {
            continue;
        };
        let name = e.file_name();
        let mode = Mode::from_raw_mode(meta.mode() & 0o7777);
        if rustix::fs::mknodat(dev.as_fd(), &name, kind, mode, meta.rdev()).is_ok() {
            let owner = (
                Some(rustix::process::Uid::from_raw(meta.uid())),
                Some(rustix::process::Gid::from_raw(meta.gid())),
            );
            let flags = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
            let _ = rustix::fs::chownat(dev.as_fd(), &name, owner.0, owner.1, flags);
        }
    }
    Ok(())
}

fn setup_dev(root: &OwnedFd, spec: &RunSpec) -> Res<()> {
    let nosuid = MsFlags::MS_NOSUID;
    mount_fs(
        root,
        "/dev",
        "tmpfs",
        nosuid | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    let dev = open_in_root(root, "/dev", OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(|e| fail("opening /dev", e))?;
    for (name, major, minor) in DEVICES {
        let made = rustix::fs::mknodat(
            dev.as_fd(),
            *name,
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(*major as u32, *minor as u32),
        );
        if made.is_err() {
            // Not allowed to make nodes (e.g. in a user namespace): bind the host's.
            bind(
                root,
                &Path::new("/dev").join(name),
                &format!("/dev/{name}"),
                false,
            )?;
        } else {
            let _ = rustix::fs::chmodat(
                dev.as_fd(),
                *name,
                Mode::from_raw_mode(0o666),
                rustix::fs::AtFlags::empty(),
            );
        }
    }
    // `--device`s: the host's node bound at the container path (usable wherever it is,
    // the cgroup's device policy allows it).
    for d in &spec.devices {
        bind(root, &d.host, &d.container, false)?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        rustix::fs::symlinkat(target, dev.as_fd(), link)
            .map_err(|e| fail(format_args!("symlink /dev/{link}"), e))?;
    }
    if spec.privileged {
        host_devices(&dev)?;
    }
    let noexec = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount_fs(
        root,
        "/dev/pts",
        "devpts",
        noexec,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let all = noexec | MsFlags::MS_NODEV;
    mount_fs(
        root,
        "/dev/shm",
        "tmpfs",
        all,
        Some("mode=1777,size=65536k"),
    )?;
    mount_fs(root, "/dev/mqueue", "mqueue", all, None)?;
    Ok(())
}

/// Host files bind-mounted over /etc/hostname, /etc/hosts and /etc/resolv.conf.
#[derive(Debug, Clone)]
pub struct EtcFiles {
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
}

/// Builds the container's mounts under `rootfs` (in the child, after unsharing the mount
/// namespace) and pivots into it.
pub fn setup(rootfs: &Path, spec: &RunSpec, etc: &EtcFiles) -> Res<()> {
    let rec_private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount_at(
        None::<&str>,
        Path::new("/"),
        None::<&str>,
        rec_private,
        None,
        "/ private",
    )?;
    let rootfs_s = rootfs.to_string_lossy().into_owned();
    mount_at(
        Some(&*rootfs_s),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        "the rootfs onto itself",
    )?;
    // nodev, or (privileged) dev on this bind even though the union is mounted nodev.
    let root_flags = rootfs_flags(spec);
    let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | root_flags;
    mount_at(
        None::<&str>,
        rootfs,
        None::<&str>,
        remount,
        None,
        "the rootfs flags",
    )?;
    let root: OwnedFd = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(format_args!("opening {rootfs_s}"), e))?;
    let std_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs(&root, "/proc", "proc", std_flags, None)?;
    // Read-only unless privileged (docker's privileged containers get a writable /sys).
    let sys_ro = match spec.privileged {
        true => MsFlags::empty(),
        false => MsFlags::MS_RDONLY,
    };
    if let Err(e) = mount_fs(&root, "/sys", "sysfs", std_flags | sys_ro, None) {
        // sysfs refuses a new mount when the network namespace is not ours: bind the host's.
        bind(&root, Path::new("/sys"), "/sys", !spec.privileged).map_err(|_| e)?;
    } else if crate::cgroup::version() == crate::cgroup::Version::V2 {
        let flags = std_flags | sys_ro;
        mount_fs(&root, "/sys/fs/cgroup", "cgroup2", flags, None)?;
    }
    setup_dev(&root, spec)?;
    bind(&root, &etc.hostname, "/etc/hostname", false)?;
    bind(&root, &etc.hosts, "/etc/hosts", false)?;
    bind(&root, &etc.resolv_conf, "/etc/resolv.conf", false)?;
    for v in &spec.volumes {
        volume(&root, v)?;
    }
    drop(root);
    pivot(rootfs)?;
    for p in &spec.masked_paths {
        mask(p)?;
    }
    for p in &spec.readonly_paths {
        readonly(p)?;
    }
    if spec.read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | root_flags;
        mount_at(
            None::<&str>,
            Path::new("/"),
            None::<&str>,
            flags,
            None,
            "/ read-only",
        )?;
    }
    Ok(())
}

/// The per-mount flags of the container's root: `nodev` unless privileged.
fn rootfs_flags(spec: &RunSpec) -> MsFlags {
    match spec.privileged {
        true => MsFlags::empty(),
        false => MsFlags::MS_NODEV,
    }
}

fn volume(root: &OwnedFd, v: &Volume) -> Res<()> {
    let host = Path::new(&v.host);
    if !host.exists() {
        // docker creates a missing host directory of a bind, mode 0755 (the child's umask
        // is 0 here, so the mode is exact).
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(host)
            .map_err(|e| fail(format_args!("creating {}", v.host), e))?;
    }
    bind(root, host, &v.container, v.read_only)
}

/// pivot_root into `rootfs` (already a mount point) and detach the old root.
fn pivot(rootfs: &Path) -> Res<()> {
    let open_dir = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail(format_args!("opening {}", p.display()), e))
    };
    let old = open_dir(Path::new("/"))?;
    let new = open_dir(rootfs)?;
    rustix::process::fchdir(&new).map_err(|e| fail("fchdir to the rootfs", e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| fail("pivot_root", e))?;
    rustix::process::fchdir(&old).map_err(|e| fail("fchdir to the old root", e))?;
    let slave = MsFlags::MS_SLAVE | MsFlags::MS_REC;
    mount_at(
        None::<&str>,
        Path::new("."),
        None::<&str>,
        slave,
        None,
        "old root as slave",
    )?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| fail("detaching the old root", e))?;
    std::env::set_current_dir("/").map_err(|e| fail("chdir /", e))?;
    Ok(())
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a directory.
fn mask(p: &str) -> Res<()> {
    let meta = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    let r = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    r.map_err(|e| fail(format_args!("masking {p}"), e))
}

/// Makes a path read-only (bind onto itself, remount read-only).
fn readonly(p: &str) -> Res<()> {
    if std::fs::symlink_metadata(p).is_err() {
        return Ok(());
    }
    let target = Path::new(p);
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount_at(Some(p), target, None::<&str>, flags, None, p)?;
    let ro = flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    let keep = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_at(None::<&str>, target, None::<&str>, ro | keep, None, p)
}

/// Reads a file of the image (through the mounted rootfs, symlinks resolved inside it).
pub fn read_image_file(rootfs: &Path, path: &str) -> Option<String> {
    let root: OwnedFd = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = open_in_root(&root, path, OFlags::RDONLY).ok()?;
    let mut s = String::new();
    use std::io::Read;
    std::fs::File::from(fd).read_to_string(&mut s).ok()?;
    Some(s)
}
