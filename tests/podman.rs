//! cairn as podman's and buildah's `mount_program` (containers/storage runs it with the
//! fuse-overlayfs command line), as root: run, changes to lower files committed and run again,
//! multi-stage `podman build` and `buildah bud` giving the same image tree as with
//! fuse-overlayfs, and no mount or cairn process left after rm/rmi/system reset. Every
//! scenario also runs with fuse-overlayfs itself as the reference. Each test has its own
//! graphroot, runroot and configuration under a temp dir; the host's podman state is untouched.

#[path = "support/podman_env.rs"]
mod podman_env;
#[path = "support/tree.rs"]
mod tree;

use podman_env::{FUSE_OVERLAYFS, Podman, ready};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// A container changes and deletes lower files, is committed, and the new image shows exactly
/// that; rm/rmi/system reset leave nothing mounted and no mount program running.
fn run_commit_cleanup(program: &str) {
    let p = Podman::new(program);
    assert_eq!(p.run(&["bb:1", "echo", "hi"]), "hi\n");
    p.ok(
        "podman",
        &[
            "run",
            "--name",
            "c1",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "bb:1",
            "sh",
            "-c",
            "rm /bin/ls /etc/b && echo new > /etc/a && rm -r /srv && mkdir /srv && \
             echo fresh > /srv/only && chmod 600 /etc/a && ln /etc/a /etc/a2",
        ],
    );
    // `podman mount` starts the mount program; `podman umount` (fusermount3 -u) ends it.
    let merged = p.ok("podman", &["mount", "c1"]);
    let merged = std::path::Path::new(merged.trim());
    assert_eq!(
        std::fs::read_to_string(merged.join("etc/a")).unwrap(),
        "new\n"
    );
    assert!(!merged.join("bin/ls").exists());
    assert_eq!(p.mount_programs().len(), 1, "one mount program serves c1");
    p.ok("podman", &["umount", "--force", "c1"]);
    p.assert_no_leftovers("after podman umount");
    p.ok("podman", &["commit", "-q", "c1", "bb:2"]);
    let seen = p.run(&[
        "bb:2",
        "sh",
        "-c",
        "ls /srv; cat /etc/a; stat -c '%a %h' /etc/a; test -e /bin/ls || echo no-ls; \
         test -e /etc/b || echo no-b",
    ]);
    assert_eq!(seen, "only\nnew\n600 2\nno-ls\nno-b\n");
    // The original image is unchanged.
    assert_eq!(
        p.run(&["bb:1", "sh", "-c", "ls /srv; cat /etc/a"]),
        "old\nlower a\n"
    );
    p.ok("podman", &["rm", "c1"]);
    p.assert_no_leftovers("after podman rm");
    p.ok("podman", &["rmi", "bb:2"]);
    p.assert_no_leftovers("after podman rmi");
    p.run(&["bb:1", "true"]);
    p.ok("podman", &["system", "reset", "-f"]);
    p.assert_no_leftovers("after podman system reset");
}

#[test]
fn podman_run_commit_and_cleanup_with_cairn() {
    if ready() {
        run_commit_cleanup(CAIRN);
    }
}

#[test]
fn podman_run_commit_and_cleanup_with_fuse_overlayfs_reference() {
    if ready() {
        run_commit_cleanup(FUSE_OVERLAYFS);
    }
}

const DOCKERFILE: &str = "\
FROM bb:1 AS build
RUN mkdir -p /out/sub && echo built > /out/sub/file && ln -s sub/file /out/link && \
    chmod 640 /out/sub/file && chown 12:34 /out/sub
RUN rm /bin/cat && echo more >> /out/sub/file && rm -r /srv
FROM bb:1
COPY --from=build /out /app
RUN rm /bin/ls /etc/b && rm -r /srv && mkdir /srv && echo d > /srv/x && \
    ln /app/sub/file /app/hard && echo changed > /etc/a
";

/// `podman build` and `buildah bud` of a multi-stage Dockerfile through cairn give the image
/// fuse-overlayfs gives with the same tool (unpacked trees compared entry by entry; the
/// layer split differs between the tools, and with it whether a hardlink survives).
#[test]
fn multi_stage_builds_match_fuse_overlayfs() {
    if !ready() {
        return;
    }
    let reference = Podman::new(FUSE_OVERLAYFS);
    let cairn = Podman::new(CAIRN);
    let mut got = std::path::PathBuf::new();
    for tool in ["podman", "buildah"] {
        let want = reference.build(tool, &format!("{tool}-ref"));
        got = cairn.build(tool, tool);
        tree::assert_same_tree(&want, &got);
    }
    let t = tree::tree(&got);
    assert!(t.nodes.contains_key("/app/hard") && !t.nodes.contains_key("/bin/ls"));
    assert_eq!(std::fs::read_to_string(got.join("srv/x")).unwrap(), "d\n");
}

impl Podman {
    /// Builds [`DOCKERFILE`] with `tool` (podman or buildah), pushes it to an OCI layout and
    /// unpacks it; returns the unpacked root filesystem.
    fn build(&self, tool: &str, tag: &str) -> std::path::PathBuf {
        let ctx = self.path(&format!("ctx-{tag}"));
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
        let image = format!("built:{tag}");
        let ctx = ctx.to_string_lossy().into_owned();
        let verb = if tool == "podman" { "build" } else { "bud" };
        self.ok(
            tool,
            &[
                verb,
                "-q",
                "--network",
                "none",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
                "-t",
                &image,
                &ctx,
            ],
        );
        self.unpack(&image, tag)
    }
}
