//! Shared by the registry end-to-end tests: a real registry (`docker-registry serve`,
//! distribution 2.8) on a free loopback port with its own storage, optionally behind htpasswd
//! Basic auth; hand-written OCI layouts (busybox, multi-layer with whiteouts, a two-platform
//! index, gzip and uncompressed layers) put there with `skopeo copy`; and a store-root scratch
//! dir driving the cairn binary. Everything is per test (own dirs, own ports): parallel-safe.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::tree::sha256_hex;

pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
pub const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-pw";

// ---------------------------------------------------------------- environment and processes

/// Returns false (after printing why) when the registry tests cannot run here; panics when
/// `CI=true`.
pub fn ready() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = |t: &&str| std::env::split_paths(&path).any(|d| d.join(t).is_file());
    let checks = [
        (rustix::process::geteuid().is_root(), "root"),
        (Path::new("/dev/fuse").exists(), "/dev/fuse"),
        (Path::new("/bin/busybox").exists(), "/bin/busybox"),
    ];
    let mut missing: Vec<&str> = checks.iter().filter(|c| !c.0).map(|c| c.1).collect();
    let tools = [
        "docker-registry",
        "skopeo",
        "umoci",
        "htpasswd",
        "tar",
        "gzip",
    ];
    missing.extend(tools.iter().filter(|t| !on_path(t)));
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "missing {} (scripts/deps.sh installs them)",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cannot run in CI: {why}");
    }
    eprintln!("skipping: {why}");
    false
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs a command, asserts that it succeeded, returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Runs `prog args...`, asserting success.
pub fn tool<S: AsRef<std::ffi::OsStr>>(prog: &str, args: &[S]) -> String {
    run(Command::new(prog).args(args))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A minimal HTTP GET on loopback: (status, body). None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let out = text(&out);
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    Some((status, body))
}

// ---------------------------------------------------------------- the registry

/// `docker-registry serve` on 127.0.0.1 with a temp storage dir; killed on drop.
pub struct Registry {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    /// Basic-auth credentials the registry wants, if any.
    pub creds: Option<(String, String)>,
}

impl Registry {
    /// An open registry.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry that wants Basic auth as [`USER`] / [`PASSWORD`] (htpasswd, bcrypt).
    pub fn with_htpasswd() -> Registry {
        Registry::launch(Some((USER, PASSWORD)))
    }

    fn launch(creds: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let auth = match creds {
            None => String::new(),
            Some((u, p)) => {
                let file = dir.path().join("htpasswd");
                tool("htpasswd", &["-Bbc", s(&file), u, p]);
                format!(
                    "auth:\n  htpasswd:\n    realm: cairn-test\n    path: {}\n",
                    s(&file)
                )
            }
        };
        for _ in 0..10 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n{auth}",
                s(&dir.path().join("data"))
            );
            let yml = dir.path().join("config.yml");
            fs::write(&yml, config).unwrap();
            let log = fs::File::create(dir.path().join("log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&yml)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                if let Some((200 | 401, _)) = http_get(port, "/v2/") {
                    let creds = creds.map(|(u, p)| (u.to_string(), p.to_string()));
                    return Registry {
                        port,
                        child,
                        dir,
                        creds,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        panic!("docker-registry did not start: {log}");
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker://127.0.0.1:PORT/REPO:TAG` as skopeo wants it.
    pub fn docker(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.addr())
    }

    fn creds_args(&self, flag: &str) -> Vec<String> {
        match &self.creds {
            Some((u, p)) => vec![flag.to_string(), format!("{u}:{p}")],
            None => vec![],
        }
    }

    /// `skopeo copy` of tag `t` of an OCI layout to `name` (REPO:TAG) here, blobs and digests
    /// as they are; `all` copies every manifest of an index.
    pub fn push_layout(&self, layout: &Path, name: &str, all: bool) {
        let mut args = vec!["--insecure-policy".to_string(), "copy".into(), "-q".into()];
        args.extend([
            "--dest-tls-verify=false".into(),
            "--preserve-digests".into(),
        ]);
        if all {
            args.push("--all".into());
        }
        args.extend(self.creds_args("--dest-creds"));
        args.push(format!("oci:{}:t", s(layout)));
        args.push(self.docker(name));
        tool("skopeo", &args);
    }

    /// `skopeo copy docker://HERE/NAME oci:DIR:t` (DIR must not exist yet).
    pub fn pull_layout(&self, name: &str, dir: &Path) {
        let mut args = vec!["--insecure-policy".to_string(), "copy".into(), "-q".into()];
        args.push("--src-tls-verify=false".into());
        args.extend(self.creds_args("--src-creds"));
        args.push(self.docker(name));
        args.push(format!("oci:{}:t", s(dir)));
        tool("skopeo", &args);
    }

    /// `skopeo inspect [--raw] docker://HERE/NAME`: stdout.
    fn skopeo_inspect(&self, name: &str, raw: bool) -> Vec<u8> {
        let mut args = vec!["inspect".to_string(), "--tls-verify=false".into()];
        if raw {
            args.push("--raw".into());
        }
        args.extend(self.creds_args("--creds"));
        args.push(self.docker(name));
        let out = Command::new("skopeo").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            text(&out.stderr)
        );
        out.stdout
    }

    /// The raw manifest (raw = true) or skopeo's summary of NAME (REPO:TAG) here, parsed.
    pub fn inspect(&self, name: &str, raw: bool) -> Value {
        serde_json::from_slice(&self.skopeo_inspect(name, raw)).unwrap()
    }

    /// The digest the registry serves for NAME (REPO:TAG): sha256 of the raw manifest.
    pub fn manifest_digest(&self, name: &str) -> String {
        format!("sha256:{}", sha256_hex(&self.skopeo_inspect(name, true)))
    }

    /// The config digest (image ID) of NAME here.
    pub fn config_digest(&self, name: &str) -> String {
        let manifest = self.inspect(name, true);
        manifest["config"]["digest"].as_str().unwrap().to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- OCI layouts by hand

/// An OCI image layout being written; [`Layout::finish`] writes index.json with tag `t`.
pub struct Layout {
    pub dir: PathBuf,
}

/// One layer: a tar (uncompressed) and whether to gzip it.
pub struct LayerTar {
    pub tar: PathBuf,
    pub gzip: bool,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        let marker = r#"{"imageLayoutVersion":"1.0.0"}"#;
        fs::write(dir.join("oci-layout"), marker).unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// Stores bytes as a blob, returns its descriptor.
    pub fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let hex = sha256_hex(bytes);
        fs::write(self.dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
    }

    /// A manifest for `layers` with a config for `arch` (`amd64`, `arm64/v8`); returns the
    /// manifest's descriptor.
    pub fn image(&self, layers: &[LayerTar], arch: &str, cmd: &str) -> Value {
        let (mut descs, mut diff_ids) = (Vec::new(), Vec::new());
        for l in layers {
            let bytes = fs::read(&l.tar).unwrap();
            diff_ids.push(format!("sha256:{}", sha256_hex(&bytes)));
            descs.push(if l.gzip {
                self.blob(GZIP_LAYER, &gzip(&bytes))
            } else {
                self.blob(TAR_LAYER, &bytes)
            });
        }
        let (arch, variant) = arch.split_once('/').unwrap_or((arch, ""));
        let mut config = json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": [cmd], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": layers.iter().map(|_| json!({"created_by": "cairn test"})).collect::<Vec<_>>(),
        });
        if !variant.is_empty() {
            config["variant"] = json!(variant);
        }
        let config = self.blob(CONFIG, &serde_json::to_vec(&config).unwrap());
        let manifest =
            json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": descs});
        let mut desc = self.blob(MANIFEST, &serde_json::to_vec(&manifest).unwrap());
        desc["platform"] = json!({"os": "linux", "architecture": arch});
        if !variant.is_empty() {
            desc["platform"]["variant"] = json!(variant);
        }
        desc
    }

    /// Tags `desc` (a manifest, platform dropped) as `t`.
    pub fn finish(&self, mut desc: Value) {
        desc.as_object_mut().unwrap().remove("platform");
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": "t"});
        let index = json!({"schemaVersion": 2, "manifests": [desc]});
        fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }

    /// Tags an image index of `manifests` (each with its platform) as `t`.
    pub fn finish_index(&self, manifests: Vec<Value>) {
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
        let mut desc = self.blob(INDEX, &serde_json::to_vec(&index).unwrap());
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": "t"});
        let top = json!({"schemaVersion": 2, "manifests": [desc]});
        fs::write(self.dir.join("index.json"), top.to_string()).unwrap();
    }
}

/// The (manifest digest, config digest) of tag t of a layout written by [`Layout::finish`].
pub fn layout_digests(layout: &Path) -> (String, String) {
    let read = |p: PathBuf| -> Value { serde_json::from_slice(&fs::read(p).unwrap()).unwrap() };
    let index = read(layout.join("index.json"));
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = layout.join("blobs").join(manifest.replace(':', "/"));
    let config = read(blob)["config"]["digest"].as_str().unwrap().to_string();
    (manifest, config)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// `tar -C dir -cf out .` (numeric owners, xattrs kept).
pub fn tar_dir(dir: &Path, out: &Path) -> PathBuf {
    tool(
        "tar",
        &[
            "--xattrs",
            "--numeric-owner",
            "-C",
            s(dir),
            "-cf",
            s(out),
            ".",
        ],
    );
    out.to_path_buf()
}

/// Writes `root/rel` (and its parents) with `mode`.
pub fn put(root: &Path, rel: &str, content: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A busybox rootfs: /bin/busybox with applet hardlinks, a symlink, /etc files.
pub fn busybox_rootfs(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "ls", "cat", "echo", "true", "uname"] {
        fs::hard_link(root.join("bin/busybox"), root.join("bin").join(a)).unwrap();
    }
    std::os::unix::fs::symlink("busybox", root.join("bin/vi")).unwrap();
    put(root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644);
    put(root, "etc/group", "root:x:0:\n", 0o644);
    put(root, "etc/image-file", "from the registry\n", 0o644);
    put(root, "etc/gone", "whited out above\n", 0o644);
    put(root, "opq/old", "hidden by an opaque dir above\n", 0o600);
}

/// The images a test can push, written once per test under `scratch`.
pub struct Images {
    /// busybox, one gzip layer (tag t).
    pub busybox: PathBuf,
    /// busybox + a layer that whites out /etc/gone, makes /opq opaque, modifies /etc/passwd
    /// and adds /etc/added; the upper layer is uncompressed (a gzip and a plain layer).
    pub multi: PathBuf,
    /// An index of linux/amd64 (busybox) and linux/arm64/v8 (busybox + /etc/arch = arm64).
    pub index: PathBuf,
    /// The digests of the index's amd64 and arm64 manifests.
    pub amd64: String,
    pub arm64: String,
}

impl Images {
    pub fn build(scratch: &Path) -> Images {
        let rootfs = scratch.join("rootfs");
        busybox_rootfs(&rootfs);
        let base = || LayerTar {
            tar: scratch.join("base.tar"),
            gzip: true,
        };
        tar_dir(&rootfs, &base().tar);

        let busybox = scratch.join("oci-busybox");
        let l = Layout::new(&busybox);
        l.finish(l.image(&[base()], "amd64", "/bin/sh"));

        let upper = scratch.join("upper");
        put(
            &upper,
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nx:x:1:1::/:/bin/sh\n",
            0o640,
        );
        put(&upper, "etc/added", "added above\n", 0o644);
        put(&upper, "etc/.wh.gone", "", 0o644);
        put(&upper, "opq/.wh..wh..opq", "", 0o644);
        put(&upper, "opq/new", "new in the opaque dir\n", 0o644);
        let upper = LayerTar {
            tar: tar_dir(&upper, &scratch.join("upper.tar")),
            gzip: false,
        };
        let multi = scratch.join("oci-multi");
        let l = Layout::new(&multi);
        l.finish(l.image(&[base(), upper], "amd64", "/bin/sh"));

        let arm = scratch.join("arm");
        put(&arm, "etc/arch", "arm64\n", 0o644);
        let arm = LayerTar {
            tar: tar_dir(&arm, &scratch.join("arm.tar")),
            gzip: true,
        };
        let index = scratch.join("oci-index");
        let l = Layout::new(&index);
        let amd64 = l.image(&[base()], "amd64", "/bin/sh");
        let arm64 = l.image(&[base(), arm], "arm64/v8", "/bin/sh");
        let digest = |d: &Value| d["digest"].as_str().unwrap().to_string();
        let (amd64_digest, arm64_digest) = (digest(&amd64), digest(&arm64));
        l.finish_index(vec![amd64, arm64]);
        Images {
            busybox,
            multi,
            index,
            amd64: amd64_digest,
            arm64: arm64_digest,
        }
    }
}

// ---------------------------------------------------------------- one test's cairn

/// One test's scratch dir: the store root (`store/`), the credentials file, mountpoints.
pub struct Env {
    pub dir: tempfile::TempDir,
    mounts: std::cell::RefCell<Vec<PathBuf>>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            mounts: Default::default(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> PathBuf {
        self.path("store")
    }

    /// The credentials file (`REGISTRY_AUTH_FILE`).
    pub fn auth_file(&self) -> PathBuf {
        self.path("auth.json")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CAIRN);
        c.arg("--root").arg(self.root()).args(args);
        c.env("REGISTRY_AUTH_FILE", self.auth_file());
        c.env("XDG_CONFIG_HOME", self.path("config"));
        c.env("DOCKER_CONFIG", self.path("docker"));
        c.stdin(Stdio::null());
        c
    }

    pub fn cairn(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cairn")
    }

    /// Runs cairn, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cairn(args);
        assert!(
            out.status.success(),
            "cairn {args:?}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs cairn expecting failure with stderr one `cairn: ` line containing one of the
    /// `|`-separated needles (case-insensitive); panics otherwise. Returns the line.
    pub fn refused(&self, args: &[&str], needles: &str) -> String {
        let out = self.cairn(args);
        let err = text(&out.stderr);
        let lower = err.to_lowercase();
        assert!(
            !out.status.success(),
            "{args:?} succeeded: {}",
            text(&out.stdout)
        );
        let last = err.trim_end().to_string();
        assert!(
            last.starts_with("cairn: ") && last.lines().count() == 1,
            "{args:?}: stderr is not one `cairn: ` line: {err:?}"
        );
        assert!(
            needles.split('|').any(|n| lower.contains(n)),
            "{args:?}: expected {needles:?} in {err:?}"
        );
        last
    }

    /// `cairn inspect --format TEMPLATE IMAGE`, trimmed.
    pub fn inspect(&self, template: &str, image: &str) -> String {
        self.ok(&["inspect", "--format", template, image])
            .trim()
            .to_string()
    }

    /// Mounts `image` read-only under the scratch dir; unmounted when the Env drops.
    pub fn mount(&self, image: &str) -> PathBuf {
        let m = self.path(&format!("mnt{}", self.mounts.borrow().len()));
        fs::create_dir(&m).unwrap();
        self.ok(&["mount", image, s(&m)]);
        self.mounts.borrow_mut().push(m.clone());
        m
    }

    /// Puts the store on a tmpfs of `mib` MiB (a small disk); unmounted when the Env drops.
    pub fn small_disk(&self, mib: u64) {
        let root = self.root();
        fs::create_dir_all(&root).unwrap();
        let size = format!("size={mib}m");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(&root));
        self.mounts.borrow_mut().push(root);
    }

    /// Paths and sizes of everything in the store but `tmp/` (directory sizes left out).
    pub fn store_state(&self) -> std::collections::BTreeMap<String, u64> {
        crate::tree::store_state(&self.root(), true)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for m in self.mounts.borrow().iter() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// `umoci unpack` of tag t of `layout` into `bundle`; returns the rootfs.
pub fn unpack(layout: &Path, bundle: &Path) -> PathBuf {
    let image = format!("{}:t", s(layout));
    tool("umoci", &["unpack", "--image", &image, s(bundle)]);
    bundle.join("rootfs")
}
