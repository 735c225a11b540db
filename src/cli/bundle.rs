//! `cairn bundle IMAGE DIR [COMMAND [ARG...]]`: write an OCI runtime bundle for runc and
//! friends — `DIR/config.json` and the image mounted at `DIR/rootfs` through cairn's union
//! filesystem, with a fresh upper in the store's container directory; prints DIR.
//! `cairn bundle --rm-mount DIR` (or `cairn umount DIR/rootfs`) releases the mount.

use std::path::PathBuf;

use anyhow::Result;
use cairn_runtime::RunOptions;
use cairn_runtime::bundle::{self, BundleRequest};
use cairn_runtime::spec::{self, Network, Volume};

/// Arguments of `cairn bundle` (`-h` is --hostname, as in `cairn run`; help is `--help`).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct BundleArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Unmount DIR/rootfs of a bundle made earlier (the container's upper stays in the store).
    #[arg(long = "rm-mount", value_name = "DIR", conflicts_with = "image")]
    rm_mount: Option<PathBuf>,
    /// Assign a name to the container whose upper backs the rootfs.
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables (K=V, or K to take the host's value).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    entrypoint: Option<String>,
    /// Container host name (default: the short container id).
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Network: none (default, a new network namespace with only loopback) or host.
    #[arg(long = "network", alias = "net", value_name = "MODE")]
    network: Option<String>,
    /// Make the container's root filesystem read only (root.readonly).
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
    /// Security options (only `no-new-privileges` is supported).
    #[arg(long = "security-opt", value_name = "OPT")]
    security_opt: Vec<String>,
    /// The image.
    #[arg(required_unless_present = "rm_mount")]
    image: Option<String>,
    /// The bundle directory (created if missing; must be empty).
    #[arg(required_unless_present = "rm_mount")]
    dir: Option<PathBuf>,
    /// The command and its arguments (replaces the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn options(a: &BundleArgs) -> Result<RunOptions> {
    let mut env = Vec::new();
    for f in &a.env_file {
        let text =
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("open {}: {e}", f.display()))?;
        env.extend(spec::parse_env_file(&text)?);
    }
    env.extend(a.env.iter().cloned());
    let network = match a.network.as_deref() {
        Some("host") => Network::Host,
        Some("none" | "default" | "bridge") | None => Network::None,
        Some(other) => return Err(spec::SpecError::InvalidNetwork(other.to_string()).into()),
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
        ..RunOptions::default()
    })
}

/// Runs `cairn bundle`.
pub fn bundle(root: Option<&str>, a: BundleArgs) -> Result<()> {
    if let Some(dir) = &a.rm_mount {
        bundle::release(dir)?;
        return Ok(());
    }
    let (Some(image), Some(dir)) = (a.image.clone(), a.dir.clone()) else {
        anyhow::bail!("\"cairn bundle\" requires IMAGE and DIR");
    };
    let options = options(&a)?;
    let images = super::store::open_images(root)?;
    let req = BundleRequest {
        image,
        dir,
        options,
        name: a.name.clone(),
    };
    let b = bundle::create(&images, &req)?;
    println!("{}", b.dir.display());
    Ok(())
}
