//! Image config + `cairn run` options → the run spec of one container (pure logic, no I/O).
//!
//! Follows what docker documents and does: Entrypoint/Cmd combination (exec form), the
//! environment merge (`PATH` default, `HOSTNAME`, image env, `--env-file`, `-e`, `HOME` from
//! the user), the working dir, user resolution through the image's `/etc/passwd` and
//! `/etc/group` (runc's `GetExecUser` rules), bind volumes, and docker's default capability,
//! masked-path and read-only-path lists.

use serde::{Deserialize, Serialize};

/// PATH used when the image sets none (docker's default for Linux containers).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// docker's default capability set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows, in bit order (`CAP_` + name; bit = index).
pub const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The bit of a capability (`CAP_NAME` or `NAME`, upper case), if known.
pub fn cap_number(name: &str) -> Option<u32> {
    let n = name.strip_prefix("CAP_").unwrap_or(name);
    ALL_CAPABILITIES
        .iter()
        .position(|x| *x == n)
        .map(|p| p as u32)
}

/// CFS period cairn uses for `--cpus` (docker's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Paths docker hides from containers (files get /dev/null, directories an empty tmpfs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths docker makes read-only in containers.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Smallest `--memory` docker accepts.
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// Errors turning options into a spec; the messages are docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("No command specified")]
    NoCommand,
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    RelativeWorkdir(String),
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoSuchUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoSuchGroup(String),
    #[error("invalid environment variable: {0}")]
    InvalidEnv(String),
    #[error("variable '{0}' contains whitespaces")]
    EnvWhitespace(String),
    #[error("invalid volume specification: '{0}'")]
    InvalidVolume(String),
    #[error("named and anonymous volumes are not supported (only HOST:CONTAINER binds): '{0}'")]
    NamedVolume(String),
    #[error(
        "invalid mount config for type \"bind\": invalid mount path: '{0}' mount path must be absolute"
    )]
    RelativeMountPath(String),
    #[error("invalid size: '{0}'")]
    InvalidSize(String),
    #[error("Minimum memory limit allowed is 6MB")]
    MemoryTooSmall,
    #[error(
        "invalid network mode '{0}': supported values are default (the host's network with the container's hostname), host and none"
    )]
    InvalidNetwork(String),
    #[error(
        "network mode 'bridge' is not supported: cairn has no bridge network; use --network default (the host's network with the container's hostname), host or none"
    )]
    BridgeNetwork,
    #[error("invalid device specification: {0} (HOST[:CONTAINER[:PERMS]], PERMS of r, w, m)")]
    InvalidDevice(String),
    #[error("error gathering device information while adding custom device \"{path}\": {reason}")]
    DeviceLookup { path: String, reason: String },
    #[error(
        "error gathering device information while adding custom device \"{0}\": not a device node"
    )]
    NotADevice(String),
    #[error("invalid {list}: unknown capability: \"{name}\"")]
    UnknownCapability { list: &'static str, name: String },
    #[error(
        "invalid argument \"{0}\" for \"--cpus\" flag: failed to parse {0} as a rational number"
    )]
    InvalidCpus(String),
    #[error("invalid argument \"{0}\" for \"--cpus\" flag: value is too precise")]
    CpusTooPrecise(String),
    #[error("Range of CPUs is from 0.01 to {0}.00, as there are only {0} CPUs available")]
    CpusRange(usize),
}

/// What the image config contributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSettings {
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

impl ImageSettings {
    /// Takes the run-relevant settings of an image config.
    pub fn from_config(c: &cairn_driver::image::ImageConfig) -> ImageSettings {
        ImageSettings {
            env: c.env().to_vec(),
            cmd: c.cmd().map(<[String]>::to_vec),
            entrypoint: c.entrypoint().map(<[String]>::to_vec),
            working_dir: c.working_dir().map(str::to_string),
            user: c.user().map(str::to_string),
        }
    }
}

/// Network mode: no network namespace (default / host) or an empty one (`none`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network namespace, hostname = short container id (what docker's default
    /// bridge shows from inside, without the bridge).
    #[default]
    Default,
    /// The host's network namespace and hostname (docker `--network host`).
    Host,
    /// A new network namespace with only loopback.
    None,
}

impl std::str::FromStr for Network {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Network, SpecError> {
        match s {
            "default" => Ok(Network::Default),
            "host" => Ok(Network::Host),
            "none" => Ok(Network::None),
            "bridge" => Err(SpecError::BridgeNetwork),
            _ => Err(SpecError::InvalidNetwork(s.to_string())),
        }
    }
}

/// A `-v HOST:CTR[:ro]` bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub host: String,
    pub container: String,
    pub read_only: bool,
}

impl std::str::FromStr for Volume {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Volume, SpecError> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, opts) = match parts.as_slice() {
            [c] => return Err(SpecError::NamedVolume(c.to_string())),
            [h, c] => (*h, *c, ""),
            [h, c, o] => (*h, *c, *o),
            _ => return Err(SpecError::InvalidVolume(s.to_string())),
        };
        if host.is_empty() || container.is_empty() {
            return Err(SpecError::InvalidVolume(s.to_string()));
        }
        if !host.starts_with('/') {
            return Err(SpecError::NamedVolume(s.to_string()));
        }
        if !container.starts_with('/') {
            return Err(SpecError::RelativeMountPath(container.to_string()));
        }
        let mut read_only = false;
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => read_only = true,
                "rw" | "z" | "Z" | "private" | "rprivate" | "shared" | "rshared" | "slave"
                | "rslave" | "nocopy" | "consistent" | "cached" | "delegated" => {}
                _ => return Err(SpecError::InvalidVolume(s.to_string())),
            }
        }
        Ok(Volume {
            host: host.to_string(),
            container: container.to_string(),
            read_only,
        })
    }
}

/// The command-line options of `cairn run` that shape the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `--env-file` entries then `-e` entries, in order (`K=V`, or `K` for the host's value).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `--entrypoint`: `Some("")` clears the image's entrypoint.
    pub entrypoint: Option<String>,
    /// COMMAND [ARG...] after the image.
    pub command: Vec<String>,
    pub hostname: Option<String>,
    pub network: Network,
    pub read_only: bool,
    pub volumes: Vec<Volume>,
    pub memory: Option<u64>,
    pub pids_limit: Option<i64>,
    pub no_new_privileges: bool,
    /// `--cap-add` / `--cap-drop` as given (names with or without `CAP_`, any case, `ALL`).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--cpus` in billionths of a CPU (docker's NanoCPUs); `None` = no limit.
    pub nano_cpus: Option<u64>,
    /// `--device`s.
    pub devices: Vec<crate::devices::Device>,
    /// `--privileged`: every capability and device, no seccomp filter, no masked paths.
    pub privileged: bool,
    /// `--security-opt seccomp=…`.
    pub seccomp: crate::seccomp::Setting,
}

/// The user a container process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Everything the runtime needs to start the container process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: User,
    pub hostname: String,
    pub network: Network,
    pub read_only: bool,
    pub volumes: Vec<Volume>,
    pub memory: Option<u64>,
    pub pids_limit: Option<i64>,
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    /// Host devices given to the container.
    #[serde(default)]
    pub devices: Vec<crate::devices::Device>,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub seccomp: crate::seccomp::Setting,
}

impl RunSpec {
    /// The container's device policy (docker's default allow-list plus `--device`s, or all).
    pub fn device_rules(&self) -> Vec<crate::devices::Rule> {
        crate::devices::policy(&self.devices, self.privileged)
    }
}

/// The facts from outside the image and the options that a spec needs.
pub struct Context<'a> {
    /// Hostname when `--hostname` is not given (short id, or the host's for `--network host`).
    pub default_hostname: &'a str,
    /// The host's environment (for `-e K`).
    pub host_env: &'a dyn Fn(&str) -> Option<String>,
    /// Contents of the image's /etc/passwd and /etc/group, when they exist.
    pub passwd: Option<&'a str>,
    pub group: Option<&'a str>,
}

/// Builds the run spec.
pub fn build(
    img: &ImageSettings,
    opts: &RunOptions,
    ctx: &Context<'_>,
) -> Result<RunSpec, SpecError> {
    let args = command_line(img, opts)?;
    let capabilities = match opts.privileged {
        true => ALL_CAPABILITIES
            .iter()
            .map(|c| format!("CAP_{c}"))
            .collect(),
        false => capabilities(&opts.cap_add, &opts.cap_drop)?,
    };
    let (masked, readonly): (&[&str], &[&str]) = match opts.privileged {
        true => (&[], &[]),
        false => (MASKED_PATHS, READONLY_PATHS),
    };
    let cwd = match &opts.workdir {
        Some(w) if !w.starts_with('/') => return Err(SpecError::RelativeWorkdir(w.clone())),
        Some(w) => w.clone(),
        None => match img.working_dir.as_deref() {
            None | Some("") => "/".to_string(),
            Some(w) if w.starts_with('/') => w.to_string(),
            Some(w) => format!("/{w}"),
        },
    };
    let user_arg = opts
        .user
        .clone()
        .or_else(|| img.user.clone())
        .unwrap_or_default();
    let user = resolve_user(&user_arg, ctx.passwd, ctx.group)?;
    let hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| ctx.default_hostname.to_string());
    let env = environment(img, opts, &hostname, &user, ctx.host_env)?;
    Ok(RunSpec {
        args,
        env,
        cwd,
        user,
        hostname,
        network: opts.network,
        read_only: opts.read_only,
        volumes: opts.volumes.clone(),
        memory: opts.memory,
        pids_limit: opts.pids_limit,
        capabilities,
        no_new_privileges: opts.no_new_privileges,
        masked_paths: masked.iter().map(|s| s.to_string()).collect(),
        readonly_paths: readonly.iter().map(|s| s.to_string()).collect(),
        devices: opts.devices.clone(),
        privileged: opts.privileged,
        seccomp: match opts.privileged {
            true => crate::seccomp::Setting::Unconfined,
            false => opts.seccomp.clone(),
        },
    })
}

/// Entrypoint + Cmd as docker combines them: COMMAND replaces the image's Cmd; a non-empty
/// `--entrypoint` replaces the image's Entrypoint and drops its Cmd; `--entrypoint ""` clears
/// the Entrypoint but keeps the Cmd.
pub fn command_line(img: &ImageSettings, opts: &RunOptions) -> Result<Vec<String>, SpecError> {
    let user_cmd = (!opts.command.is_empty()).then(|| opts.command.clone());
    let image_cmd = || img.cmd.clone().unwrap_or_default();
    let (entrypoint, cmd) = match opts.entrypoint.as_deref() {
        Some("") => (vec![], user_cmd.unwrap_or_else(image_cmd)),
        Some(e) => (vec![e.to_string()], user_cmd.unwrap_or_default()),
        None => (
            img.entrypoint.clone().unwrap_or_default(),
            user_cmd.unwrap_or_else(image_cmd),
        ),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(args)
}

/// Upper-cases and `CAP_`-prefixes capability names (`ALL` stays), refusing unknown ones
/// (docker's `NormalizeLegacyCapabilities`).
fn normalize_caps(names: &[String], list: &'static str) -> Result<Vec<String>, SpecError> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let up = n.trim().to_ascii_uppercase();
        let c = if up == "ALL" || up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        if c != "ALL" && cap_number(&c).is_none() {
            return Err(SpecError::UnknownCapability { list, name: c });
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// The container's capabilities: docker's default set with `--cap-drop` then `--cap-add`
/// applied (docker's `TweakCapabilities`): `--cap-add ALL` gives every capability but the
/// dropped ones; `--cap-drop ALL` gives only the added ones.
pub fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<String>, SpecError> {
    let add = normalize_caps(add, "CapAdd")?;
    let drop = normalize_caps(drop, "CapDrop")?;
    let all = "ALL".to_string();
    let caps: Vec<String> = if add.contains(&all) {
        ALL_CAPABILITIES
            .iter()
            .map(|c| format!("CAP_{c}"))
            .filter(|c| !drop.contains(c))
            .collect()
    } else if drop.contains(&all) {
        add
    } else {
        let mut caps: Vec<String> = DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect();
        for c in add {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
        caps
    };
    Ok(caps)
}

/// Parses `--cpus` (a decimal number of CPUs) into billionths of a CPU, as docker does:
/// `0` means no limit; more than `ncpu` CPUs or less than 0.01 is refused.
pub fn parse_cpus(s: &str, ncpu: usize) -> Result<Option<u64>, SpecError> {
    let bad = || SpecError::InvalidCpus(s.to_string());
    let t = s.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 9 {
        return Err(SpecError::CpusTooPrecise(s.to_string()));
    }
    let whole: u64 = if int.is_empty() {
        0
    } else {
        // Only digits here: a parse failure is an overflow, far above any CPU count.
        int.parse().map_err(|_| SpecError::CpusRange(ncpu))?
    };
    let part: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    let nano = whole
        .checked_mul(1_000_000_000)
        .and_then(|w| w.checked_add(part))
        .ok_or(SpecError::CpusRange(ncpu))?;
    if nano == 0 {
        return Ok(None);
    }
    if nano < 10_000_000 || nano > ncpu as u64 * 1_000_000_000 {
        return Err(SpecError::CpusRange(ncpu));
    }
    Ok(Some(nano))
}

/// The CFS quota (µs per [`CPU_PERIOD_US`]) for a NanoCPUs value.
pub fn cpu_quota_us(nano_cpus: u64) -> u64 {
    nano_cpus * CPU_PERIOD_US / 1_000_000_000
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// Applies `-e` entries (`K=V`, or `K` for the host's value) to an environment.
pub(crate) fn apply_env(
    env: &mut Vec<String>,
    entries: &[String],
    host_env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), SpecError> {
    for e in entries {
        if e.is_empty() || e.starts_with('=') {
            return Err(SpecError::InvalidEnv(e.clone()));
        }
        match e.split_once('=') {
            Some(_) => replace_or_append(env, e.clone()),
            // `-e K` takes the host's value; unset on the host → not set at all.
            None => {
                if let Some(v) = host_env(e) {
                    replace_or_append(env, format!("{e}={v}"));
                }
            }
        }
    }
    Ok(())
}

/// Replaces the entry with the same key, or appends.
pub(crate) fn replace_or_append(env: &mut Vec<String>, entry: String) {
    let key = env_key(&entry).to_string();
    match env.iter_mut().find(|e| env_key(e) == key) {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// The process environment: `PATH` (image's or the default), `HOSTNAME`, the image's env with
/// the options' entries over it, and `HOME` from the user unless set.
pub fn environment(
    img: &ImageSettings,
    opts: &RunOptions,
    hostname: &str,
    user: &User,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, SpecError> {
    let mut config = img.env.clone();
    apply_env(&mut config, &opts.env, host_env)?;
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    for e in config {
        replace_or_append(&mut env, e);
    }
    if !env.iter().any(|e| env_key(e) == "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    Ok(env)
}

/// Parses an `--env-file`: `K=V` or `K` lines; blank lines and `#` comments skipped; leading
/// whitespace trimmed; a name with whitespace is refused (docker's rules).
pub fn parse_env_file(text: &str) -> Result<Vec<String>, SpecError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = env_key(line);
        if key.is_empty() {
            return Err(SpecError::InvalidEnv(line.to_string()));
        }
        if key.contains(char::is_whitespace) {
            return Err(SpecError::EnvWhitespace(key.to_string()));
        }
        out.push(line.to_string());
    }
    Ok(out)
}

/// Parses a docker size (`16m`, `1g`, `512k`, `100b`, `4096`); units are binary.
pub fn parse_bytes(s: &str) -> Result<u64, SpecError> {
    let bad = || SpecError::InvalidSize(s.to_string());
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|r| !r.is_empty()).unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    Ok((n * mult as f64) as u64)
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.len() < 4 || f[0].starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.len() < 3 || f[0].starts_with('#') {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    })
}

/// Resolves `USER[:GROUP]` (names or numbers) the way runc's `GetExecUser` does: a name must
/// exist in passwd; a number needs no entry (gid 0, home /); a passwd match brings its gid,
/// home and — unless a group is given — the supplementary groups listing the user; the
/// primary group comes first in the supplementary list.
pub fn resolve_user(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<User, SpecError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
    let numeric_uid: Option<u32> = user_arg.parse().ok();
    let mut user = User {
        uid: 0,
        gid: 0,
        additional_gids: vec![],
        home: "/".into(),
    };
    let found = passwd.and_then(|p| {
        passwd_entries(p)
            .find(|e| match numeric_uid {
                Some(uid) => e.uid == uid,
                None => e.name == user_arg,
            })
            .map(|e| (e.name.to_string(), e.uid, e.gid, e.home.to_string()))
    });
    let matched_name = match (found, numeric_uid) {
        (Some((name, uid, gid, home)), _) => {
            user.uid = uid;
            user.gid = gid;
            if !home.is_empty() {
                user.home = home;
            }
            Some(name)
        }
        (None, Some(uid)) => {
            user.uid = uid;
            None
        }
        (None, None) => return Err(SpecError::NoSuchUser(user_arg.to_string())),
    };
    let groups_text = group.unwrap_or("");
    match group_arg {
        Some(g) => {
            let numeric_gid: Option<u32> = g.parse().ok();
            let hit = group_entries(groups_text).find(|e| match numeric_gid {
                Some(gid) => e.gid == gid,
                None => e.name == g,
            });
            user.gid = match (hit, numeric_gid) {
                (Some(e), _) => e.gid,
                (None, Some(gid)) => gid,
                (None, None) => return Err(SpecError::NoSuchGroup(g.to_string())),
            };
        }
        None => {
            if let Some(name) = matched_name {
                user.additional_gids = group_entries(groups_text)
                    .filter(|e| e.members.contains(&name.as_str()))
                    .map(|e| e.gid)
                    .collect();
            }
        }
    }
    // The primary group is always in the list (what docker's containerd runtime sets up).
    user.additional_gids.retain(|g| *g != user.gid);
    user.additional_gids.insert(0, user.gid);
    Ok(user)
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
