//! The fuse-overlayfs command line (`cairn -o OPTS MOUNTPOINT`, as containers/storage runs a
//! mount_program) against fuse-overlayfs 1.10 itself: the same operations through both
//! programs give the same observations — owners under `uidmapping=`/`gidmapping=` and
//! `squash_to_*` (shown and stored), `static_nlink` — and an upper either program wrote reads
//! the same through the other one (whiteouts, opaque directories, fuse-overlayfs' `.wh.*`
//! files and private xattrs). Unmounting with `fusermount3 -u` ends the program.

#[path = "support/skip.rs"]
mod skip;
#[path = "support/tree.rs"]
mod tree;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
const FUSE_OVERLAYFS: &str = "/usr/bin/fuse-overlayfs";

/// Returns false (after printing why) when this test cannot run here; panics in CI.
fn ready() -> bool {
    let why = if !rustix::process::geteuid().is_root() {
        Some("not root")
    } else if !Path::new("/dev/fuse").exists() {
        Some("no /dev/fuse")
    } else if !Path::new(FUSE_OVERLAYFS).exists() {
        Some("no fuse-overlayfs (the reference)")
    } else {
        None
    };
    skip::ready_unless(why)
}

/// A lower layer `l`, an upper `u`, a work dir `w` and a mountpoint `m` in a temp dir.
struct Stack {
    dir: tempfile::TempDir,
}

impl Stack {
    /// `l` holds files owned 0:0, 5:6 and 50:50, a directory `d` with `d/b`, a directory
    /// `e` with `e/c`, and a file `a`.
    fn new() -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("cairn-mp")
            .tempdir()
            .unwrap();
        let s = Stack { dir };
        for d in ["l/d", "l/e", "u", "w", "m"] {
            std::fs::create_dir_all(s.p(d)).unwrap();
        }
        for (f, owner) in [
            ("f0", 0),
            ("f5", 5),
            ("f50", 50),
            ("a", 0),
            ("d/b", 0),
            ("e/c", 0),
        ] {
            std::fs::write(s.p(&format!("l/{f}")), f).unwrap();
            let gid = if owner == 5 { 6 } else { owner };
            std::os::unix::fs::lchown(s.p(&format!("l/{f}")), Some(owner), Some(gid)).unwrap();
        }
        s
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Mounts with `program -o lowerdir=l,upperdir=u,workdir=w,EXTRA m` run in the stack's
    /// directory (a relative lower dir, as containers/storage passes them).
    fn mount(&self, program: &str, extra: &str) {
        let opts = format!(
            "lowerdir=l,upperdir={},workdir={},{extra}",
            self.p("u").display(),
            self.p("w").display()
        );
        let out = Command::new(program)
            .current_dir(self.dir.path())
            .args(["-o", &opts])
            .arg(self.p("m"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} -o {opts}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// PIDs of the mount programs serving this stack.
    fn programs(&self) -> Vec<i32> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        let mut pids = vec![];
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains("lowerdir=") && cmd.contains(&needle) {
                pids.push(pid);
            }
        }
        pids
    }

    /// `fusermount3 -u` as containers/storage does; the program must exit.
    fn unmount(&self) {
        let st = Command::new("fusermount3")
            .arg("-u")
            .arg(self.p("m"))
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.programs().is_empty() {
            assert!(
                Instant::now() < deadline,
                "mount program still running after fusermount3 -u: {:?}",
                self.programs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn owner(&self, rel: &str) -> String {
        let md = std::fs::symlink_metadata(self.p(rel)).unwrap();
        format!("{}:{}", md.uid(), md.gid())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.p("m"))
            .stderr(std::process::Stdio::null())
            .status();
        for pid in self.programs() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).expect("pid > 0"),
                rustix::process::Signal::KILL,
            );
        }
    }
}

fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// Owners shown and stored under `uidmapping=0:1000:10,gidmapping=0:2000:10`.
fn mapped_owners(program: &str) -> Vec<String> {
    let s = Stack::new();
    s.mount(program, ",uidmapping=0:1000:10,gidmapping=0:2000:10");
    let mut seen: Vec<String> = ["m/f0", "m/f5", "m/f50", "m/d"]
        .iter()
        .map(|f| format!("{f} {}", s.owner(f)))
        .collect();
    // A file created by (shown) uid 1000 in d, which shows as 1000's, is stored as uid 0.
    let new = s.p("m/d/new");
    sh(&format!(
        "setpriv --reuid=1000 --regid=2000 --clear-groups sh -c 'echo x > {}'",
        new.display()
    ));
    seen.push(format!(
        "new {} stored {}",
        s.owner("m/d/new"),
        s.owner("u/d/new")
    ));
    sh(&format!("chown 1003:2004 {}", s.p("m/f0").display()));
    seen.push(format!(
        "chown {} stored {}",
        s.owner("m/f0"),
        s.owner("u/f0")
    ));
    s.unmount();
    seen
}

#[test]
fn id_mapping_matches_fuse_overlayfs() {
    if !ready() {
        return;
    }
    let got = mapped_owners(CAIRN);
    assert_eq!(
        got,
        [
            "m/f0 1000:2000",
            "m/f5 1005:2006",
            "m/f50 65534:65534",
            "m/d 1000:2000",
            "new 1000:2000 stored 0:0",
            "chown 1003:2004 stored 3:4"
        ]
    );
    assert_eq!(got, mapped_owners(FUSE_OVERLAYFS));
}

fn squashed(program: &str) -> Vec<String> {
    let s = Stack::new();
    s.mount(
        program,
        "squash_to_uid=7,squash_to_gid=8,squash_to_root,static_nlink",
    );
    std::fs::create_dir(s.p("m/d/sub")).unwrap();
    let nlink = |rel: &str| std::fs::metadata(s.p(rel)).unwrap().nlink();
    let seen = vec![
        s.owner("m/f5"),
        s.owner("m/d"),
        format!("nlink {} {}", nlink("m"), nlink("m/d")),
    ];
    s.unmount();
    seen
}

#[test]
fn squash_and_static_nlink_match_fuse_overlayfs() {
    if !ready() {
        return;
    }
    let got = squashed(CAIRN);
    assert_eq!(got, ["7:8", "7:8", "nlink 1 1"]);
    assert_eq!(got, squashed(FUSE_OVERLAYFS));
}

/// Deletes file `del`, replaces directory `d` (opaque), renames directory `from` to `e{tag}`,
/// sets a user xattr and creates `a{tag}`, through `program`; returns what the mount shows.
fn change(s: &Stack, program: &str, tag: &str, del: &str, from: &str) -> tree::Tree {
    s.mount(program, "");
    let m = s.p("m");
    let m = m.display();
    sh(&format!(
        "rm {m}/{del} && rm -r {m}/d && mkdir {m}/d && echo {tag} > {m}/d/n{tag} && \
         mv {m}/{from} {m}/e{tag} && setfattr -n user.k -v {tag} {m}/f5 && echo {tag} > {m}/a{tag}"
    ));
    let t = tree::tree(&s.p("m"));
    s.unmount();
    t
}

fn remount(s: &Stack, program: &str) -> tree::Tree {
    s.mount(program, "");
    let t = tree::tree(&s.p("m"));
    s.unmount();
    t
}

#[test]
fn an_upper_fuse_overlayfs_wrote_reads_the_same_through_cairn_and_back() {
    if !ready() {
        return;
    }
    let s = Stack::new();
    let want = change(&s, FUSE_OVERLAYFS, "1", "a", "e");
    assert!(
        s.p("u/d/.wh..wh..opq").exists(),
        "fuse-overlayfs' opaque marker file"
    );
    let got = remount(&s, CAIRN);
    assert_eq!(want, got, "cairn over fuse-overlayfs' upper");
    assert!(!got.nodes.contains_key("/d/.wh..wh..opq") && !got.nodes.contains_key("/a"));
    // cairn changes it further; fuse-overlayfs reads cairn's result.
    let want = change(&s, CAIRN, "2", "a1", "e1");
    assert!(!want.nodes.contains_key("/e1") && want.nodes.contains_key("/e2/c"));
    assert_eq!(
        want,
        remount(&s, FUSE_OVERLAYFS),
        "fuse-overlayfs over cairn's upper"
    );
}

/// What unprivileged fuse-overlayfs writes: `.wh.NAME` files and `user.fuseoverlayfs.opaque`.
#[test]
fn unprivileged_fuse_overlayfs_forms_read_the_same() {
    if !ready() {
        return;
    }
    let s = Stack::new();
    std::fs::write(s.p("u/.wh.a"), "").unwrap();
    std::fs::create_dir(s.p("u/d")).unwrap();
    std::fs::write(s.p("u/d/.wh..wh..opq"), "").unwrap();
    std::fs::write(s.p("u/d/n"), "n").unwrap();
    std::fs::create_dir(s.p("u/e")).unwrap();
    sh(&format!(
        "setfattr -n user.fuseoverlayfs.opaque -v y {}",
        s.p("u/e").display()
    ));
    let want = remount(&s, FUSE_OVERLAYFS);
    assert!(!want.nodes.contains_key("/a") && !want.nodes.contains_key("/e/c"));
    let got = remount(&s, CAIRN);
    assert_eq!(want, got);
    // The private xattr stays hidden and unreadable through cairn.
    s.mount(CAIRN, "");
    let out = Command::new("getfattr")
        .args(["-d", "-m", "-"])
        .arg(s.p("m/e"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("fuseoverlayfs"));
    let e = rustix::fs::getxattr(s.p("m/e"), "user.fuseoverlayfs.opaque", &mut [0u8; 8][..]);
    assert_eq!(e, Err(rustix::io::Errno::NODATA));
    s.unmount();
}

#[test]
fn unsupported_fuse_overlayfs_options_are_refused_by_name() {
    if !ready() {
        return;
    }
    let s = Stack::new();
    let out = Command::new(CAIRN)
        .current_dir(s.dir.path())
        .args(["-o", "lowerdir=l,plugins=x", "m"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("plugins=x"), "{err}");
    assert!(s.programs().is_empty());
}

/// Installed under a name ending in `overlayfs`, cairn takes fuse-overlayfs' command line
/// whatever its first argument (`-f`-less, source first, as mount.fuse3 runs it).
#[test]
fn a_link_named_like_fuse_overlayfs_takes_its_command_line() {
    if !ready() {
        return;
    }
    let s = Stack::new();
    let link = s.p("cairn-overlayfs");
    std::os::unix::fs::symlink(CAIRN, &link).unwrap();
    let out = Command::new(&link)
        .current_dir(s.dir.path())
        .arg("overlay")
        .arg(s.p("m"))
        .args(["-o", "lowerdir=l,static_nlink"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(s.p("m/f5")).unwrap(), "f5");
    assert_eq!(std::fs::metadata(s.p("m/d")).unwrap().nlink(), 1);
    s.unmount();
}
