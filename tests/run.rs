//! `cairn run` end to end on a busybox image: Entrypoint/Cmd/env/workdir/user semantics,
//! hostname and pid 1 inside, writes landing in the container's upper only, isolation between
//! two containers of one image, docker's exit statuses (0/1/2/126/127/137), signal
//! forwarding, volumes, `--read-only`, `--rm`, and `--memory`/`--pids-limit` through cgroups.
//! Root and FUSE required (skipped with a reason otherwise; a failure in CI). Every test has
//! its own store, so they run in parallel.

#[path = "support/run_env.rs"]
mod run_env;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use run_env::*;

#[test]
fn entrypoint_cmd_env_workdir_and_user() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    assert_eq!(env.ok(&["run", "--rm", "ep:test"]), "ep default\n");
    assert_eq!(env.ok(&["run", "--rm", "ep:test", "x", "-y"]), "ep x -y\n");
    // --entrypoint drops the image's Cmd; -e overrides the image's env; WORKDIR applies.
    let out = env.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        "-e",
        "B=cli",
        "ep:test",
        "-c",
        "echo $A $B; pwd",
    ]);
    assert_eq!(out, "img cli\n/srv\n");
    assert_eq!(
        env.ok(&["run", "--rm", "--entrypoint", "/bin/pwd", "ep:test"]),
        "/srv\n"
    );
    // Default environment, -e K from the host, --env-file.
    fs::write(env.p("envfile"), "# c\nF1=file\nF2=file\n").unwrap();
    let envfile = env.p("envfile").to_string_lossy().into_owned();
    let out = env
        .cmd(&[
            "run",
            "--rm",
            "--env-file",
            &envfile,
            "-e",
            "F2=cli",
            "-e",
            "FROM_HOST",
            "-e",
            "NOT_ON_HOST",
            "busybox:test",
            "env",
        ])
        .env("FROM_HOST", "hostval")
        .env_remove("NOT_ON_HOST")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    let has = |l: &str| lines.iter().any(|x| x == l);
    assert!(
        has("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{lines:?}"
    );
    assert!(has("HOME=/root") && has("F1=file") && has("F2=cli") && has("FROM_HOST=hostval"));
    assert!(
        !lines.iter().any(|l| l.starts_with("NOT_ON_HOST")),
        "{lines:?}"
    );
    let host = lines
        .iter()
        .find_map(|l| l.strip_prefix("HOSTNAME="))
        .unwrap();
    assert_eq!(host.len(), 12, "{host}");
    // -w is created when missing; default is /.
    assert_eq!(
        env.ok(&["run", "--rm", "-w", "/made/here", "busybox:test", "pwd"]),
        "/made/here\n"
    );
    assert_eq!(env.ok(&["run", "--rm", "busybox:test", "pwd"]), "/\n");
    // Users by name, number, with a group; supplementary groups from /etc/group.
    let id = |u: &str| env.ok(&["run", "--rm", "-u", u, "busybox:test", "id"]);
    assert_eq!(
        id("nobody"),
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
    );
    assert_eq!(
        id("app"),
        "uid=1000(app) gid=1000(app) groups=29(audio),1000(app)\n"
    );
    assert_eq!(
        id("1000:29"),
        "uid=1000(app) gid=29(audio) groups=29(audio)\n"
    );
    assert_eq!(id("4242"), "uid=4242 gid=0(root) groups=0(root)\n");
    assert_eq!(
        env.ok(&["run", "--rm", "busybox:test", "id"]),
        "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n"
    );
    let home = env.ok(&[
        "run",
        "--rm",
        "-u",
        "app",
        "busybox:test",
        "sh",
        "-c",
        "echo $HOME",
    ]);
    assert_eq!(home, "/home/app\n");
    // Capabilities: docker's default set for root, none effective for others.
    let caps = env.ok(&[
        "run",
        "--rm",
        "busybox:test",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(caps, "CapEff:\t00000000a80425fb\n");
    let caps = env.ok(&[
        "run",
        "--rm",
        "-u",
        "app",
        "busybox:test",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(caps, "CapEff:\t0000000000000000\n");
    let out = env.run(&["run", "--rm", "-u", "ghost", "busybox:test", "id"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("unable to find user ghost"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["run", "--rm", "-w", "rel", "busybox:test", "pwd"]);
    assert_eq!(code(&out), 125);
    assert!(
        env.containers().is_empty(),
        "--rm left {:?}",
        env.containers()
    );
}

#[test]
fn hostname_pid1_and_mounts_inside() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let out = env.ok(&[
        "run", "--rm", "--hostname", "box", "busybox:test", "sh", "-c",
        "hostname; cat /etc/hostname; echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o pid,comm | wc -l",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "box",
            "box",
            "1",
            "sh -c hostname; cat /etc/hostname; echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o pid,comm | wc -l "
        ]
    );
    // ps sees only the container's processes: header, sh, ps, wc.
    assert_eq!(lines[4].trim(), "4", "{out}");
    // Default hostname: the short container id.
    env.ok(&[
        "run",
        "--name",
        "hn",
        "busybox:test",
        "sh",
        "-c",
        "hostname > /h",
    ]);
    let dir = env.container("hn");
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(id.len(), 64);
    assert_eq!(
        fs::read_to_string(dir.join("upper/h")).unwrap(),
        format!("{}\n", &id[..12])
    );
    // Masked and read-only paths, /dev, /sys read-only.
    let out = env.ok(&[
        "run", "--rm", "busybox:test", "sh", "-c",
        "cat /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug 2>/dev/null | wc -c; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname || echo ro; \
         ls /dev | tr '\\n' ' '; echo; touch /sys/x 2>/dev/null || echo sysro; echo data > /dev/shm/f && cat /dev/shm/f",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "{out}");
    assert_eq!(lines[1].trim(), "0", "{out}");
    assert_eq!(lines[2], "ro", "{out}");
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "fd",
    ] {
        assert!(lines[3].split(' ').any(|x| x == d), "/dev lacks {d}: {out}");
    }
    assert_eq!(lines[4..], ["sysro", "data"], "{out}");
    // --network none: only loopback.
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox:test",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(out, "lo\n");
}

#[test]
fn writes_land_in_the_upper_and_containers_are_isolated() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "--name",
        "ca",
        "busybox:test",
        "sh",
        "-c",
        "echo mine > /newfile && echo changed >> /etc/image-file && rm /bin/vi",
    ]);
    let a = env.container("ca");
    assert_eq!(
        fs::read_to_string(a.join("upper/newfile")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        fs::read_to_string(a.join("upper/etc/image-file")).unwrap(),
        "from the image\nchanged\n"
    );
    // The layers are untouched.
    let layers: Vec<PathBuf> = fs::read_dir(env.store().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path().join("diff"))
        .filter(|p| p.is_dir())
        .collect();
    assert!(!layers.is_empty());
    for l in &layers {
        assert!(!l.join("newfile").exists());
        assert_eq!(
            fs::read_to_string(l.join("etc/image-file")).unwrap(),
            "from the image\n"
        );
        assert!(l.join("bin/vi").exists());
    }
    // The container is kept (no --rm), unmounted, with its exit status.
    let state = fs::read_to_string(a.join("state.json")).unwrap();
    assert!(
        state.contains("\"exited\"") && state.contains("\"exit_code\": 0"),
        "{state}"
    );
    assert!(!mounts().contains(&a.join("rootfs").to_string_lossy().into_owned()));
    // A second container of the same image sees the image, not the first one's writes.
    let out = env.ok(&[
        "run",
        "--name",
        "cb",
        "busybox:test",
        "sh",
        "-c",
        "cat /etc/image-file; test -e /newfile && echo leak; test -e /bin/vi && echo vi",
    ]);
    assert_eq!(out, "from the image\nvi\n");
    assert!(!env.container("cb").join("upper/newfile").exists());
    // Names are unique.
    let out = env.run(&["run", "--name", "ca", "busybox:test", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("is already in use"),
        "{}",
        stderr(&out)
    );
    // --rm removes the container dir.
    env.ok(&["run", "--rm", "--name", "gone", "busybox:test", "true"]);
    assert!(env.containers().iter().all(|(n, _)| n != "gone"));
}

fn mounts() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

#[test]
fn exit_codes_follow_docker() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let status = |args: &[&str]| {
        let mut a = vec!["run", "--rm", "busybox:test"];
        a.extend_from_slice(args);
        env.run(&a)
    };
    assert_eq!(code(&status(&["true"])), 0);
    assert_eq!(code(&status(&["false"])), 1);
    assert_eq!(code(&status(&["sh", "-c", "exit 2"])), 2);
    let out = status(&["/etc/passwd"]);
    assert_eq!(code(&out), 126);
    assert!(
        stderr(&out).contains("exec: \"/etc/passwd\": permission denied"),
        "{}",
        stderr(&out)
    );
    let out = status(&["nosuchcommand"]);
    assert_eq!(code(&out), 127);
    assert!(
        stderr(&out).contains("exec: \"nosuchcommand\": executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&status(&["/no/such/file"])), 127);
    // A signal that kills pid 1 gives 128+N. (`sh -c 'kill -9 $$'` does not: the kernel
    // ignores signals sent to a pid namespace's init from inside it, as with docker.)
    assert_eq!(
        code(&status(&["sh", "-c", "sleep 10 & kill -9 $!; wait $!"])),
        137
    );
    let child = env
        .cmd(&["run", "--name", "killed", "busybox:test", "sleep", "30"])
        .spawn()
        .unwrap();
    let pid = wait_for_pid(&env, "killed");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 137);
    let state = fs::read_to_string(env.container("killed").join("state.json")).unwrap();
    assert!(state.contains("\"exit_code\": 137"), "{state}");
}

#[test]
fn signals_are_forwarded_to_pid_1() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let child = env
        .cmd(&[
            "run",
            "--name",
            "sig",
            "busybox:test",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 3' TERM; echo ready > /ready; sleep 30 & wait",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pid(&env, "sig");
    let ready = env.container("sig").join("upper/ready");
    let start = Instant::now();
    while !ready.exists() {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 3);
    assert_eq!(stdout(&out), "got TERM\n");
}

#[test]
fn volumes_read_only_and_stdin() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    fs::create_dir(env.p("vol")).unwrap();
    fs::write(env.p("vol/f"), "host\n").unwrap();
    let rw = format!("{}:/data", env.p("vol").display());
    let ro = format!("{}:/rodata:ro", env.p("vol").display());
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        &rw,
        "-v",
        &ro,
        "busybox:test",
        "sh",
        "-c",
        "cat /data/f; echo new > /data/g; echo x > /rodata/h 2>/dev/null || echo refused",
    ]);
    assert_eq!(out, "host\nrefused\n");
    assert_eq!(fs::read_to_string(env.p("vol/g")).unwrap(), "new\n");
    assert!(!env.p("vol/h").exists());
    let out = env.ok(&[
        "run",
        "--rm",
        "--read-only",
        "busybox:test",
        "sh",
        "-c",
        "touch /x 2>/dev/null || echo rofs; touch /dev/shm/ok && echo shm",
    ]);
    assert_eq!(out, "rofs\nshm\n");
    // stdin: attached with -i, /dev/null without (docker's behaviour).
    let feed = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut ch = c.spawn().unwrap();
        use std::io::Write;
        ch.stdin.take().unwrap().write_all(b"piped\n").unwrap();
        stdout(&ch.wait_with_output().unwrap())
    };
    assert_eq!(
        feed(&["run", "--rm", "-i", "busybox:test", "cat"]),
        "piped\n"
    );
    assert_eq!(feed(&["run", "--rm", "busybox:test", "cat"]), "");
}

#[test]
fn memory_and_pids_limits() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    // A 64 MB shell variable: fine without a limit, killed by the OOM killer under 16m.
    let big = "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x}";
    assert_eq!(
        env.ok(&["run", "--rm", "busybox:test", "sh", "-c", big]),
        "64000000\n"
    );
    let out = env.run(&[
        "run",
        "--rm",
        "--memory",
        "16m",
        "busybox:test",
        "sh",
        "-c",
        big,
    ]);
    assert_eq!(code(&out), 137, "{}", stderr(&out));
    let out = env.run(&["run", "--rm", "--memory", "1m", "busybox:test", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("Minimum memory limit"),
        "{}",
        stderr(&out)
    );
    // pids.max = 4: the fifth process cannot be forked.
    let out = env.run(&[
        "run", "--name", "lim", "--pids-limit", "4", "busybox:test", "sh", "-c",
        "for i in 1 2 3 4 5 6; do sleep 5 & done 2>/dev/null; echo forked; kill $(jobs -p) 2>/dev/null; true",
    ]);
    assert!(
        stderr(&out).contains("can't fork") || code(&out) != 0,
        "{out:?}"
    );
    // The container's cgroups are gone afterwards.
    let dir = env.container("lim");
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    for base in [
        "/sys/fs/cgroup/cairn",
        "/sys/fs/cgroup/memory/cairn",
        "/sys/fs/cgroup/pids/cairn",
    ] {
        assert!(!Path::new(base).join(&id).exists(), "{base}/{id} left");
    }
}

#[test]
fn an_image_stays_while_a_container_uses_it() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    env.ok(&["run", "--name", "user", "busybox:test", "true"]);
    let out = env.run(&["rmi", "busybox:test"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("being used by container"),
        "{}",
        stderr(&out)
    );
    // -f takes the name away; the image and its layers stay for the container.
    let out = env.ok(&["rmi", "-f", "busybox:test"]);
    assert_eq!(out.trim(), "Untagged: busybox:test");
    env.ok(&["image", "prune", "-af"]);
    let left = env.ok(&["images", "-q", "--filter", "dangling=true"]);
    assert_eq!(left.lines().count(), 1, "{left}");
    let lowers = fs::read_to_string(env.container("user").join("config.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&lowers).unwrap();
    for l in v["lowers"].as_array().unwrap() {
        assert!(
            std::path::Path::new(l.as_str().unwrap()).is_dir(),
            "{l} removed"
        );
    }
    env.ok(&["system", "check"]);
}
