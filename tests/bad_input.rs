//! Fault injection through the CLI: images made by other tools (umoci's trailer-less layers
//! through `load` and, pushed by skopeo to a real registry, through `pull`), layer bombs past
//! the expansion limits, an import into a full store, and numeric / list mount options out
//! of bounds. Every refusal is one `cairn: ` line, exit status 125, and leaves the store (or
//! the mountpoint) as it was. Root, FUSE and the registry tools required (scripts/deps.sh).

#[path = "support/registry_env.rs"]
mod registry_env;
#[path = "support/tree.rs"]
mod tree;

use std::fs;
use std::io::Write;
use std::path::Path;

use registry_env::*;

/// `PATH:t`.
fn at_t(layout: &Path) -> String {
    format!("{}:t", s(layout))
}

/// An OCI layout made the way the reporter made it: `umoci init/new/insert/config`
/// (umoci writes layers without end-of-archive blocks or the last file's padding).
fn umoci_layout(env: &Env) -> std::path::PathBuf {
    let layout = env.path("umoci");
    tool("umoci", &["init", "--layout", s(&layout)]);
    tool("umoci", &["new", "--image", &at_t(&layout)]);
    let src = env.path("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/greeting"), "hello from umoci\n").unwrap();
    fs::write(src.join("odd-size"), vec![b'x'; 1234]).unwrap();
    for (from, to) in [("etc/greeting", "/etc/greeting"), ("odd-size", "/odd-size")] {
        tool(
            "umoci",
            &["insert", "--image", &at_t(&layout), s(&src.join(from)), to],
        );
    }
    tool(
        "umoci",
        &[
            "config",
            "--image",
            &at_t(&layout),
            "--config.cmd",
            "/bin/sh",
        ],
    );
    layout
}

fn check_image(env: &Env, image: &str) {
    let m = env.mount(image);
    assert_eq!(
        fs::read_to_string(m.join("etc/greeting")).unwrap(),
        "hello from umoci\n"
    );
    assert_eq!(fs::read(m.join("odd-size")).unwrap(), vec![b'x'; 1234]);
}

#[test]
fn umoci_images_load_and_pull() {
    if !ready() {
        return;
    }
    let env = Env::new();
    let layout = umoci_layout(&env);
    // The layers really are trailer-less (what made them fail before).
    let blobs = layout.join("blobs/sha256");
    let unpadded = fs::read_dir(&blobs).unwrap().any(|e| {
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(e.unwrap().path())
            .output()
            .unwrap();
        out.status.success() && !out.stdout.len().is_multiple_of(512)
    });
    assert!(
        unpadded,
        "umoci wrote padded layers: the test proves nothing"
    );
    let out = env.ok(&["load", "-i", s(&layout)]);
    let id = out.trim().rsplit(':').next().unwrap().to_string();
    check_image(&env, &id);
    // The same layout as a tar archive.
    let tar = env.path("umoci.tar");
    tool("tar", &["-C", s(&layout), "-cf", s(&tar), "."]);
    env.ok(&["load", "-i", s(&tar)]);
    // Pushed with skopeo to docker-registry, pulled back.
    let reg = Registry::start();
    reg.push_layout(&layout, "umoci/img:1", false);
    let pulled = Env::new();
    let name = format!("{}/umoci/img:1", reg.addr());
    pulled.ok(&["pull", &name]);
    check_image(&pulled, &name);
    pulled.ok(&["system", "check"]);
}

/// A gzip layer of `mib` MiB of zeros as a docker-style `import` tarball.
fn zero_bomb(env: &Env, mib: u64) -> std::path::PathBuf {
    let plain = env.path("bomb.tar");
    let mut b = tar::Builder::new(fs::File::create(&plain).unwrap());
    let mut h = tar::Header::new_ustar();
    h.set_size(mib << 20);
    h.set_mode(0o644);
    h.set_cksum();
    let zeros = std::io::Read::take(std::io::repeat(0), mib << 20);
    b.append_data(&mut h, "zeros", zeros).unwrap();
    b.into_inner().unwrap().flush().unwrap();
    let p = env.path("bomb.tar.gz");
    let st = std::process::Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(&plain)
        .stdout(fs::File::create(&p).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    p
}

#[test]
fn layer_bombs_stop_at_the_limits() {
    if !ready() {
        return;
    }
    let env = Env::new();
    let bomb = zero_bomb(&env, 64);
    env.ok(&["images"]);
    let before = env.store_state();
    // 64 MiB from ~64 KiB: ~1000x, past a 4 MiB floor.
    let refused = |vars: &[(&str, &str)], needle: &str| {
        let mut c = env.cmd(&["import", s(&bomb), "bomb:1"]);
        c.envs(vars.iter().copied());
        let out = c.output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{vars:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{vars:?}: {err}");
        assert_eq!(before, env.store_state(), "{vars:?}: store changed");
    };
    let floor = ("CAIRN_MAX_EXPAND_AFTER", "4m");
    refused(&[floor], "expands more than 100 times");
    refused(&[floor, ("CAIRN_MAX_EXPAND", "50")], "more than 50 times");
    refused(&[("CAIRN_MAX_LAYER_SIZE", "10m")], "size limit");
    refused(&[("CAIRN_MAX_EXPAND", "lots")], "CAIRN_MAX_EXPAND");
    // Under the default floor (1 GiB), or with the limit off, it imports.
    env.ok(&["import", s(&bomb), "bomb:1"]);
    let mut c = env.cmd(&["import", s(&bomb), "bomb:2"]);
    c.envs([floor, ("CAIRN_MAX_EXPAND", "off")]);
    assert!(c.output().unwrap().status.success());
}

#[test]
fn import_into_a_full_store_changes_nothing() {
    if !ready() {
        return;
    }
    let env = Env::new();
    env.small_disk(40);
    let dir = env.path("big");
    fs::create_dir_all(&dir).unwrap();
    // Incompressible data: 48 MiB do not fit.
    let mut f = fs::File::create(dir.join("random")).unwrap();
    let mut rng = std::io::BufReader::new(fs::File::open("/dev/urandom").unwrap());
    std::io::copy(&mut std::io::Read::take(&mut rng, 48 << 20), &mut f).unwrap();
    drop(f);
    let tar = env.path("big.tar");
    tool("tar", &["-C", s(&dir), "-cf", s(&tar), "."]);
    env.ok(&["images"]);
    let before = env.store_state();
    env.refused(&["import", s(&tar), "big:1"], "space");
    assert_eq!(before, env.store_state());
    let tmp = env.root().join("tmp");
    let left: Vec<_> = fs::read_dir(&tmp).map(|d| d.count()).into_iter().collect();
    assert!(left.iter().all(|n| *n == 0), "tmp/ not empty: {left:?}");
    env.ok(&["system", "check"]);
}

#[test]
fn mount_options_out_of_bounds_mount_nothing() {
    if !ready() {
        return;
    }
    let env = Env::new();
    for d in ["l", "l2", "m", "u", "w"] {
        fs::create_dir_all(env.path(d)).unwrap();
    }
    fs::create_dir_all(env.path("m/x")).unwrap();
    let (l, l2, m) = (env.path("l"), env.path("l2"), env.path("m"));
    let lo = |rest: &str| format!("lowerdir={}{rest}", s(&l));
    let cases: Vec<(String, &str)> = vec![
        (lo(",threads=99999999999"), "threads"),
        (lo(",threads=100000"), "threads"),
        (lo(",threads=0"), "threads"),
        (lo(",threads=-3"), "threads"),
        (lo(",timeout=-1"), "timeout"),
        (lo(",timeout=nan"), "timeout"),
        (lo(",timeout=1e30"), "timeout"),
        (lo(":"), "empty layer"),
        (lo(&format!("::{}", s(&l2))), "empty layer"),
        (format!("lowerdir=:{}", s(&l)), "empty layer"),
        (lo(&format!(",lowerdir={}", s(&l2))), "more than once"),
        (format!("lowerdir={}", s(&m)), "is the lower dir"),
        (
            lo(&format!(
                ",upperdir={},workdir={}",
                s(&m.join("x")),
                s(&env.path("w"))
            )),
            "contains the upper dir",
        ),
    ];
    for (opts, needle) in cases {
        let out = env.cairn(&["mount", "-o", &opts, s(&m)]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{opts}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{opts}: {err}");
        assert!(err.contains(needle), "{opts}: {err}");
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(s(&m)), "{opts}: something is mounted");
    }
    // In bounds: mounted, then unmounted.
    env.ok(&["mount", "-o", &lo(",threads=4,timeout=2.5"), s(&m)]);
    env.ok(&["umount", s(&m)]);
}
