//! `cairn run` options beyond tests/run.rs: `--cap-add` / `--cap-drop` (the capability sets
//! pid 1 gets), `--cpus` (the CFS quota of the container's cgroup, read from the host while
//! it runs) and `-t` (a pseudo-terminal in the container's own devpts as controlling terminal
//! and stdio, window size from the host terminal, with and without a host terminal).
//! Root and FUSE required (skipped with a reason otherwise; a failure in CI).

#[path = "support/run_env.rs"]
mod run_env;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use run_env::*;

/// docker's default capability set as a CapEff mask.
const DEFAULT_CAPS: u64 = 0xa80425fb;

/// `CapEff` etc. of pid 1 under these options.
fn caps(env: &Env, opts: &[&str]) -> (u64, u64, u64) {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["busybox:test", "cat", "/proc/self/status"]);
    let status = env.ok(&args);
    let field = |name: &str| {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"));
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    (field("CapEff:"), field("CapPrm:"), field("CapBnd:"))
}

/// What this host lets root hold (a restricted root, e.g. inside another container, has
/// less than every capability; `--cap-add` cannot give more).
fn held() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .unwrap();
    u64::from_str_radix(line.trim(), 16).unwrap()
}

#[test]
fn cap_add_and_cap_drop() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let def = DEFAULT_CAPS & held();
    assert_eq!(caps(&env, &[]), (def, def, def));
    assert_eq!(caps(&env, &["--cap-drop", "ALL"]), (0, 0, 0));
    let sys_admin = 1u64 << 21;
    if held() & sys_admin != 0 {
        let (eff, prm, bnd) = caps(&env, &["--cap-add", "SYS_ADMIN"]);
        assert_eq!(eff, def | sys_admin);
        assert_eq!((prm, bnd), (eff, eff));
        let (eff, ..) = caps(&env, &["--cap-add", "cap_sys_admin"]);
        assert_eq!(eff, def | sys_admin);
    }
    // Drops, mixed spellings; ALL dropped then one added.
    let (eff, ..) = caps(&env, &["--cap-drop", "chown", "--cap-drop", "CAP_Net_Raw"]);
    assert_eq!(eff, def & !(1 | 1 << 13));
    let (eff, ..) = caps(
        &env,
        &["--cap-drop", "all", "--cap-add", "NET_BIND_SERVICE"],
    );
    assert_eq!(eff, 1 << 10);
    // ALL added: everything held but the dropped one.
    let (eff, ..) = caps(&env, &["--cap-add", "ALL", "--cap-drop", "MKNOD"]);
    let last: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let every = (1u64 << (last + 1)) - 1;
    assert_eq!(eff, every & held() & !(1 << 27));
    // The capability really works: chown as root fails without CAP_CHOWN.
    let out = env.run(&[
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "busybox:test",
        "sh",
        "-c",
        "touch /tmp/f && chown 1:1 /tmp/f",
    ]);
    assert_ne!(code(&out), 0, "{out:?}");
    // Unknown names are refused before anything starts.
    for (flag, name, shown) in [
        (
            "--cap-add",
            "FOO",
            "invalid CapAdd: unknown capability: \"CAP_FOO\"",
        ),
        (
            "--cap-drop",
            "cap_bar",
            "invalid CapDrop: unknown capability: \"CAP_BAR\"",
        ),
    ] {
        let out = env.run(&["run", "--rm", flag, name, "busybox:test", "true"]);
        assert_eq!(code(&out), 125, "{out:?}");
        assert!(stderr(&out).contains(shown), "{}", stderr(&out));
    }
    assert!(
        !env.store().join("containers").exists()
            || fs::read_dir(env.store().join("containers"))
                .unwrap()
                .all(|e| !e.unwrap().path().is_dir()),
        "nothing is left behind by --rm runs and refused ones"
    );
}

/// The host directory of the container's cgroup for `controller` (v2: the unified one).
fn cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (id, ctls, path) = (f.next()?, f.next()?, f.next()?);
        let path = path.trim_start_matches('/');
        if id == "0" && ctls.is_empty() {
            if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                return Some(Path::new("/sys/fs/cgroup").join(path));
            }
            continue;
        }
        if ctls.split(',').any(|c| c == controller) {
            for base in [ctls, controller] {
                let dir = Path::new("/sys/fs/cgroup").join(base).join(path);
                if dir.exists() {
                    return Some(dir);
                }
            }
        }
    }
    None
}

#[test]
fn cpus_sets_the_cfs_quota() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    for (cpus, quota) in [("0.5", "50000"), ("1.25", "125000")] {
        let name = format!("cpu{quota}");
        let mut child = env
            .cmd(&[
                "run",
                "--rm",
                "--name",
                &name,
                "--cpus",
                cpus,
                "busybox:test",
                "sleep",
                "2",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = wait_for_pid(&env, &name);
        let dir = cgroup_dir(pid, "cpu").expect("the container's cpu cgroup");
        assert!(
            dir.to_string_lossy().contains("cairn/"),
            "{}",
            dir.display()
        );
        if dir.join("cpu.max").exists() {
            let v = fs::read_to_string(dir.join("cpu.max")).unwrap();
            assert_eq!(v.trim(), format!("{quota} 100000"));
        } else {
            let q = fs::read_to_string(dir.join("cpu.cfs_quota_us")).unwrap();
            let p = fs::read_to_string(dir.join("cpu.cfs_period_us")).unwrap();
            assert_eq!((q.trim(), p.trim()), (quota, "100000"));
        }
        assert!(child.wait().unwrap().success());
        assert!(!dir.exists(), "{} left after the run", dir.display());
    }
    // Without --cpus, no quota.
    let out = env.ok(&["run", "--rm", "busybox:test", "true"]);
    assert_eq!(out, "");
    for bad in ["abc", "-1", "1000000", "0.001", "1.0000000001", ""] {
        let out = env.run(&["run", "--rm", "--cpus", bad, "busybox:test", "true"]);
        assert_eq!(code(&out), 125, "--cpus {bad:?}: {out:?}");
        assert!(
            stderr(&out).contains("cpus") || stderr(&out).contains("CPUs"),
            "{out:?}"
        );
    }
}

/// Runs `script` (util-linux: a pty as the controlling terminal) with this shell line.
fn under_script(line: &str) -> Option<Output> {
    if Command::new("script").arg("--version").output().is_err() {
        return None;
    }
    let out = Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    Some(out)
}

#[test]
fn tty_is_a_pty_with_the_host_window_size() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let store = env.store();
    let line = format!(
        "stty rows 40 cols 100; {CAIRN} --root {} run --rm -t busybox:test \
         sh -c 'tty; stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; exit 3'; \
         echo rc=$?",
        store.display()
    );
    match under_script(&line) {
        None => eprintln!("no `script` (util-linux): skipping the host-terminal part"),
        Some(out) => {
            let s = stdout(&out).replace('\r', "");
            assert!(s.contains("/dev/pts/0\n"), "{s:?} {}", stderr(&out));
            assert!(s.contains("40 100\n"), "{s:?}");
            assert!(s.contains("all-tty\n"), "{s:?}");
            assert!(s.contains("rc=3\n"), "{s:?}");
        }
    }
    // -it from a terminal: input reaches the shell; the terminal mode is restored after.
    let line = format!(
        "stty -a > {0}/before; \
         {CAIRN} --root {1} run --rm -it busybox:test sh -c 'read x; echo got $x'; \
         echo rc=$?; stty -a > {0}/after",
        env.dir.path().display(),
        store.display()
    );
    if Command::new("script").arg("--version").output().is_ok() {
        let mut c = Command::new("script");
        c.args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut ch = c.spawn().unwrap();
        {
            use std::io::Write;
            let mut i = ch.stdin.take().unwrap();
            i.write_all(b"hello\n").unwrap();
            // Keep script's input open until the container answered.
            std::thread::sleep(Duration::from_secs(3));
        }
        let out = ch.wait_with_output().unwrap();
        let s = stdout(&out).replace('\r', "");
        assert!(s.contains("got hello\n"), "{s:?}");
        assert!(s.contains("rc=0\n"), "{s:?}");
        assert_eq!(
            fs::read_to_string(env.p("before")).unwrap(),
            fs::read_to_string(env.p("after")).unwrap(),
            "host terminal mode restored"
        );
    }
    // Without a host terminal: still a pty inside, output captured, status kept.
    let out = env.run(&[
        "run",
        "--rm",
        "-t",
        "busybox:test",
        "sh",
        "-c",
        "tty; exit 4",
    ]);
    assert_eq!(code(&out), 4, "{out:?}");
    assert_eq!(stdout(&out), "/dev/pts/0\r\n");
    // -i -t with piped input: the pty echoes the line, cat prints it, ^D ends it.
    let mut c = env.cmd(&["run", "--rm", "-i", "-t", "busybox:test", "cat"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut ch = c.spawn().unwrap();
    {
        use std::io::Write;
        ch.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    }
    let out = ch.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).replace('\r', ""), "piped\npiped\n");
    // -t without -i does not read the host's stdin.
    let mut c = env.cmd(&["run", "--rm", "-t", "busybox:test", "sh", "-c", "echo done"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut ch = c.spawn().unwrap();
    let stdin = ch.stdin.take().unwrap();
    let out = ch.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(stdout(&out), "done\r\n");
}
