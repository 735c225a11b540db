//! `cairn mount` / `cairn umount` as a user drives them: bad input gives one clear line, exit
//! code 125 and nothing mounted; read-only stacks refuse writes with EROFS; the mount.fuse3
//! (`mount -t fuse.cairn`) form works; foreground mounts unmount cleanly on SIGTERM.

#[path = "support/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// Returns false (after printing why) when this test cannot run here; panics in CI.
fn can_mount() -> bool {
    let why = if !rustix::process::geteuid().is_root() {
        Some("not root")
    } else if !Path::new("/dev/fuse").exists() {
        Some("no /dev/fuse")
    } else {
        None
    };
    skip::ready_unless(why)
}

struct Stack {
    dir: tempfile::TempDir,
}

impl Stack {
    fn new() -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["l1", "l2", "u", "w", "m"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("l2/file"), b"lower\n").unwrap();
        Stack { dir }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn s(&self, rel: &str) -> String {
        self.p(rel).to_string_lossy().into_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let m = self.p("m");
        if mounted(&m) {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
    }
}

fn mounted(p: &Path) -> bool {
    let p = std::fs::canonicalize(p).unwrap_or(p.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*p.to_string_lossy()))
}

/// Mounts the stack's l1:l2 with its upper and work dir (plus `extra` arguments).
fn mount_rw(st: &Stack, extra: &[&str]) {
    let lower = format!("{}:{}", st.s("l1"), st.s("l2"));
    let (u, w, m) = (st.s("u"), st.s("w"), st.s("m"));
    let mut args = vec!["mount", "--lower", &lower, "--upper", &u, "--work", &w];
    args.extend_from_slice(extra);
    args.push(&m);
    let out = cairn(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cairn(args: &[&str]) -> Output {
    Command::new(CAIRN).args(args).output().expect("run cairn")
}

fn assert_refused(out: &Output, needle: &str, st: &Stack) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
    assert!(!mounted(&st.p("m")), "nothing may be mounted after: {err}");
}

#[test]
fn bad_input_is_refused_with_one_clear_line() {
    if !can_mount() {
        return;
    }
    let st = Stack::new();
    let (l1, u, w, m) = (st.s("l1"), st.s("u"), st.s("w"), st.s("m"));
    let missing = st.s("nope");
    let file = st.s("l2/file");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--lower".into(), missing.clone(), m.clone()],
            missing.clone(),
        ),
        (
            vec!["--lower".into(), file.clone(), m.clone()],
            "not a directory".into(),
        ),
        (
            vec![
                "--lower".into(),
                l1.clone(),
                "--upper".into(),
                u.clone(),
                m.clone(),
            ],
            "work dir".into(),
        ),
        (
            vec![
                "--lower".into(),
                l1.clone(),
                "--upper".into(),
                missing.clone(),
                "--work".into(),
                w.clone(),
                m.clone(),
            ],
            missing.clone(),
        ),
        (
            vec!["--lower".into(), l1.clone(), missing.clone()],
            missing.clone(),
        ),
        (
            vec!["-o".into(), format!("lowerdir={l1},frobnicate"), m.clone()],
            "frobnicate".into(),
        ),
        (vec![m.clone()], "no lower layer".into()),
        (
            vec![
                "--lower".into(),
                l1.clone(),
                "--upper".into(),
                u.clone(),
                "--work".into(),
                u.clone(),
                m.clone(),
            ],
            "inside each other".into(),
        ),
    ];
    for (args, needle) in cases {
        let mut a = vec!["mount"];
        a.extend(args.iter().map(String::as_str));
        assert_refused(&cairn(&a), &needle, &st);
    }
}

#[test]
fn work_dir_on_another_filesystem_is_refused() {
    if !can_mount() {
        return;
    }
    let st = Stack::new();
    let shm = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
    let out = cairn(&[
        "mount",
        "--lower",
        &st.s("l1"),
        "--upper",
        &st.s("u"),
        "--work",
        &shm.path().to_string_lossy(),
        &st.s("m"),
    ]);
    assert_refused(&out, "same filesystem", &st);
}

#[test]
fn busy_mountpoint_is_refused_and_read_only_mount_gives_erofs() {
    if !can_mount() {
        return;
    }
    let st = Stack::new();
    let out = cairn(&[
        "mount",
        "--lower",
        &format!("{}:{}", st.s("l1"), st.s("l2")),
        &st.s("m"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(mounted(&st.p("m")));
    assert_eq!(std::fs::read(st.p("m/file")).unwrap(), b"lower\n");
    let e = std::fs::write(st.p("m/new"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    let again = cairn(&["mount", "--lower", &st.s("l1"), &st.s("m")]);
    assert_eq!(again.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&again.stderr).contains("busy"));
    let out = cairn(&["umount", &st.s("m")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!mounted(&st.p("m")));
    let out = cairn(&["umount", &st.s("m")]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn mount_fuse3_helper_form_and_plain_umount() {
    if !can_mount() {
        return;
    }
    let st = Stack::new();
    // mount.fuse3 runs `cairn SOURCE MNT -o OPTS` through /bin/sh with the caller's PATH.
    let bindir = Path::new(CAIRN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bindir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let opts = format!(
        "rw,dev,suid,noatime,lowerdir={}:{},upperdir={},workdir={}",
        st.s("l1"),
        st.s("l2"),
        st.s("u"),
        st.s("w")
    );
    let out = Command::new("mount.fuse3")
        .arg("cairn#cairn")
        .arg(st.p("m"))
        .arg("-o")
        .arg(&opts)
        .env("PATH", path)
        .output()
        .expect("mount.fuse3 (package fuse3) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = info
        .lines()
        .find(|l| l.contains(&*st.s("m")))
        .expect("mounted");
    assert!(line.contains("fuse.cairn"), "{line}");
    std::fs::write(st.p("m/new"), b"upper\n").unwrap();
    assert_eq!(std::fs::read(st.p("u/new")).unwrap(), b"upper\n");
    let status = Command::new("umount").arg(st.p("m")).status().unwrap();
    assert!(status.success());
    assert!(!mounted(&st.p("m")));
}

#[test]
fn foreground_mount_unmounts_on_sigterm() {
    if !can_mount() {
        return;
    }
    let st = Stack::new();
    let mut child = Command::new(CAIRN)
        .args(["mount", "-f", "--lower", &st.s("l2"), &st.s("m")])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !mounted(&st.p("m")) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "mount did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read(st.p("m/file")).unwrap(), b"lower\n");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!mounted(&st.p("m")));
}

#[test]
fn killed_daemon_during_copy_up_leaves_no_partial_file() {
    if !can_mount() {
        return;
    }
    let st = Stack::new();
    let big = vec![0x5au8; 256 << 20];
    std::fs::write(st.p("l2/big"), &big).unwrap();
    mount_rw(&st, &["-o", "nopassthrough"]);
    let daemon = Command::new("pgrep")
        .args(["-n", "-f", &format!("cairn mount --lower {}", st.s("l1"))])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&daemon.stdout)
        .trim()
        .parse()
        .unwrap();
    // Appending forces a copy-up of 256 MiB; kill the daemon while it may be copying.
    let target = st.p("m/big");
    let writer = std::thread::spawn(move || {
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .open(target)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"!"));
    });
    std::thread::sleep(Duration::from_millis(30));
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    );
    let _ = Command::new("umount").arg("-l").arg(st.p("m")).status();
    writer.join().unwrap();
    // Whatever the timing, the upper has either no copy or a complete one.
    match std::fs::read(st.p("u/big")) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        Ok(data) => {
            assert!(
                data.len() == big.len() || data.len() == big.len() + 1,
                "{}",
                data.len()
            );
            assert!(data[..big.len()] == big[..], "copied data differs");
        }
    }
    // A new mount cleans the work dir and shows a consistent file.
    mount_rw(&st, &[]);
    let len = std::fs::metadata(st.p("m/big")).unwrap().len();
    assert!(len == big.len() as u64 || len == big.len() as u64 + 1);
    assert_eq!(std::fs::read_dir(st.p("w/work")).unwrap().count(), 0);
    assert!(cairn(&["umount", &st.s("m")]).status.success());
}

#[test]
fn an_ended_daemon_never_unmounts_what_was_mounted_there_later() {
    if !can_mount() {
        return;
    }
    let st = Stack::new();
    for d in ["ku", "kw"] {
        std::fs::create_dir(st.p(d)).unwrap();
    }
    mount_rw(&st, &[]);
    assert!(cairn(&["umount", &st.s("m")]).status.success());
    // Mount something else at once; the exiting daemon must leave it alone.
    let opts = format!(
        "lowerdir={}:{},upperdir={},workdir={}",
        st.s("l1"),
        st.s("l2"),
        st.s("ku"),
        st.s("kw")
    );
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(st.p("m"))
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        mounted(&st.p("m")),
        "the kernel overlay mount was taken away"
    );
    assert_eq!(std::fs::read(st.p("m/file")).unwrap(), b"lower\n");
    assert!(
        Command::new("umount")
            .arg(st.p("m"))
            .status()
            .unwrap()
            .success()
    );
}

/// Unmounts a path (lazily) when dropped, even when the test fails.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if mounted(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// An errno the upper file system returns reaches the caller unchanged: EACCES (the daemon
/// runs without CAP_DAC_OVERRIDE, over an upper file it may not write), ENOSPC (a 1 MiB tmpfs upper)
/// and EROFS (the upper's file system remounted read-only under the live mount).
#[test]
fn upper_errno_reaches_the_caller_unchanged() {
    if !can_mount() {
        return;
    }
    let st = Stack::new();
    let t = st.p("t");
    std::fs::create_dir(&t).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&t)
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs");
    let tmpfs = Unmount(t.clone());
    for d in ["u", "w"] {
        std::fs::create_dir(t.join(d)).unwrap();
    }
    std::fs::write(t.join("u/theirs"), b"private\n").unwrap();
    rustix::fs::chown(
        t.join("u/theirs"),
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(1000)),
    )
    .unwrap();
    std::fs::set_permissions(
        t.join("u/theirs"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let lower = format!("{}:{}", st.s("l1"), st.s("l2"));
    let (u, w) = (t.join("u"), t.join("w"));
    let out = Command::new("setpriv")
        .args([
            "--inh-caps=-dac_override",
            "--bounding-set=-dac_override",
            CAIRN,
            "mount",
            "--lower",
            &lower,
            "--upper",
        ])
        .arg(&u)
        .arg("--work")
        .arg(&w)
        .arg(st.p("m"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = st.p("m");
    // work/work is made mode 0, as the kernel makes it; let the capability-less daemon in.
    std::fs::set_permissions(
        w.join("work"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();

    // The caller (root, all capabilities) passes the kernel's permission check; the daemon's
    // open of the upper file fails with the upper's EACCES.
    let e = std::fs::OpenOptions::new()
        .append(true)
        .open(m.join("theirs"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");

    let big = vec![7u8; 4 << 20];
    let e = std::fs::File::create(m.join("big"))
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, &big)?;
            f.sync_all()
        })
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    // Copy-up of a lower file into the full upper fails the same way, leaving the lower intact.
    let e = std::fs::OpenOptions::new()
        .append(true)
        .open(m.join("file"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"more"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    std::fs::remove_file(m.join("big")).unwrap();

    let ok = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&t)
        .status()
        .unwrap();
    assert!(ok.success(), "remount tmpfs ro");
    let e = std::fs::write(m.join("new"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    let e = std::fs::create_dir(m.join("newdir")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    assert_eq!(std::fs::read(m.join("file")).unwrap(), b"lower\n");

    let out = cairn(&["umount", &st.s("m")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(tmpfs);
}

/// `volatile`, as the kernel: the mount works, and leaves work/incompat/volatile behind so that
/// neither cairn nor the kernel mounts that upper again until it is removed.
#[test]
fn volatile_upper_is_refused_until_its_work_dir_is_cleaned() {
    if !can_mount() {
        return;
    }
    let st = Stack::new();
    mount_rw(&st, &["-o", "volatile"]);
    std::fs::File::create(st.p("m/new"))
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, b"data\n")?;
            f.sync_all()
        })
        .unwrap();
    let out = cairn(&["umount", &st.s("m")]);
    assert!(out.status.success());
    assert!(st.p("w/work/incompat/volatile/dirty").exists());

    let lower = format!("{}:{}", st.s("l1"), st.s("l2"));
    let (u, w, m) = (st.s("u"), st.s("w"), st.s("m"));
    let again = cairn(&["mount", "--lower", &lower, "--upper", &u, "--work", &w, &m]);
    assert_refused(&again, "volatile", &st);
    let kernel = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={lower},upperdir={u},workdir={w}"))
        .arg(&m)
        .output()
        .unwrap();
    let _guard = Unmount(st.p("m"));
    assert!(!kernel.status.success(), "the kernel refuses it too");

    std::fs::remove_dir_all(st.p("w/work/incompat")).unwrap();
    mount_rw(&st, &[]);
    assert_eq!(std::fs::read(st.p("m/new")).unwrap(), b"data\n");
    let out = cairn(&["umount", &st.s("m")]);
    assert!(out.status.success());
}
