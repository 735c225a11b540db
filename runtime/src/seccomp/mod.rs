//! Seccomp: docker's profile format (`--security-opt seccomp=PROFILE.json`), docker's default
//! profile ([`default`]), the resolution of a profile for one container (architecture,
//! kernel version and capabilities decide which rules apply: moby's `includes`/`excludes`)
//! into a plain [`Filter`], and its loading with libseccomp ([`load`]). The same filter goes
//! into an OCI bundle's `linux.seccomp`.

pub mod default;
mod load;

pub use load::load;

use serde::{Deserialize, Deserializer, Serialize};

/// What `--security-opt seccomp=…` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Setting {
    /// docker's default profile.
    #[default]
    Default,
    /// No filter (`seccomp=unconfined`, `--privileged`).
    Unconfined,
    /// A profile file's contents.
    Custom(Box<Profile>),
}

impl Setting {
    /// The profile to resolve, if any.
    pub fn profile(&self) -> Option<Profile> {
        match self {
            Setting::Default => Some(default::profile()),
            Setting::Unconfined => None,
            Setting::Custom(p) => Some((**p).clone()),
        }
    }
}

/// Errors of a profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("opening seccomp profile ({path}) failed: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("decoding seccomp profile failed: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("seccomp profile: unknown action {0}")]
    UnknownAction(String),
    #[error("seccomp profile: unknown comparison operator {0}")]
    UnknownOp(String),
    #[error("seccomp profile: unknown architecture {0}")]
    UnknownArch(String),
    #[error("seccomp profile: argument index {0} out of range (0-5)")]
    ArgIndex(u32),
    #[error("seccomp profile: syscall {name}: {source}")]
    Rule {
        name: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("loading the seccomp filter: {0}")]
    Load(#[source] libseccomp::error::SeccompError),
}

/// `null` in a profile reads as the empty value.
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A seccomp profile in docker's JSON format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub architectures: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "nullable")]
    pub syscalls: Vec<Syscall>,
}

/// An architecture and the ones its kernel also runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    pub sub_architectures: Vec<String>,
}

/// One rule of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    /// The old single-name form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<Arg>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Cond::is_empty"
    )]
    pub includes: Cond,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Cond::is_empty"
    )]
    pub excludes: Cond,
}

/// A comparison of one syscall argument (`MASKED_EQ`: `arg & value == value_two`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// When a rule applies (`includes`: all of these hold) or not (`excludes`: any holds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cond {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub caps: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Cond {
    fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// What a rule (or the default) does to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Trace(u32),
    Log,
}

impl Action {
    fn parse(name: &str, errno: Option<u32>) -> Result<Action, SeccompError> {
        Ok(match name {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(libc::EPERM as u32)),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_TRACE" => Action::Trace(errno.unwrap_or(libc::EPERM as u32)),
            "SCMP_ACT_LOG" => Action::Log,
            other => return Err(SeccompError::UnknownAction(other.to_string())),
        })
    }

    /// The profile's name of the action and its errno (for the OCI form).
    fn name(self) -> (&'static str, Option<u32>) {
        match self {
            Action::Allow => ("SCMP_ACT_ALLOW", None),
            Action::Errno(e) => ("SCMP_ACT_ERRNO", Some(e)),
            Action::KillThread => ("SCMP_ACT_KILL_THREAD", None),
            Action::KillProcess => ("SCMP_ACT_KILL_PROCESS", None),
            Action::Trap => ("SCMP_ACT_TRAP", None),
            Action::Trace(e) => ("SCMP_ACT_TRACE", Some(e)),
            Action::Log => ("SCMP_ACT_LOG", None),
        }
    }
}

/// The comparison operators of the profile format.
pub const OPS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// A profile resolved for one container: only the rules that apply, every action parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub default: Action,
    /// `SCMP_ARCH_*` names the filter covers (besides the native one).
    pub arches: Vec<String>,
    pub rules: Vec<Rule>,
}

/// One resolved rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    pub args: Vec<Arg>,
}

/// What the rules of a profile are resolved against.
#[derive(Debug, Clone)]
pub struct Host {
    /// Go's name of the architecture (docker's `arches`): amd64, arm64, …
    pub arch: &'static str,
    /// libseccomp's name of the native architecture.
    pub scmp_arch: &'static str,
    /// Kernel version (major, minor).
    pub kernel: (u32, u32),
}

impl Host {
    /// This machine.
    pub fn current() -> Host {
        let (arch, scmp_arch) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
            "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
            "x86" => ("386", "SCMP_ARCH_X86"),
            "arm" => ("arm", "SCMP_ARCH_ARM"),
            "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
            "s390x" => ("s390x", "SCMP_ARCH_S390X"),
            "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
            "loongarch64" => ("loong64", "SCMP_ARCH_LOONGARCH64"),
            _ => ("unknown", "SCMP_ARCH_NATIVE"),
        };
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        Host {
            arch,
            scmp_arch,
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        }
    }
}

/// "6.1.0-18-amd64" → (6, 1).
fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

impl Profile {
    /// Reads a profile file (docker's format).
    pub fn from_file(path: &str) -> Result<Profile, SeccompError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeccompError::Read {
            path: path.to_string(),
            source,
        })?;
        let p: Profile = serde_json::from_str(&text)?;
        // Check every action, operator and index now (with every capability, so every rule
        // is looked at), not when a container starts.
        let all: Vec<String> = crate::spec::ALL_CAPABILITIES
            .iter()
            .map(|c| format!("CAP_{c}"))
            .collect();
        p.resolve(&Host::current(), &all)?;
        Ok(p)
    }

    /// The rules that apply on `host` to a container with capabilities `caps`
    /// (moby's semantics of `includes` and `excludes`).
    pub fn resolve(&self, host: &Host, caps: &[String]) -> Result<Filter, SeccompError> {
        let default = Action::parse(&self.default_action, self.default_errno_ret)?;
        let arches = match self
            .arch_map
            .iter()
            .find(|m| m.architecture == host.scmp_arch)
        {
            Some(m) => std::iter::once(&m.architecture)
                .chain(&m.sub_architectures)
                .cloned()
                .collect(),
            None => self.architectures.clone(),
        };
        for a in &arches {
            a.parse::<libseccomp::ScmpArch>()
                .map_err(|_| SeccompError::UnknownArch(a.clone()))?;
        }
        let mut rules = Vec::new();
        for s in &self.syscalls {
            let action = Action::parse(&s.action, s.errno_ret)?;
            for a in &s.args {
                if !OPS.contains(&a.op.as_str()) {
                    return Err(SeccompError::UnknownOp(a.op.clone()));
                }
                if a.index > 5 {
                    return Err(SeccompError::ArgIndex(a.index));
                }
            }
            if !applies(s, host, caps) {
                continue;
            }
            let names = s.name.iter().chain(&s.names).cloned().collect();
            rules.push(Rule {
                names,
                action,
                args: s.args.clone(),
            });
        }
        Ok(Filter {
            default,
            arches,
            rules,
        })
    }
}

fn kernel_at_least(host: &Host, min: &str) -> bool {
    parse_kernel(min).is_none_or(|m| host.kernel >= m)
}

/// Whether a rule's `includes` all hold and none of its `excludes` does.
fn applies(s: &Syscall, host: &Host, caps: &[String]) -> bool {
    let (inc, exc) = (&s.includes, &s.excludes);
    let has_cap = |c: &String| caps.contains(c);
    let on_arch = |arches: &[String]| arches.iter().any(|a| a == host.arch);
    (inc.arches.is_empty() || on_arch(&inc.arches))
        && inc.caps.iter().all(has_cap)
        && inc
            .min_kernel
            .as_deref()
            .is_none_or(|m| kernel_at_least(host, m))
        && !on_arch(&exc.arches)
        && !exc.caps.iter().any(has_cap)
        && exc
            .min_kernel
            .as_deref()
            .is_none_or(|m| !kernel_at_least(host, m))
}

impl Filter {
    /// The OCI runtime spec's `linux.seccomp` of this filter.
    pub fn to_oci(&self) -> serde_json::Value {
        let (default, default_errno) = self.default.name();
        let syscalls: Vec<serde_json::Value> = self
            .rules
            .iter()
            .map(|r| {
                let (action, errno) = r.action.name();
                let mut v = serde_json::json!({ "names": r.names, "action": action });
                if let Some(e) = errno {
                    v["errnoRet"] = e.into();
                }
                if !r.args.is_empty() {
                    v["args"] = serde_json::to_value(&r.args).unwrap_or_default();
                }
                v
            })
            .collect();
        let mut v = serde_json::json!({
            "defaultAction": default,
            "architectures": self.arches,
            "syscalls": syscalls,
        });
        if let Some(e) = default_errno {
            v["defaultErrnoRet"] = e.into();
        }
        v
    }
}

#[cfg(test)]
mod tests;
