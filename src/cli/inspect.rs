//! `cairn inspect` over containers and images (containers first, as docker resolves a name),
//! `cairn container inspect`, and the docker shape of a container's inspect JSON (docker's
//! field names and order).

use cairn_engine::StoreRoot;
use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use cairn_driver::image::{ImageConfig, InspectImage, Timestamp};
use cairn_driver::images::ImageStore;
use cairn_engine::status::{ContainerStatus, status as engine_status};
use cairn_runtime::container::{Container, RestartPolicy};
use cairn_runtime::container_fs::entrypoint_and_cmd;
use cairn_runtime::spec::{DEFAULT_CAPABILITIES, Network};
use serde::Serialize;

use super::format::{Format, render_objects};

/// `cairn inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Go template applied to each result ({{.Id}}, {{.State.Running}}, {{json .Config}}, ...).
    #[arg(short, long)]
    format: Option<String>,
    /// Only this kind of object: container or image.
    #[arg(long = "type", value_name = "TYPE")]
    typ: Option<String>,
    /// Display total file sizes (accepted; sizes are not computed for containers).
    #[arg(short, long)]
    size: bool,
    /// Containers or images.
    #[arg(required = true)]
    names: Vec<String>,
}

/// Which objects an inspect looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Any,
    Container,
    Image,
}

/// One inspected object.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Object {
    Container(Box<ContainerInspect>),
    Image(Box<InspectImage>),
}

/// Runs `cairn inspect` (`kind` Any), `cairn container inspect` (Container).
pub fn inspect(root: &StoreRoot, a: InspectArgs, kind: Kind) -> Result<()> {
    let kind = match (kind, a.typ.as_deref()) {
        (k, None) => k,
        (Kind::Any, Some("container")) => Kind::Container,
        (Kind::Any, Some("image")) => Kind::Image,
        (_, Some(t)) => anyhow::bail!("\"{t}\" is not a valid value for --type"),
    };
    let engine = super::store::open(root)?;
    let images = engine.images();
    let image = |arg: &str| -> Result<Object> {
        Ok(Object::Image(Box::new(super::images::inspect_image(
            images, arg,
        )?)))
    };
    let mut out: Vec<Object> = Vec::new();
    let mut failed = false;
    for arg in &a.names {
        let found = match kind {
            Kind::Image => None,
            _ => engine.find_container(arg).ok(),
        };
        let v = match (found, kind) {
            (Some(c), _) => container_inspect(images, &c).map(|c| Object::Container(Box::new(c))),
            (None, Kind::Container) => Err(anyhow!("No such container: {arg}")),
            (None, Kind::Image) => image(arg),
            (None, Kind::Any) => image(arg).map_err(|_| anyhow!("No such object: {arg}")),
        };
        match v {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("Error: {e:#}");
                failed = true;
            }
        }
    }
    match &a.format {
        Some(f) => {
            let rows = out
                .iter()
                .map(serde_json::to_value)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let fmt = Format::Template(f.clone());
            print!("{}", render_objects(&fmt, &rows)?)
        }
        None => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    match failed {
        true => super::exit_with(1),
        false => Ok(()),
    }
}

/// docker's inspect object of a container (the fields cairn has, in docker's order).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    id: String,
    created: String,
    path: String,
    args: Vec<String>,
    state: StateJson,
    image: String,
    resolv_conf_path: String,
    hostname_path: String,
    hosts_path: String,
    name: String,
    restart_count: u32,
    driver: &'static str,
    platform: &'static str,
    host_config: HostConfigJson,
    graph_driver: GraphDriverJson,
    mounts: Vec<MountJson>,
    config: ConfigJson,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StateJson {
    status: &'static str,
    running: bool,
    paused: bool,
    restarting: bool,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    dead: bool,
    pid: i32,
    exit_code: i32,
    error: String,
    started_at: String,
    finished_at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostConfigJson {
    binds: Option<Vec<String>>,
    network_mode: &'static str,
    auto_remove: bool,
    restart_policy: RestartPolicyJson,
    cap_add: Option<Vec<String>>,
    cap_drop: Option<Vec<String>>,
    readonly_rootfs: bool,
    memory: u64,
    nano_cpus: u64,
    pids_limit: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RestartPolicyJson {
    name: String,
    maximum_retry_count: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GraphDriverJson {
    data: GraphDataJson,
    name: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GraphDataJson {
    lower_dir: String,
    merged_dir: String,
    upper_dir: String,
    work_dir: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MountJson {
    #[serde(rename = "Type")]
    typ: &'static str,
    source: String,
    destination: String,
    mode: &'static str,
    #[serde(rename = "RW")]
    rw: bool,
    propagation: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigJson {
    hostname: String,
    domainname: String,
    user: String,
    tty: bool,
    open_stdin: bool,
    env: Vec<String>,
    cmd: Vec<String>,
    image: String,
    working_dir: String,
    entrypoint: Option<Vec<String>>,
    labels: BTreeMap<String, String>,
}

fn time(secs: Option<i64>) -> String {
    secs.map_or(Timestamp::GO_ZERO, |secs| Timestamp { secs, nanos: 0 })
        .to_rfc3339()
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

/// docker's inspect object of a container.
pub fn container_inspect(images: &ImageStore, c: &Container) -> Result<ContainerInspect> {
    let cfg = c.config()?;
    let state = cairn_runtime::lifecycle::refresh(c).ok();
    let image_config: Option<ImageConfig> = images.find(&cfg.image_id).ok().map(|(_, i)| i);
    let spec = &cfg.spec;
    let (entrypoint, cmd) = entrypoint_and_cmd(
        &spec.args,
        image_config.as_ref().and_then(|i| i.entrypoint()),
    );
    let pid = cairn_runtime::exec::running_pid(c);
    // The one status function (ps, rm and prune use it too).
    let status = state
        .as_ref()
        .map_or(ContainerStatus::Created, engine_status);
    let defaults: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    let cap_add = spec
        .capabilities
        .iter()
        .filter(|c| !defaults.contains(c))
        .cloned()
        .collect();
    let cap_drop = defaults
        .iter()
        .filter(|c| !spec.capabilities.contains(c))
        .cloned()
        .collect();
    let binds = spec
        .volumes
        .iter()
        .map(|v| {
            let ro = if v.read_only { ":ro" } else { "" };
            format!("{}:{}{ro}", v.host, v.container)
        })
        .collect();
    let mounts = spec
        .volumes
        .iter()
        .map(|v| MountJson {
            typ: "bind",
            source: v.host.clone(),
            destination: v.container.clone(),
            mode: if v.read_only { "ro" } else { "" },
            rw: !v.read_only,
            propagation: "rprivate",
        })
        .collect();
    let lowers: Vec<String> = cfg.lowers.iter().map(|p| p.display().to_string()).collect();
    let path_of = |p: std::path::PathBuf| p.display().to_string();
    Ok(ContainerInspect {
        id: c.id.clone(),
        created: time(Some(cfg.created)),
        path: spec.args.first().cloned().unwrap_or_default(),
        args: spec.args.get(1..).unwrap_or_default().to_vec(),
        state: StateJson {
            status: status.word(),
            running: status == ContainerStatus::Running,
            paused: false,
            restarting: status == ContainerStatus::Restarting,
            oom_killed: false,
            dead: status == ContainerStatus::Dead,
            pid: pid.unwrap_or(0),
            exit_code: state.as_ref().and_then(|s| s.exit_code).unwrap_or(0),
            error: state
                .as_ref()
                .and_then(|s| s.error.clone())
                .unwrap_or_default(),
            started_at: time(state.as_ref().and_then(|s| s.started_at)),
            finished_at: time(state.as_ref().and_then(|s| s.finished_at)),
        },
        image: cfg.image_id.clone(),
        resolv_conf_path: path_of(c.etc_file("resolv.conf")),
        hostname_path: path_of(c.etc_file("hostname")),
        hosts_path: path_of(c.etc_file("hosts")),
        name: format!("/{}", c.name),
        restart_count: state.as_ref().map_or(0, |s| s.restart_count),
        driver: "cairn",
        platform: "linux",
        host_config: HostConfigJson {
            binds: non_empty(binds),
            network_mode: match spec.network {
                Network::Default => "bridge",
                Network::Host => "host",
                Network::None => "none",
            },
            auto_remove: cfg.auto_remove,
            restart_policy: RestartPolicyJson {
                name: match cfg.restart {
                    RestartPolicy::OnFailure { .. } => "on-failure".into(),
                    ref p => p.to_string(),
                },
                maximum_retry_count: match cfg.restart {
                    RestartPolicy::OnFailure { max } => max,
                    _ => 0,
                },
            },
            cap_add: non_empty(cap_add),
            cap_drop: non_empty(cap_drop),
            readonly_rootfs: spec.read_only,
            memory: spec.memory.unwrap_or(0),
            nano_cpus: cfg.nano_cpus.unwrap_or(0),
            pids_limit: spec.pids_limit,
        },
        graph_driver: GraphDriverJson {
            data: GraphDataJson {
                lower_dir: lowers.join(":"),
                merged_dir: path_of(c.rootfs()),
                upper_dir: path_of(c.upper()),
                work_dir: path_of(c.work()),
            },
            name: "cairn",
        },
        mounts,
        config: ConfigJson {
            hostname: spec.hostname.clone(),
            domainname: String::new(),
            user: match (spec.user.uid, spec.user.gid) {
                (0, 0) => String::new(),
                (u, g) => format!("{u}:{g}"),
            },
            tty: cfg.tty,
            open_stdin: false,
            env: spec.env.clone(),
            cmd,
            image: cfg.image.clone(),
            working_dir: match spec.cwd.as_str() {
                "/" => String::new(),
                w => w.to_string(),
            },
            entrypoint,
            labels: image_config
                .as_ref()
                .and_then(|i| i.labels().cloned())
                .unwrap_or_default(),
        },
    })
}
