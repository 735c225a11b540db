//! The container flags `cairn run` and `cairn bundle` share, and the run options they give.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_runtime::RunOptions;
use cairn_runtime::devices::Device;
use cairn_runtime::seccomp;
use cairn_runtime::spec::{self, Network, Volume};

/// Flags describing a container (docker's names).
#[derive(Debug, Clone, clap::Args)]
pub struct ContainerOpts {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (K=V, or K to take the host's value).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Network: host or none (default: the host's network with the container's hostname).
    #[arg(long = "network", alias = "net", value_name = "MODE")]
    pub network: Option<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Bind mount a volume (HOST:CONTAINER[:ro]).
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro]")]
    pub volume: Vec<String>,
    /// Memory limit (bytes, or with a k/m/g suffix).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Tune container pids limit (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Add Linux capabilities (name with or without CAP_, or ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities (name with or without CAP_, or ALL).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Number of CPUs (decimal).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// Security options: `no-new-privileges`, `seccomp=unconfined`, `seccomp=PROFILE.json`.
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Add a host device to the container (HOST[:CONTAINER[:PERMS]], PERMS of r, w, m).
    #[arg(long = "device", value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Give extended privileges: every capability and device, no seccomp filter.
    #[arg(long)]
    pub privileged: bool,
}

impl ContainerOpts {
    /// The run options these flags give, with `command` replacing the image's CMD.
    pub fn to_run_options(&self, command: &[String]) -> Result<RunOptions> {
        let a = self;
        let mut env = Vec::new();
        for f in &a.env_file {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("open {}", f.display()))?;
            env.extend(spec::parse_env_file(&text)?);
        }
        env.extend(a.env.iter().cloned());
        let network = match a.network.as_deref() {
            Some(n) => n.parse::<Network>()?,
            None => Network::Default,
        };
        let memory = match &a.memory {
            Some(m) => {
                let bytes = spec::parse_bytes(m)?;
                if bytes < spec::MIN_MEMORY {
                    return Err(spec::SpecError::MemoryTooSmall.into());
                }
                Some(bytes)
            }
            None => None,
        };
        let volumes = a
            .volume
            .iter()
            .map(|v| v.parse::<Volume>())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // Refused here, before anything is created (exit status 125).
        spec::capabilities(&a.cap_add, &a.cap_drop)?;
        let nano_cpus = match &a.cpus {
            Some(c) => {
                let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
                spec::parse_cpus(c, ncpu)?
            }
            None => None,
        };
        let mut no_new_privileges = false;
        let mut seccomp = seccomp::Setting::Default;
        for o in &a.security_opt {
            match o.as_str() {
                "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {
                    no_new_privileges = true
                }
                "no-new-privileges:false" | "no-new-privileges=false" => no_new_privileges = false,
                _ => match o.split_once(['=', ':']) {
                    Some(("seccomp", "unconfined")) => seccomp = seccomp::Setting::Unconfined,
                    Some(("seccomp", path)) => {
                        let p = seccomp::Profile::from_file(path)?;
                        seccomp = seccomp::Setting::Custom(Box::new(p));
                    }
                    _ => anyhow::bail!(
                        "unsupported security option: {o} (no-new-privileges, seccomp=unconfined or seccomp=PROFILE.json)"
                    ),
                },
            }
        }
        let devices = a
            .device
            .iter()
            .map(|d| Device::parse(d))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RunOptions {
            env,
            workdir: a.workdir.clone(),
            user: a.user.clone(),
            entrypoint: a.entrypoint.clone(),
            command: command.to_vec(),
            hostname: a.hostname.clone(),
            network,
            read_only: a.read_only,
            volumes,
            memory,
            pids_limit: a.pids_limit,
            no_new_privileges,
            cap_add: a.cap_add.clone(),
            cap_drop: a.cap_drop.clone(),
            nano_cpus,
            devices,
            privileged: a.privileged,
            seccomp,
        })
    }
}
