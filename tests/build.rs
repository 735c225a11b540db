//! `cairn build` end to end, on the busybox-static base images of tests/support/run_env.rs:
//! multi-stage with COPY --from, RUN deleting lower files, ENTRYPOINT/CMD as `cairn run`
//! sees them, the cache (hits, same image id, a miss after a context change), a failing RUN
//! (exit status, message, nothing left behind), syntax errors with line and column,
//! .dockerignore, a tar context on stdin, and `cairn save` of a built image read by skopeo.
//! Root and FUSE required (skipped with a reason otherwise; a failure in CI).

#[path = "support/run_env.rs"]
mod run_env;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

use run_env::*;

/// Writes the context files (`name`, contents) under `ctx` in the test dir.
fn context(env: &Env, files: &[(&str, &str)]) -> String {
    let ctx = env.p("ctx");
    for (name, text) in files {
        let p = ctx.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    ctx.to_string_lossy().into_owned()
}

/// Builds `ctx` with `args`; returns stdout (the build must succeed).
fn build(env: &Env, ctx: &str, args: &[&str]) -> String {
    let mut a = vec!["build"];
    a.extend(args);
    a.push(ctx);
    env.ok(&a)
}

/// The image id `Successfully built` names.
fn built_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap_or_else(|| panic!("no id in {out}"))
        .to_string()
}

#[test]
fn multi_stage_run_copy_from_and_entrypoint_cmd() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let ctx = context(
        &env,
        &[
            ("a.txt", "from the context\n"),
            ("dir/sub/f", "deep\n"),
            (
                "Dockerfile",
                "ARG BASE=busybox:test\n\
                 FROM $BASE AS first\n\
                 ARG MSG=made\n\
                 RUN echo \"$MSG\" > /made && rm /etc/image-file && mkdir /out\n\
                 COPY a.txt dir /out/\n\
                 FROM ${BASE}\n\
                 ENV GREETING=\"hello world\"\n\
                 WORKDIR /app\n\
                 COPY --from=first /out /copied\n\
                 COPY --from=first /made ./\n\
                 RUN rm /etc/image-file\n\
                 ENTRYPOINT [\"echo\", \"ep\"]\n",
            ),
        ],
    );
    build(&env, &ctx, &["-t", "built:1"]);
    // ENTRYPOINT reset the CMD inherited from busybox:test (/bin/sh).
    assert_eq!(env.ok(&["run", "--rm", "built:1"]), "ep\n");
    assert_eq!(env.ok(&["run", "--rm", "built:1", "x"]), "ep x\n");
    let look = env.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "built:1",
        "-c",
        "pwd; cat made /copied/a.txt /copied/sub/f; echo $GREETING; ls /etc/image-file 2>&1; true",
    ]);
    assert_eq!(
        look,
        "/app\nmade\nfrom the context\ndeep\nhello world\n\
         ls: /etc/image-file: No such file or directory\n"
    );
    // A later stage's CMD after ENTRYPOINT is kept.
    fs::write(
        env.p("ctx/Dockerfile.cmd"),
        "FROM built:1\nCMD [\"default\"]\n",
    )
    .unwrap();
    let df = env.p("ctx/Dockerfile.cmd").to_string_lossy().into_owned();
    build(&env, &ctx, &["-f", &df, "-t", "built:2"]);
    assert_eq!(env.ok(&["run", "--rm", "built:2"]), "ep default\n");
    let history = env.ok(&["history", "built:1"]);
    assert!(
        history.contains("/bin/sh -c #(nop)  ENTRYPOINT"),
        "{history}"
    );
    assert!(history.contains("rm /etc/image-file"), "{history}");
}

#[test]
fn cache_hits_and_a_changed_file_rebuilds_from_its_step() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let ctx = context(
        &env,
        &[
            ("one.txt", "1\n"),
            ("two.txt", "2\n"),
            (
                "Dockerfile",
                "FROM busybox:test\nRUN echo first > /first\nCOPY one.txt /\n\
                 COPY two.txt /\nRUN cat /one.txt /two.txt > /both\n",
            ),
        ],
    );
    let first = build(&env, &ctx, &[]);
    assert!(!first.contains("Using cache"), "{first}");
    let again = build(&env, &ctx, &[]);
    assert_eq!(again.matches("Using cache").count(), 4, "{again}");
    assert_eq!(built_id(&first), built_id(&again));
    // Times alone do not count.
    Command::new("touch")
        .arg(env.p("ctx/one.txt"))
        .status()
        .unwrap();
    assert_eq!(build(&env, &ctx, &[]).matches("Using cache").count(), 4);
    fs::write(env.p("ctx/two.txt"), "changed\n").unwrap();
    let changed = build(&env, &ctx, &["-t", "c:1"]);
    assert_eq!(changed.matches("Using cache").count(), 2, "{changed}");
    assert_ne!(built_id(&changed), built_id(&first));
    assert_eq!(
        env.ok(&["run", "--rm", "c:1", "cat", "/both"]),
        "1\nchanged\n"
    );
    let none = build(&env, &ctx, &["--no-cache"]);
    assert!(!none.contains("Using cache"), "{none}");
}

#[test]
fn failing_run_exits_non_zero_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let ctx = context(
        &env,
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN echo partial > /half; sleep 3617 & exit 3\n",
        )],
    );
    let images_before = env.ok(&["images", "-q"]);
    let out = env.run(&["build", &ctx]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Step 2/2 : RUN echo partial"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(
            "The command '/bin/sh -c echo partial > /half; sleep 3617 & exit 3' returned a non-zero code: 3"
        ),
        "{}",
        stderr(&out)
    );
    let store = env.store().to_string_lossy().into_owned();
    assert!(env.containers().is_empty(), "a container was left");
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&store), "a mount was left: {mounts}");
    let tmp: Vec<_> = fs::read_dir(env.store().join("tmp"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
    for p in fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let cmdline = fs::read(p.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!text.starts_with("sleep 3617"), "process left: {text}");
        assert!(!text.contains(&store), "process left: {text}");
    }
    // No image was made by the failing step.
    assert_eq!(env.ok(&["images", "-q"]), images_before);
}

#[test]
fn syntax_errors_name_line_and_column() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let ctx = context(&env, &[("Dockerfile", "FROM busybox:test\n\n  RUNN x\n")]);
    let out = env.run(&["build", &ctx]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("line 3 column 3: unknown instruction: RUNN"),
        "{}",
        stderr(&out)
    );
    fs::write(
        env.p("ctx/Dockerfile"),
        "FROM busybox:test\nCOPY --form=x a b\n",
    )
    .unwrap();
    let out = env.run(&["build", &ctx]);
    assert!(stderr(&out).contains("line 2 column 6"), "{}", stderr(&out));
}

#[test]
fn dockerignore_tar_context_and_save_for_skopeo() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let ctx = context(
        &env,
        &[
            ("keep.txt", "kept\n"),
            ("secret.key", "nope\n"),
            (".dockerignore", "*.key\n"),
            (
                "Dockerfile",
                "FROM busybox:test\nCOPY . /ctx/\nLABEL stage=final\n",
            ),
        ],
    );
    let tar = env.p("ctx.tar");
    tar_dir(std::path::Path::new(&ctx), &tar);
    let mut child = env
        .cmd(&["build", "-q", "-t", "fromtar:1", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&fs::read(&tar).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        id.starts_with("sha256:") && !id.contains('\n'),
        "-q prints the id: {id}"
    );
    let ls = env.ok(&["run", "--rm", "fromtar:1", "ls", "/ctx"]);
    assert!(
        ls.contains("keep.txt") && !ls.contains("secret.key"),
        "{ls}"
    );
    let archive = env.p("img.tar");
    env.ok(&["save", "-o", &archive.to_string_lossy(), "fromtar:1"]);
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skipping the skopeo check: no skopeo");
        return;
    }
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Labels"]["stage"], "final");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn source_date_epoch_gives_the_same_image_twice() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let df = "FROM busybox:test\nCOPY f /f\nRUN echo run > /r && mkdir /d\nENV A=1\n";
    let mut ids = Vec::new();
    for dir in ["one", "two"] {
        let ctx = env.p(dir);
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("f"), "same\n").unwrap();
        fs::write(ctx.join("Dockerfile"), df).unwrap();
        let out = env.ok(&[
            "build",
            "-q",
            "--no-cache",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1700000000",
            &ctx.to_string_lossy(),
        ]);
        ids.push(out.trim().to_string());
        // Different times for the second build's files.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(ids[0], ids[1]);
    let without = env.ok(&["build", "-q", "--no-cache", &env.p("one").to_string_lossy()]);
    assert_ne!(without.trim(), ids[0], "without the epoch the times differ");
}

#[test]
fn run_mounts_cache_persists_and_secret_never_lands_in_the_image() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let ctx = context(
        &env,
        &[
            ("src/f", "bound\n"),
            (
                "Dockerfile",
                "FROM busybox:test\n\
                 RUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /count\n\
                 RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-size\n\
                 RUN --mount=type=bind,source=src,target=/src cat /src/f > /bound\n",
            ),
        ],
    );
    let secret = env.p("token");
    fs::write(&secret, "TOPSECRET-42\n").unwrap();
    let sec = format!("id=tok,src={}", secret.display());
    build(&env, &ctx, &["--secret", &sec, "-t", "m:1"]);
    build(&env, &ctx, &["--no-cache", "--secret", &sec, "-t", "m:2"]);
    let seen = env.ok(&[
        "run",
        "--rm",
        "m:2",
        "cat",
        "/count",
        "/secret-size",
        "/bound",
    ]);
    assert_eq!(
        seen.split_whitespace().collect::<Vec<_>>(),
        ["2", "13", "bound"]
    );
    let archive = env.p("m.tar");
    env.ok(&["save", "-o", &archive.to_string_lossy(), "m:2"]);
    let unpacked = env.p("m");
    fs::create_dir_all(&unpacked).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && tar -xf {} && for l in $(find . -type f); do tar -xOf $l 2>/dev/null; cat $l; done | grep -c TOPSECRET",
            unpacked.display(),
            archive.display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&st.stdout).trim(),
        "0",
        "the secret is in the image"
    );
    let mounts = env.ok(&["run", "--rm", "m:2", "ls", "/run/secrets"]);
    assert_eq!(mounts, "", "no secret file in the image");
    // builder prune forgets the cache: the next build starts a new cache directory.
    env.ok(&["builder", "prune", "-f"]);
    build(&env, &ctx, &["--secret", &sec, "-t", "m:3"]);
    assert_eq!(env.ok(&["run", "--rm", "m:3", "cat", "/count"]).trim(), "1");
}

#[test]
fn output_oci_unpacks_with_umoci() {
    if !can_run() {
        return;
    }
    if Command::new("umoci").arg("--version").output().is_err() {
        eprintln!("skipping: no umoci");
        return;
    }
    let env = Env::new();
    let ctx = context(
        &env,
        &[
            ("f", "copied\n"),
            (
                "Dockerfile",
                "FROM busybox:test\nCOPY f /f\nRUN rm /etc/image-file\n",
            ),
        ],
    );
    let dest = env.p("out.tar");
    let out = format!("type=oci,dest={}", dest.display());
    build(&env, &ctx, &["-q", "-t", "out:1", "--output", &out]);
    let layout = env.p("layout");
    fs::create_dir_all(&layout).unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-xf")
        .arg(&dest)
        .status()
        .unwrap();
    assert!(st.success());
    let bundle = env.p("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:1", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(fs::read_to_string(rootfs.join("f")).unwrap(), "copied\n");
    assert!(
        !rootfs.join("etc/image-file").exists(),
        "the RUN's deletion is a whiteout"
    );
    assert!(rootfs.join("bin/busybox").exists());
}

#[test]
fn config_instructions_heredocs_and_onbuild() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let ctx = context(
        &env,
        &[(
            "Dockerfile",
            "FROM busybox:test\n\
             RUN <<EOF\n\
             echo one > /h1\n\
             echo two >> /h1\n\
             EOF\n\
             COPY <<EOF /etc/greeting\n\
             hello from a heredoc\n\
             EOF\n\
             LABEL a=b \"c d\"=e\n\
             EXPOSE 80 53/udp\n\
             VOLUME /data\n\
             STOPSIGNAL SIGINT\n\
             HEALTHCHECK --interval=30s --retries=2 CMD true\n\
             SHELL [\"/bin/sh\", \"-ec\"]\n\
             ONBUILD RUN echo triggered > /tmp/onbuild\n\
             USER app\n",
        )],
    );
    build(&env, &ctx, &["-t", "cfg:1"]);
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "cfg:1"])).unwrap();
    let c = &v[0]["Config"];
    assert_eq!(c["Labels"]["a"], "b");
    assert_eq!(c["Labels"]["c d"], "e");
    assert!(c["ExposedPorts"]["53/udp"].is_object() && c["ExposedPorts"]["80/tcp"].is_object());
    assert!(c["Volumes"]["/data"].is_object());
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(
        c["OnBuild"],
        serde_json::json!(["RUN echo triggered > /tmp/onbuild"])
    );
    assert_eq!(c["User"], "app");
    let files = env.ok(&[
        "run",
        "--rm",
        "-u",
        "root",
        "cfg:1",
        "cat",
        "/h1",
        "/etc/greeting",
    ]);
    assert_eq!(files, "one\ntwo\nhello from a heredoc\n");
    // A child build runs the trigger first; the child's config has no OnBuild.
    fs::write(env.p("ctx/Dockerfile.child"), "FROM cfg:1\nENV CHILD=1\n").unwrap();
    let df = env.p("ctx/Dockerfile.child").to_string_lossy().into_owned();
    build(&env, &ctx, &["-f", &df, "-t", "child:1"]);
    assert_eq!(
        env.ok(&["run", "--rm", "child:1", "cat", "/tmp/onbuild"]),
        "triggered\n"
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "child:1"])).unwrap();
    assert!(v[0]["Config"]["OnBuild"].is_null(), "{}", v[0]["Config"]);
}
