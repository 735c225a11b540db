//! A container's filesystem from the host: the merged view (the live union mount while it
//! runs, else the union mounted on a private directory for the time of one operation), its
//! changes (`diff`) and its commit as a new image.

use std::path::{Path, PathBuf};

use cairn_driver::commit::{CommitOptions, commit};
use cairn_driver::diff::{Change, changes};
use cairn_driver::images::{ImageRecord, ImageStore};

use crate::container::{Container, ContainerConfig, reap_daemon, unmount_rootfs};
use crate::exec::running_pid;
use crate::state::PRIVATE_MOUNT;
use crate::{Error, Result};

/// Paths the runtime creates in the upper as mount points (docker keeps these in the
/// container's init layer, so they are never part of its changes).
pub const MOUNT_POINTS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
];

/// Whether `path` is a runtime mount point (or below one) of a container with `cfg`.
pub fn is_mount_point(cfg: &ContainerConfig, path: &str) -> bool {
    let below = |m: &str| path == m || path.starts_with(&format!("{m}/"));
    MOUNT_POINTS.iter().any(|m| below(m))
        || cfg
            .spec
            .volumes
            .iter()
            .any(|v| below(v.container.trim_end_matches('/')))
}

/// A container path inside one of its `-v` binds: (the bind's host directory, the path below
/// it, suffixes such as a trailing `/` or `/.` kept). The deepest bind wins.
pub fn volume_path(cfg: &ContainerConfig, path: &str) -> Option<(PathBuf, String)> {
    cfg.spec
        .volumes
        .iter()
        .filter_map(|v| {
            let dest = v.container.trim_end_matches('/');
            let rest = path.strip_prefix(dest)?;
            (rest.is_empty() || rest.starts_with('/')).then(|| {
                let rest = if rest.is_empty() { "/" } else { rest };
                (dest.len(), PathBuf::from(&v.host), rest.to_string())
            })
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, host, rest)| (host, rest))
}

/// Runs `f` on the container's merged filesystem (a host path): the live mount while the
/// container runs, else a temporary mount that is undone afterwards.
pub fn with_rootfs<T>(c: &Container, f: impl FnOnce(&Path) -> T) -> Result<T> {
    if running_pid(c).is_some() {
        return Ok(f(&c.rootfs()));
    }
    // Stopped: the container's lock keeps a `start` from mounting the same upper meanwhile.
    let _lock = c.lock()?;
    if c.state().is_ok_and(|st| crate::state::is_running(&st)) {
        drop(_lock);
        return Ok(f(&c.rootfs()));
    }
    let cfg = c.config()?;
    let mnt: PathBuf = c
        .dir
        .join(format!("{}{}", PRIVATE_MOUNT, std::process::id()));
    std::fs::create_dir_all(&mnt).map_err(Error::io("create", &mnt))?;
    // Tied to this process: its FUSE daemon (which inherits the container's lock) dies with
    // a command killed half way, so neither the lock nor a live mount outlives it (`rm`
    // detaches the dead mount).
    let daemon = match c.mount_rootfs_tied(&mnt, &cfg.lowers) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = std::fs::remove_dir(&mnt);
            return Err(e);
        }
    };
    let out = f(&mnt);
    let unmounted = unmount_rootfs(&mnt);
    let _ = std::fs::remove_dir(&mnt);
    unmounted?;
    reap_daemon(daemon);
    Ok(out)
}

/// `docker diff`: the container's changes, mount points left out.
pub fn diff(c: &Container) -> Result<Vec<Change>> {
    let cfg = c.config()?;
    let skip = |p: &str| is_mount_point(&cfg, p);
    changes(&c.upper(), &cfg.lowers, &skip).map_err(|e| Error::Images(e.into()))
}

/// `docker commit`: the container's upper as a new image on top of its image (the
/// container paused meanwhile with `pause`; renamed directories are taken whole from the
/// merged view). Returns the new image's record.
pub fn commit_container(
    images: &ImageStore,
    c: &Container,
    opts: &CommitOptions,
    pause: bool,
) -> Result<ImageRecord> {
    let cfg = c.config()?;
    let (rec, _) = images.find(&cfg.image_id)?;
    let paused = match (pause, running_pid(c)) {
        (true, Some(pid)) => Some(crate::live::pause(pid)?),
        _ => None,
    };
    let skip = |p: &str| is_mount_point(&cfg, p);
    let out = with_rootfs(c, |merged| {
        commit(images, &rec, &c.upper(), Some(merged), opts, &skip)
    });
    drop(paused);
    Ok(out??)
}

/// docker's Config.Entrypoint and Config.Cmd of a container, recovered from its command line
/// and its image's entrypoint: the entrypoint when the command starts with it, the rest Cmd.
pub fn entrypoint_and_cmd(
    args: &[String],
    image_entrypoint: Option<&[String]>,
) -> (Option<Vec<String>>, Vec<String>) {
    match image_entrypoint {
        Some(ep) if !ep.is_empty() && args.starts_with(ep) => {
            (Some(ep.to_vec()), args[ep.len()..].to_vec())
        }
        _ => (None, args.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_binds() {
        let mut spec: crate::spec::RunSpec = serde_json::from_value(serde_json::json!({
            "args": ["sh"], "env": [], "cwd": "/", "user": {"uid": 0, "gid": 0,
            "additional_gids": [], "home": "/"}, "hostname": "h", "network": "default",
            "read_only": false, "volumes": [], "memory": null, "pids_limit": null,
            "capabilities": [], "no_new_privileges": false, "masked_paths": [],
            "readonly_paths": []
        }))
        .unwrap();
        for (h, c) in [("/h/data", "/data"), ("/h/deep", "/data/deep/")] {
            spec.volumes.push(crate::spec::Volume {
                host: h.into(),
                container: c.into(),
                read_only: false,
            });
        }
        let cfg = ContainerConfig {
            id: "x".into(),
            name: "x".into(),
            image: "i".into(),
            image_id: "sha256:0".into(),
            created: 0,
            lowers: vec![],
            spec,
            restart: Default::default(),
            auto_remove: false,
            tty: false,
            stop_signal: None,
            nano_cpus: None,
            stop_timeout: None,
        };
        let v = |p: &str| volume_path(&cfg, p).map(|(h, r)| (h.display().to_string(), r));
        let pair = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(v("/data"), pair("/h/data", "/"));
        assert_eq!(v("/data/x/."), pair("/h/data", "/x/."));
        assert_eq!(v("/data/deep/y"), pair("/h/deep", "/y"));
        assert_eq!(v("/database"), None);
        assert_eq!(v("/etc"), None);
        assert!(is_mount_point(&cfg, "/data/deep"));
        assert!(is_mount_point(&cfg, "/proc/1"));
        assert!(!is_mount_point(&cfg, "/etc"));
    }

    #[test]
    fn entrypoint_split() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let ep = s(&["/bin/echo", "ep"]);
        assert_eq!(
            entrypoint_and_cmd(&s(&["/bin/echo", "ep", "x"]), Some(&ep)),
            (Some(ep.clone()), s(&["x"]))
        );
        assert_eq!(
            entrypoint_and_cmd(&s(&["sh", "-c", "x"]), Some(&ep)),
            (None, s(&["sh", "-c", "x"]))
        );
        assert_eq!(entrypoint_and_cmd(&s(&["sh"]), None), (None, s(&["sh"])));
    }
}
