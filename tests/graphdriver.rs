//! `cairn graphdriver` under a real dockerd (issue 17): the same workload runs on dockerd with
//! `--storage-driver cairn` and with `--storage-driver overlay2`, and what a user sees must be
//! the same — `docker load` of a `cairn save` archive, `run --rm echo`, a run that writes and
//! deletes lower files then `diff` and `commit`, a multi-stage classic `build`, `save` (every
//! layer's entries: name, type, mode, owner, size, content, link target), `rm`/`rmi`. On cairn
//! also: a dockerd restart keeps images and containers, and nothing is left mounted or running.
//!
//! Each dockerd runs in a private mount namespace with a tmpfs over /run, so the plugin socket
//! (/run/docker/plugins/cairn.sock) and dockerd's own state never touch the host; every other
//! path is in the test's temp dir. The plugin server is started in that namespace first and
//! dockerd joins it (`nsenter`), so dockerd sees the plugin's FUSE mounts. Daemons are killed by
//! PID, also when the test fails. Needs root and dockerd (Debian docker.io): without them the
//! test prints why and passes, except with `CI=true`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

fn skip(why: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("graphdriver test cannot run in CI: {why}");
    }
    eprintln!("skipping graphdriver test: {why}");
    true
}

fn find(prog: &str, dirs: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file())
}

/// The docker client of the daemon's own version when installed beside it.
fn docker_client() -> PathBuf {
    find("docker", &["/usr/bin"]).unwrap_or_else(|| "docker".into())
}

/// One dockerd (and, for cairn, its plugin server) in a private mount namespace.
struct Daemon {
    dir: tempfile::TempDir,
    driver: &'static str,
    plugin: Option<Child>,
    dockerd: Option<Child>,
    docker: PathBuf,
}

impl Daemon {
    /// Starts dockerd with `driver`; Err says why it could not start.
    fn start(driver: &'static str) -> Result<Daemon, String> {
        let dir = tempfile::Builder::new()
            .prefix("gd")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        for d in ["data", "exec"] {
            fs::create_dir(dir.path().join(d)).map_err(|e| e.to_string())?;
        }
        let mut d = Daemon {
            dir,
            driver,
            plugin: None,
            dockerd: None,
            docker: docker_client(),
        };
        if driver == "cairn" {
            let script = format!(
                "mount -t tmpfs tmpfs /run && mkdir -p /run/docker/plugins && \
                 exec {CAIRN} graphdriver --listen /run/docker/plugins/cairn.sock"
            );
            let child = Command::new("unshare")
                .args(["-m", "--propagation", "private", "sh", "-c", &script])
                .stdout(Stdio::null())
                .stderr(fs::File::create(d.path("plugin.log")).map_err(|e| e.to_string())?)
                .spawn()
                .map_err(|e| format!("unshare: {e}"))?;
            let sock = PathBuf::from(format!(
                "/proc/{}/root/run/docker/plugins/cairn.sock",
                child.id()
            ));
            d.plugin = Some(child);
            wait_for(|| sock.exists(), "the plugin socket")?;
        }
        d.start_dockerd()?;
        Ok(d)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn start_dockerd(&mut self) -> Result<(), String> {
        let p = |rel: &str| self.path(rel).to_string_lossy().into_owned();
        // dockerd 20.10 writes its trust key to /etc/docker/key.json unless told otherwise.
        let key = serde_json::json!({ "deprecated-key-path": p("key.json") });
        fs::write(self.path("daemon.json"), key.to_string()).map_err(|e| e.to_string())?;
        let args = [
            "dockerd".to_string(),
            "--config-file".into(),
            p("daemon.json"),
            "--experimental".into(),
            "--storage-driver".into(),
            self.driver.into(),
            "--data-root".into(),
            p("data"),
            "--exec-root".into(),
            p("exec"),
            "--pidfile".into(),
            p("pid"),
            "--host".into(),
            format!("unix://{}", p("docker.sock")),
            "--bridge=none".into(),
            "--iptables=false".into(),
        ];
        let mut cmd = match &self.plugin {
            Some(plugin) => {
                let mut c = Command::new("nsenter");
                c.args(["-t", &plugin.id().to_string(), "-m", "--"])
                    .args(&args);
                c
            }
            None => {
                let script = format!("mount -t tmpfs tmpfs /run && exec {}", args.join(" "));
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
                c
            }
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("dockerd.log"))
            .map_err(|e| e.to_string())?;
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("dockerd: {e}"))?;
        self.dockerd = Some(child);
        let r = wait_for(|| self.try_docker(&["version"]).is_ok(), "dockerd");
        if r.is_err() {
            let log = fs::read_to_string(self.path("dockerd.log")).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(15).collect();
            eprintln!(
                "dockerd log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
        r
    }

    /// Stops dockerd (SIGTERM, then SIGKILL after 60 s).
    fn stop_dockerd(&mut self) {
        if let Some(c) = self.dockerd.take() {
            stop(c);
        }
    }

    fn try_docker(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.docker)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.path("docker.sock").display()),
            )
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CONFIG", self.path("client"))
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", self.docker.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "docker {} ({}): {}{}",
                args.join(" "),
                self.driver,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn docker(&self, args: &[&str]) -> String {
        self.try_docker(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The mounts of this test's temp dir in the daemons' namespace.
    fn fuse_mounts(&self) -> Vec<String> {
        let Some(p) = &self.plugin else {
            return vec![];
        };
        let info = fs::read_to_string(format!("/proc/{}/mountinfo", p.id())).unwrap_or_default();
        let dir = self.dir.path().to_string_lossy().into_owned();
        info.lines()
            .filter(|l| l.contains(&dir) && l.contains("fuse.cairn"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop_dockerd();
        if let Some(p) = self.plugin.take() {
            stop(p);
        }
    }
}

fn stop(mut c: Child) {
    let pid = rustix::process::Pid::from_child(&c);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = c.kill();
    let _ = c.wait();
}

fn wait_for(mut ok: impl FnMut() -> bool, what: &str) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("{what} did not come up within 60 s"))
}

/// A busybox image: rootfs tar, then `cairn import` + `cairn save` → an archive for docker load.
fn busybox_archive(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "data/sub"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/usr/bin/busybox", root.join("bin/busybox")).unwrap();
    for c in ["sh", "echo", "cat", "ls", "rm", "mkdir", "touch", "dd"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(c)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(root.join("data/keep"), "keep\n").unwrap();
    fs::write(root.join("data/gone"), "gone\n").unwrap();
    fs::write(root.join("data/sub/f"), "f\n").unwrap();
    let tar = dir.join("rootfs.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "--mtime=@1000000000", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let store = dir.join("cairn-store");
    let out = dir.join("busybox-save.tar");
    for args in [
        vec!["import".into(), tar.clone().into_os_string(), "bb:1".into()],
        vec![
            "save".into(),
            "bb:1".into(),
            "-o".into(),
            out.clone().into(),
        ],
    ] {
        let o = Command::new(CAIRN)
            .arg("--root")
            .arg(&store)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    out
}

const DOCKERFILE: &str = "\
FROM bb:1 AS build
RUN mkdir -p /out && echo built > /out/a && rm /data/gone
COPY hello.txt /out/hello.txt
RUN ln -s a /out/link && ln /out/a /out/hard
FROM bb:1
COPY --from=build /out /app
RUN rm -r /data/sub && echo done > /app/done
RUN mkdir /data/sub && echo again > /data/sub/g
CMD [\"cat\", \"/app/a\", \"/app/hello.txt\"]
";

/// What a user sees of the workload (no IDs or times: those differ between any two runs).
#[derive(Debug, PartialEq)]
struct Seen {
    echo: String,
    diff: Vec<String>,
    committed_run: String,
    built_run: String,
    base_diff_ids: String,
    /// Per saved image, per layer: the entries of its tar.
    saved_layers: BTreeMap<String, Vec<Vec<String>>>,
    images_after_rmi: usize,
}

fn workload(d: &Daemon, archive: &Path) -> Seen {
    d.docker(&["load", "-i", &archive.to_string_lossy()]);
    let echo = d.docker(&["run", "--rm", "--network", "none", "bb:1", "echo", "hi"]);
    let script = "echo new > /data/new; rm /data/gone; echo mod >> /data/keep; \
                  rm -r /data/sub; mkdir /data/sub; echo t > /data/sub/t; \
                  dd if=/dev/zero of=/data/zeros bs=4096 count=3 2>/dev/null";
    d.docker(&[
        "run",
        "--name",
        "w1",
        "--network",
        "none",
        "bb:1",
        "sh",
        "-c",
        script,
    ]);
    // The order of docker diff is the driver's walk order (overlay2: readdir order).
    let mut diff: Vec<_> = d
        .docker(&["diff", "w1"])
        .lines()
        .map(str::to_string)
        .collect();
    diff.sort();
    d.docker(&["commit", "w1", "bb:2"]);
    let committed_run = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb:2",
        "sh",
        "-c",
        "ls -R /data; cat /data/keep",
    ]);
    let ctx = d.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    d.docker(&[
        "build",
        "--network",
        "none",
        "-q",
        "-t",
        "built:1",
        &ctx.to_string_lossy(),
    ]);
    let built_run = d.docker(&["run", "--rm", "--network", "none", "built:1"]);
    let base_diff_ids = d.docker(&["inspect", "-f", "{{json .RootFS.Layers}}", "bb:1"]);
    let saved = d.path("saved.tar");
    d.docker(&["save", "-o", &saved.to_string_lossy(), "bb:2", "built:1"]);
    let saved_layers = saved_layers(&saved);
    d.docker(&["rm", "w1"]);
    d.docker(&["rmi", "bb:2", "built:1"]);
    let images_after_rmi = d.docker(&["images", "-aq"]).lines().count();
    Seen {
        echo,
        diff,
        committed_run,
        built_run,
        base_diff_ids,
        saved_layers,
        images_after_rmi,
    }
}

/// `docker save` unpacked: for each tag, the entries of each of its layers.
fn saved_layers(archive: &Path) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut files = HashMap::new();
    let mut a = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let mut out = BTreeMap::new();
    for img in manifest.as_array().unwrap() {
        let tag = img["RepoTags"][0].as_str().unwrap().to_string();
        let layers = img["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| layer_entries(&files[l.as_str().unwrap()]))
            .collect();
        out.insert(tag, layers);
    }
    out
}

/// One line per tar entry: name, type, mode, owner, size, content hash, link target.
fn layer_entries(tar_bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(format!(
            "{} {:?} {:o} {}:{} {} {:x} {}",
            e.path().unwrap().to_string_lossy().trim_end_matches('/'),
            h.entry_type(),
            h.mode().unwrap() & 0o7777,
            h.uid().unwrap(),
            h.gid().unwrap(),
            data.len(),
            Sha256::digest(&data),
            link
        ));
    }
    out.sort();
    out
}

#[test]
fn dockerd_on_cairn_matches_overlay2() {
    if !rustix::process::geteuid().is_root() {
        skip("needs root");
        return;
    }
    if find("dockerd", &["/usr/sbin", "/usr/bin", "/usr/local/bin"]).is_none() {
        skip("dockerd is not installed (apt install docker.io)");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let archive = busybox_archive(scratch.path());

    let mut cairn = match Daemon::start("cairn") {
        Ok(d) => d,
        Err(e) => {
            skip(&format!("dockerd --storage-driver cairn cannot start: {e}"));
            return;
        }
    };
    let on_cairn = workload(&cairn, &archive);
    restart_keeps_state(&mut cairn);
    cairn.docker(&["rm", "w2"]);
    cairn.docker(&["rmi", "bb:3"]);
    cairn.stop_dockerd();
    assert_eq!(
        cairn.fuse_mounts(),
        Vec::<String>::new(),
        "unions left mounted"
    );
    let dir = cairn.dir.path().to_path_buf();
    drop(cairn);
    assert_eq!(
        processes_under(&dir),
        Vec::<String>::new(),
        "processes left running"
    );

    let reference = match Daemon::start("overlay2") {
        Ok(d) => d,
        Err(e) => {
            skip(&format!(
                "dockerd --storage-driver overlay2 cannot start: {e}"
            ));
            return;
        }
    };
    let on_overlay2 = workload(&reference, &archive);
    drop(reference);

    assert_eq!(on_cairn.echo, "hi\n");
    assert!(
        on_cairn.diff.contains(&"D /data/gone".into()),
        "{:?}",
        on_cairn.diff
    );
    assert!(
        on_cairn.built_run.contains("built\nhello\n"),
        "{}",
        on_cairn.built_run
    );
    assert_eq!(
        on_cairn, on_overlay2,
        "cairn (left) and overlay2 (right) differ"
    );
}

/// A container and an image made before a dockerd restart are there after it, and the
/// container starts again.
fn restart_keeps_state(d: &mut Daemon) {
    d.docker(&["load", "-i", &d.path("saved.tar").to_string_lossy()]);
    d.docker(&["tag", "bb:2", "bb:3"]);
    d.docker(&["rmi", "bb:2", "built:1"]);
    d.docker(&[
        "create",
        "--name",
        "w2",
        "--network",
        "none",
        "bb:3",
        "cat",
        "/data/new",
    ]);
    let images = d.docker(&["images", "-q"]);
    let containers = d.docker(&["ps", "-aq"]);
    d.stop_dockerd();
    d.start_dockerd().unwrap_or_else(|e| panic!("restart: {e}"));
    assert_eq!(d.docker(&["images", "-q"]), images);
    assert_eq!(d.docker(&["ps", "-aq"]), containers);
    assert_eq!(d.docker(&["start", "-a", "w2"]), "new\n");
}

/// Processes whose command line names `dir` (mount daemons, shims, dockerd).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                out.push(format!("{name}: {cmd}"));
            }
        }
    }
    out
}

/// One plugin call over the unix socket (HTTP/1.1, one request per connection).
fn call(sock: &Path, endpoint: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    write!(
        s,
        "POST /{endpoint} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

fn json_call(sock: &Path, endpoint: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, out) = call(sock, endpoint, body.to_string().as_bytes());
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(status, 200, "{endpoint}: {v}");
    v
}

/// The protocol without dockerd: ApplyDiff of a layer with a whiteout, concurrent Get/Put of a
/// read-write layer on it (the union stays mounted until the last Put), Changes and Diff of what
/// was written through the mount, errors as `{"Err": ...}`.
#[test]
fn plugin_protocol_get_put_diff() {
    if !rustix::process::geteuid().is_root() || !Path::new("/dev/fuse").exists() {
        skip("needs root and /dev/fuse");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let sock = t.path().join("cairn.sock");
    let child = Command::new(CAIRN)
        .args(["graphdriver", "--listen"])
        .arg(&sock)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(Option<Child>);
    impl Drop for Kill {
        fn drop(&mut self) {
            if let Some(c) = self.0.take() {
                stop(c);
            }
        }
    }
    let mut plugin = Kill(Some(child));
    wait_for(|| sock.exists(), "plugin socket").unwrap();
    let home = t.path().join("home");
    let act = json_call(&sock, "Plugin.Activate", serde_json::json!({}));
    assert_eq!(act["Implements"][0], "GraphDriver");
    json_call(
        &sock,
        "GraphDriver.Init",
        serde_json::json!({ "Home": home }),
    );

    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("etc/a", &b"a\n"[..]), ("etc/.wh.b", b""), ("keep", b"k\n")] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    let layer = b.into_inner().unwrap();
    json_call(
        &sock,
        "GraphDriver.Create",
        serde_json::json!({"ID": "base"}),
    );
    let (st, out) = call(&sock, "GraphDriver.ApplyDiff?id=base&parent=", &layer);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&out));
    let wh = fs::symlink_metadata(home.join("base/diff/etc/b")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));

    let rw = serde_json::json!({"ID": "ctr", "Parent": "base"});
    json_call(&sock, "GraphDriver.CreateReadWrite", rw.clone());
    let dirs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| s.spawn(|| json_call(&sock, "GraphDriver.Get", rw.clone())))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap()["Dir"].as_str().unwrap().to_string())
            .collect()
    });
    assert!(dirs.iter().all(|d| d == &dirs[0]), "{dirs:?}");
    let merged = PathBuf::from(&dirs[0]);
    assert_eq!(fs::read_to_string(merged.join("etc/a")).unwrap(), "a\n");
    fs::write(merged.join("new"), "n\n").unwrap();
    // A lower directory renamed: an overlay redirect in the upper, which Diff must express.
    fs::rename(merged.join("etc"), merged.join("conf")).unwrap();
    fs::remove_file(merged.join("keep")).unwrap();
    for _ in 0..5 {
        json_call(&sock, "GraphDriver.Put", rw.clone());
    }
    assert!(merged.join("new").exists(), "unmounted before the last Put");
    json_call(&sock, "GraphDriver.Put", rw.clone());
    assert!(
        !merged.join("conf").exists(),
        "still mounted after the last Put"
    );

    let ch = json_call(&sock, "GraphDriver.Changes", rw.clone());
    let mut ch: Vec<String> = ch["Changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["Kind"], c["Path"].as_str().unwrap()))
        .collect();
    ch.sort();
    assert_eq!(ch, ["1 /conf", "1 /conf/a", "1 /new", "2 /etc", "2 /keep"]);
    let (st, tar_bytes) = call(&sock, "GraphDriver.Diff", rw.to_string().as_bytes());
    assert_eq!(st, 200);
    let names: Vec<String> = layer_entries(&tar_bytes)
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            ".wh.etc",
            ".wh.keep",
            "conf",
            "conf/.wh..wh..opq",
            "conf/a",
            "new"
        ]
    );

    let (st, out) = call(&sock, "GraphDriver.Get", br#"{"ID":"nope"}"#);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(st, 500);
    assert!(v["Err"].as_str().unwrap().contains("nope"), "{v}");
    json_call(&sock, "GraphDriver.Remove", rw);
    assert!(!home.join("ctr").exists());
    stop(plugin.0.take().unwrap());
    assert!(!sock.exists(), "socket left behind");
}
