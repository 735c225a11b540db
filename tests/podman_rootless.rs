//! Rootless podman and buildah with cairn as `--storage-opt overlay.mount_program=`: a
//! created non-root user (with /etc/subuid and /etc/subgid ranges) runs, changes lower files
//! and commits, runs with `--uidmap` (containers/storage then passes `uidmapping=`), builds a
//! multi-stage Dockerfile with `podman build` and `buildah bud`, removes everything — the mount
//! happens inside podman's user namespace, where cairn has no real root. The same script runs
//! with fuse-overlayfs as the reference and must print the same; no mount program is left.
//!
//! Setup done as root (CI is root): the user `cairn-rootless` is created if missing, given
//! subordinate id ranges, and /dev/fuse is made usable by it (mode 666), as rootless podman
//! with a FUSE mount program needs on a host without a fuse group.

#[path = "support/podman_env.rs"]
mod podman_env;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use podman_env::{FUSE_OVERLAYFS, kill_all, mount_programs_of, ready, write_busybox_tar};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
const USER: &str = "cairn-rootless";

/// Creates the test user with subordinate ids and opens /dev/fuse to it; false (after
/// printing why) when that is not possible here.
fn rootless_ready() -> bool {
    if !ready() {
        return false;
    }
    let have = |t: &str| Path::new(t).exists();
    if !have("/usr/bin/newuidmap") || !have("/usr/sbin/useradd") {
        let why = "no newuidmap (uidmap) or useradd";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot run in CI: {why}"
        );
        eprintln!("skipping: {why}");
        return false;
    }
    let exists = Command::new("id")
        .arg(USER)
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let st = Command::new("useradd")
            .args(["-M", "-d", "/nonexistent", "-s", "/bin/sh", USER])
            .status()
            .unwrap();
        assert!(st.success(), "useradd {USER}");
    }
    for f in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            let line = format!("{USER}:400000:65536\n");
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .and_then(|mut w| std::io::Write::write_all(&mut w, line.as_bytes()))
                .unwrap();
        }
    }
    let fuse = std::fs::metadata("/dev/fuse").unwrap();
    if fuse.permissions().mode() & 0o006 != 0o006 {
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    true
}

const DOCKERFILE: &str = "\
FROM bb:1 AS build
RUN mkdir -p /out/sub && echo built > /out/sub/file && chown 12:34 /out/sub && rm /bin/cat
FROM bb:1
COPY --from=build /out /app
RUN rm /bin/ls && rm -r /srv && mkdir /srv && echo d > /srv/x
";

/// The workload, run as the user; `$D` is its directory and `$PROG` the mount program.
const SCRIPT: &str = r#"set -e
export HOME=$D XDG_RUNTIME_DIR=$D/xdgrun XDG_CONFIG_HOME=$D/cfg XDG_DATA_HOME=$D/data
cd $D
P="podman --storage-opt overlay.mount_program=$PROG"
B="buildah --storage-opt overlay.mount_program=$PROG"
trap '$P system reset -f >/dev/null 2>&1' EXIT
$P import -q bb.tar bb:1 >/dev/null
$P run --rm --network none bb:1 sh -c 'echo hi; while read -r dev mnt type rest; do [ "$mnt" = / ] && echo "$type"; done < /proc/mounts; true'
$P run --name c1 --network none bb:1 sh -c 'rm /bin/ls /etc/b && rm -r /srv && mkdir /srv && echo fresh > /srv/only && chown 5:6 /srv/only'
$P commit -q c1 bb:2 >/dev/null
$P run --rm --network none bb:2 sh -c 'stat -c "%u:%g %n" /srv/*; test -e /bin/ls || echo no-ls; test -e /etc/b || echo no-b'
$P run --rm --network none --uidmap 0:1:5000 --gidmap 0:1:5000 bb:1 sh -c 'stat -c "%u:%g %n" /etc/a; echo x > /tmp/n; stat -c "%u:%g %n" /tmp/n'
$P build -q --network none -t built:1 ctx >/dev/null
$B bud -q --network none -t built:2 ctx >/dev/null
for i in built:1 built:2; do
  $P run --rm --network none $i sh -c 'stat -c "%u:%g %a %n" /app/sub /app/sub/file /srv/*; test -e /bin/ls || echo no-ls; test -e /bin/cat && echo cat'
done
$P rm c1 >/dev/null
$P rmi bb:2 built:1 built:2 >/dev/null
echo done
"#;

/// Runs the workload as the user with `program`; returns its output.
fn rootless(program: &str) -> String {
    let dir = tempfile::Builder::new()
        .prefix("cairn-rootless")
        .tempdir()
        .unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_busybox_tar(d);
    std::fs::create_dir_all(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/Dockerfile"), DOCKERFILE).unwrap();
    // The user must be able to run the program: a copy in its directory.
    let prog = if program == CAIRN {
        let p = d.join("cairn");
        std::fs::copy(CAIRN, &p).unwrap();
        p
    } else {
        program.into()
    };
    std::fs::create_dir_all(d.join("cfg/containers")).unwrap();
    let conf = format!(
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
        d.display()
    );
    std::fs::write(d.join("cfg/containers/storage.conf"), conf).unwrap();
    std::fs::write(
        d.join("cfg/containers/containers.conf"),
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
         [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .unwrap();
    std::fs::write(d.join("run.sh"), SCRIPT).unwrap();
    let st = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(d)
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("timeout")
        .args(["600", "su", USER, "-s", "/bin/sh", "-c"])
        .arg(format!(
            "D={} PROG={} sh {}/run.sh",
            d.display(),
            prog.display(),
            d.display()
        ))
        .output()
        .unwrap();
    let left = mount_programs_of(d);
    kill_all(&left);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        out.status.success(),
        "rootless workload with {program}: {}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(left.is_empty(), "mount programs left running: {left:?}");
    text(&out.stdout)
}

#[test]
fn rootless_podman_and_buildah_with_cairn_match_fuse_overlayfs() {
    if !rootless_ready() {
        return;
    }
    let got = rootless(CAIRN);
    let image = "12:34 755 /app/sub\n0:0 644 /app/sub/file\n0:0 644 /srv/x\nno-ls\ncat\n";
    let rest = "5:6 /srv/only\nno-ls\nno-b\n0:0 /etc/a\n0:0 /tmp/n\n";
    // The root of the container is a cairn mount (the mount program really was cairn).
    assert_eq!(got, format!("hi\nfuse.cairn\n{rest}{image}{image}done\n"));
    let reference = rootless(FUSE_OVERLAYFS);
    assert_eq!(got.replace("fuse.cairn", "fuse.fuse-overlayfs"), reference);
}
