//! The container lifecycle end to end: `run -d` under a detached supervisor, `ps` (docker's
//! columns and statuses), `logs` (stdout and stderr kept apart, `-f`, `--tail`, `-t`),
//! `stop` (143 / 137), `start`, `kill`, `wait`, `rm`, `rename`, `container prune`, restart
//! policies, parallel containers with generated names, and kill -9 of a supervisor or of a
//! foreground `cairn run`: `ps` tells the truth and `rm -f` leaves no mount and no process.
//! Root and FUSE required (skipped with a reason otherwise; a failure in CI).

#[path = "support/run_env.rs"]
mod run_env;

use std::process::Stdio;

use run_env::*;

/// A test's store whose containers are force-removed at the end, even when the test fails
/// half way (no supervisor, pid 1 or mount outlives it).
struct TestEnv(Env);

impl TestEnv {
    fn new() -> TestEnv {
        TestEnv(Env::new())
    }
}

impl std::ops::Deref for TestEnv {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.0
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let ids = stdout(&self.0.run(&["ps", "-aq", "--no-trunc"]));
        let mut args = vec!["rm", "-f"];
        args.extend(ids.lines());
        if args.len() > 2 {
            let _ = run_within(&self.0, 60, &args);
        }
    }
}

fn kill9(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
}

/// The cgroup directories of container `id` (v2, or v1 in any controller: the freezer too).
fn cgroups_of(id: &str) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let mut bases = vec![root.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(root) {
        bases.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    bases
        .into_iter()
        .map(|b| b.join("cairn").join(id))
        .filter(|d| d.is_dir())
        .collect()
}

/// `cairn ARGS`, killed (status 124) if it takes more than `secs` seconds.
fn run_within(env: &Env, secs: u32, args: &[&str]) -> std::process::Output {
    std::process::Command::new("timeout")
        .arg(secs.to_string())
        .arg(CAIRN)
        .arg("--root")
        .arg(env.store())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// After `rm -f`: no directory, no mount, no process, no cgroup of the container.
fn assert_gone(dir: &std::path::Path, pids: &[i32]) {
    assert!(!dir.exists(), "{} still there", dir.display());
    assert!(!mounted_under(dir), "mount left under {}", dir.display());
    let id = dir.file_name().unwrap().to_string_lossy();
    assert_eq!(
        cgroups_of(&id),
        Vec::<std::path::PathBuf>::new(),
        "cgroup left"
    );
    for p in pids {
        wait_until(&format!("process {p} gone"), || !process_alive(*p));
    }
}

#[test]
fn detached_run_ps_logs_stop_start_wait_rm() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    let script = "trap 'echo bye; exit 143' TERM; echo hello; echo oops >&2; \
                  while :; do sleep 0.1; done";
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox:test",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id:?}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    let ps = env.ok(&["ps"]);
    let mut lines = ps.lines();
    let header = lines.next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().expect("one row");
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(row.contains("busybox:test") && row.contains("\"sh -c trap 'echo by…\""));
    assert!(row.contains(" Up ") && row.ends_with("web"), "{row}");
    assert_eq!(env.ok(&["ps", "-q"]), format!("{}\n", &id[..12]));
    assert_eq!(env.ok(&["ps", "-q", "--no-trunc"]), format!("{id}\n"));
    wait_until("first output logged", || {
        let o = env.run(&["logs", "web"]);
        stdout(&o).contains("hello") && stderr(&o).contains("oops")
    });
    let o = env.run(&["logs", "web"]);
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("hello\n", "oops\n")
    );
    // stop: SIGTERM, trapped → 143.
    assert_eq!(env.ok(&["stop", "web"]), "web\n");
    assert!(
        ps_status(&env, "web").starts_with("Exited (143) "),
        "{}",
        ps_status(&env, "web")
    );
    assert_eq!(env.ok(&["ps", "-q"]), "");
    let dir = env.container("web");
    assert!(!mounted_under(&dir), "stopped container still mounted");
    assert_eq!(stdout(&env.run(&["logs", "web"])), "hello\nbye\n");
    // start: same upper, output appended to the same log; kill → wait prints 137.
    std::fs::write(dir.join("upper/marker"), "kept").unwrap();
    assert_eq!(env.ok(&["start", "web"]), "web\n");
    assert!(ps_status(&env, "web").starts_with("Up "));
    let out = env.ok(&["run", "--rm", "busybox:test", "true"]);
    assert_eq!(out, "");
    wait_until("second hello", || {
        stdout(&env.run(&["logs", "web"])).matches("hello").count() == 2
    });
    let waiter = env
        .cmd(&["wait", "web"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid1 = state_of(&env, "web")["pid"].as_i64().unwrap() as i32;
    assert_eq!(env.ok(&["kill", "web"]), "web\n");
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "137\n");
    assert!(ps_status(&env, "web").starts_with("Exited (137) "));
    assert_eq!(env.ok(&["wait", "web"]), "137\n");
    assert!(dir.join("upper/marker").exists());
    let o = env.run(&["kill", "web"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
    assert_eq!(env.ok(&["rm", "web"]), "web\n");
    assert_gone(&dir, &[pid1]);
    let o = env.run(&["rm", "web"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("No such container: web"));
}

#[test]
fn logs_follow_tail_timestamps_and_streams() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    let script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done; sleep 1; echo late";
    env.ok(&[
        "run",
        "-d",
        "--name",
        "lg",
        "busybox:test",
        "sh",
        "-c",
        script,
    ]);
    // -f from the start follows until the container exits.
    let out = env
        .cmd(&["logs", "-f", "lg"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "out1\nout2\nout3\nlate\n");
    assert_eq!(stderr(&out), "err1\nerr2\nerr3\n");
    let o = env.run(&["logs", "--tail", "1", "lg"]);
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("late\n", ""));
    let o = env.run(&["logs", "--tail", "2", "lg"]);
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("late\n", "err3\n")
    );
    let o = env.run(&["logs", "-t", "--tail", "1", "lg"]);
    let line = stdout(&o);
    // 2026-11-23T21:04:07.993004993Z late
    assert_eq!(
        line.len(),
        "2026-11-23T21:04:07.993004993Z late\n".len(),
        "{line}"
    );
    assert!(
        line.ends_with("Z late\n") && line.as_bytes()[10] == b'T',
        "{line}"
    );
    assert_eq!(
        stdout(&env.run(&["logs", "--since", "1h", "lg"]))
            .lines()
            .count(),
        4
    );
    assert_eq!(
        stdout(&env.run(&["logs", "--since", "2999-01-01", "lg"])),
        ""
    );
    // The log file is docker's json-file format.
    let dir = env.container("lg");
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with("-json.log"))
        .expect("json log");
    let first = std::fs::read_to_string(log.path()).unwrap();
    let v: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(v["log"], "out1\n");
    assert_eq!(v["stream"], "stdout");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    assert!(ps_status(&env, "lg").starts_with("Exited (0) "));
    env.ok(&["rm", "lg"]);
    // -t: the pty's output is logged too (as stdout, with the terminal's \r\n).
    env.ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "tt",
        "busybox:test",
        "sh",
        "-c",
        "echo hi >&2",
    ]);
    assert_eq!(env.ok(&["wait", "tt"]), "0\n");
    assert_eq!(env.ok(&["logs", "tt"]), "hi\r\n");
}

/// `logs -f` of a `--rm` container prints everything up to the end, and ends.
#[test]
fn logs_follow_of_an_auto_removed_container_reads_to_the_end() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    let script = "echo a; sleep 0.5; echo b";
    env.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "rmf",
        "busybox:test",
        "sh",
        "-c",
        script,
    ]);
    let out = env.run(&["logs", "-f", "rmf"]);
    assert_eq!(stdout(&out), "a\nb\n", "{}", stderr(&out));
}

#[test]
fn restart_policies() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    // on-failure:2 → two restarts, then exited with the status.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "of",
        "--restart",
        "on-failure:2",
        "busybox:test",
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    assert_eq!(env.ok(&["wait", "of"]), "3\n");
    assert_eq!(state_of(&env, "of")["restart_count"], 2);
    assert!(ps_status(&env, "of").starts_with("Exited (3) "));
    wait_until("three runs logged", || {
        stdout(&env.run(&["logs", "of"])) == "run\nrun\nrun\n"
    });
    // no: a failure stays a failure.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "no",
        "busybox:test",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert_eq!(env.ok(&["wait", "no"]), "1\n");
    assert_eq!(state_of(&env, "no")["restart_count"], 0);
    // always: restarts after success too, until stopped.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "al",
        "--restart",
        "always",
        "busybox:test",
        "sh",
        "-c",
        "echo up; sleep 0.2",
    ]);
    wait_until("always restarted twice", || {
        state_of(&env, "al")["restart_count"].as_u64() >= Some(2)
    });
    assert_eq!(
        env.ok(&["ps", "--filter", "name=al", "--format", "{{.Names}}"]),
        "al\n"
    );
    env.ok(&["stop", "-t", "1", "al"]);
    let after = state_of(&env, "al")["restart_count"].clone();
    let st = ps_status(&env, "al");
    assert!(st.starts_with("Exited ("), "{st}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        state_of(&env, "al")["restart_count"],
        after,
        "restarted after stop"
    );
    let o = env.run(&["run", "--rm", "--restart", "always", "busybox:test", "true"]);
    assert_eq!(code(&o), 125);
    let o = env.run(&["run", "--restart", "sometimes", "busybox:test", "true"]);
    assert_eq!(code(&o), 125);
    env.ok(&["rm", "-f", "of", "no", "al"]);
    assert!(env.containers().is_empty());
}

#[test]
fn parallel_detached_containers_with_generated_names() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| env.ok(&["run", "-d", "busybox:test", "sleep", "1000"])))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().trim().to_string())
            .collect()
    });
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 4);
    let names = env.ok(&["ps", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for n in &names {
        let (adj, who) = n.split_once('_').expect("adjective_surname");
        assert!(!adj.is_empty() && !who.is_empty(), "{n}");
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 4);
    let ps_ids = env.ok(&["ps", "-q", "--no-trunc"]);
    for id in &ids {
        assert!(ps_ids.contains(id.as_str()), "{id} not in {ps_ids}");
    }
    let dirs: Vec<_> = env.containers().into_iter().map(|(_, d)| d).collect();
    let pids: Vec<i32> = env
        .containers()
        .iter()
        .map(|(n, _)| state_of(&env, n)["pid"].as_i64().unwrap() as i32)
        .collect();
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    env.ok(&args);
    for d in &dirs {
        assert_gone(d, &pids);
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// A container whose pid 1 could not start never ran: `ps` says Created (as docker),
/// `wait` returns its status at once, `rm` (no -f) removes it.
#[test]
fn failed_start_is_created_and_waits_at_once() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    let out = env.run(&["run", "-d", "--name", "nx", "busybox:test", "/no/such"]);
    assert_eq!(code(&out), 127, "{}", stderr(&out));
    assert_eq!(ps_status(&env, "nx"), "Created");
    assert_eq!(env.ok(&["wait", "nx"]), "127\n");
    let dir = env.container("nx");
    env.ok(&["rm", "nx"]);
    assert_gone(&dir, &[]);
}

/// `wait` on a container that never started and has no supervisor to start it (its
/// creator died before writing its state) returns at once, as docker's.
#[test]
fn wait_on_a_never_started_container_returns() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    env.ok(&["run", "-d", "--name", "ns", "busybox:test", "true"]);
    env.ok(&["wait", "ns"]);
    let dir = env.container("ns");
    wait_until("settled", || state_of(&env, "ns")["supervisor"].is_null());
    std::fs::remove_file(dir.join("state.json")).unwrap();
    assert_eq!(ps_status(&env, "ns"), "Created");
    let out = run_within(&env, 10, &["wait", "ns"]);
    assert_eq!(code(&out), 0, "wait did not return: {}", stderr(&out));
    assert_eq!(stdout(&out), "0\n");
}

/// The detached supervisor keeps none of its caller's descriptors: a caller reading a pipe
/// it handed to `run -d` (as fd 3) sees end of file once the command returns; pid 1 has
/// only its stdio.
#[test]
fn detached_supervisor_keeps_no_descriptor_of_its_caller() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    let script = "exec \"$0\" --root \"$1\" run -d --name fds busybox:test \
                  sh -c 'ls /proc/1/fd; sleep 1000' 3>&1 >/dev/null";
    let mut cli = std::process::Command::new("sh")
        .args(["-c", script, CAIRN])
        .arg(env.store())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = cli.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::Read::read_to_end(&mut out, &mut Vec::new());
        let _ = tx.send(());
    });
    assert!(cli.wait().unwrap().success());
    let eof = rx.recv_timeout(std::time::Duration::from_secs(10));
    assert!(
        eof.is_ok(),
        "the caller's pipe is still held open after run -d returned"
    );
    wait_until("pid 1 listed its fds", || {
        env.ok(&["logs", "fds"]).lines().count() >= 3
    });
    assert_eq!(env.ok(&["logs", "fds"]), "0\n1\n2\n");
}

#[test]
fn killed_supervisor_shows_exited_and_rm_cleans_up() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    env.ok(&["run", "-d", "--name", "sv", "busybox:test", "sleep", "1000"]);
    let st = state_of(&env, "sv");
    let sup = st["supervisor"]["pid"].as_i64().unwrap() as i32;
    let pid1 = st["pid"].as_i64().unwrap() as i32;
    let dir = env.container("sv");
    assert!(mounted_under(&dir));
    kill9(sup);
    // pid 1 dies with its supervisor; ps says so.
    wait_until("pid 1 gone", || !process_alive(pid1));
    let status = ps_status(&env, "sv");
    assert!(status.starts_with("Exited (137) "), "{status}");
    assert_eq!(env.ok(&["ps", "-q"]), "");
    assert_eq!(env.ok(&["wait", "sv"]), "137\n");
    env.ok(&["rm", "-f", "sv"]);
    assert_gone(&dir, &[pid1, sup]);
}

#[test]
fn killed_foreground_cli_shows_exited_and_rm_cleans_up() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    let mut child = env
        .cmd(&["run", "--name", "fg", "busybox:test", "sleep", "1000"])
        .spawn()
        .unwrap();
    let pid1 = wait_for_pid(&env, "fg");
    let dir = env.container("fg");
    kill9(child.id() as i32);
    let _ = child.wait();
    wait_until("pid 1 gone", || !process_alive(pid1));
    let status = ps_status(&env, "fg");
    assert!(status.starts_with("Exited (137) "), "{status}");
    env.ok(&["rm", "-f", "fg"]);
    assert_gone(&dir, &[pid1]);
}

#[test]
fn rename_rm_running_prune_and_port() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    env.ok(&["run", "-d", "--name", "aa", "busybox:test", "sleep", "1000"]);
    env.ok(&["rename", "aa", "bb"]);
    assert_eq!(env.ok(&["ps", "--format", "{{.Names}}"]), "bb\n");
    let o = env.run(&["rename", "bb", "bb"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).starts_with("Error response from daemon: "));
    let o = env.run(&["rm", "bb"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(
            "cannot remove container \"/bb\": container is running: stop the container before removing or force remove"
        ),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["port", "bb"]);
    assert_eq!((code(&o), stdout(&o).as_str()), (0, ""));
    env.ok(&["run", "--name", "done", "busybox:test", "true"]);
    let out = env.ok(&["container", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    let names: Vec<String> = env.containers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["bb"]);
    assert_eq!(env.ok(&["container", "ls", "-q"]).lines().count(), 1);
    env.ok(&["rm", "-f", "bb"]);
}

/// The `-e` that marks the processes of a test's containers (their environment).
fn mark(env: &Env) -> String {
    format!("CAIRN_TEST_MARK={}", env.dir.path().display())
}

/// Live processes with the test's mark in their environment.
fn marked_processes(env: &Env) -> Vec<i32> {
    let mark = mark(env);
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == mark.as_bytes()))
                && process_alive(*pid)
        })
        .collect()
}

#[test]
fn kill_9_of_the_cli_at_any_moment_leaves_nothing_after_rm_f() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    for delay_ms in [0u64, 5, 10, 20, 40, 80, 160] {
        for detach in [true, false] {
            let mark = mark(&env);
            let mut args = vec!["run", "-e", &mark];
            if detach {
                args.push("-d");
            }
            args.extend(["busybox:test", "sleep", "1000"]);
            let mut child = env.cmd(&args).stdout(Stdio::null()).spawn().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            kill9(child.id() as i32);
            let _ = child.wait();
        }
    }
    // Whatever state each was left in, ps lists it and tells no lie about running.
    // (`.new-<id>`: a creation that never finished, invisible, removed by the next one.)
    let containers = || {
        env.containers()
            .into_iter()
            .filter(|(_, d)| !d.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect::<Vec<_>>()
    };
    let listed = env.ok(&["ps", "-aq", "--no-trunc"]);
    assert_eq!(listed.lines().count(), containers().len(), "{listed}");
    for (name, dir) in containers() {
        // A CLI killed early may have left no state yet.
        let Ok(text) = std::fs::read_to_string(dir.join("state.json")) else {
            continue;
        };
        let st: serde_json::Value = serde_json::from_str(&text).unwrap();
        if st["status"] == "running" {
            let pid = st["pid"].as_i64().unwrap() as i32;
            assert!(process_alive(pid), "{name} said running, pid {pid} is gone");
        }
    }
    let ids: Vec<&str> = listed.lines().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        env.ok(&args);
    }
    assert!(containers().is_empty());
    let containers = env.store().join("containers");
    assert!(!mounted_under(&containers), "a mount was left");
    wait_until("no process left in a container", || {
        marked_processes(&env).is_empty()
    });
}

/// A command on a stopped container's files (`export`) killed half way leaves no FUSE
/// daemon holding the container's lock and no mount: `rm -f` returns and leaves nothing.
#[test]
fn killed_export_of_a_stopped_container_leaves_nothing_after_rm_f() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    env.ok(&["run", "--name", "ex", "busybox:test", "true"]);
    let dir = env.container("ex");
    let mark = mark(&env);
    let (k, v) = mark.split_once('=').unwrap();
    // Its output is never read: it blocks with the union mounted once the pipe is full.
    let mut cli = env
        .cmd(&["export", "ex"])
        .env(k, v)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("union mounted", || mounted_under(&dir));
    let pids = marked_processes(&env);
    kill9(cli.id() as i32);
    let _ = cli.wait();
    let out = run_within(&env, 20, &["rm", "-f", "ex"]);
    assert_eq!(code(&out), 0, "rm -f: {}", stderr(&out));
    assert_gone(&dir, &pids);
}

#[test]
fn stop_signal_and_timeout() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    let trap = "trap 'exit 7' USR1; while :; do sleep 0.1; done";
    env.ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "SIGUSR1",
        "busybox:test",
        "sh",
        "-c",
        trap,
    ]);
    assert_eq!(env.ok(&["stop", "usr1"]), "usr1\n");
    assert!(ps_status(&env, "usr1").starts_with("Exited (7) "));
    // pid 1 ignores SIGTERM (no handler in a pid namespace's init): SIGKILL after the
    // --stop-timeout.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "deaf",
        "--stop-timeout",
        "1",
        "busybox:test",
        "sleep",
        "1000",
    ]);
    assert_eq!(env.ok(&["restart", "deaf"]), "deaf\n");
    assert!(ps_status(&env, "deaf").starts_with("Up "));
    assert_eq!(env.ok(&["stop", "deaf"]), "deaf\n");
    assert!(ps_status(&env, "deaf").starts_with("Exited (137) "));
    let o = env.run(&["run", "--stop-signal", "NOPE", "busybox:test", "true"]);
    assert_eq!(code(&o), 125);
    env.ok(&["rm", "usr1", "deaf"]);
}

#[test]
fn concurrent_starts_start_once() {
    if !can_run() {
        return;
    }
    let env = TestEnv::new();
    let mark = mark(&env);
    env.ok(&[
        "run",
        "-d",
        "-e",
        &mark,
        "--name",
        "cc",
        "busybox:test",
        "sleep",
        "1000",
    ]);
    env.ok(&["stop", "-t", "0", "cc"]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(env.ok(&["start", "cc"]), "cc\n"));
        }
    });
    let dir = env.container("cc");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let ours = mounts
        .lines()
        .filter(|l| l.contains(&*dir.to_string_lossy()))
        .count();
    assert_eq!(ours, 1, "{mounts}");
    assert_eq!(marked_processes(&env).len(), 1);
    env.ok(&["rm", "-f", "cc"]);
    assert!(!mounted_under(&dir));
    assert!(marked_processes(&env).is_empty());
}
