//! `cairn inspect` over containers and images (containers first, as docker resolves a name),
//! `cairn container inspect`, and the docker shape of a container's inspect JSON.

use anyhow::{Result, anyhow};
use cairn_driver::image::{ImageConfig, Timestamp};
use cairn_driver::images::ImageStore;
use cairn_runtime::container::{self, Container, Status};
use cairn_runtime::container_fs::entrypoint_and_cmd;
use cairn_runtime::spec::{DEFAULT_CAPABILITIES, Network};
use serde_json::{Value, json};

use super::format::{Format, render_rows};
use super::store::open_images;

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

/// Runs `cairn inspect` (`kind` Any), `cairn container inspect` (Container).
pub fn inspect(root: Option<&str>, a: InspectArgs, kind: Kind) -> Result<()> {
    let kind = match (kind, a.typ.as_deref()) {
        (k, None) => k,
        (Kind::Any, Some("container")) => Kind::Container,
        (Kind::Any, Some("image")) => Kind::Image,
        (_, Some(t)) => anyhow::bail!("\"{t}\" is not a valid value for --type"),
    };
    let images = open_images(root)?;
    let store_root = images.store().root().to_path_buf();
    let mut out: Vec<Value> = Vec::new();
    let mut failed = false;
    for arg in &a.names {
        let found = match kind {
            Kind::Image => None,
            _ => container::find(&store_root, arg).ok(),
        };
        let v = match (found, kind) {
            (Some(c), _) => container_json(&images, &c),
            (None, Kind::Container) => Err(anyhow!("No such container: {arg}")),
            (None, Kind::Image) => super::images::inspect_value(&images, arg),
            (None, Kind::Any) => super::images::inspect_value(&images, arg)
                .map_err(|_| anyhow!("No such object: {arg}")),
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
        Some(f) => print!(
            "{}",
            render_rows(&Format::Template(f.clone()), &out, &Default::default())?
        ),
        None => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

fn time(secs: Option<i64>) -> String {
    secs.map_or(Timestamp::GO_ZERO, |secs| Timestamp { secs, nanos: 0 })
        .to_rfc3339()
}

/// docker's inspect object of a container.
pub fn container_json(images: &ImageStore, c: &Container) -> Result<Value> {
    let cfg = c.config()?;
    let state = c.state().ok();
    let image_config: Option<ImageConfig> = images.find(&cfg.image_id).ok().map(|(_, conf)| conf);
    let spec = &cfg.spec;
    let (entrypoint, cmd) = entrypoint_and_cmd(
        &spec.args,
        image_config.as_ref().and_then(|i| i.entrypoint()),
    );
    let status = state.as_ref().map_or(Status::Created, |s| s.status);
    let pid = cairn_runtime::exec::running_pid(c);
    let running = pid.is_some();
    let status_text = match (status, running) {
        (Status::Running, false) => "exited",
        (Status::Running, true) => "running",
        (Status::Created, _) => "created",
        (Status::Exited, _) => "exited",
    };
    let user = match (spec.user.uid, spec.user.gid) {
        (0, 0) => String::new(),
        (u, g) => format!("{u}:{g}"),
    };
    let defaults: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    let cap_add: Vec<&String> = spec
        .capabilities
        .iter()
        .filter(|c| !defaults.contains(c))
        .collect();
    let cap_drop: Vec<&String> = defaults
        .iter()
        .filter(|c| !spec.capabilities.contains(c))
        .collect();
    let binds: Vec<String> = spec
        .volumes
        .iter()
        .map(|v| {
            let ro = if v.read_only { ":ro" } else { "" };
            format!("{}:{}{ro}", v.host, v.container)
        })
        .collect();
    let mounts: Vec<Value> = spec
        .volumes
        .iter()
        .map(|v| {
            json!({
                "Type": "bind",
                "Source": v.host,
                "Destination": v.container,
                "Mode": if v.read_only { "ro" } else { "" },
                "RW": !v.read_only,
                "Propagation": "rprivate",
            })
        })
        .collect();
    let lowers: Vec<String> = cfg.lowers.iter().map(|p| p.display().to_string()).collect();
    let path_of = |p: std::path::PathBuf| p.display().to_string();
    Ok(json!({
        "Id": c.id,
        "Created": time(Some(cfg.created)),
        "Path": spec.args.first().cloned().unwrap_or_default(),
        "Args": spec.args.get(1..).unwrap_or_default(),
        "State": {
            "Status": status_text,
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": pid.unwrap_or(0),
            "ExitCode": state.as_ref().and_then(|s| s.exit_code).unwrap_or(0),
            "Error": "",
            "StartedAt": time(state.as_ref().and_then(|s| s.started_at)),
            "FinishedAt": time(state.as_ref().and_then(|s| s.finished_at)),
        },
        "Image": cfg.image_id,
        "ResolvConfPath": path_of(c.etc_file("resolv.conf")),
        "HostnamePath": path_of(c.etc_file("hostname")),
        "HostsPath": path_of(c.etc_file("hosts")),
        "Name": format!("/{}", c.name),
        "RestartCount": 0,
        "Driver": "cairn",
        "Platform": "linux",
        "HostConfig": {
            "Binds": if binds.is_empty() { Value::Null } else { json!(binds) },
            "NetworkMode": match spec.network {
                Network::Default => "bridge",
                Network::Host => "host",
                Network::None => "none",
            },
            "Memory": spec.memory.unwrap_or(0),
            "NanoCpus": 0,
            "PidsLimit": spec.pids_limit,
            "ReadonlyRootfs": spec.read_only,
            "AutoRemove": false,
            "CapAdd": if cap_add.is_empty() { Value::Null } else { json!(cap_add) },
            "CapDrop": if cap_drop.is_empty() { Value::Null } else { json!(cap_drop) },
        },
        "GraphDriver": {
            "Name": "cairn",
            "Data": {
                "LowerDir": lowers.join(":"),
                "UpperDir": path_of(c.upper()),
                "WorkDir": path_of(c.work()),
                "MergedDir": path_of(c.rootfs()),
            },
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": spec.hostname,
            "Domainname": "",
            "User": user,
            "Tty": false,
            "OpenStdin": false,
            "Env": spec.env,
            "Cmd": cmd,
            "Image": cfg.image,
            "WorkingDir": if spec.cwd == "/" { "" } else { spec.cwd.as_str() },
            "Entrypoint": entrypoint,
            "Labels": image_config.as_ref().and_then(|i| i.labels().cloned()).unwrap_or_default(),
        },
    }))
}
