//! `cairn run`: run a command in a new container from an image, in the foreground, without a
//! daemon. Exits with the command's status (128+N for signal N), or docker's 125 (cairn
//! failed), 126 (not executable) and 127 (not found).

use anyhow::{Context, Result};
use cairn_runtime::spec::{self, Network, Volume};
use cairn_runtime::{RunOptions, RunRequest};

/// Arguments of `cairn run` (`-h` is --hostname, as in docker; help is `--help`).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Assign a name to the container.
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables (K=V, or K to take the host's value).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<std::path::PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    entrypoint: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Network: host or none (default: the host's network with the container's hostname).
    #[arg(long = "network", alias = "net", value_name = "MODE")]
    network: Option<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    read_only: bool,
    /// Bind mount a volume (HOST:CONTAINER[:ro]).
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro]")]
    volume: Vec<String>,
    /// Memory limit (bytes, or with a k/m/g suffix).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Tune container pids limit (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    tty: bool,
    /// Add Linux capabilities (name with or without CAP_, or ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities (name with or without CAP_, or ALL).
    #[arg(long = "cap-drop", value_name = "CAP")]
    cap_drop: Vec<String>,
    /// Number of CPUs (decimal).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    cpus: Option<String>,
    /// Security options (only `no-new-privileges` is supported).
    #[arg(long = "security-opt", value_name = "OPT")]
    security_opt: Vec<String>,
    /// The image to run.
    image: String,
    /// The command and its arguments (replaces the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn options(a: &RunArgs) -> Result<RunOptions> {
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("open {}", f.display()))?;
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
    for o in &a.security_opt {
        match o.as_str() {
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {
                no_new_privileges = true
            }
            "no-new-privileges:false" | "no-new-privileges=false" => no_new_privileges = false,
            _ => anyhow::bail!("unsupported security option: {o}"),
        }
    }
    Ok(RunOptions {
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        entrypoint: a.entrypoint.clone(),
        command: a.command.clone(),
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
    })
}

/// Runs `cairn run`; exits the process with the container's status.
pub fn run(root: Option<&str>, a: RunArgs) -> Result<()> {
    let images = super::store::open_images(root)?;
    let req = RunRequest {
        image: a.image.clone(),
        options: options(&a)?,
        name: a.name.clone(),
        remove: a.rm,
        interactive: a.interactive,
        tty: a.tty,
    };
    match cairn_runtime::run(&images, &req) {
        Ok(code) => std::process::exit(code),
        Err(e @ cairn_runtime::Error::Start { .. }) => {
            eprintln!(
                "cairn: Error response from daemon: failed to create task for container: \
                 unable to start container process: {e}"
            );
            std::process::exit(e.exit_code());
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}
