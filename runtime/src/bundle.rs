//! `cairn bundle`: an OCI runtime bundle (runtime-spec 1.0.2) that runc, crun or youki can run,
//! with the image's layers + a fresh container upper mounted through cairn's union filesystem
//! as the bundle's `rootfs/`.
//!
//! The process comes from the same Entrypoint/Cmd/Env/WorkingDir/User resolution `cairn run`
//! uses ([`crate::spec`]); the rest is what docker hands runc for a default container:
//! docker's capability set, masked and read-only paths, the standard /proc, /dev, /sys mounts,
//! NOFILE 1048576, runc's default device allow list, and namespaces pid, network (left out for
//! `--network host`), ipc, uts, mount and cgroup. The union's upper and work dirs belong to a
//! container directory in the store (state `created`), so whatever the runtime's container
//! writes lands in cairn's upper. The mount outlives `cairn bundle`; [`release`] (`cairn
//! bundle --rm-mount DIR`) or `cairn umount DIR/rootfs` ends it.

use std::path::{Path, PathBuf};

use cairn_driver::images::ImageStore;
use serde_json::{Value, json};

use crate::container::{Container, ContainerConfig, State, Status, now, unmount_rootfs};
use crate::rootfs::{EtcFiles, read_image_file};
use crate::spec::{self, ImageSettings, Network, RunOptions, RunSpec};
use crate::{Error, Result};

/// The runtime-spec version written.
pub const OCI_VERSION: &str = "1.0.2";

/// docker's default soft and hard RLIMIT_NOFILE for containers.
pub const NOFILE: u64 = 1_048_576;

/// Annotation naming the cairn container whose upper backs the bundle's rootfs.
pub const ANNOTATION_ID: &str = "org.cairn.container.id";
/// Annotation with the cairn container's directory (upper/, work/).
pub const ANNOTATION_DIR: &str = "org.cairn.container.dir";

/// Everything `cairn bundle` was asked.
#[derive(Debug, Clone, Default)]
pub struct BundleRequest {
    pub image: String,
    /// The bundle directory (created if missing; must be empty if it exists).
    pub dir: PathBuf,
    /// Options as for `cairn run`; `network` is `Host` (no network namespace) or anything
    /// else (a new, empty network namespace).
    pub options: RunOptions,
    pub name: Option<String>,
}

/// A bundle that was written and mounted.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute bundle directory.
    pub dir: PathBuf,
    pub container: Container,
    pub spec: RunSpec,
}

/// Writes `DIR/config.json` and mounts the image at `DIR/rootfs`. On failure nothing is left:
/// no mount, no container directory, and DIR only if it existed before.
/// `containers` is the store's containers directory; `creation_lock` is the store lock the
/// caller (the engine) took, so no `rmi` runs between resolving the image and recording its
/// user. It is released once the container is recorded, before the mount: the mount's daemon
/// is forked and would otherwise inherit the lock for its whole life.
pub fn create<L>(
    images: &ImageStore,
    containers: &Path,
    req: &BundleRequest,
    creation_lock: L,
) -> Result<Bundle> {
    let (rec, config) = images.find(&req.image)?;
    let settings = ImageSettings::from_config(&config);
    // Refuse bad options before anything is created.
    spec::command_line(&settings, &req.options)?;
    if let Some(w) = req
        .options
        .workdir
        .as_deref()
        .filter(|w| !w.starts_with('/'))
    {
        return Err(spec::SpecError::RelativeWorkdir(w.to_string()).into());
    }
    let lowers = images.lower_dirs(&rec)?;
    let created_dir = prepare_dir(&req.dir)?;
    let dir = std::fs::canonicalize(&req.dir).map_err(Error::io("resolve", &req.dir))?;
    let created = Container::create(containers, req.name.as_deref(), &rec.id.to_string());
    drop(creation_lock);
    let container = match created {
        Ok(c) => c,
        Err(e) => {
            undo_dir(&dir, created_dir);
            return Err(e);
        }
    };
    let mut live = Live {
        dir,
        container,
        mounted: false,
    };
    match live.build(req, &settings, lowers, &rec.id.to_string()) {
        Ok(spec) => Ok(Bundle {
            dir: live.dir.clone(),
            container: live.container.clone(),
            spec,
        }),
        Err(e) => {
            live.undo(created_dir);
            Err(e)
        }
    }
}

/// Unmounts `DIR/rootfs` (the container's upper stays in the store).
pub fn release(dir: &Path) -> Result<()> {
    let rootfs = dir.join("rootfs");
    unmount_rootfs(&rootfs)
}

/// Creates DIR, or checks that an existing DIR is an empty directory. True if created.
fn prepare_dir(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => match rd.next() {
            None => Ok(false),
            Some(_) => Err(Error::Io {
                what: "bundle directory",
                path: dir.to_path_buf(),
                source: std::io::Error::from_raw_os_error(libc::ENOTEMPTY),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
            Ok(true)
        }
        Err(e) => Err(Error::io("open", dir)(e)),
    }
}

/// Empties DIR again (what `create` put there), and removes it when `create` made it.
fn undo_dir(dir: &Path, created: bool) {
    if created {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        let _ = std::fs::remove_file(dir.join("config.json"));
        let _ = std::fs::remove_dir(dir.join("rootfs"));
    }
}

/// What has to be undone if building the bundle fails.
struct Live {
    dir: PathBuf,
    container: Container,
    mounted: bool,
}

impl Live {
    fn build(
        &mut self,
        req: &BundleRequest,
        settings: &ImageSettings,
        mut lowers: Vec<PathBuf>,
        image_id: &str,
    ) -> Result<RunSpec> {
        let c = self.container.clone();
        if lowers.is_empty() {
            let empty = c.dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(Error::io("create", &empty))?;
            lowers.push(empty);
        }
        let rootfs = self.dir.join("rootfs");
        std::fs::create_dir(&rootfs).map_err(Error::io("create", &rootfs))?;
        self.container.mount_rootfs(&rootfs, &lowers)?;
        self.mounted = true;
        let passwd = read_image_file(&rootfs, "/etc/passwd");
        let group = read_image_file(&rootfs, "/etc/group");
        let mut options = req.options.clone();
        if options.network != Network::Host {
            options.network = Network::None;
        }
        let host_env = |k: &str| std::env::var(k).ok();
        let ctx = spec::Context {
            default_hostname: &c.id[..12],
            host_env: &host_env,
            passwd: passwd.as_deref(),
            group: group.as_deref(),
        };
        let spec = spec::build(settings, &options, &ctx)?;
        c.write_config(&ContainerConfig {
            id: c.id.clone(),
            name: c.name.clone(),
            image: req.image.clone(),
            image_id: image_id.to_string(),
            created: now(),
            lowers,
            spec: spec.clone(),
            restart: Default::default(),
            auto_remove: false,
            tty: false,
            stop_signal: None,
            nano_cpus: req.options.nano_cpus,
            stop_timeout: None,
        })?;
        c.set_state(&State {
            status: Status::Created,
            ..State::default()
        })?;
        // runc gives the container an empty network namespace unless it shares the host's.
        let etc = crate::launch::write_etc_files(&c, &spec, spec.network != Network::Host)?;
        let host = HostFacts::probe();
        let mut cfg = oci_config(&spec, &etc, &c, &host);
        if let Some(s) = seccomp_section(&spec, &crate::seccomp::Host::current())? {
            cfg["linux"]["seccomp"] = s;
        }
        let path = self.dir.join("config.json");
        let text = serde_json::to_vec_pretty(&cfg).expect("serializable");
        std::fs::write(&path, text).map_err(Error::io("write", &path))?;
        // Where the bundle is, for whoever looks at the container directory.
        let link = c.dir.join("bundle");
        std::fs::write(&link, format!("{}\n", self.dir.display()))
            .map_err(Error::io("write", &link))?;
        Ok(spec)
    }

    fn undo(&mut self, created_dir: bool) {
        if self.mounted {
            let _ = unmount_rootfs(&self.dir.join("rootfs"));
            self.mounted = false;
        }
        let _ = self.container.remove();
        undo_dir(&self.dir, created_dir);
    }
}

/// What the host supports that changes the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    /// A memory+swap limit can be set (v2, or v1 with swap accounting).
    pub swap_limit: bool,
    /// The RLIMIT_NOFILE to give: [`NOFILE`], or less when the runtime could not set it
    /// (without CAP_SYS_RESOURCE a hard limit cannot be raised; never above fs.nr_open).
    pub nofile: u64,
}

impl Default for HostFacts {
    fn default() -> HostFacts {
        HostFacts {
            swap_limit: false,
            nofile: NOFILE,
        }
    }
}

/// CAP_SYS_RESOURCE's bit.
const CAP_SYS_RESOURCE: u32 = 24;

/// The highest RLIMIT_NOFILE (≤ [`NOFILE`]) a process with our credentials can set.
fn settable_nofile() -> u64 {
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(NOFILE);
    let cap_eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let mut max = NOFILE.min(nr_open);
    if cap_eff & (1 << CAP_SYS_RESOURCE) == 0 {
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        if let Some(h) = hard {
            max = max.min(h);
        }
    }
    max
}

impl HostFacts {
    /// Looks at /sys/fs/cgroup.
    pub fn probe() -> HostFacts {
        let swap_limit = match crate::cgroup::version() {
            crate::cgroup::Version::V2 => true,
            crate::cgroup::Version::V1 => {
                Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
            }
        };
        HostFacts {
            swap_limit,
            nofile: settable_nofile(),
        }
    }
}

fn mount_entry(dest: &str, kind: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": kind, "source": source, "options": options})
}

fn bind_entry(dest: &str, source: &Path) -> Value {
    json!({
        "destination": dest,
        "type": "bind",
        "source": source.to_string_lossy(),
        "options": ["rbind", "rprivate"],
    })
}

/// The device policy ([`crate::devices`]) as OCI `linux.resources.devices`.
fn device_rules(spec: &RunSpec) -> Vec<Value> {
    use crate::devices::Kind;
    spec.device_rules()
        .iter()
        .map(|r| {
            let access = crate::devices::access_string(r.access);
            let mut v = json!({"allow": r.allow, "access": access});
            match r.kind {
                Kind::All if !r.allow => {}
                Kind::All => v["type"] = json!("a"),
                Kind::Char => v["type"] = json!("c"),
                Kind::Block => v["type"] = json!("b"),
            }
            if let Some(m) = r.major {
                v["major"] = json!(m);
            }
            if let Some(m) = r.minor {
                v["minor"] = json!(m);
            }
            v
        })
        .collect()
}

/// The `--device` nodes as OCI `linux.devices`.
fn device_nodes(spec: &RunSpec) -> Vec<Value> {
    use crate::devices::Kind;
    spec.devices
        .iter()
        .map(|d| {
            let kind = if d.kind == Kind::Block { "b" } else { "c" };
            json!({"path": d.container, "type": kind, "major": d.major, "minor": d.minor,
                   "fileMode": d.mode, "uid": d.uid, "gid": d.gid})
        })
        .collect()
}

/// The OCI `linux.seccomp` of the spec's profile resolved for `host` (`None`: unconfined).
pub fn seccomp_section(spec: &RunSpec, host: &crate::seccomp::Host) -> Result<Option<Value>> {
    match spec.seccomp.profile() {
        None => Ok(None),
        Some(p) => Ok(Some(p.resolve(host, &spec.capabilities)?.to_oci())),
    }
}

/// The OCI runtime config of a bundle (pure: everything comes in as arguments).
pub fn oci_config(spec: &RunSpec, etc: &EtcFiles, c: &Container, host: &HostFacts) -> Value {
    let caps = &spec.capabilities;
    let mut user = json!({"uid": spec.user.uid, "gid": spec.user.gid});
    if !spec.user.additional_gids.is_empty() {
        user["additionalGids"] = json!(spec.user.additional_gids);
    }
    let process = json!({
        "terminal": false,
        "user": user,
        "args": spec.args,
        "env": spec.env,
        "cwd": spec.cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": [],
            "ambient": [],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": host.nofile, "soft": host.nofile}],
        "noNewPrivileges": spec.no_new_privileges,
    });
    let std = ["nosuid", "noexec", "nodev"];
    let mut mounts = vec![
        mount_entry("/proc", "proc", "proc", &std),
        mount_entry(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount_entry(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount_entry(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount_entry("/dev/mqueue", "mqueue", "mqueue", &std),
        mount_entry(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount_entry(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
        bind_entry("/etc/resolv.conf", &etc.resolv_conf),
        bind_entry("/etc/hostname", &etc.hostname),
        bind_entry("/etc/hosts", &etc.hosts),
    ];
    for v in &spec.volumes {
        let mut m = bind_entry(&v.container, Path::new(&v.host));
        if v.read_only {
            m["options"] = json!(["rbind", "rprivate", "ro"]);
        }
        mounts.push(m);
    }
    let mut namespaces = vec![json!({"type": "pid"})];
    if spec.network != Network::Host {
        namespaces.push(json!({"type": "network"}));
    }
    for kind in ["ipc", "uts", "mount", "cgroup"] {
        namespaces.push(json!({"type": kind}));
    }
    let mut resources = json!({"devices": device_rules(spec)});
    if let Some(m) = spec.memory {
        let mut memory = json!({"limit": m});
        if host.swap_limit {
            // docker's default: as much swap as memory (memory+swap = twice the limit).
            memory["swap"] = json!(m.saturating_mul(2));
        }
        resources["memory"] = memory;
    }
    if let Some(p) = spec.pids_limit {
        resources["pids"] = json!({"limit": if p > 0 { p } else { -1 }});
    }
    json!({
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": "rootfs", "readonly": spec.read_only},
        "hostname": spec.hostname,
        "mounts": mounts,
        "annotations": {
            ANNOTATION_ID: c.id,
            ANNOTATION_DIR: c.dir.to_string_lossy(),
        },
        "linux": {
            "resources": resources,
            "namespaces": namespaces,
            "devices": device_nodes(spec),
            "maskedPaths": spec.masked_paths,
            "readonlyPaths": spec.readonly_paths,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Context, Volume};

    fn spec_for(opts: &RunOptions) -> RunSpec {
        let img = ImageSettings {
            cmd: Some(vec!["/bin/sh".into()]),
            env: vec!["A=img".into()],
            ..ImageSettings::default()
        };
        let ctx = Context {
            default_hostname: "0123456789ab",
            host_env: &|_| None,
            passwd: Some("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"),
            group: None,
        };
        spec::build(&img, opts, &ctx).unwrap()
    }

    fn config(opts: &RunOptions, host: HostFacts) -> Value {
        let c = Container {
            id: "0123456789ab".repeat(5),
            name: "x_y".into(),
            dir: "/store/containers/c".into(),
        };
        let etc = EtcFiles {
            hostname: "/c/hostname".into(),
            hosts: "/c/hosts".into(),
            resolv_conf: "/c/resolv.conf".into(),
        };
        oci_config(&spec_for(opts), &etc, &c, &host)
    }

    fn namespaces(v: &Value) -> Vec<String> {
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn defaults_are_dockers() {
        let v = config(&RunOptions::default(), HostFacts::default());
        assert_eq!(v["ociVersion"], "1.0.2");
        let p = &v["process"];
        assert_eq!(p["args"], json!(["/bin/sh"]));
        assert_eq!(p["terminal"], false);
        assert_eq!(p["noNewPrivileges"], false);
        assert_eq!(
            p["user"],
            json!({"uid": 0, "gid": 0, "additionalGids": [0]})
        );
        assert_eq!(p["cwd"], "/");
        let env: Vec<&str> = p["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(
            env.contains(&"A=img") && env.contains(&"HOME=/root"),
            "{env:?}"
        );
        let caps = p["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), spec::DEFAULT_CAPABILITIES.len());
        assert_eq!(
            p["capabilities"]["effective"],
            p["capabilities"]["bounding"]
        );
        assert_eq!(p["capabilities"]["inheritable"], json!([]));
        assert_eq!(p["rlimits"][0]["hard"], NOFILE);
        assert_eq!(v["root"], json!({"path": "rootfs", "readonly": false}));
        assert_eq!(v["hostname"], "0123456789ab");
        assert_eq!(
            namespaces(&v),
            ["pid", "network", "ipc", "uts", "mount", "cgroup"]
        );
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        for d in [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
        ] {
            assert!(dests.contains(&d), "{d} in {dests:?}");
        }
        assert!(dests.contains(&"/sys/fs/cgroup") && dests.contains(&"/etc/hosts"));
        assert_eq!(v["linux"]["maskedPaths"], json!(spec::MASKED_PATHS));
        assert_eq!(v["linux"]["readonlyPaths"], json!(spec::READONLY_PATHS));
        let res = &v["linux"]["resources"];
        assert_eq!(res["devices"][0], json!({"allow": false, "access": "rwm"}));
        assert!(res.get("memory").is_none() && res.get("pids").is_none());
        assert_eq!(v["annotations"][ANNOTATION_DIR], "/store/containers/c");
    }

    #[test]
    fn devices_seccomp_and_privileged() {
        let host = crate::seccomp::Host {
            arch: "amd64",
            scmp_arch: "SCMP_ARCH_X86_64",
            kernel: (6, 1),
        };
        let v = config(&RunOptions::default(), HostFacts::default());
        let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert!(
            rules.contains(&json!({"allow": true, "type": "c", "major": 1, "minor": 3,
                                       "access": "rwm"}))
        );
        assert!(
            rules.contains(&json!({"allow": true, "type": "c", "major": 136,
                                       "access": "rwm"}))
        );
        assert_eq!(v["linux"]["devices"], json!([]));
        let seccomp = seccomp_section(&spec_for(&RunOptions::default()), &host)
            .unwrap()
            .unwrap();
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(seccomp["architectures"][0], "SCMP_ARCH_X86_64");
        let privileged = RunOptions {
            privileged: true,
            ..RunOptions::default()
        };
        let v = config(&privileged, HostFacts::default());
        let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(
            rules,
            &[json!({"allow": true, "type": "a", "access": "rwm"})]
        );
        assert_eq!(v["linux"]["maskedPaths"], json!([]));
        assert_eq!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            spec::ALL_CAPABILITIES.len()
        );
        assert!(
            seccomp_section(&spec_for(&privileged), &host)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn options_shape_the_config() {
        let opts = RunOptions {
            command: vec!["id".into(), "-u".into()],
            user: Some("nobody".into()),
            workdir: Some("/tmp".into()),
            hostname: Some("box".into()),
            network: Network::Host,
            memory: Some(64 << 20),
            pids_limit: Some(0),
            no_new_privileges: true,
            volumes: vec![Volume {
                host: "/h".into(),
                container: "/c".into(),
                read_only: true,
            }],
            ..RunOptions::default()
        };
        let v = config(
            &opts,
            HostFacts {
                swap_limit: true,
                nofile: 4096,
            },
        );
        assert_eq!(v["process"]["args"], json!(["id", "-u"]));
        assert_eq!(v["process"]["user"]["uid"], 65534);
        assert_eq!(v["process"]["cwd"], "/tmp");
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert_eq!(v["process"]["rlimits"][0]["soft"], 4096);
        assert_eq!(v["hostname"], "box");
        assert_eq!(namespaces(&v), ["pid", "ipc", "uts", "mount", "cgroup"]);
        let res = &v["linux"]["resources"];
        assert_eq!(res["memory"], json!({"limit": 64 << 20, "swap": 128 << 20}));
        assert_eq!(res["pids"], json!({"limit": -1}));
        let last = v["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["destination"], "/c");
        assert_eq!(last["options"], json!(["rbind", "rprivate", "ro"]));
        let no_swap = config(
            &opts,
            HostFacts {
                swap_limit: false,
                ..HostFacts::default()
            },
        );
        assert_eq!(
            no_swap["linux"]["resources"]["memory"],
            json!({"limit": 64 << 20})
        );
    }

    #[test]
    fn bundle_dir_must_be_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("a/b");
        assert!(prepare_dir(&fresh).unwrap());
        assert!(!prepare_dir(&fresh).unwrap());
        std::fs::write(fresh.join("f"), "").unwrap();
        assert!(prepare_dir(&fresh).is_err());
    }
}
