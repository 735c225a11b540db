//! `cairn bundle` end to end: an OCI bundle of a busybox image that runc runs (config.json
//! carrying every field `runc spec` writes, the process's output, hostname and user, limits
//! and `--network host`), writes of the runc container landing in cairn's upper and in no image
//! layer, `--rm-mount` releasing the mount, and a bad image or a non-empty DIR failing with
//! status 125 and leaving nothing behind. Root, FUSE and runc required (skipped with a reason
//! otherwise; a failure in CI). Every test has its own store and state dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[path = "support/run_env.rs"]
mod run_env;

use run_env::Env;

fn have_runc() -> bool {
    Command::new("runc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Returns false (after printing why) when this test cannot run here; panics in CI.
fn can_run(needs_runc: bool) -> bool {
    if !run_env::can_run() {
        return false;
    }
    if !needs_runc || have_runc() {
        return true;
    }
    let why = "runc not installed (apt-get install runc)";
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "cannot run in CI: {why}"
    );
    eprintln!("skipping: {why}");
    false
}

impl Env {
    /// Container directories in the store.
    fn container_dirs(&self) -> Vec<PathBuf> {
        self.containers().into_iter().map(|(_, dir)| dir).collect()
    }

    /// `cairn bundle ARGS`; returns the bundle and a guard that releases its mount.
    fn bundle(&self, args: &[&str]) -> (PathBuf, Release<'_>) {
        let out = self.ok(&[&["bundle"], args].concat());
        let dir = PathBuf::from(out.trim());
        assert!(dir.is_absolute(), "printed {out:?}");
        (dir.clone(), Release { env: self, dir })
    }
}

/// Releases a bundle's mount when dropped (also when the test fails).
struct Release<'a> {
    env: &'a Env,
    dir: PathBuf,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if is_mounted(&self.dir.join("rootfs")) {
            let _ = self
                .env
                .run(&["bundle", "--rm-mount", &self.dir.to_string_lossy()]);
        }
    }
}

fn is_mounted(p: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = p.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

/// `runc run` of the bundle with its own state dir and a unique id; stdin null.
fn runc_run(env: &Env, bundle: &Path) -> Output {
    let state = env.p("runc-state");
    fs::create_dir_all(&state).unwrap();
    let id = format!("cid-{:016x}", rand::random::<u64>());
    Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .expect("run runc")
}

fn config(bundle: &Path) -> Value {
    serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap()
}

/// Every object key of `reference` (recursively, arrays skipped) is in `ours`.
fn missing_keys(reference: &Value, ours: &Value, at: &str, out: &mut Vec<String>) {
    if let Value::Object(r) = reference {
        for (k, v) in r {
            let path = format!("{at}.{k}");
            match ours.get(k) {
                Some(o) => missing_keys(v, o, &path, out),
                None => out.push(path),
            }
        }
    }
}

#[test]
fn runc_runs_the_bundle_and_writes_land_in_the_upper() {
    if !can_run(true) {
        return;
    }
    let env = Env::new();
    let target = env.p("bundle");
    let script = "echo hello from runc; hostname; id -u; echo data > /written";
    let (dir, _release) = env.bundle(&[
        "busybox:test",
        &target.to_string_lossy(),
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(dir, fs::canonicalize(&target).unwrap());
    assert!(is_mounted(&dir.join("rootfs")), "rootfs not mounted");

    // Every field `runc spec` writes is there, with the values asked for.
    let reference_dir = env.p("reference");
    fs::create_dir_all(&reference_dir).unwrap();
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&reference_dir)
        .status()
        .unwrap();
    assert!(st.success());
    let cfg = config(&dir);
    let mut missing = vec![];
    missing_keys(&config(&reference_dir), &cfg, "", &mut missing);
    assert!(missing.is_empty(), "config.json lacks {missing:?}");
    assert_eq!(cfg["ociVersion"], "1.0.2");
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert_eq!(cfg["root"]["readonly"], false);
    assert_eq!(cfg["process"]["terminal"], false);
    assert_eq!(cfg["process"]["args"][2], script);
    assert_eq!(
        cfg["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        14
    );
    let ns: Vec<&str> = cfg["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["pid", "network", "ipc", "uts", "mount", "cgroup"]);

    let out = runc_run(&env, &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "runc: {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"hello from runc"), "{stdout}");
    assert_eq!(lines.get(1).copied(), cfg["hostname"].as_str(), "{stdout}");
    assert_eq!(lines.get(2), Some(&"0"), "{stdout}");

    // The write went to the cairn container's upper, and into no image layer.
    let containers = env.container_dirs();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let c = &containers[0];
    assert_eq!(
        cfg["annotations"]["org.cairn.container.dir"],
        c.to_string_lossy().as_ref()
    );
    assert_eq!(
        fs::read_to_string(c.join("upper/written")).unwrap(),
        "data\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join("rootfs/written")).unwrap(),
        "data\n"
    );
    for layer in fs::read_dir(env.store().join("layers")).unwrap() {
        let diff = layer.unwrap().path().join("diff");
        assert!(diff.is_dir(), "{}", diff.display());
        assert!(!diff.join("written").exists(), "{} has it", diff.display());
    }

    env.ok(&["bundle", "--rm-mount", &dir.to_string_lossy()]);
    assert!(!is_mounted(&dir.join("rootfs")));
    assert!(!dir.join("rootfs/bin").exists());
    // The upper stays with the container.
    assert!(c.join("upper/written").exists());
    // Releasing twice says it is not mounted.
    let again = env.run(&["bundle", "--rm-mount", &dir.to_string_lossy()]);
    assert_eq!(again.status.code(), Some(125));
}

#[test]
fn options_reach_the_runc_container() {
    if !can_run(true) {
        return;
    }
    let env = Env::new();
    let target = env.p("b2");
    let (dir, _release) = env.bundle(&[
        "--name",
        "bundled",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "X=from-e",
        "--hostname",
        "box",
        "--network",
        "host",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "busybox:test",
        &target.to_string_lossy(),
        "sh",
        "-c",
        "id -u; pwd; echo $X; hostname; ip -o link | wc -l; touch /tmp/by-nobody",
    ]);
    let cfg = config(&dir);
    let ns = cfg["linux"]["namespaces"].as_array().unwrap();
    assert!(!ns.iter().any(|n| n["type"] == "network"), "{ns:?}");
    assert_eq!(cfg["linux"]["resources"]["memory"]["limit"], 64 << 20);
    assert_eq!(cfg["linux"]["resources"]["pids"]["limit"], 50);
    let out = runc_run(&env, &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "runc: {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..4], ["65534", "/tmp", "from-e", "box"], "{stdout}");
    // The host's network: more than loopback when the host has more.
    let host_links = Command::new("/bin/busybox")
        .args(["ip", "-o", "link"])
        .output()
        .unwrap();
    let host_links = String::from_utf8_lossy(&host_links.stdout).lines().count();
    assert_eq!(lines[4].trim(), host_links.to_string(), "{stdout}");
    let c = env.container("bundled");
    assert!(c.join("upper/tmp/by-nobody").exists());
    env.ok(&["umount", &dir.join("rootfs").to_string_lossy()]);
    assert!(!is_mounted(&dir.join("rootfs")));
}

#[test]
fn failures_leave_nothing_behind() {
    if !can_run(false) {
        return;
    }
    let env = Env::new();
    // A bad image: 125, no DIR, no container, no mount.
    let target = env.p("never");
    let out = env.run(&["bundle", "nosuch:image", &target.to_string_lossy(), "true"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    assert!(!target.exists());
    assert!(env.container_dirs().is_empty());
    assert!(!is_mounted(&target.join("rootfs")));
    // An existing empty DIR stays, empty.
    let empty = env.p("empty");
    fs::create_dir(&empty).unwrap();
    let out = env.run(&["bundle", "nosuch:image", &empty.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
    // A bad option (relative workdir) fails before anything is made.
    let out = env.run(&[
        "bundle",
        "-w",
        "rel",
        "busybox:test",
        &target.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(!target.exists() && env.container_dirs().is_empty());
    // A DIR with something in it is refused.
    fs::write(empty.join("keep"), "x").unwrap();
    let out = env.run(&["bundle", "busybox:test", &empty.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("empty"),
        "{out:?}"
    );
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 1);
    assert!(env.container_dirs().is_empty());
}
