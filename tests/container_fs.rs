//! The container filesystem and exec commands end to end on a busybox image: `exec` into a
//! running container (its hostname, pid namespace, env, `-w`, `-u`, exit statuses, not
//! running), `top`, `inspect` of a container, `diff` in docker's format, `cp` both ways on a
//! running and a stopped container without escaping its root, `commit` (config changes,
//! history, whiteouts, `save` → skopeo) and `export`. Root and FUSE required (skipped with a
//! reason otherwise; a failure in CI). Every test has its own store.

#[path = "support/run_env.rs"]
mod run_env;

use std::fs;
use std::process::{Child, Command, Stdio};

use run_env::*;

/// A foreground `cairn run --name NAME IMAGE sleep 1000` in the background; killed on drop.
struct Running<'a> {
    env: &'a Env,
    child: Child,
    pid: i32,
}

impl<'a> Running<'a> {
    fn start(env: &'a Env, name: &str, image: &str) -> Running<'a> {
        Running::start_with(env, name, &[image])
    }

    /// Same, with run options before the image (`args` ends with the image).
    fn start_with(env: &'a Env, name: &str, args: &[&str]) -> Running<'a> {
        let mut all = vec!["run", "--name", name];
        all.extend_from_slice(args);
        all.extend_from_slice(&["sleep", "1000"]);
        let child = env
            .cmd(&all)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cairn run");
        let pid = wait_for_pid(env, name);
        Running { env, child, pid }
    }

    /// Ends the container and waits for `cairn run` to clean up.
    fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.kill();
        let _ = self.env;
    }
}

#[test]
fn exec_top_and_inspect_of_a_running_container() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let r = Running::start(&env, "web", "busybox:test");
    let dir = env.container("web");
    let hostname = fs::read_to_string(dir.join("hostname")).unwrap();
    assert_eq!(env.ok(&["exec", "web", "hostname"]), hostname);
    // The container's pid namespace: pid 1 is its command, and ps sees only the container.
    assert_eq!(
        env.ok(&["exec", "web", "cat", "/proc/1/cmdline"]),
        "sleep\u{0}1000\u{0}"
    );
    let ps = env.ok(&["exec", "web", "ps", "-o", "pid,args"]);
    let procs: Vec<&str> = ps.lines().skip(1).map(str::trim).collect();
    assert_eq!(procs.len(), 2, "{ps}");
    assert!(procs[0].starts_with("1 sleep 1000"), "{ps}");
    // Env, -e, -w, -u.
    let out = env.ok(&[
        "exec",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "web",
        "sh",
        "-c",
        "echo $X $HOME; pwd; env",
    ]);
    assert!(out.starts_with("1 /root\n/tmp\n"), "{out}");
    assert!(out.contains(&format!("HOSTNAME={hostname}")), "{out}");
    assert_eq!(
        env.ok(&[
            "exec",
            "-u",
            "app",
            "web",
            "sh",
            "-c",
            "id -u; id -g; echo $HOME"
        ]),
        "1000\n1000\n/home/app\n"
    );
    assert_eq!(env.ok(&["exec", "-u", "0:10", "web", "id", "-g"]), "10\n");
    // The process joins the container's cgroup namespace and mount namespace.
    assert_eq!(
        env.ok(&["exec", "web", "cat", "/etc/image-file"]),
        "from the image\n"
    );
    // Exit statuses.
    assert_eq!(code(&env.run(&["exec", "web", "sh", "-c", "exit 3"])), 3);
    let o = env.run(&["exec", "web", "nope"]);
    assert_eq!(code(&o), 127);
    assert!(
        stderr(&o).contains("executable file not found"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["exec", "web", "/etc/image-file"]);
    assert_eq!(code(&o), 126, "{}", stderr(&o));
    // -i passes stdin, -d returns at once.
    let mut c = env.cmd(&["exec", "-i", "web", "cat"]);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    assert_eq!(stdout(&child.wait_with_output().unwrap()), "piped\n");
    env.ok(&["exec", "-d", "web", "sh", "-c", "echo bg > /tmp/bg"]);
    let mut waited = 0;
    while env.run(&["exec", "web", "cat", "/tmp/bg"]).stdout != b"bg\n" {
        waited += 1;
        assert!(waited < 200, "exec -d never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // -t: a terminal inside (through script(1), which gives us one).
    if Command::new("script").arg("--version").output().is_ok() {
        let line = format!("{CAIRN} --root {} exec -t web tty", env.store().display());
        let o = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "/dev/pts/0");
    }
    // The container form.
    assert_eq!(env.ok(&["container", "exec", "web", "echo", "hi"]), "hi\n");
    // top lists the sleep with ps -ef's columns.
    let top = env.ok(&["top", "web"]);
    let mut lines = top.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with("root"), "{top}");
    assert!(
        row.contains(&r.pid.to_string()) && row.ends_with("sleep 1000"),
        "{top}"
    );
    // inspect: containers first, docker's fields.
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "web"])).unwrap();
    let c = &v[0];
    assert_eq!(c["Name"], "/web");
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Pid"], r.pid);
    assert_eq!(c["Path"], "sleep");
    assert_eq!(c["Args"], serde_json::json!(["1000"]));
    assert_eq!(c["Config"]["Hostname"], hostname.trim());
    assert_eq!(c["GraphDriver"]["Name"], "cairn");
    for k in ["UpperDir", "WorkDir", "MergedDir"] {
        let p = c["GraphDriver"]["Data"][k].as_str().unwrap();
        assert!(std::path::Path::new(p).is_dir(), "{k} {p}");
    }
    let lower = c["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap();
    assert!(lower.split(':').all(|p| std::path::Path::new(p).is_dir()));
    assert_eq!(
        env.ok(&[
            "container",
            "inspect",
            "-f",
            "{{.State.Status}} {{.Name}}",
            "web"
        ]),
        "running /web\n"
    );
    assert_eq!(
        env.ok(&[
            "inspect",
            "--type",
            "image",
            "-f",
            "{{.Id}}",
            "busybox:test"
        ])
        .trim()
        .len(),
        71
    );
    let o = env.run(&["inspect", "--type", "container", "busybox:test"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("No such container"), "{}", stderr(&o));
    // Stopped: exec is refused.
    r.stop();
    let o = env.run(&["exec", "web", "true"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "web"])).unwrap();
    assert_eq!(v[0]["State"]["Running"], false);
    assert_eq!(v[0]["State"]["Status"], "exited");
    assert_eq!(v[0]["State"]["ExitCode"], 137);
}

/// Runs a shell script in a new container to completion.
fn sh(env: &Env, name: &str, image: &str, script: &str) {
    env.ok(&["run", "--name", name, image, "sh", "-c", script]);
}

#[test]
fn diff_lists_docker_changes() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    sh(
        &env,
        "base",
        "busybox:test",
        "mkdir -p /data/sub /data/keep; echo a > /data/a; echo b > /data/sub/b; echo k > /data/keep/k",
    );
    assert_eq!(
        env.ok(&["diff", "base"]),
        "A /data\nA /data/a\nA /data/keep\nA /data/keep/k\nA /data/sub\nA /data/sub/b\n"
    );
    env.ok(&["commit", "base", "base:test"]);
    sh(
        &env,
        "chg",
        "base:test",
        "echo new > /tmp/new; echo x >> /etc/passwd; rm /etc/image-file; \
         rm -rf /data/sub; rm -rf /data/keep; mkdir /data/keep; echo n > /data/keep/n; \
         echo k2 > /data/keep/k",
    );
    let expected = "C /data\nC /data/keep\nC /data/keep/k\nA /data/keep/n\nD /data/sub\n\
                    C /etc\nD /etc/image-file\nC /etc/passwd\nC /tmp\nA /tmp/new\n";
    assert_eq!(env.ok(&["diff", "chg"]), expected);
    assert_eq!(env.ok(&["container", "diff", "chg"]), expected);
    // A container that changed nothing has no diff (the runtime's mount points are not
    // changes).
    sh(&env, "idle", "busybox:test", "true");
    assert_eq!(env.ok(&["diff", "idle"]), "");
}

#[test]
fn cp_both_ways_running_and_stopped_stays_inside() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let host = env.p("host");
    fs::create_dir_all(host.join("dir/sub")).unwrap();
    fs::write(host.join("dir/f"), "file f\n").unwrap();
    fs::write(host.join("dir/sub/g"), "file g\n").unwrap();
    let h = |p: &str| host.join(p).to_string_lossy().into_owned();
    let r = Running::start(&env, "web", "busybox:test");
    // Into the running container: a file into a dir, a dir to a new name, a dir's contents.
    env.ok(&["cp", &h("dir/f"), "web:/tmp/"]);
    env.ok(&["cp", &h("dir"), "web:/srv"]);
    env.ok(&["cp", &h("dir/."), "web:/root"]);
    assert_eq!(
        env.ok(&[
            "exec",
            "web",
            "cat",
            "/tmp/f",
            "/srv/sub/g",
            "/root/f",
            "/root/sub/g"
        ]),
        "file f\nfile g\nfile f\nfile g\n"
    );
    // Escapes: `..` and an absolute symlink both resolve inside the container.
    env.ok(&["exec", "web", "ln", "-s", "/", "/root/up"]);
    let marker = format!("cairn-cp-escape-{}", std::process::id());
    env.ok(&["cp", &h("dir/f"), &format!("web:/../../../tmp/{marker}")]);
    env.ok(&["cp", &h("dir/f"), &format!("web:/root/up/tmp/{marker}2")]);
    assert!(!std::path::Path::new(&format!("/tmp/{marker}")).exists());
    assert!(!std::path::Path::new(&format!("/tmp/{marker}2")).exists());
    env.ok(&[
        "exec",
        "web",
        "cat",
        &format!("/tmp/{marker}"),
        &format!("/tmp/{marker}2"),
    ]);
    env.ok(&["cp", "web:/root/up/../../etc/passwd", &h("pw")]);
    assert_eq!(fs::read_to_string(host.join("pw")).unwrap(), PASSWD);
    // Out of the running container.
    env.ok(&["cp", "web:/srv", &h("out")]);
    assert_eq!(
        fs::read_to_string(host.join("out/sub/g")).unwrap(),
        "file g\n"
    );
    let o = env.run(&["cp", "web:/nothere", &h("x")]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("Could not find the file /nothere"),
        "{}",
        stderr(&o)
    );
    // `-` streams a tar.
    let o = env.run(&["cp", "web:/etc/passwd", "-"]);
    assert_eq!(code(&o), 0);
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["passwd"]);
    // Ownership: root's in the container unless -a; -L follows a final symlink.
    rustix::fs::chown(
        host.join("dir/f"),
        Some(rustix::process::Uid::from_raw(1234)),
        Some(rustix::process::Gid::from_raw(5678)),
    )
    .unwrap();
    env.ok(&["cp", &h("dir/f"), "web:/tmp/o1"]);
    env.ok(&["cp", "-a", &h("dir/f"), "web:/tmp/o2"]);
    assert_eq!(
        env.ok(&["exec", "web", "stat", "-c", "%u:%g", "/tmp/o1", "/tmp/o2"]),
        "0:0\n1234:5678\n"
    );
    env.ok(&["exec", "web", "ln", "-s", "/etc/passwd", "/tmp/lnk"]);
    env.ok(&["cp", "web:/tmp/lnk", &h("lnk")]);
    env.ok(&["cp", "-L", "web:/tmp/lnk", &h("followed")]);
    assert!(
        host.join("lnk")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(host.join("followed")).unwrap(), PASSWD);
    r.stop();
    // A path in a -v bind is copied to and from the bind's host directory.
    let vol = env.p("vol");
    fs::create_dir_all(&vol).unwrap();
    let bind = format!("{}:/data", vol.display());
    let v = Running::start_with(&env, "withvol", &["-v", &bind, "busybox:test"]);
    env.ok(&["cp", &h("dir/f"), "withvol:/data/"]);
    assert_eq!(fs::read_to_string(vol.join("f")).unwrap(), "file f\n");
    fs::write(vol.join("on-host"), "host side\n").unwrap();
    env.ok(&["cp", "withvol:/data/on-host", &h("from-vol")]);
    assert_eq!(
        fs::read_to_string(host.join("from-vol")).unwrap(),
        "host side\n"
    );
    v.stop();
    // Stopped: the union is mounted for the copy.
    env.ok(&["cp", "web:/tmp/f", &h("from-stopped")]);
    assert_eq!(
        fs::read_to_string(host.join("from-stopped")).unwrap(),
        "file f\n"
    );
    env.ok(&["cp", &h("dir/sub/g"), "web:/etc/g"]);
    let upper = env.container("web").join("upper");
    assert_eq!(fs::read_to_string(upper.join("etc/g")).unwrap(), "file g\n");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(env.container("web").to_str().unwrap()),
        "{mounts}"
    );
}

#[test]
fn commit_history_whiteouts_save_and_export() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    sh(
        &env,
        "bld",
        "busybox:test",
        "echo hi > /root/build.log; rm /etc/image-file; \
         mv /home/app /home/renamed; echo r > /home/renamed/r",
    );
    // A renamed lower directory (a redirect in the upper) is a delete and an add.
    assert_eq!(
        env.ok(&["diff", "bld"]),
        "C /etc\nD /etc/image-file\nC /home\nD /home/app\nA /home/renamed\n\
         A /home/renamed/r\nC /root\nA /root/build.log\n"
    );
    let id = env.ok(&[
        "commit",
        "-m",
        "built it",
        "-a",
        "Ann <ann@example.com>",
        "-c",
        r#"CMD ["cat","/root/build.log"]"#,
        "bld",
        "built:v1",
    ]);
    assert!(id.starts_with("sha256:") && id.trim().len() == 71, "{id}");
    assert_eq!(env.ok(&["run", "--rm", "built:v1"]), "hi\n");
    assert_eq!(
        env.ok(&["run", "--rm", "built:v1", "cat", "/root/build.log"]),
        "hi\n"
    );
    // The whiteout hides the image's file in the new image.
    let o = env.run(&["run", "--rm", "built:v1", "cat", "/etc/image-file"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    // The renamed directory is committed whole (opaque, with its merged contents).
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "built:v1",
            "sh",
            "-c",
            "ls /home; cat /home/renamed/r"
        ]),
        "renamed\nr\n"
    );
    let history = env.ok(&["history", "--no-trunc", "built:v1"]);
    let top = history.lines().nth(1).unwrap();
    assert!(top.contains("built it"), "{history}");
    assert!(top.contains("sh -c echo hi > /root/build.log"), "{history}");
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.Author}}|{{.Comment}}|{{json .Config.Cmd}}",
            "built:v1"
        ]),
        "Ann <ann@example.com>|built it|[\"cat\",\"/root/build.log\"]\n"
    );
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Id}}", "built:v1"]).trim(),
        id.trim()
    );
    // A running container commits too (paused meanwhile), untagged.
    let r = Running::start(&env, "live", "built:v1");
    env.ok(&["exec", "live", "sh", "-c", "echo more > /root/more"]);
    let id2 = env.ok(&["commit", "live"]);
    assert_eq!(
        env.ok(&["exec", "live", "echo", "still running"]),
        "still running\n"
    );
    r.stop();
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            id2.trim(),
            "cat",
            "/root/more",
            "/root/build.log"
        ]),
        "more\nhi\n"
    );
    // save → skopeo reads it.
    let archive = env.p("built.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "built:v1"]);
    if Command::new("skopeo").arg("--version").output().is_ok() {
        let o = Command::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", archive.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{v}");
    } else {
        eprintln!("skopeo not installed: save → skopeo inspect not checked");
    }
    // export: the merged tree of the container.
    let out = env.p("b.tar");
    env.ok(&["export", "-o", out.to_str().unwrap(), "bld"]);
    let mut ar = tar::Archive::new(fs::File::open(&out).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["root/build.log", "etc/passwd", "bin/busybox", "etc"] {
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == want),
            "{want}: {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n == "etc/image-file"), "{names:?}");
    let o = env.cmd(&["container", "export", "bld"]).output().unwrap();
    assert_eq!(code(&o), 0);
    assert!(o.stdout.len() > 1 << 20);
}
