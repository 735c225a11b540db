//! A container's directory in the store, `<store>/containers/<id>/` with `upper/`, `work/`,
//! `rootfs/` (the union mount point), the generated `hostname`, `hosts` and `resolv.conf`,
//! `config.json` (what was asked) and `state.json` (created → running → exited + exit code).
//! Names are unique across the store (checked under `containers/.lock`). Commands and the
//! supervisor change a container's state under a flock on its directory ([`Container::lock`]).

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

pub use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::spec::RunSpec;
use crate::{Error, Result};

/// What a container was created from and with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: String,
    pub name: String,
    /// The image as named on the command line, and its id (`sha256:…`).
    pub image: String,
    pub image_id: String,
    /// Unix time.
    pub created: i64,
    /// Lower layer directories, top first.
    pub lowers: Vec<PathBuf>,
    pub spec: RunSpec,
    /// `--restart`.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// `--rm`: removed by its supervisor once it exits for good.
    #[serde(default)]
    pub auto_remove: bool,
    /// `-t`.
    #[serde(default)]
    pub tty: bool,
    /// The image's StopSignal (`stop` sends it, SIGTERM without one).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `--cpus` (billionths of a CPU), for the cgroup of every start.
    #[serde(default)]
    pub nano_cpus: Option<u64>,
    /// `--stop-timeout`: seconds `stop` waits without `-t` (docker: 10).
    #[serde(default)]
    pub stop_timeout: Option<i64>,
}

/// docker's `--restart` policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max` times (0: no limit).
    OnFailure {
        max: u32,
    },
    Always,
    UnlessStopped,
}

impl std::str::FromStr for RestartPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<RestartPolicy> {
        let bad = || Error::InvalidRestartPolicy(s.to_string());
        Ok(match s {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure { max: 0 },
            _ => {
                let n = s.strip_prefix("on-failure:").ok_or_else(bad)?;
                RestartPolicy::OnFailure {
                    max: n.parse().map_err(|_| bad())?,
                }
            }
        })
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure { max: 0 } => f.write_str("on-failure"),
            RestartPolicy::OnFailure { max } => write!(f, "on-failure:{max}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl Serialize for RestartPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for RestartPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Lifecycle status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
}

/// The mutable state of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// Host pid of the container's pid 1 while running.
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The supervisor process (holds the FUSE mount's daemon and waits for pid 1) and its
    /// start time (field 22 of /proc/PID/stat), so a dead or reused pid is told apart.
    #[serde(default)]
    pub supervisor: Option<ProcessId>,
    /// The start time of `pid` (with `pid`, the identity of pid 1).
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// Times the restart policy restarted pid 1.
    #[serde(default)]
    pub restart_count: u32,
    /// Exited, waiting to be restarted by the policy.
    #[serde(default)]
    pub restarting: bool,
    /// Stopped by `stop`/`kill`/`restart` (no restart by the policy, as docker).
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Why the container is not running when that is not its own exit (e.g. its supervisor
    /// died).
    #[serde(default)]
    pub error: Option<String>,
}

/// A process told apart from a later one with the same pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    pub start: u64,
}

impl ProcessId {
    /// The calling process.
    pub fn current() -> Option<ProcessId> {
        ProcessId::of(std::process::id() as i32)
    }

    /// `pid` as it is now, if it exists.
    pub fn of(pid: i32) -> Option<ProcessId> {
        Some(ProcessId {
            pid,
            start: proc_start_time(pid)?,
        })
    }

    /// Still the same process (and not a zombie).
    pub fn alive(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let fields = stat_fields(&stat);
        fields.first().is_some_and(|s| *s != "Z" && *s != "X")
            && fields.get(19).and_then(|s| s.parse().ok()) == Some(self.start)
    }
}

/// The fields of /proc/PID/stat after the command name (field 3, the state, first).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat).get(19)?.parse().ok()
}

/// An exclusive flock on a container directory, released on drop.
#[derive(Debug)]
pub struct Lock {
    _fd: std::os::fd::OwnedFd,
}

/// One container directory.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub dir: PathBuf,
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    cairn_driver::images::now()
}

/// 64 random hex digits.
pub fn new_id() -> Result<String> {
    let mut buf = [0u8; 32];
    let path = "/dev/urandom";
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(Error::io("read", path))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

const ADJECTIVES: &[&str] = &[
    "admiring", "agitated", "amazing", "bold", "brave", "busy", "clever", "cool", "dazzling",
    "eager", "elastic", "epic", "focused", "gallant", "happy", "jolly", "keen", "kind", "loving",
    "modest", "nifty", "quirky", "relaxed", "serene", "sharp", "stoic", "tender", "vibrant",
    "wizardly", "zealous",
];
const SURNAMES: &[&str] = &[
    "albattani",
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euclid",
    "fermat",
    "feynman",
    "galileo",
    "goldberg",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "mccarthy",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
];

/// A docker-style `adjective_surname` picked from the id's bytes.
fn generated_name(id: &str, attempt: usize) -> String {
    let b = |i: usize| usize::from_str_radix(&id[i..i + 2], 16).unwrap_or(0);
    let name = format!(
        "{}_{}",
        ADJECTIVES[(b(0) + attempt) % ADJECTIVES.len()],
        SURNAMES[(b(2) + attempt * 7) % SURNAMES.len()]
    );
    if attempt >= 4 {
        format!("{name}{attempt}")
    } else {
        name
    }
}

/// The file of a container directory naming the image (`sha256:…`) it was created from.
pub const IMAGE_FILE: &str = "image";

/// docker's rule for container names.
fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && n.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// (name, id) of every container in the store (unreadable entries skipped).
pub fn names(containers: &Path) -> Vec<(String, String)> {
    let Ok(rd) = std::fs::read_dir(containers) else {
        return vec![];
    };
    rd.filter_map(|e| e.ok())
        // `.lock`, and `.new-<id>` directories being created.
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let name = std::fs::read_to_string(e.path().join("name")).ok()?;
            Some((
                name.trim().to_string(),
                e.file_name().to_string_lossy().into_owned(),
            ))
        })
        .collect()
}

/// Every container of the store, sorted by creation (newest first), skipping directories
/// without a readable name (half-created or half-removed).
pub fn list(containers: &Path) -> Vec<Container> {
    let mut out: Vec<(i64, Container)> = names(containers)
        .into_iter()
        .map(|(name, id)| {
            let c = Container {
                dir: containers.join(&id),
                id,
                name,
            };
            let created = c.config().map(|cfg| cfg.created).unwrap_or(0);
            (created, c)
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    out.into_iter().map(|(_, c)| c).collect()
}

/// The container a user named: full id, name (with or without a leading `/`) or a unique id
/// prefix, as docker resolves it.
pub fn find(containers: &Path, arg: &str) -> Result<Container> {
    let all = names(containers);
    let open = |(name, id): &(String, String)| Container {
        dir: containers.join(id),
        id: id.clone(),
        name: name.clone(),
    };
    let bare = arg.strip_prefix('/').unwrap_or(arg);
    if let Some(hit) = all.iter().find(|(_, id)| id == arg) {
        return Ok(open(hit));
    }
    if let Some(hit) = all.iter().find(|(name, _)| name == bare) {
        return Ok(open(hit));
    }
    let prefixed: Vec<_> = if arg.is_empty() {
        vec![]
    } else {
        all.iter().filter(|(_, id)| id.starts_with(arg)).collect()
    };
    match prefixed.as_slice() {
        [one] => Ok(open(one)),
        [] => Err(Error::NoSuchContainer(arg.to_string())),
        _ => Err(Error::AmbiguousContainer(arg.to_string())),
    }
}

/// Takes `containers/.lock`, under which names are given and changed.
fn names_lock(containers: &Path) -> Result<std::fs::File> {
    let dir = containers.to_path_buf();
    std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
    let lock_path = dir.join(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(Error::io("open", &lock_path))?;
    rustix::fs::flock(lock.as_fd(), rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io("lock", &lock_path)(e.into()))?;
    Ok(lock)
}

/// Removes what creations killed half way left (`container prune`).
pub fn prune_unfinished(containers: &Path) -> Result<()> {
    let _lock = names_lock(containers)?;
    remove_unfinished(containers);
    Ok(())
}

/// Removes the `.new-*` directories of creations that never finished (the caller holds the
/// names lock, under which creations happen).
fn remove_unfinished(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        if e.file_name().to_string_lossy().starts_with(".new-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A requested name (a leading `/` dropped) if it is valid and free.
fn check_name(taken: &[(String, String)], n: &str) -> Result<String> {
    let n = n.strip_prefix('/').unwrap_or(n);
    if !valid_name(n) {
        return Err(Error::InvalidName(n.to_string()));
    }
    if let Some((_, other)) = taken.iter().find(|(name, _)| name == n) {
        return Err(Error::NameInUse {
            name: n.to_string(),
            id: other.clone(),
        });
    }
    Ok(n.to_string())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(value).expect("serializable");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, data).map_err(Error::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io("rename", path))
}

impl Container {
    /// Creates a new container directory with a fresh id and a unique name, recording the
    /// image it stands on (`image`, written before the directory appears: a container is
    /// never visible without its image reference; the engine creates it under the store lock
    /// so `rmi` sees it).
    pub fn create(containers: &Path, name: Option<&str>, image_id: &str) -> Result<Container> {
        let dir = containers.to_path_buf();
        let _lock = names_lock(containers)?;
        let id = new_id()?;
        let taken = names(containers);
        let in_use = |n: &str| taken.iter().find(|(name, _)| name == n).map(|(_, id)| id);
        let name = match name {
            Some(n) => check_name(&taken, n)?,
            None => (0..)
                .map(|a| generated_name(&id, a))
                .find(|n| in_use(n).is_none())
                .expect("some name is free"),
        };
        // Built as `.new-<id>` and renamed into place: a container directory is complete
        // (its name taken) or absent, whenever the creating process dies. Creations hold the
        // lock, so a `.new-*` seen here was left by a process that died.
        remove_unfinished(&dir);
        let building = Container {
            dir: dir.join(format!(".new-{id}")),
            id: id.clone(),
            name: name.clone(),
        };
        for d in [
            building.dir.clone(),
            building.upper(),
            building.work(),
            building.rootfs(),
        ] {
            std::fs::create_dir(&d).map_err(Error::io("create", &d))?;
        }
        let name_file = building.dir.join("name");
        std::fs::write(&name_file, format!("{name}\n")).map_err(Error::io("write", &name_file))?;
        let image_file = building.dir.join(IMAGE_FILE);
        std::fs::write(&image_file, format!("{image_id}\n"))
            .map_err(Error::io("write", &image_file))?;
        let c = Container {
            dir: dir.join(&id),
            id,
            name,
        };
        std::fs::rename(&building.dir, &c.dir).map_err(Error::io("rename", &c.dir))?;
        Ok(c)
    }

    /// Renames the container (docker's rules: valid, unused, not the same name).
    pub fn rename(&mut self, containers: &Path, new: &str) -> Result<()> {
        let _lock = names_lock(containers)?;
        let bare = new.strip_prefix('/').unwrap_or(new);
        if bare == self.name {
            return Err(Error::SameName(bare.to_string()));
        }
        let name = check_name(&names(containers), new)?;
        let _state = self.lock()?;
        let name_file = self.dir.join("name");
        let tmp = self.dir.join("name.tmp");
        std::fs::write(&tmp, format!("{name}\n")).map_err(Error::io("write", &tmp))?;
        std::fs::rename(&tmp, &name_file).map_err(Error::io("rename", &name_file))?;
        if let Ok(mut cfg) = self.config() {
            cfg.name = name.clone();
            self.write_config(&cfg)?;
        }
        self.name = name;
        Ok(())
    }

    /// The writable layer.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// The union filesystem's work dir.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// The union mount point.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// A generated file (`hostname`, `hosts`, `resolv.conf`) bind-mounted into /etc.
    pub fn etc_file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Mounts the container's union (the image's `lowers`, top first, with its own upper and
    /// work dir) at `rootfs` through cairn's FUSE filesystem; returns once it is live.
    pub fn mount_rootfs(&self, rootfs: &Path, lowers: &[PathBuf]) -> Result<()> {
        self.mount_union(rootfs, lowers, false).map(drop)
    }

    /// As [`Container::mount_rootfs`], with a FUSE daemon that dies with the calling process
    /// (the supervisor): the mount never outlives the process responsible for it. Returns the
    /// daemon's pid, a child of the caller, to reap after the unmount ([`reap_daemon`]).
    pub fn mount_rootfs_tied(&self, rootfs: &Path, lowers: &[PathBuf]) -> Result<Pid> {
        self.mount_union(rootfs, lowers, true)
    }

    fn mount_union(&self, rootfs: &Path, lowers: &[PathBuf], tied: bool) -> Result<Pid> {
        let mut req = cairn_fs::mount::MountRequest::new(rootfs.to_path_buf());
        req.fsname = format!("cairn:{}", &self.id[..12]);
        req.cfg.lowers = lowers.to_vec();
        req.cfg.upper = Some(self.upper());
        req.cfg.work = Some(self.work());
        req.die_with_parent = tied;
        // Device nodes of the image or the upper are never opened through the union (a
        // privileged container's view clears this on its own bind of the root).
        let mount_err = |source| Error::Mount {
            path: rootfs.to_path_buf(),
            source,
        };
        req.apply_options("nodev").map_err(mount_err)?;
        req.validate().map_err(mount_err)?;
        cairn_fs::mount::spawn_daemon(&req).map_err(mount_err)
    }

    /// Writes config.json.
    pub fn write_config(&self, cfg: &ContainerConfig) -> Result<()> {
        write_json(&self.dir.join("config.json"), cfg)
    }

    /// Reads config.json.
    pub fn config(&self) -> Result<ContainerConfig> {
        let p = self.dir.join("config.json");
        let data = std::fs::read(&p).map_err(Error::io("read", &p))?;
        serde_json::from_slice(&data).map_err(|e| Error::io("parse", &p)(e.into()))
    }

    /// Writes state.json.
    pub fn set_state(&self, state: &State) -> Result<()> {
        write_json(&self.dir.join("state.json"), state)
    }

    /// Reads state.json.
    pub fn state(&self) -> Result<State> {
        let p = self.dir.join("state.json");
        let data = std::fs::read(&p).map_err(Error::io("read", &p))?;
        serde_json::from_slice(&data).map_err(|e| Error::io("parse", &p)(e.into()))
    }

    /// Reads state.json; a container without one (just created) has the default state, but
    /// a state.json that does not parse is an error naming it, never a silent default.
    pub fn state_or_new(&self) -> Result<State> {
        match self.state() {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(State::default())
            }
            other => other,
        }
    }

    /// Locks the container's directory (exclusive flock; blocks). Every state change of a
    /// command or the supervisor happens under it.
    pub fn lock(&self) -> Result<Lock> {
        let fd = rustix::fs::open(
            &self.dir,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::io("open", &self.dir)(e.into()))?;
        rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io("lock", &self.dir)(e.into()))?;
        Ok(Lock { _fd: fd })
    }

    /// Reads, changes and writes state.json under the lock; returns the new state.
    pub fn update_state(&self, f: impl FnOnce(&mut State)) -> Result<State> {
        let _lock = self.lock()?;
        let mut st = self.state_or_new()?;
        f(&mut st);
        self.set_state(&st)?;
        Ok(st)
    }

    /// The docker json-file log of the container's output.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.id))
    }

    /// Removes the directory (the rootfs must be unmounted).
    pub fn remove(&self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).map_err(Error::io("remove", &self.dir))
    }
}

/// Reaps the FUSE daemon `pid` (this process's child, from
/// [`Container::mount_rootfs_tied`]) once its mount is gone: it exits on the unmount. Waits
/// a few seconds at most (a lazily detached mount keeps its daemon while something holds it),
/// then kills it, so no zombie or stray daemon of a finished container remains.
pub fn reap_daemon(pid: Pid) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) | Err(_) => return,
        }
        if std::time::Instant::now() > deadline {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Unmounts the union (lazily if something still holds it).
pub fn unmount_rootfs(rootfs: &Path) -> Result<()> {
    let mount_err = |source| Error::Mount {
        path: rootfs.to_path_buf(),
        source,
    };
    let canonical = std::fs::canonicalize(rootfs).map_err(Error::io("resolve", rootfs))?;
    if !cairn_fs::mount::is_mountpoint(&canonical) {
        return cairn_fs::mount::unmount(&canonical).map_err(mount_err);
    }
    let mut last = None;
    for _ in 0..50 {
        match cairn_fs::mount::unmount(&canonical) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if nix::mount::umount2(&canonical, nix::mount::MntFlags::MNT_DETACH).is_ok() {
        return Ok(());
    }
    Err(mount_err(last.expect("at least one attempt")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        let id = new_id().unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        let n = generated_name(&id, 0);
        assert!(valid_name(&n), "{n}");
        assert!(valid_name(&generated_name(&id, 9)));
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("_x"));
        assert!(!valid_name("a"));
        assert!(!valid_name("a b"));
    }

    #[test]
    fn restart_policies_parse_and_print() {
        for p in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3",
        ] {
            assert_eq!(p.parse::<RestartPolicy>().unwrap().to_string(), p);
        }
        assert_eq!(
            "on-failure:2".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure { max: 2 }
        );
        assert!("sometimes".parse::<RestartPolicy>().is_err());
        assert!("on-failure:x".parse::<RestartPolicy>().is_err());
    }

    #[test]
    fn rename_checks_names() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = Container::create(tmp.path(), Some("aa"), "i").unwrap();
        Container::create(tmp.path(), Some("bb"), "i").unwrap();
        assert!(matches!(
            a.rename(tmp.path(), "bb"),
            Err(Error::NameInUse { .. })
        ));
        assert!(matches!(
            a.rename(tmp.path(), "aa"),
            Err(Error::SameName(_))
        ));
        a.rename(tmp.path(), "cc").unwrap();
        assert_eq!(find(tmp.path(), "cc").unwrap().id, a.id);
        assert!(find(tmp.path(), "aa").is_err());
    }

    #[test]
    fn create_enforces_unique_names() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Container::create(tmp.path(), Some("web"), "i").unwrap();
        assert!(c.upper().is_dir() && c.work().is_dir() && c.rootfs().is_dir());
        assert!(matches!(
            Container::create(tmp.path(), Some("web"), "i"),
            Err(Error::NameInUse { .. })
        ));
        let other = Container::create(tmp.path(), None, "i").unwrap();
        assert_ne!(other.name, "web");
        assert_eq!(find(tmp.path(), "web").unwrap().id, c.id);
        assert_eq!(find(tmp.path(), "/web").unwrap().id, c.id);
        assert_eq!(find(tmp.path(), &c.id[..12]).unwrap().name, "web");
        assert_eq!(find(tmp.path(), &other.id).unwrap().name, other.name);
        assert!(matches!(
            find(tmp.path(), "nothere"),
            Err(Error::NoSuchContainer(_))
        ));
        assert_eq!(list(tmp.path()).len(), 2);
        c.remove().unwrap();
        assert!(!c.dir.exists());
    }
}
