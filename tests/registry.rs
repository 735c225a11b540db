//! End-to-end tests of `cairn pull / push / login / logout / search` against a real registry
//! (issue 7): `docker-registry serve` (distribution 2.8) on a free loopback port, content put
//! there and read back with skopeo, pulled trees compared with `umoci unpack` of the same image
//! (support/registry_env.rs). Auth (htpasswd Basic, a Bearer token server with tokens that run
//! out, anonymous tokens), broken and stalled connections, corrupt blobs, redirects and
//! malformed manifests come from small proxies in front of the registry
//! (support/registry_proxies.rs on support/http_proxy.rs).
//!
//! Each test has its own store, registry and ports (parallel-safe). Needs root, /dev/fuse,
//! busybox-static, docker-registry, skopeo, umoci and htpasswd (apache2-utils): without them a
//! test prints why and passes, except with `CI=true`, where it fails.

#[path = "support/http_proxy.rs"]
mod http_proxy;
#[path = "support/registry_env.rs"]
mod registry_env;
#[path = "support/registry_proxies.rs"]
mod registry_proxies;
#[path = "support/tree.rs"]
mod tree;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;

use http_proxy::Proxy;
use registry_env::*;
use registry_proxies::*;
use tree::assert_same_tree;

/// A registry holding the test images: busybox:1, multi:1, multi-arch:1 (the index).
struct World {
    env: Env,
    reg: Registry,
    images: Images,
}

impl World {
    fn new() -> World {
        World::with(Registry::start())
    }

    fn with(reg: Registry) -> World {
        let env = Env::new();
        let images = Images::build(&env.path("src"));
        reg.push_layout(&images.busybox, "busybox:1", false);
        reg.push_layout(&images.multi, "multi:1", false);
        reg.push_layout(&images.index, "multi-arch:1", true);
        World { env, reg, images }
    }

    /// `127.0.0.1:PORT/NAME`.
    fn name(&self, name: &str) -> String {
        format!("{}/{name}", self.reg.addr())
    }

    /// Pulls `name` from the registry with cairn; returns stdout.
    fn pull(&self, name: &str) -> String {
        self.env.ok(&["pull", &self.name(name)])
    }

    /// The tree umoci unpacks from `skopeo copy docker://REG/NAME oci:…`.
    fn umoci_tree(&self, name: &str) -> std::path::PathBuf {
        let tag = name.replace([':', '/', '@'], "_");
        let layout = self.env.path(&format!("oracle-{tag}"));
        self.reg.pull_layout(name, &layout);
        unpack(&layout, &self.env.path(&format!("bundle-{tag}")))
    }
}

/// Imports as `tag` an image of one layer holding `mib` MiB of random (incompressible) data.
fn import_random(env: &Env, mib: usize, tag: &str) {
    let dir = env.path("random");
    fs::create_dir(&dir).unwrap();
    let mut random = vec![0u8; mib << 20];
    use std::io::Read;
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut random)
        .unwrap();
    fs::write(dir.join("random.bin"), &random).unwrap();
    let tar = tar_dir(&dir, &env.path("random.tar"));
    env.ok(&["import", s(&tar), tag]);
}

/// The docker-style pull output: per-layer lines, the digest, the status, the name.
fn assert_pull_output(out: &str, digest: &str) {
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
}

#[test]
fn pull_busybox_runs_and_mounts_the_tree_umoci_unpacks() {
    if !ready() {
        return;
    }
    let w = World::new();
    let out = w.pull("busybox:1");
    assert_pull_output(&out, &w.reg.manifest_digest("busybox:1"));
    assert!(out.contains("Pulling fs layer"), "{out}");
    let image = w.name("busybox:1");
    let ran = w.env.ok(&["run", "--rm", &image, "cat", "/etc/image-file"]);
    assert_eq!(ran, "from the registry\n");
    assert_same_tree(&w.umoci_tree("busybox:1"), &w.env.mount(&image));
    let digest = w.reg.manifest_digest("busybox:1");
    let format = "{{.Repository}} {{.Tag}} {{.Digest}}";
    let listed = w.env.ok(&["images", "--digests", "--format", format]);
    let want = format!("{} 1 {digest}", w.name("busybox"));
    assert!(
        listed.lines().any(|l| l == want),
        "{want:?} not in\n{listed}"
    );
    // The registry's config is the image: same ID as skopeo sees.
    let config = w.reg.config_digest("busybox:1");
    assert_eq!(w.env.inspect("{{.Id}}", &image), config);
}

#[test]
fn pull_multi_layer_with_whiteouts_and_a_plain_layer() {
    if !ready() {
        return;
    }
    let w = World::new();
    let out = w.pull("multi:1");
    assert_pull_output(&out, &w.reg.manifest_digest("multi:1"));
    let mnt = w.env.mount(&w.name("multi:1"));
    assert!(!mnt.join("etc/gone").exists(), "whiteout");
    assert!(!mnt.join("opq/old").exists(), "opaque dir");
    assert!(mnt.join("opq/new").exists());
    assert_same_tree(&w.umoci_tree("multi:1"), &mnt);
}

#[test]
fn second_pull_is_up_to_date_and_downloads_nothing() {
    if !ready() {
        return;
    }
    let w = World::new();
    let proxy = Proxy::forward(w.reg.port);
    let name = format!("{}/busybox:1", proxy.addr());
    w.env.ok(&["pull", &name]);
    let before = w.env.store_state();
    let seen = proxy.requests().len();
    let out = w.env.ok(&["pull", "--tls-verify=false", &name]);
    assert!(out.contains("Status: Image is up to date for"), "{out}");
    let again: Vec<_> = proxy.requests().split_off(seen);
    let blobs: Vec<_> = (again.iter())
        .filter(|r| r.method == "GET" && r.blob().is_some())
        .map(|r| r.path.clone())
        .collect();
    let config = w.reg.config_digest("busybox:1");
    assert!(
        blobs.is_empty(),
        "second pull fetched blobs {blobs:?} (the config is {config}, in the store already)"
    );
    assert_eq!(before, w.env.store_state());
}

#[test]
fn pull_by_digest_and_by_platform() {
    if !ready() {
        return;
    }
    let w = World::new();
    let digest = w.reg.manifest_digest("multi:1");
    let by_digest = format!("{}@{digest}", w.name("multi"));
    let out = w.env.ok(&["pull", &by_digest]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    let mnt = w.env.mount(&by_digest);
    assert!(mnt.join("etc/added").exists());

    // The index: the host's platform by default (amd64 on x86_64), arm64/v8 on request; the
    // digest shown is the index's own.
    let index = w.name("multi-arch:1");
    let index_digest = w.reg.manifest_digest("multi-arch:1");
    let host = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let out = w.env.ok(&["pull", &index]);
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let default = w.env.inspect("{{.Architecture}}", &index);
    assert_eq!(default, host, "default platform");
    w.env.ok(&["pull", "--platform", "linux/amd64", &index]);
    let amd = w.env.inspect("{{.Id}} {{.Architecture}}", &index);
    assert!(amd.ends_with(" amd64"), "{amd}");
    let mnt = w.env.mount(&index);
    assert!(!mnt.join("etc/arch").exists());
    let out = w.env.ok(&["pull", "--platform", "linux/arm64/v8", &index]);
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let arm = w.env.inspect("{{.Id}} {{.Architecture}}", &index);
    assert!(arm.ends_with(" arm64"), "{arm}");
    assert_ne!(
        amd.split(' ').next(),
        arm.split(' ').next(),
        "another image"
    );
    let mnt = w.env.mount(&index);
    assert_eq!(fs::read_to_string(mnt.join("etc/arch")).unwrap(), "arm64\n");
    // The arm64 manifest pulled by its own digest is the same image.
    let arm_by_digest = format!("{}@{}", w.name("multi-arch"), w.images.arm64);
    w.env.ok(&["pull", "-q", &arm_by_digest]);
    let id = w.env.inspect("{{.Id}}", &arm_by_digest);
    assert_eq!(Some(id.as_str()), arm.split(' ').next());
    // A platform the index lacks is named.
    let out = w.env.cairn(&["pull", "--platform", "linux/s390x", &index]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("s390x"), "{}", text(&out.stderr));
}

#[test]
fn unknown_names_and_unreachable_registries_fail_with_one_clear_line() {
    if !ready() {
        return;
    }
    let w = World::new();
    w.pull("busybox:1");
    let before = w.env.store_state();
    w.env
        .refused(&["pull", &w.name("busybox:nope")], "manifest unknown");
    w.env.refused(
        &["pull", &w.name("nobody/here:1")],
        "name unknown|repository name not known|not found|manifest unknown",
    );
    let closed = format!("127.0.0.1:{}/busybox:1", free_port());
    let start = std::time::Instant::now();
    let line = w
        .env
        .refused(&["pull", &closed], "connection refused|connect");
    assert!(
        line.contains(&closed[..closed.find('/').unwrap()]),
        "{line}"
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(30),
        "{line}"
    );
    assert_eq!(before, w.env.store_state());
}

#[test]
fn malformed_and_schema1_manifests_are_refused_clearly() {
    if !ready() {
        return;
    }
    let w = World::new();
    w.pull("busybox:1");
    let before = w.env.store_state();
    let garbage = fake_manifests(w.reg.port, MANIFEST, r#"{"schemaVersion": 2, "config": 4"#);
    let name = format!("{}/busybox:1", garbage.addr());
    w.env.refused(&["pull", &name], "manifest");
    let schema1 = r#"{"schemaVersion":1,"name":"busybox","tag":"1","architecture":"amd64",
        "fsLayers":[],"history":[],"signatures":[]}"#;
    let v1 = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    let old = fake_manifests(w.reg.port, v1, schema1);
    let name = format!("{}/busybox:1", old.addr());
    w.env.refused(
        &["pull", &name],
        "schema 1|schema1|schemaversion 1|v1|not supported|unsupported",
    );
    assert_eq!(before, w.env.store_state());
}

#[test]
fn bearer_tokens_are_fetched_with_credentials_and_refreshed() {
    if !ready() {
        return;
    }
    let w = World::new();
    // A token is good for two requests: a pull needs several, so it must fetch new ones.
    let front = BearerFront::start(w.reg.port, Some((USER, PASSWORD)), 2);
    let name = format!("{}/multi:1", front.proxy.addr());
    w.env
        .refused(&["pull", &name], "unauthorized|authentication|denied");
    write_auth_file(&w.env.auth_file(), &front.proxy.addr(), USER, "wrong");
    w.env
        .refused(&["pull", &name], "unauthorized|authentication|denied");
    assert!(
        front.refused.load(Ordering::SeqCst) >= 1,
        "bad creds reached /token"
    );
    write_auth_file(&w.env.auth_file(), &front.proxy.addr(), USER, PASSWORD);
    let issued = front.issued.load(Ordering::SeqCst);
    w.env.ok(&["pull", &name]);
    let fresh = front.issued.load(Ordering::SeqCst) - issued;
    assert!(
        fresh >= 2,
        "a pull of 4+ requests got by with {fresh} token(s)"
    );
    assert_same_tree(&w.umoci_tree("multi:1"), &w.env.mount(&name));
    let asked = front.asked.lock().unwrap().clone();
    assert!(asked.contains("repository:multi:pull"), "{asked:?}");
    // Push through the token server: the client must ask for push access.
    let pushed = format!("{}/via-token/multi:1", front.proxy.addr());
    w.env.ok(&["tag", &name, &pushed]);
    w.env.ok(&["push", &pushed]);
    let want = w.reg.manifest_digest("multi:1");
    assert_eq!(w.reg.manifest_digest("via-token/multi:1"), want);
    let asked = front.asked.lock().unwrap().clone();
    let push = |s: &String| s.starts_with("repository:via-token/multi:") && s.contains("push");
    assert!(asked.iter().any(push), "{asked:?}");
    // Anonymous tokens (a public repository): no credentials needed.
    let public = BearerFront::start(w.reg.port, None, 2);
    let fresh = Env::new();
    let out = fresh.ok(&["pull", &format!("{}/busybox:1", public.proxy.addr())]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(public.issued.load(Ordering::SeqCst) >= 2);
}

#[test]
fn a_connection_cut_mid_blob_resumes_with_range() {
    if !ready() {
        return;
    }
    let w = World::new();
    let proxy = cutting(w.reg.port, 4096);
    let name = format!("{}/multi:1", proxy.addr());
    let out = w.env.ok(&["pull", &name]);
    assert!(
        out.contains("Retrying"),
        "the user is told about the retry: {out}"
    );
    let ranged: Vec<_> = (proxy.requests().into_iter())
        .filter(|r| r.blob().is_some() && r.header("Range").is_some())
        .map(|r| format!("{} {}", r.path, r.header("Range").unwrap()))
        .collect();
    assert!(!ranged.is_empty(), "no Range request after the cut");
    assert!(
        ranged.iter().all(|r| r.ends_with("bytes=4096-")),
        "{ranged:?}"
    );
    assert_same_tree(&w.umoci_tree("multi:1"), &w.env.mount(&name));
}

#[test]
fn a_corrupt_blob_is_refused_and_leaves_the_store_unchanged() {
    if !ready() {
        return;
    }
    let w = World::new();
    w.pull("busybox:1");
    let before = w.env.store_state();
    // File data in the uncompressed top layer of multi:1: the tar stays valid, the digest not.
    let proxy = corrupting(w.reg.port, b"added above", b"ADDED above");
    let name = format!("{}/multi:1", proxy.addr());
    w.env.refused(&["pull", &name], "digest|mismatch|verif");
    assert_eq!(before, w.env.store_state());
    let images = w.env.ok(&["images", "-q"]);
    assert_eq!(images.lines().count(), 1, "{images}");
}

#[test]
fn a_full_disk_fails_the_pull_with_one_line_and_leaves_the_store_unchanged() {
    if !ready() {
        return;
    }
    let w = World::new();
    let env = &w.env;
    import_random(env, 24, "big:1");
    let name = w.name("big:1");
    env.ok(&["tag", "big:1", &name]);
    env.ok(&["push", &name]);

    // 40 MiB of store, 16 of them the import reserve: the busybox image fits, a 24 MiB
    // layer does not.
    let small = Env::new();
    small.small_disk(40);
    small.ok(&["pull", &w.name("busybox:1")]);
    let before = small.store_state();
    small.refused(&["pull", &name], "space");
    assert_eq!(before, small.store_state());
    let images = small.ok(&["images", "-q"]);
    assert_eq!(images.lines().count(), 1, "{images}");
    small.ok(&["system", "check"]);
}

#[test]
fn kill_during_pull_leaves_a_sound_store() {
    if !ready() {
        return;
    }
    let w = World::new();
    let proxy = stalling(w.reg.port);
    let name = format!("{}/multi:1", proxy.addr());
    let mut pull = w.env.cmd(&["pull", &name]);
    let mut child = pull.stdout(std::process::Stdio::null()).spawn().unwrap();
    let start = std::time::Instant::now();
    let layer_gets = || {
        let reqs = proxy.requests();
        let blobs = reqs
            .iter()
            .filter(|r| r.method == "GET" && r.blob().is_some());
        blobs.count()
    };
    // Config and both layers asked for: the layers are half through and stalled.
    while layer_gets() < 3 {
        assert!(child.try_wait().unwrap().is_none(), "pull ended early");
        assert!(
            start.elapsed().as_secs() < 30,
            "the pull never asked for its layers"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let check = w.env.cairn(&["system", "check"]);
    let report = format!("{}{}", text(&check.stdout), text(&check.stderr));
    assert!(check.status.success(), "check after the kill: {report}");
    assert_eq!(w.env.ok(&["images", "-a", "-q"]), "", "a half image");
    let out = w.pull("multi:1");
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    assert_same_tree(&w.umoci_tree("multi:1"), &w.env.mount(&w.name("multi:1")));
}

#[test]
fn authorization_is_not_sent_to_a_redirect_target() {
    if !ready() {
        return;
    }
    let w = World::with(Registry::with_htpasswd());
    let blobs = blob_host(w.reg.port, basic(USER, PASSWORD));
    let front = redirecting_blobs(w.reg.port, blobs.port);
    write_auth_file(&w.env.auth_file(), &front.addr(), USER, PASSWORD);
    let name = format!("{}/busybox:1", front.addr());
    w.env.ok(&["pull", &name]);
    let seen = blobs.requests();
    assert!(!seen.is_empty(), "the blob host saw no request");
    let leaked: Vec<_> = (seen.iter())
        .filter_map(|r| r.header("Authorization"))
        .collect();
    assert!(
        leaked.is_empty(),
        "Authorization sent to another host: {leaked:?}"
    );
    w.env.ok(&["run", "--rm", &name, "true"]);
}

#[test]
fn login_pull_bad_password_and_logout() {
    if !ready() {
        return;
    }
    let w = World::with(Registry::with_htpasswd());
    let (reg, env) = (w.reg.addr(), &w.env);
    env.refused(
        &["pull", &w.name("busybox:1")],
        "unauthorized|authentication",
    );
    env.refused(
        &["login", "-u", USER, "-p", "wrong", &reg],
        "unauthorized|incorrect|invalid|denied",
    );
    assert!(
        !env.auth_file().exists() || !fs::read_to_string(env.auth_file()).unwrap().contains(&reg)
    );
    let out = env.ok(&["login", "-u", USER, "-p", PASSWORD, &reg]);
    assert!(out.contains("Login Succeeded"), "{out}");
    let mode = fs::metadata(env.auth_file()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "credentials file mode {mode:o}");
    w.pull("busybox:1");
    // Push with the same credentials (Basic on every request of the upload).
    let mine = w.name("mine/bb:1");
    env.ok(&["tag", &w.name("busybox:1"), &mine]);
    env.ok(&["push", &mine]);
    let digest = w.reg.manifest_digest("busybox:1");
    assert_eq!(w.reg.manifest_digest("mine/bb:1"), digest);
    let out = env.ok(&["logout", &reg]);
    assert!(out.contains("Removing login credentials"), "{out}");
    let file = fs::read_to_string(env.auth_file()).unwrap_or_default();
    assert!(!file.contains(&reg), "logout left {file}");
    env.refused(&["pull", &w.name("multi:1")], "unauthorized|authentication");
    env.refused(&["push", &mine], "unauthorized|authentication");
    // --password-stdin
    let mut c = env.cmd(&["login", "-u", USER, "--password-stdin", &reg]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    w.pull("multi:1");
}

#[test]
fn push_is_read_back_by_skopeo_and_umoci() {
    if !ready() {
        return;
    }
    let w = World::new();
    let env = &w.env;
    let rootfs = env.path("src/rootfs");
    let tar = tar_dir(&rootfs, &env.path("push.tar"));
    env.ok(&["import", "-c", r#"CMD ["/bin/sh"]"#, s(&tar), "local/bb:1"]);
    let target = w.name("pushed/bb:1");
    env.ok(&["tag", "local/bb:1", &target]);
    let out = env.ok(&["push", &target]);
    let digest = w.reg.manifest_digest("pushed/bb:1");
    assert!(
        out.contains(&format!("digest: {digest}")) || out.contains(&digest),
        "{out}"
    );
    let listed = env.ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Digest}}",
    ]);
    let want = format!("{}/pushed/bb:1 {digest}", w.reg.addr());
    assert!(
        listed.lines().any(|l| l == want),
        "{want:?} not in\n{listed}"
    );
    let config = w.reg.config_digest("pushed/bb:1");
    assert_eq!(env.inspect("{{.Id}}", &target), config);
    assert_same_tree(&w.umoci_tree("pushed/bb:1"), &env.mount("local/bb:1"));

    // Another repository of the same registry: blobs are there already (mounted or skipped).
    let other = w.name("other/bb:2");
    env.ok(&["tag", "local/bb:1", &other]);
    let out = env.ok(&["push", &other]);
    assert!(
        out.contains("Mounted from") || out.contains("already exists"),
        "{out}"
    );
    assert_eq!(w.reg.manifest_digest("other/bb:2"), digest);

    // A second registry.
    let reg2 = Registry::start();
    let far = format!("{}/copy/bb:3", reg2.addr());
    env.ok(&["tag", "local/bb:1", &far]);
    env.ok(&["push", &far]);
    assert_eq!(reg2.manifest_digest("copy/bb:3"), digest);
    // A pushed image pulls back into a fresh store as the same image.
    let fresh = Env::new();
    fresh.ok(&["pull", &far]);
    assert_eq!(fresh.inspect("{{.Id}}", &far), config);
    // A pulled image pushed unchanged keeps its manifest (same digest).
    fresh.ok(&["pull", &w.name("multi:1")]);
    let moved = format!("{}/moved/multi:1", reg2.addr());
    fresh.ok(&["tag", &w.name("multi:1"), &moved]);
    fresh.ok(&["push", &moved]);
    let (a, b) = (
        w.reg.manifest_digest("multi:1"),
        reg2.manifest_digest("moved/multi:1"),
    );
    assert_eq!(
        a, b,
        "the manifest of a pulled image changed on its way back"
    );
    // A loaded OCI layout (a gzip and a plain layer) goes out as it came in.
    let (manifest, id) = layout_digests(&w.images.multi);
    fresh.ok(&["load", "-i", s(&w.images.multi)]);
    let loaded = format!("{}/loaded/multi:1", reg2.addr());
    fresh.ok(&["tag", &id, &loaded]);
    fresh.ok(&["push", &loaded]);
    assert_eq!(reg2.manifest_digest("loaded/multi:1"), manifest);

    // A committed container: its new layer goes up and reads back the same through skopeo.
    env.ok(&[
        "run",
        "--name",
        "builder",
        "local/bb:1",
        "sh",
        "-c",
        "mkdir -p /root && echo hi > /root/build.log",
    ]);
    let committed = format!("{}/built/bb:1", w.reg.addr());
    env.ok(&["commit", "-m", "build log", "builder", &committed]);
    env.ok(&["push", &committed]);
    let config = w.reg.config_digest("built/bb:1");
    assert_eq!(env.inspect("{{.Id}}", &committed), config);
    let tree = w.umoci_tree("built/bb:1");
    assert_eq!(
        fs::read_to_string(tree.join("root/build.log")).unwrap(),
        "hi\n"
    );
    assert_same_tree(&tree, &env.mount(&committed));
}

#[test]
fn a_big_layer_is_pushed_in_chunks_and_a_lost_upload_starts_again() {
    if !ready() {
        return;
    }
    let w = World::new();
    let env = &w.env;
    import_random(env, 20, "big:1");
    let proxy = Proxy::forward(w.reg.port);
    let target = format!("{}/big:1", proxy.addr());
    env.ok(&["tag", "big:1", &target]);
    env.ok(&["push", &target]);
    let patches = (proxy.requests().iter())
        .filter(|r| r.method == "PATCH")
        .count();
    assert!(patches >= 3, "20 MiB went up in {patches} PATCH request(s)");
    assert_same_tree(&w.umoci_tree("big:1"), &env.mount("big:1"));

    // A connection lost during an upload: the upload starts again and the push succeeds.
    for (method, part) in [("PATCH", "/blobs/uploads/"), ("PUT", "/blobs/uploads/")] {
        let flaky = hanging_up_once(w.reg.port, method, part);
        let target = format!("{}/flaky-{}/big:1", flaky.addr(), method.to_lowercase());
        env.ok(&["tag", "big:1", &target]);
        env.ok(&["push", &target]);
        let tries = (flaky.requests().iter())
            .filter(|r| r.method == method && r.path.contains(part))
            .count();
        assert!(
            tries >= 2,
            "{method} hung up on once, tried {tries} time(s)"
        );
        let repo = format!("flaky-{}/big:1", method.to_lowercase());
        assert_eq!(w.reg.manifest_digest(&repo), w.reg.manifest_digest("big:1"));
    }
}

#[test]
fn search_lists_repositories_with_tags() {
    if !ready() {
        return;
    }
    let w = World::new();
    let out = w.env.ok(&["search", &w.name("multi")]);
    let row = |name: &str| {
        let full = w.name(name);
        (out.lines()).find(|l| l.split_whitespace().next() == Some(full.as_str()))
    };
    let multi = row("multi").unwrap_or_else(|| panic!("no multi row in {out}"));
    assert_eq!(
        multi.split_whitespace().nth(1),
        Some("1"),
        "tags of multi: {out}"
    );
    assert!(out.contains("multi-arch"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("multi") && !l.contains("multi-arch")),
        "{out}"
    );
    assert!(!out.contains("busybox"), "{out}");
    let all = w.env.ok(&["search", "--limit", "1", &w.name("")]);
    let rows = all.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(rows <= 2, "--limit 1 (+ header): {all}");
}
