//! Shared by the `cairn run` end-to-end tests: a store with busybox-based images, running
//! the cairn binary, and reading container state. Root and FUSE required.

#![allow(dead_code)]

#[path = "skip.rs"]
mod skip;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// Returns false (after printing why) when this test cannot run here; panics in CI.
pub fn can_run() -> bool {
    let why = if !rustix::process::geteuid().is_root() {
        Some("not root")
    } else if !Path::new("/dev/fuse").exists() {
        Some("no /dev/fuse")
    } else if !Path::new("/bin/busybox").exists() {
        Some("no /bin/busybox (apt-get install busybox-static)")
    } else {
        None
    };
    skip::ready_unless(why)
}

/// Writes the contents of directory `src` to the tar archive `tar` (asserting tar succeeds).
pub fn tar_dir(src: &Path, tar: &Path) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(src)
        .arg("-cf")
        .arg(tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(
        st.success(),
        "tar -C {} -cf {}",
        src.display(),
        tar.display()
    );
}

/// A store with busybox:test (CMD sh) and ep:test (ENTRYPOINT echo ep, CMD default, ENV,
/// WORKDIR /srv).
pub struct Env {
    pub dir: tempfile::TempDir,
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
nobody:x:65534:65534:nobody:/:/bin/sh\n\
app:x:1000:1000:app:/home/app:/bin/sh\n";
pub const GROUP: &str =
    "root:x:0:\nwheel:x:10:root\napp:x:1000:\naudio:x:29:app\nnogroup:x:65534:\n";

impl Env {
    pub fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let rootfs = env.p("rootfs");
        for d in ["bin", "etc", "tmp", "root", "home/app"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for a in String::from_utf8_lossy(&list.stdout).lines() {
            if a != "busybox" {
                fs::hard_link(rootfs.join("bin/busybox"), rootfs.join("bin").join(a)).unwrap();
            }
        }
        fs::write(rootfs.join("etc/passwd"), PASSWD).unwrap();
        fs::write(rootfs.join("etc/group"), GROUP).unwrap();
        fs::write(rootfs.join("etc/image-file"), "from the image\n").unwrap();
        rustix::fs::chmod(rootfs.join("tmp"), rustix::fs::Mode::from_raw_mode(0o1777)).unwrap();
        let tar = env.p("r.tar");
        tar_dir(&rootfs, &tar);
        let tar = tar.to_string_lossy().into_owned();
        env.ok(&["import", "-c", "CMD [\"/bin/sh\"]", &tar, "busybox:test"]);
        env.ok(&[
            "import",
            "-c",
            "ENV A=img B=img",
            "-c",
            "WORKDIR /srv",
            "-c",
            "ENTRYPOINT [\"/bin/echo\", \"ep\"]",
            "-c",
            "CMD [\"default\"]",
            &tar,
            "ep:test",
        ]);
        env
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn store(&self) -> PathBuf {
        self.p("store")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CAIRN);
        c.arg("--root").arg(self.store()).args(args);
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cairn")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cairn {args:?}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Container directories: name → dir.
    pub fn containers(&self) -> Vec<(String, PathBuf)> {
        let Ok(rd) = fs::read_dir(self.store().join("containers")) else {
            return vec![];
        };
        rd.filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| {
                let name = fs::read_to_string(e.path().join("name")).unwrap_or_default();
                (name.trim().to_string(), e.path())
            })
            .collect()
    }

    pub fn container(&self, name: &str) -> PathBuf {
        self.containers()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no container {name}"))
            .1
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Leave no mount behind when a test fails half way.
        for (_, dir) in self.containers() {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(dir.join("rootfs"))
                .status();
        }
    }
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits until the named container is running; returns its pid 1 on the host.
pub fn wait_for_pid(env: &Env, name: &str) -> i32 {
    let start = Instant::now();
    loop {
        if let Some((_, dir)) = env.containers().into_iter().find(|(n, _)| n == name)
            && let Ok(s) = fs::read_to_string(dir.join("state.json"))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&s)
            && let Some(pid) = v["pid"].as_i64()
        {
            return pid as i32;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{name} never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The parsed state.json of the named container.
pub fn state_of(env: &Env, name: &str) -> serde_json::Value {
    let s = fs::read_to_string(env.container(name).join("state.json")).expect("state.json");
    serde_json::from_str(&s).expect("state json")
}

/// Polls `f` every 20 ms until it holds; panics with `what` after 30 s.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether /proc/mounts has a mount under `dir`.
pub fn mounted_under(dir: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let d = dir.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1).is_some_and(|m| m.starts_with(&*d)))
}

/// Whether a process runs (not a zombie).
pub fn process_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// The STATUS column `ps -a` shows for the named container ("" if it is not listed).
pub fn ps_status(env: &Env, name: &str) -> String {
    env.ok(&["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}\t")).map(str::to_string))
        .unwrap_or_default()
}
