//! One `cairn run` from start to end: resolve the image, create the container directory,
//! mount the image's layers + the container's upper through cairn's union filesystem, build
//! the spec, set up the cgroup, start pid 1, forward signals, wait, record the exit status,
//! then unmount and (with `--rm`) remove the container.

use std::path::PathBuf;

use cairn_driver::images::ImageStore;

use crate::cgroup::{Cgroup, Limits};
use crate::container::{Container, ContainerConfig, State, Status, now, unmount_rootfs};
use crate::process::{ChildSetup, spawn};
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
}

/// Runs a container to completion; returns the exit status of its pid 1 (128+N for signal
/// N). Errors carry docker's status in [`Error::exit_code`].
pub fn run(images: &ImageStore, req: &RunRequest) -> Result<i32> {
    let (rec, config) = images.find(&req.image)?;
    let settings = ImageSettings::from_config(&config);
    // Refuse bad options before anything is created.
    spec::command_line(&settings, &req.options)?;
    spec::capabilities(&req.options.cap_add, &req.options.cap_drop)?;
    let lowers = images.lower_dirs(&rec)?;
    let root = images.store().root().to_path_buf();
    let container = Container::create(&root, req.name.as_deref())?;
    let mut live = Live {
        container,
        mounted: false,
        cgroup: None,
        remove: req.remove,
    };
    let result = live.run(req, &settings, lowers, &rec.id.to_string());
    let cleanup = live.cleanup();
    let code = result?;
    cleanup?;
    Ok(code)
}

/// What has to be undone at the end.
struct Live {
    container: Container,
    mounted: bool,
    cgroup: Option<Cgroup>,
    remove: bool,
}

impl Live {
    fn run(
        &mut self,
        req: &RunRequest,
        settings: &ImageSettings,
        mut lowers: Vec<PathBuf>,
        image_id: &str,
    ) -> Result<i32> {
        let c = self.container.clone();
        if lowers.is_empty() {
            let empty = c.dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(Error::io("create", &empty))?;
            lowers.push(empty);
        }
        self.container
            .mount_rootfs(&self.container.rootfs(), &lowers)?;
        self.mounted = true;
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
        let spec = spec::build(settings, &req.options, &ctx)?;
        c.write_config(&ContainerConfig {
            id: c.id.clone(),
            name: c.name.clone(),
            image: req.image.clone(),
            image_id: image_id.to_string(),
            created: now(),
            lowers: lowers.clone(),
            spec: spec.clone(),
        })?;
        let mut state = State {
            status: Status::Created,
            pid: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
        };
        c.set_state(&state)?;
        let etc = write_etc_files(&c, &spec)?;
        let limits = Limits {
            memory: spec.memory,
            pids: spec.pids_limit,
            nano_cpus: req.options.nano_cpus,
        };
        let limited = limits.any();
        self.cgroup = match Cgroup::create_with(&c.id, &limits) {
            Ok(cg) => Some(cg),
            Err(e) if limited => return Err(e),
            // Without limits a cgroup is only bookkeeping: run without one.
            Err(_) => None,
        };
        let setup = ChildSetup {
            rootfs: &rootfs,
            spec: &spec,
            etc: &etc,
            interactive: req.interactive,
            tty: req.tty,
        };
        let cgroup = self.cgroup.as_ref();
        let started = spawn(&setup, |pid| match cgroup {
            Some(cg) => cg.add(pid.as_raw()),
            None => Ok(()),
        });
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                state.status = Status::Exited;
                state.exit_code = Some(e.exit_code());
                state.finished_at = Some(now());
                let _ = c.set_state(&state);
                return Err(e);
            }
        };
        state.status = Status::Running;
        state.pid = Some(started.pid.as_raw());
        state.started_at = Some(now());
        c.set_state(&state)?;
        let code = started.wait()?;
        state.status = Status::Exited;
        state.pid = None;
        state.exit_code = Some(code);
        state.finished_at = Some(now());
        c.set_state(&state)?;
        Ok(code)
    }

    fn cleanup(&mut self) -> Result<()> {
        if let Some(cg) = self.cgroup.take() {
            cg.remove();
        }
        let rootfs = self.container.rootfs();
        if self.mounted {
            unmount_rootfs(&rootfs)?;
            self.mounted = false;
        }
        if self.remove {
            self.container.remove()?;
        }
        Ok(())
    }
}

/// Writes the container's hostname, hosts and resolv.conf next to its upper.
fn write_etc_files(c: &Container, spec: &RunSpec) -> Result<EtcFiles> {
    let h = &spec.hostname;
    let hosts = match spec.network {
        Network::Host => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
        _ => format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n127.0.1.1\t{h}\n"
        ),
    };
    let resolv = match spec.network {
        Network::None => String::new(),
        _ => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
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
