//! The store under concurrent and killed commands (issues 12 and 14): `rmi` racing `run` on
//! one image and on distinct images, `import` racing `rmi` and `image prune`, `prune` racing
//! `rmi`, `kill -9` of import/commit/save/rmi at random points followed by `system check`
//! and `--repair`, corrupt state files, and docker's exit codes. Seeded randomness, few rounds
//! in CI; `CAIRN_SOAK=1` runs many more. Root and FUSE required (skipped with a reason
//! otherwise; a failure in CI).

#[path = "support/run_env.rs"]
mod run_env;

use std::fs;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use run_env::*;

/// Rounds: `ci` normally, `soak` with CAIRN_SOAK=1.
fn rounds(ci: usize, soak: usize) -> usize {
    match std::env::var("CAIRN_SOAK").as_deref() {
        Ok("1") => soak,
        _ => ci,
    }
}

fn names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `system check` passes and says the store is consistent.
fn assert_consistent(env: &Env, when: &str) {
    let out = env.run(&["system", "check"]);
    assert!(
        out.status.success() && stdout(&out).contains("store is consistent"),
        "system check {when}: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Nothing of any image is left: no layer, no blob, no index entry.
fn assert_store_empty(env: &Env) {
    assert_eq!(env.ok(&["images", "-a", "-q"]), "");
    assert_eq!(names(&env.store().join("layers")), Vec::<String>::new());
    assert_eq!(
        names(&env.store().join("blobs/sha256")),
        Vec::<String>::new(),
        "blobs leaked"
    );
}

/// Removes every container (forced).
fn remove_all_containers(env: &Env) {
    for (name, _) in env.containers() {
        if !name.is_empty() {
            env.ok(&["rm", "-f", &name]);
        }
    }
}

/// A tar of the env's busybox rootfs with `/etc/id` = `id` (a distinct layer per id).
fn image_tar(env: &Env, id: &str) -> String {
    let rootfs = env.p("rootfs");
    fs::write(rootfs.join("etc/id"), format!("{id}\n")).unwrap();
    let tar = env.p(&format!("{id}.tar"));
    tar_dir(&rootfs, &tar);
    tar.to_string_lossy().into_owned()
}

/// Runs `jobs` (argument lists) at once, each after a seeded jitter; returns their outputs in
/// order.
fn together(env: &Env, jobs: Vec<Vec<String>>, rng: &mut ChaCha8Rng) -> Vec<Output> {
    let jobs = jobs.into_iter().map(|j| (j, 0..40)).collect();
    together_in(env, jobs, rng)
}

/// [`together`], each job after a seeded delay (ms) from its own range.
fn together_in(
    env: &Env,
    jobs: Vec<(Vec<String>, std::ops::Range<u64>)>,
    rng: &mut ChaCha8Rng,
) -> Vec<Output> {
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(args, delay)| {
            let mut cmd = env.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let barrier = barrier.clone();
            let jitter = Duration::from_millis(rng.random_range(delay));
            std::thread::spawn(move || {
                barrier.wait();
                std::thread::sleep(jitter);
                cmd.output().expect("run cairn")
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn eight_rmi_against_eight_run_of_one_image() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    env.ok(&["rmi", "ep:test"]); // busybox:test is the only image: "gone" is checkable
    let tar = env.p("r.tar").to_string_lossy().into_owned();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let (mut ran, mut refused, mut deleted, mut conflicts, mut vanished) = (0, 0, 0, 0, 0);
    for round in 0..rounds(3, 12) {
        if !env.ok(&["images", "-q", "busybox:test"]).contains('\n') {
            env.ok(&["import", "-c", "CMD [\"/bin/sh\"]", &tar, "busybox:test"]);
        }
        let mut jobs = Vec::new();
        for i in 0..8 {
            let name = format!("r{round}-{i}");
            let mut args = strs(&["run", "--name", &name]);
            if i % 2 == 0 {
                args.push("--rm".into());
            }
            args.extend(strs(&["busybox:test", "cat", "/etc/image-file"]));
            // Rounds alternate who tends to come first, so both outcomes are exercised.
            let (run_at, rmi_at) = match round % 3 {
                0 => (0..10, 30..90),
                1 => (0..40, 0..40),
                _ => (15..60, 0..15),
            };
            jobs.push((args, run_at));
            jobs.push((strs(&["rmi", "busybox:test"]), rmi_at));
        }
        let outs = together_in(&env, jobs, &mut rng);
        let mut round_deleted = false;
        for (k, out) in outs.iter().enumerate() {
            if k % 2 == 0 {
                let name = format!("r{round}-{}", k / 2);
                if out.status.success() {
                    // Every started container ran on its image's layers.
                    assert_eq!(stdout(out), "from the image\n", "{name}: {}", stderr(out));
                    ran += 1;
                } else {
                    assert_eq!(code(out), 125, "{name}: {}", stderr(out));
                    assert!(stderr(out).contains("No such image"), "{}", stderr(out));
                    assert!(
                        !env.containers().iter().any(|(n, _)| *n == name),
                        "a refused run left container {name}"
                    );
                    refused += 1;
                }
            } else if out.status.success() {
                assert!(stdout(out).contains("Deleted: sha256:"), "{}", stdout(out));
                deleted += 1;
                round_deleted = true;
            } else {
                assert_eq!(code(out), 1, "rmi: {}", stderr(out));
                let e = stderr(out);
                if e.contains("conflict: unable to delete") {
                    conflicts += 1;
                } else {
                    assert!(e.contains("No such image"), "rmi: {e}");
                    vanished += 1;
                }
            }
        }
        assert_consistent(&env, &format!("after round {round}"));
        if round_deleted {
            // Deleted means fully gone, with no container left standing on it.
            assert_store_empty(&env);
            assert!(
                env.containers().iter().all(|(n, _)| n.is_empty()),
                "containers outlived their deleted image"
            );
        }
        remove_all_containers(&env);
    }
    let _ = env.run(&["rmi", "busybox:test"]);
    assert_store_empty(&env);
    assert_consistent(&env, "at the end");
    eprintln!(
        "rmi x run, one image: {ran} runs ran, {refused} refused (No such image); \
         rmi: {deleted} deleted, {conflicts} conflict, {vanished} no such image"
    );
    assert!(ran > 0, "no run ever ran: nothing tested");
}

#[test]
fn rmi_races_run_detached_on_eight_distinct_images() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let (mut ran, mut deleted) = (0, 0);
    for round in 0..rounds(3, 10) {
        for i in 0..8 {
            let tar = image_tar(&env, &format!("img{i}"));
            env.ok(&["import", &tar, &format!("img{i}:{round}")]);
        }
        let mut jobs = Vec::new();
        for i in 0..8 {
            let image = format!("img{i}:{round}");
            jobs.push(strs(&[
                "run",
                "-d",
                "--name",
                &format!("d{i}"),
                &image,
                "sleep",
                "60",
            ]));
            jobs.push(strs(&["rmi", &image]));
        }
        let outs = together(&env, jobs, &mut rng);
        for i in 0..8 {
            let (run, rmi) = (&outs[2 * i], &outs[2 * i + 1]);
            assert!(
                !(run.status.success() && rmi.status.success()),
                "img{i}: both run and rmi succeeded: {}",
                stdout(rmi)
            );
            if run.status.success() {
                // The container's image layers are all there.
                let id = env.ok(&["exec", &format!("d{i}"), "cat", "/etc/id"]);
                assert_eq!(id, format!("img{i}\n"));
                ran += 1;
            } else {
                assert!(stderr(run).contains("No such image"), "{}", stderr(run));
                deleted += 1;
            }
        }
        assert_consistent(&env, &format!("after round {round}"));
        remove_all_containers(&env);
        for i in 0..8 {
            let _ = env.run(&["rmi", &format!("img{i}:{round}")]);
        }
        assert_consistent(&env, &format!("after cleaning round {round}"));
    }
    eprintln!(
        "rmi x run -d, distinct images: {ran} containers ran, {deleted} images deleted first"
    );
}

#[test]
fn import_races_rmi_and_prune_without_dangling_images() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    env.ok(&["rmi", "busybox:test", "ep:test"]);
    let tar = env.p("r.tar").to_string_lossy().into_owned();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut import_failures = 0;
    let trials = rounds(3, 17);
    for trial in 0..trials {
        let mut jobs: Vec<Vec<String>> = (0..6)
            .map(|i| strs(&["import", &tar, &format!("imp:{i}")]))
            .collect();
        jobs.push(strs(&["rmi", "imp:0", "imp:1", "imp:2"]));
        jobs.push(strs(&["image", "prune", "-a", "-f"]));
        let outs = together(&env, jobs, &mut rng);
        for (k, out) in outs.iter().enumerate().take(6) {
            // An import whose layer a concurrent prune removed before it was recorded fails
            // with one clear line; it never records an image without its layers.
            if !out.status.success() {
                assert!(
                    stderr(out).contains("is missing"),
                    "import {k}: {}",
                    stderr(out)
                );
                import_failures += 1;
            }
        }
        assert!(outs[7].status.success(), "prune: {}", stderr(&outs[7]));
        // Every recorded image has its layers: it runs.
        assert_consistent(&env, &format!("after trial {trial}"));
        for id in env.ok(&["images", "-q"]).lines() {
            let out = env.ok(&["run", "--rm", id, "cat", "/etc/image-file"]);
            assert_eq!(out, "from the image\n");
        }
        env.ok(&["image", "prune", "-a", "-f"]);
        assert_store_empty(&env);
    }
    eprintln!("import x rmi x prune: {trials} trials, {import_failures} imports refused");
}

#[test]
fn prune_skips_images_a_concurrent_rmi_removed() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let tar = env.p("r.tar").to_string_lossy().into_owned();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for round in 0..rounds(2, 10) {
        let mut jobs = vec![strs(&["image", "prune", "-a", "-f"])];
        for i in 0..6 {
            let label = format!("LABEL n={round}-{i}");
            env.ok(&["import", "-c", &label, &tar, &format!("p{i}:x")]);
            jobs.push(strs(&["rmi", &format!("p{i}:x")]));
        }
        let outs = together(&env, jobs, &mut rng);
        assert!(outs[0].status.success(), "prune: {}", stderr(&outs[0]));
        assert_consistent(&env, &format!("after round {round}"));
    }
    env.ok(&["image", "prune", "-a", "-f"]);
    assert_store_empty(&env);
}

/// How long `args` takes to complete (it must succeed).
fn duration_of(env: &Env, args: &[&str]) -> u64 {
    let start = std::time::Instant::now();
    env.ok(args);
    (start.elapsed().as_millis() as u64).max(2)
}

/// Starts `args`, kills it (SIGKILL) after a seeded delay below `max_ms`; true when it was
/// still running.
fn kill_after(env: &Env, args: &[&str], rng: &mut ChaCha8Rng, max_ms: u64) -> bool {
    let mut child: Child = env
        .cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(rng.random_range(0..max_ms)));
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    running
}

/// After a kill: `--repair` fixes everything (exit 0), then the store is consistent and
/// busybox:test (when present) still runs with its data.
fn repair_and_verify(env: &Env, what: &str) {
    let out = env.run(&["system", "check", "--repair"]);
    assert!(
        out.status.success(),
        "repair after killed {what}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_consistent(env, &format!("after killed {what} and repair"));
    // The killed writer's staging (its pid is gone) is cleaned at once, not after a grace.
    let tmp = names(&env.store().join("tmp"));
    assert!(tmp.is_empty(), "staging left after killed {what}: {tmp:?}");
    if env.ok(&["images", "-q", "busybox:test"]).contains('\n') {
        let out = env.ok(&["run", "--rm", "busybox:test", "cat", "/etc/image-file"]);
        assert_eq!(out, "from the image\n");
    }
}

#[test]
fn kill_nine_of_import_commit_save_rmi_then_check_and_repair() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    // A bigger image (many files, one large one), so each command runs long enough to be
    // killed half way; each kill comes at a seeded point within the command's measured time.
    let many = env.p("rootfs/many");
    fs::create_dir_all(&many).unwrap();
    for i in 0..1000 {
        fs::write(many.join(format!("f{i}")), format!("{i}\n")).unwrap();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let big: Vec<u8> = (0..8 << 20).map(|_| rng.random::<u8>()).collect();
    fs::write(many.join("big"), &big).unwrap();
    let tar = image_tar(&env, "big");
    env.ok(&["import", "-c", "CMD [\"/bin/sh\"]", &tar, "busybox:test"]);
    env.ok(&[
        "run",
        "--name",
        "base",
        "busybox:test",
        "sh",
        "-c",
        "cp /many/big /big2",
    ]);
    let import_ms = duration_of(&env, &["import", &tar, "timed:x"]);
    let commit_ms = duration_of(&env, &["commit", "base", "timed:c"]);
    let timed = env.p("timed.tar");
    let save_ms = duration_of(
        &env,
        &["save", "-o", timed.to_str().unwrap(), "busybox:test"],
    );
    let mut killed = 0;
    let trials = rounds(2, 20);
    for trial in 0..trials {
        let import = ["import", &tar, &format!("k{trial}:x")];
        killed += kill_after(&env, &import, &mut rng, import_ms) as usize;
        repair_and_verify(&env, "import");

        let commit = ["commit", "base", &format!("c{trial}:x")];
        killed += kill_after(&env, &commit, &mut rng, commit_ms) as usize;
        let base = env.container("base");
        if names(&base).iter().any(|n| n.starts_with("mnt-")) {
            // The killed commit's mount is reported, then detached by the repair.
            let out = env.run(&["system", "check"]);
            assert_eq!(code(&out), 1, "{}", stdout(&out));
            assert!(stdout(&out).contains("dead mount"), "{}", stdout(&out));
        }
        repair_and_verify(&env, "commit");
        assert!(
            !mounted_under(&base.join("mnt-")),
            "a dead commit mount is left"
        );
        assert!(!names(&base).iter().any(|n| n.starts_with("mnt-")));

        let dest = env.p(&format!("save{trial}.tar"));
        let save = ["save", "-o", dest.to_str().unwrap(), "busybox:test"];
        killed += kill_after(&env, &save, &mut rng, save_ms) as usize;
        let leftovers: Vec<_> = names(env.dir.path())
            .into_iter()
            .filter(|n| n.contains(".cairn-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "killed save left {leftovers:?}");
        if dest.exists() {
            env.ok(&["load", "-i", dest.to_str().unwrap()]); // complete, or not there
            fs::remove_file(&dest).unwrap();
        }
        repair_and_verify(&env, "save");

        let image = format!("r{trial}:x");
        let rmi_ms = duration_of(&env, &["import", "-c", "LABEL x=1", &tar, &image]) / 2;
        killed += kill_after(&env, &["rmi", &image], &mut rng, rmi_ms.max(2)) as usize;
        repair_and_verify(&env, "rmi");
        let _ = env.run(&["rmi", &image]);
    }
    eprintln!(
        "kill -9: {killed} of {} commands killed while running",
        trials * 4
    );
    assert!(
        killed > 0,
        "every command finished before its kill: nothing tested"
    );
    remove_all_containers(&env);
}

#[test]
fn corrupt_state_files_are_named_and_quarantined() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    env.ok(&["run", "--name", "cc", "busybox:test", "true"]);
    let state = env.container("cc").join("state.json");
    fs::write(&state, "{\"status\":").unwrap();
    let out = env.run(&["ps", "-a"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("state.json"), "{}", stderr(&out));
    let out = env.run(&["system", "check"]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("corrupt state file"),
        "{}",
        stdout(&out)
    );
    let out = env.run(&["system", "check", "--repair"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_consistent(&env, "after quarantining state.json");
    // The container whose state was quarantined is listed and can be removed.
    assert!(env.ok(&["ps", "-a"]).contains(" cc\n"));
    env.ok(&["rm", "-f", "cc"]);
    // A truncated index: every image command names the file; rmi refuses rather than guess.
    let index = env.store().join("images/index.json");
    let good = fs::read(&index).unwrap();
    fs::write(&index, &good[..good.len() / 2]).unwrap();
    let out = env.run(&["images"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("index.json"), "{}", stderr(&out));
    assert!(!env.run(&["rmi", "busybox:test"]).status.success());
    let out = env.run(&["system", "check"]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("index.json"), "{}", stdout(&out));
    let out = env.run(&["system", "check", "--repair"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(names(&env.store().join("quarantine")).len(), 2);
    assert_eq!(env.ok(&["images", "-q"]), "");
}

#[test]
fn missing_layer_is_extracted_again_from_its_blob() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    env.ok(&["rmi", "ep:test"]);
    let layers = env.store().join("layers");
    let layer = names(&layers).pop().expect("a layer");
    fs::rename(layers.join(&layer), env.p("moved-layer")).unwrap();
    let out = env.run(&["system", "check"]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("is missing (its blob"),
        "{}",
        stdout(&out)
    );
    let out = env.run(&["system", "check", "--repair"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("re-extracted 1 layers"),
        "{}",
        stdout(&out)
    );
    let out = env.ok(&["run", "--rm", "busybox:test", "cat", "/etc/image-file"]);
    assert_eq!(out, "from the image\n");
    // With the blob gone as well, the problem remains and repair says so (exit 1).
    let blobs = env.store().join("blobs/sha256");
    fs::rename(layers.join(&layer), env.p("moved-again")).unwrap();
    // The layer blob of an import is the uncompressed tar: its digest is the chain id.
    fs::remove_file(blobs.join(&layer)).unwrap();
    let out = env.run(&["system", "check", "--repair"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("remaining problem"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn exit_codes_follow_docker() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let c = |args: &[&str]| env.run(args);
    let never = env.p("never.tar");
    // Argument parser errors are cairn's own: 125.
    assert_eq!(code(&c(&["rmi"])), 125);
    assert_eq!(code(&c(&["images", "--bogus-flag"])), 125);
    assert_eq!(code(&c(&["--help"])), 0);
    // A missing image: the daemon's refusal (1) for image commands, 125 for run.
    for args in [
        vec!["rmi", "nosuch:1"],
        vec!["inspect", "nosuch:1"],
        vec!["history", "nosuch:1"],
        vec!["tag", "nosuch:1", "x:1"],
        vec!["save", "-o", never.to_str().unwrap(), "nosuch:1"],
    ] {
        let out = c(&args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("No such "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = c(&["run", "nosuch:1", "true"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(stderr(&out).contains("No such image"));
    // A field the listing does not have is a template error.
    let out = c(&["images", "--format", "{{.Bogus}}"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("can't evaluate field Bogus"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    // rmi of an image a stopped container uses: conflict, exit 1; -f untags only.
    env.ok(&["run", "--name", "user", "busybox:test", "true"]);
    let out = c(&["rmi", "busybox:test"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("image is being used by container"));
    env.ok(&["rmi", "-f", "busybox:test"]);
    assert_eq!(env.ok(&["start", "-a", "user"]), "");
    assert_consistent(&env, "after rmi -f of a used image");
    env.ok(&["rm", "user"]);
}

#[test]
fn leaked_blobs_are_reported_and_pruned() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    // What a killed rmi leaves: a blob no image refers to (old enough not to be a pull's).
    use sha2::Digest as _;
    let data = b"a config blob an interrupted rmi left behind";
    let hex: String = sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let blob = env.store().join("blobs/sha256").join(&hex);
    fs::write(&blob, data).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&blob)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let df = env.ok(&["system", "df"]);
    let row = df
        .lines()
        .find(|l| l.starts_with("Blobs"))
        .expect("Blobs row");
    assert!(!row.trim_end().ends_with(" 0B"), "{df}");
    let out = env.run(&["system", "check"]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains(&format!("blob sha256:{hex}: no image refers to it")));
    env.ok(&["image", "prune", "-a", "-f"]);
    assert!(!blob.exists(), "prune -a left the leaked blob");
    assert_consistent(&env, "after prune");
}

#[test]
fn a_bundle_mount_does_not_hold_the_store_lock() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let dir = env.p("bundle");
    env.ok(&[
        "bundle",
        "--name",
        "bun",
        "busybox:test",
        dir.to_str().unwrap(),
        "true",
    ]);
    // The bundle's mount daemon lives on; commands taking the store lock still run.
    let mut tag = env
        .cmd(&["tag", "busybox:test", "other:1"])
        .spawn()
        .unwrap();
    let mut done = None;
    for _ in 0..500 {
        done = tag.try_wait().unwrap();
        if done.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if done.is_none() {
        let _ = tag.kill();
        let _ = tag.wait();
    }
    env.ok(&["bundle", "--rm-mount", dir.to_str().unwrap()]);
    assert!(
        done.is_some_and(|s| s.success()),
        "tag blocked on the store lock"
    );
    // The bundle's container keeps its image: rmi refuses, rmi -f only untags.
    env.ok(&["rmi", "other:1"]);
    assert_eq!(code(&env.run(&["rmi", "busybox:test"])), 1);
    env.ok(&["rmi", "-f", "busybox:test"]);
    assert_consistent(&env, "with a bundle container");
    env.ok(&["rm", "-f", "bun"]);
}

#[test]
fn save_to_a_device_writes_it_in_place() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    // A null device of our own (never the host's /dev/null): it must stay a device.
    let dev = env.p("null");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &dev,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    env.ok(&["save", "-o", dev.to_str().unwrap(), "busybox:test"]);
    let ft = fs::symlink_metadata(&dev).unwrap().file_type();
    assert!(
        std::os::unix::fs::FileTypeExt::is_char_device(&ft),
        "save replaced the device"
    );
    assert!(
        !names(env.dir.path())
            .iter()
            .any(|n| n.contains(".cairn-tmp"))
    );
}
