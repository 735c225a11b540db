//! An isolated podman/buildah environment for the mount_program tests: its own storage.conf
//! (graphroot, runroot, `mount_program`) and containers.conf (runc, cgroupfs, file events, tmp
//! dir) under a temp dir, a busybox image `bb:1` imported from a local archive, and cleanup
//! that resets the store, unmounts what is left and kills leftover mount programs by PID.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const FUSE_OVERLAYFS: &str = "/usr/bin/fuse-overlayfs";
const TOOLS: &[&str] = &[
    "podman",
    "buildah",
    "umoci",
    "runc",
    "busybox",
    "fusermount3",
];

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Returns false (after printing why) when the podman tests cannot run here; panics in CI.
pub fn ready() -> bool {
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !on_path(t)).collect();
    let why = if !rustix::process::geteuid().is_root() {
        Some("not root".to_string())
    } else if !Path::new("/dev/fuse").exists() {
        Some("no /dev/fuse".into())
    } else if !Path::new(FUSE_OVERLAYFS).exists() {
        Some(format!("no {FUSE_OVERLAYFS} (the reference)"))
    } else if !missing.is_empty() {
        Some(format!("missing {}", missing.join(", ")))
    } else {
        None
    };
    match why {
        None => true,
        Some(w) if std::env::var("CI").as_deref() == Ok("true") => panic!("cannot run in CI: {w}"),
        Some(w) => {
            eprintln!("skipping: {w}");
            false
        }
    }
}

/// Writes `DIR/bb.tar`: busybox with `/etc/a` ("lower a"), `/etc/b`, `/srv/old` and the
/// usual applet links; returns its path.
pub fn write_busybox_tar(dir: &Path) -> PathBuf {
    let root = dir.join("bb-rootfs");
    for d in ["bin", "etc", "srv", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let busybox = Command::new("sh")
        .args(["-c", "command -v busybox"])
        .output()
        .unwrap()
        .stdout;
    std::fs::copy(
        String::from_utf8(busybox).unwrap().trim(),
        root.join("bin/busybox"),
    )
    .unwrap();
    for applet in [
        "sh", "echo", "cat", "ls", "rm", "mkdir", "stat", "test", "chmod", "chown", "ln", "true",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/a"), "lower a\n").unwrap();
    std::fs::write(root.join("etc/b"), "lower b\n").unwrap();
    std::fs::write(root.join("srv/old"), "old\n").unwrap();
    let tar = dir.join("bb.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

/// PIDs of live processes whose command line names `dir` and a lower dir (mount programs).
pub fn mount_programs_of(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut pids = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("lowerdir=") && cmd.contains(&needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Kills processes by PID (cleanup of what a failed test left running).
pub fn kill_all(pids: &[u32]) {
    for &pid in pids {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).expect("pid > 0"),
            rustix::process::Signal::KILL,
        );
    }
}

/// One podman/buildah world using `program` as containers/storage's mount program.
pub struct Podman {
    dir: tempfile::TempDir,
    pub program: String,
}

impl Podman {
    /// Writes the configuration and imports `bb:1`: busybox with `/etc/a` ("lower a"),
    /// `/etc/b`, `/srv/old` and the usual applet links.
    pub fn new(program: &str) -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("cairn-podman")
            .tempdir()
            .unwrap();
        let p = Podman {
            dir,
            program: program.to_string(),
        };
        let d = p.dir.path().display().to_string();
        std::fs::write(
            p.path("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/graph\"\nrunroot = \"{d}/run\"\n\
                 [storage.options.overlay]\nmount_program = \"{program}\"\n"
            ),
        )
        .unwrap();
        std::fs::create_dir_all(p.path("xdg/containers")).unwrap();
        std::fs::write(
            p.path("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
                 [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\ntmp_dir = \"{d}/tmp\"\nstatic_dir = \"{d}/static\"\n\
                 volume_path = \"{d}/volumes\"\n\
                 [network]\nnetwork_config_dir = \"{d}/net\"\n"
            ),
        )
        .unwrap();
        p.import_busybox();
        p
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn import_busybox(&self) {
        let tar = write_busybox_tar(self.dir.path());
        self.ok("podman", &["import", "-q", &tar.to_string_lossy(), "bb:1"]);
    }

    /// `tool args` with this world's configuration (bounded in time).
    pub fn cmd(&self, tool: &str, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg("300").arg(tool).args(args);
        c.env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("BUILDAH_ISOLATION", "oci");
        c
    }

    /// Runs `tool args`, asserts success and returns stdout.
    pub fn ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.cmd(tool, args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert!(
            out.status.success(),
            "{tool} {args:?} with mount_program {}: {}\nstdout: {}\nstderr: {}",
            self.program,
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `podman run --rm --network none ARGS`, returning its output.
    pub fn run(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(args);
        self.ok("podman", &all)
    }

    /// Pushes `image` to an OCI layout and unpacks it; returns the root filesystem.
    pub fn unpack(&self, image: &str, tag: &str) -> PathBuf {
        let layout = self.path(&format!("oci-{tag}"));
        let dest = format!("oci:{}:{tag}", layout.display());
        self.ok("buildah", &["push", "-q", image, &dest]);
        let bundle = self.path(&format!("rootfs-{tag}"));
        let st = Command::new("umoci")
            .args(["raw", "unpack", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle)
            .status()
            .unwrap();
        assert!(st.success(), "umoci raw unpack {image}");
        bundle
    }

    /// PIDs of live processes whose command line names this world's directory (the mount
    /// programs containers/storage started for it).
    pub fn mount_programs(&self) -> Vec<u32> {
        mount_programs_of(self.dir.path())
    }

    /// FUSE mount points under this world's directory.
    pub fn mounts(&self) -> Vec<String> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(" - ").nth(1).is_some_and(|f| f.starts_with("fuse")))
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Every mount point under this world's directory (cleanup).
    fn all_mounts(&self) -> Vec<String> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Asserts (waiting a bounded while for exits to be noticed) that nothing is mounted
    /// under this world and no mount program of it runs.
    pub fn assert_no_leftovers(&self, when: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (m, p) = (self.mounts(), self.mount_programs());
            if m.is_empty() && p.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{when} ({}): mounts left {m:?}, mount programs left {p:?}",
                    self.program
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd("podman", &["system", "reset", "-f"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let mut mounts = self.all_mounts();
        mounts.reverse();
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        kill_all(&self.mount_programs());
    }
}
