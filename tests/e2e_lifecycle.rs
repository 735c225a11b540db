//! One container's whole life in one go, as a user types it: `run -d` → `ps` → `logs -f` →
//! `exec` (writes a file, deletes an image file) → `stop` → `start` (same upper) → `commit`
//! of the running container → `run` of the committed image → `diff` → `rm -f` (no mount, no
//! process left). Root and FUSE required (skipped with a reason otherwise; a failure in CI).

#[path = "support/run_env.rs"]
mod run_env;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use run_env::*;

#[test]
fn run_detached_exec_stop_start_commit_run_diff_rm() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let script = "trap 'echo stopping; exit 143' TERM; echo started; \
                  while :; do sleep 0.1; done";
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "busybox:test",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full id: {id:?}");
    assert!(
        ps_status(&env, "app").starts_with("Up "),
        "{}",
        ps_status(&env, "app")
    );
    let pid = wait_for_pid(&env, "app");

    // logs -f follows until the container stops.
    let mut follow = env
        .cmd(&["logs", "-f", "app"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first, "started");

    // exec runs inside: same hostname, a write to the upper, a deletion of an image file.
    let host = env.ok(&["exec", "app", "hostname"]);
    assert_eq!(host.trim(), &id[..12]);
    env.ok(&[
        "exec",
        "app",
        "sh",
        "-c",
        "echo hi > /root/build.log && rm /etc/group",
    ]);
    let o = env.run(&["exec", "app", "sh", "-c", "exit 7"]);
    assert_eq!(code(&o), 7, "exec passes the exit status through");

    env.ok(&["stop", "app"]);
    assert!(
        ps_status(&env, "app").starts_with("Exited (143)"),
        "{}",
        ps_status(&env, "app")
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "stopping"
    );
    let followed = follow.wait().unwrap();
    assert!(followed.success(), "logs -f ends with the container");
    assert!(!process_alive(pid), "pid 1 gone after stop");

    // start: the same upper.
    env.ok(&["start", "app"]);
    assert!(
        ps_status(&env, "app").starts_with("Up "),
        "{}",
        ps_status(&env, "app")
    );
    assert_eq!(env.ok(&["exec", "app", "cat", "/root/build.log"]), "hi\n");

    // commit of the running container (paused meanwhile), then a container of the new image.
    let image_id = env.ok(&[
        "commit",
        "-m",
        "build log",
        "-c",
        r#"CMD ["cat", "/root/build.log"]"#,
        "app",
        "snap:1",
    ]);
    assert!(image_id.trim().starts_with("sha256:"), "{image_id}");
    assert!(
        ps_status(&env, "app").starts_with("Up "),
        "unpaused after commit"
    );
    assert_eq!(env.ok(&["run", "--rm", "snap:1"]), "hi\n");
    let o = env.run(&["run", "--rm", "snap:1", "ls", "/etc/group"]);
    assert_ne!(
        code(&o),
        0,
        "a file deleted in the container is gone from the image"
    );
    let history = env.ok(&["history", "--format", "{{.Comment}}", "snap:1"]);
    assert_eq!(history.lines().next(), Some("build log"));

    let diff = env.ok(&["diff", "app"]);
    for want in ["C /root", "A /root/build.log", "C /etc", "D /etc/group"] {
        assert!(diff.lines().any(|l| l == want), "{want:?} not in\n{diff}");
    }

    let dir = env.container("app");
    let pid = wait_for_pid(&env, "app");
    env.ok(&["rm", "-f", "app"]);
    assert!(!dir.exists(), "container dir left");
    assert!(!mounted_under(&dir), "mount left");
    wait_until("pid 1 gone after rm -f", || !process_alive(pid));
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}
