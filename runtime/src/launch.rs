//! What a supervisor launches: a new container resolved from its image and created
//! ([`create`]) or an existing one ([`Launch`]), and what the supervisor needs once the rootfs
//! is mounted: the run spec and config.json, the cgroup, the generated /etc files. Depends on
//! nothing above it (the supervisor, lifecycle and `run` use it).

use std::path::{Path, PathBuf};

use cairn_driver::images::ImageStore;

use crate::cgroup::{Cgroup, Limits};
use crate::container::{Container, ContainerConfig, ProcessId, RestartPolicy, now};
use crate::rootfs::{EtcFiles, read_image_file};
use crate::spec::{self, ImageSettings, Network, RunOptions, RunSpec};
use crate::{Error, Result};

/// Everything `cairn run` was asked.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub image: String,
    pub options: RunOptions,
    pub name: Option<String>,
    /// Remove the container when it exits.
    pub remove: bool,
    /// Keep stdin attached (`-i`).
    pub interactive: bool,
    /// Allocate a pseudo-terminal for the container (`-t`).
    pub tty: bool,
    /// `--restart`.
    pub restart: RestartPolicy,
    /// `--stop-signal` (overrides the image's StopSignal).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (`stop` without `-t`).
    pub stop_timeout: Option<i64>,
}

/// A container directory created for a request, before its rootfs is mounted.
#[derive(Debug)]
pub struct NewContainer {
    pub container: Container,
    pub(crate) req: RunRequest,
    pub(crate) settings: ImageSettings,
    pub(crate) lowers: Vec<PathBuf>,
    pub(crate) image_id: String,
    pub(crate) stop_signal: Option<String>,
}

/// Resolves the image, checks the options and creates the container directory in
/// `containers` (recording the image). The caller holds the store lock (the engine's
/// `create_container`), so no `rmi` runs between resolving the image and recording its user.
pub fn create(images: &ImageStore, containers: &Path, req: &RunRequest) -> Result<NewContainer> {
    let (rec, config) = images.find(&req.image)?;
    let settings = ImageSettings::from_config(&config);
    // Refuse bad options before anything is created.
    spec::command_line(&settings, &req.options)?;
    spec::capabilities(&req.options.cap_add, &req.options.cap_drop)?;
    let lowers = images.lower_dirs(&rec)?;
    let container = Container::create(containers, req.name.as_deref(), &rec.id.to_string())?;
    // This process answers for the container until its supervisor takes over (a command
    // meanwhile sees it starting, and dead if this process dies).
    container.update_state(|st| st.supervisor = ProcessId::current())?;
    Ok(NewContainer {
        container,
        req: req.clone(),
        settings,
        lowers,
        image_id: rec.id.to_string(),
        stop_signal: req
            .stop_signal
            .clone()
            .or_else(|| config.config().and_then(|c| c.stop_signal.clone())),
    })
}

/// What a supervisor starts: a container just created, or an existing one (`start`).
#[derive(Debug)]
pub enum Launch {
    New(Box<NewContainer>),
    Existing(Container),
}

impl Launch {
    pub fn container(&self) -> &Container {
        match self {
            Launch::New(n) => &n.container,
            Launch::Existing(c) => c,
        }
    }
}

/// With the rootfs mounted at `c.rootfs()`: the run spec (users resolved through the image's
/// /etc/passwd and /etc/group) and config.json.
pub(crate) fn write_new_config(new: &NewContainer, lowers: &[PathBuf]) -> Result<ContainerConfig> {
    let c = &new.container;
    let req = &new.req;
    let rootfs = c.rootfs();
    let passwd = read_image_file(&rootfs, "/etc/passwd");
    let group = read_image_file(&rootfs, "/etc/group");
    let host_hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let default_hostname = match req.options.network {
        Network::Host => host_hostname,
        _ => c.id[..12].to_string(),
    };
    let host_env = |k: &str| std::env::var(k).ok();
    let ctx = spec::Context {
        default_hostname: &default_hostname,
        host_env: &host_env,
        passwd: passwd.as_deref(),
        group: group.as_deref(),
    };
    let spec = spec::build(&new.settings, &req.options, &ctx)?;
    let cfg = ContainerConfig {
        id: c.id.clone(),
        name: c.name.clone(),
        image: req.image.clone(),
        image_id: new.image_id.clone(),
        created: now(),
        lowers: lowers.to_vec(),
        spec,
        restart: req.restart,
        auto_remove: req.remove,
        tty: req.tty,
        stop_signal: new.stop_signal.clone(),
        nano_cpus: req.options.nano_cpus,
        stop_timeout: req.stop_timeout,
    };
    c.write_config(&cfg)?;
    Ok(cfg)
}

/// The container's cgroup: required for limits and the device policy (only a privileged
/// container without limits runs without one when the host refuses it).
pub(crate) fn cgroup_for(c: &Container, cfg: &ContainerConfig) -> Result<Option<Cgroup>> {
    let limits = Limits {
        memory: cfg.spec.memory,
        pids: cfg.spec.pids_limit,
        nano_cpus: cfg.nano_cpus,
    };
    match Cgroup::create_with(&c.id, &limits, &cfg.spec.device_rules()) {
        Ok(cg) => Ok(Some(cg)),
        Err(e) if limits.any() || !cfg.spec.privileged => Err(e),
        Err(_) => Ok(None),
    }
}

/// Writes the container's hostname, hosts and resolv.conf next to its upper; `own_netns`: the
/// container has a network namespace of its own (no DNS: an empty resolv.conf).
pub(crate) fn write_etc_files(c: &Container, spec: &RunSpec, own_netns: bool) -> Result<EtcFiles> {
    let h = &spec.hostname;
    let hosts = match spec.network {
        Network::Host => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
        _ => format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n127.0.1.1\t{h}\n"
        ),
    };
    let resolv = if own_netns {
        String::new()
    } else {
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    };
    let files = EtcFiles {
        hostname: c.etc_file("hostname"),
        hosts: c.etc_file("hosts"),
        resolv_conf: c.etc_file("resolv.conf"),
    };
    for (p, text) in [
        (&files.hostname, format!("{h}\n")),
        (&files.hosts, hosts),
        (&files.resolv_conf, resolv),
    ] {
        std::fs::write(p, text).map_err(Error::io("write", p))?;
    }
    Ok(files)
}
