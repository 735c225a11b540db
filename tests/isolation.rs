//! What a container cannot reach: device nodes outside docker's allow-list (made in the
//! container or shipped in the image), system calls outside docker's seccomp profile; and the
//! opt-ins (`--device`, `--privileged`, `--security-opt seccomp=…`, `--cap-add`). Also the
//! host directories `-v` creates and `--network bridge`. Root and FUSE required.
//!
//! Device numbers are chosen so a broken policy cannot harm the host: block 60:250 (a major
//! reserved for local use; loop devices, 7:N, are created on open) and char
//! 1:250 name no device here, so an open the policy wrongly allows fails with ENXIO ("No
//! such device or address") instead of EPERM — the test tells the two apart, nothing is
//! ever written to a real device.

#[path = "support/run_env.rs"]
mod run_env;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use run_env::*;

const EPERM: &str = "Operation not permitted";
const EACCES: &str = "Permission denied";
const ENXIO: &str = "No such device or address";

/// `sh -c SCRIPT` in a fresh container of `image` with `flags`; (exit status, stdout+stderr).
fn sh(env: &Env, flags: &[&str], image: &str, script: &str) -> (i32, String) {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend([image, "sh", "-c", script]);
    let out = env.run(&args);
    (code(&out), stdout(&out) + &stderr(&out))
}

/// An image of busybox plus device nodes: /blk (block 60:250) and /chr (char 1:250), both
/// mode 0666 — as a hostile image would ship them.
fn image_with_devices(env: &Env) {
    let rootfs = env.p("rootfs");
    for (name, kind, major) in [("blk", "b", "60"), ("chr", "c", "1")] {
        let st = Command::new("mknod")
            .args(["-m", "0666"])
            .arg(rootfs.join(name))
            .args([kind, major, "250"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let tar = env.p("devs.tar");
    tar_dir(&rootfs, &tar);
    let tar = tar.to_string_lossy().into_owned();
    env.ok(&["import", "-c", "CMD [\"/bin/sh\"]", &tar, "devs:test"]);
}

#[test]
fn only_the_default_devices_can_be_opened() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    image_with_devices(&env);
    // The standard nodes work (/dev/full is really opened: writing it gives ENOSPC).
    let (c, out) = sh(
        &env,
        &[],
        "devs:test",
        "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c \
         && head -c 4 /dev/random | wc -c && (echo x > /dev/full; true) && ls /dev/pts/ptmx",
    );
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("No space left on device"), "{out}");
    assert_eq!(out.matches("4\n").count(), 3, "{out}");
    // Made in the container, in /dev (a tmpfs that allows nodes): the policy refuses.
    for node in ["mknod /dev/b b 60 250", "mknod /dev/b c 1 250"] {
        let (c, out) = sh(
            &env,
            &[],
            "devs:test",
            &format!("{node} && echo x > /dev/b"),
        );
        assert_ne!(c, 0, "{node}: {out}");
        assert!(out.contains(EPERM) && !out.contains(ENXIO), "{node}: {out}");
        // Reading too.
        let (c, out) = sh(
            &env,
            &[],
            "devs:test",
            &format!("{node} && head -c1 /dev/b"),
        );
        assert_ne!(c, 0, "{node}: {out}");
        assert!(out.contains(EPERM), "{node}: {out}");
    }
    // Made elsewhere (the union, mounted nodev) or shipped in the image: unusable, for root
    // and for an unprivileged user, though the image's nodes are mode 0666.
    let (c, out) = sh(
        &env,
        &[],
        "devs:test",
        "mknod /tmp/b b 60 250 && head -c1 /tmp/b",
    );
    assert_ne!(c, 0, "{out}");
    assert!(out.contains(EACCES) && !out.contains(ENXIO), "{out}");
    for user in [&[][..], &["-u", "1000"][..]] {
        for path in ["/blk", "/chr"] {
            for op in ["head -c1", "echo x >"] {
                let (c, out) = sh(&env, user, "devs:test", &format!("{op} {path}"));
                assert_ne!(c, 0, "{user:?} {op} {path}: {out}");
                assert!(
                    (out.contains(EACCES) || out.contains(EPERM)) && !out.contains(ENXIO),
                    "{user:?} {op} {path}: {out}"
                );
            }
        }
    }
    // The image's nodes are still in the layer.
    let (c, out) = sh(&env, &[], "devs:test", "ls -l /blk /chr");
    assert_eq!(c, 0, "{out}");
    assert!(out.starts_with('b') && out.contains("\nc"), "{out}");
}

#[test]
fn device_and_privileged_open_devices() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    // A host device outside the allow-list: refused by default, usable with --device.
    let host = "/dev/loop-control";
    if std::path::Path::new(host).exists() {
        let (c, out) = sh(
            &env,
            &[],
            "busybox:test",
            "mknod /dev/lc c 10 237 && head -c0 /dev/lc",
        );
        assert_ne!(c, 0, "{out}");
        assert!(out.contains(EPERM), "{out}");
        let flag = format!("{host}:/dev/lc");
        let (c, out) = sh(
            &env,
            &["--device", &flag],
            "busybox:test",
            "ls -l /dev/lc && head -c0 /dev/lc && echo opened",
        );
        assert_eq!(c, 0, "{out}");
        assert!(out.contains("opened") && out.contains("10, 237"), "{out}");
        // Read-only permission: reading works, writing is refused by the policy.
        let flag = format!("{host}:/dev/lc:r");
        let (c, out) = sh(
            &env,
            &["--device", &flag],
            "busybox:test",
            "echo x > /dev/lc",
        );
        assert_ne!(c, 0, "{out}");
        assert!(out.contains(EPERM), "{out}");
    } else {
        eprintln!("no {host}: --device not checked");
    }
    // --privileged: the policy allows every device (the open reaches the kernel's driver
    // lookup: ENXIO for a number with no device), every capability, no seccomp filter.
    let (c, out) = sh(
        &env,
        &["--privileged"],
        "busybox:test",
        "grep -E '^(Seccomp|CapBnd)' /proc/self/status; grep ' /sys ' /proc/mounts; \
         mknod /tmp/b b 60 250 && head -c1 /tmp/b",
    );
    assert_ne!(c, 0, "{out}");
    assert!(out.contains(ENXIO), "{out}");
    assert!(out.contains("Seccomp:\t0"), "{out}");
    assert!(out.contains("/sys sysfs rw"), "{out}");
    let (_, out) = sh(&env, &[], "busybox:test", "grep ' /sys ' /proc/mounts");
    assert!(out.contains("/sys sysfs ro"), "{out}");
    // Bad --device values: one line, exit 125, nothing created.
    for bad in [
        "/nonexistent-dev",
        "/etc/passwd",
        "/dev/null:/x:rwq",
        "relative",
    ] {
        let out = env.run(&["run", "--rm", "--device", bad, "busybox:test", "true"]);
        assert_eq!(code(&out), 125, "{bad}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{bad}: {}", stderr(&out));
    }
    assert!(env.containers().is_empty());
}

#[test]
fn seccomp_default_unconfined_and_custom_profiles() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let (c, out) = sh(
        &env,
        &[],
        "busybox:test",
        "grep Seccomp: /proc/self/status; unshare -U true",
    );
    assert_ne!(c, 0, "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains(EPERM), "{out}");
    // Also under a user other than root, and for mount (needs CAP_SYS_ADMIN).
    let (c, out) = sh(&env, &["-u", "1000"], "busybox:test", "unshare -U true");
    assert_ne!(c, 0, "{out}");
    let (c, out) = sh(&env, &[], "busybox:test", "mkdir /m && mount -t tmpfs t /m");
    assert_ne!(c, 0, "{out}");
    // unconfined: no filter, the user namespace is created.
    let (c, out) = sh(
        &env,
        &["--security-opt", "seccomp=unconfined"],
        "busybox:test",
        "grep Seccomp: /proc/self/status; unshare -U true && echo made",
    );
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("Seccomp:\t0") && out.contains("made"), "{out}");
    // CAP_SYS_ADMIN opens the capability-conditional rules (as docker's profile says).
    let (c, out) = sh(
        &env,
        &["--cap-add", "SYS_ADMIN"],
        "busybox:test",
        "grep Seccomp: /proc/self/status; unshare -U true && echo made",
    );
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("Seccomp:\t2") && out.contains("made"), "{out}");
    // A custom profile in docker's format: everything allowed but mkdir.
    let profile = env.p("no-mkdir.json");
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let (c, out) = sh(
        &env,
        &["--security-opt", &opt],
        "busybox:test",
        "touch /tmp/f && echo touched; mkdir /tmp/d",
    );
    assert_ne!(c, 0, "{out}");
    assert!(out.contains("touched") && out.contains(EPERM), "{out}");
    // A broken profile: one line, exit 125, no container.
    fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_BOGUS"}"#).unwrap();
    let out = env.run(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox:test",
        "true",
    ]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(stderr(&out).contains("SCMP_ACT_BOGUS"), "{}", stderr(&out));
    assert!(env.containers().is_empty());
}

#[test]
fn exec_gets_the_container_filter() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "sec1",
        "busybox:test",
        "sleep",
        "1000",
    ]);
    wait_for_pid(&env, "sec1");
    let out = env.run(&[
        "exec",
        "sec1",
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; unshare -U true",
    ]);
    env.ok(&["rm", "-f", "sec1"]);
    let all = stdout(&out) + &stderr(&out);
    assert!(all.contains("Seccomp:\t2") && all.contains(EPERM), "{all}");
}

#[test]
fn volumes_create_host_dirs_0755_and_bridge_is_refused() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let host = env.p("missing/a/b");
    let v = format!("{}:/x", host.display());
    env.ok(&["run", "--rm", "-v", &v, "busybox:test", "true"]);
    for d in ["missing", "missing/a", "missing/a/b"] {
        let mode = fs::metadata(env.p(d)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{d}");
    }
    let out = env.run(&["run", "--rm", "--network", "bridge", "busybox:test", "true"]);
    assert_eq!(code(&out), 125);
    let err = stderr(&out);
    assert!(
        err.contains("'bridge' is not supported") && err.contains("host") && err.contains("none"),
        "{err}"
    );
    assert!(env.containers().is_empty());
}
