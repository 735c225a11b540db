//! End-to-end tests of cairn's image commands against real clients (issue 4).
//!
//! Images are made with busybox + tar, umoci, skopeo and python3's `tarfile`, moved in and out of
//! cairn with `import` / `load` / `save`, and what `cairn mount IMAGE` shows is compared with the
//! source tree or with `umoci unpack` (names, types, modes, owners, sizes, content hashes, link
//! targets, link counts, hardlink identity, user xattrs; whiteouts are absent names). Also the
//! docker-style output of `images`, `rmi`, `image prune`, `history`, `inspect` and `load`; broken
//! or hostile input that leaves the store exactly as it was; and a `kill -9` during `load`.
//!
//! Each test has its own store root and scratch dirs (parallel-safe); mounts are lazily unmounted
//! on drop. Needs root, /dev/fuse, skopeo, umoci, tar, gzip and python3: without them a test
//! prints why and passes, except with `CI=true`, where it fails.

#[path = "support/tree.rs"]
mod tree;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rand::RngCore;
use rand::SeedableRng;
use serde_json::{Value, json};
use tree::{assert_same_tree, sha256_hex, tree};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

// ---------------------------------------------------------------- environment and processes

/// Returns false (after printing why) when a test cannot run here; panics when `CI=true`.
fn ready(tools: &[&str]) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = |t: &&str| std::env::split_paths(&path).any(|d| d.join(t).is_file());
    let root = rustix::process::geteuid().is_root();
    let checks = [
        (root, "root"),
        (Path::new("/dev/fuse").exists(), "/dev/fuse"),
    ];
    let mut missing: Vec<&str> = checks.iter().filter(|c| !c.0).map(|c| c.1).collect();
    missing.extend(tools.iter().filter(|t| !on_path(t)));
    if missing.is_empty() {
        return true;
    }
    let why = format!("missing {}", missing.join(", "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cannot run in CI: {why}");
    }
    eprintln!("skipping: {why}");
    false
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a command, asserts that it succeeded, returns its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Runs `prog args...` (paths are fine as arguments), asserting success.
fn tool<S: AsRef<std::ffi::OsStr>>(prog: &str, args: &[S]) -> String {
    run(Command::new(prog).args(args))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn lines(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// One test's world: a scratch dir holding the store root (`store/`), inputs and mountpoints.
struct Env {
    dir: tempfile::TempDir,
    mounts: RefCell<Vec<PathBuf>>,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            mounts: RefCell::new(Vec::new()),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn root(&self) -> PathBuf {
        self.path("store")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CAIRN);
        c.arg("--root").arg(self.root()).args(args);
        c
    }
    fn cairn(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cairn")
    }
    /// Runs cairn, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        run(&mut self.cmd(args))
    }
    /// Runs cairn expecting failure with one `cairn: ` line on stderr that contains one of the
    /// `|`-separated needles; returns what is wrong otherwise.
    fn refused(&self, args: &[&str], needles: &str) -> Result<(), String> {
        let out = self.cairn(args);
        let err = text(&out.stderr);
        let lower = err.to_lowercase();
        if out.status.success() {
            Err(format!("{args:?} succeeded: {}", text(&out.stdout)))
        } else if err.trim_end().lines().count() != 1 || !err.starts_with("cairn: ") {
            Err(format!("{args:?}: not one `cairn: ` line: {err:?}"))
        } else if !needles.split('|').any(|n| lower.contains(n)) {
            Err(format!("{args:?}: expected {needles:?} in {err:?}"))
        } else {
            Ok(())
        }
    }
    /// `cairn inspect --format TEMPLATE IMAGE`, trimmed.
    fn inspect(&self, template: &str, image: &str) -> String {
        let out = self.ok(&["inspect", "--format", template, image]);
        out.trim().to_string()
    }
    /// Mounts `image` read-only under the scratch dir; unmounted when the Env drops.
    fn mount(&self, image: &str) -> PathBuf {
        let m = self.path(&format!("mnt{}", self.mounts.borrow().len()));
        fs::create_dir(&m).unwrap();
        self.ok(&["mount", image, s(&m)]);
        self.mounts.borrow_mut().push(m.clone());
        m
    }
    /// Paths and file sizes of everything in the store (directory sizes left out).
    fn store_state(&self) -> BTreeMap<String, u64> {
        tree::store_state(&self.root(), false)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for m in self.mounts.borrow().iter() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

// ---------------------------------------------------------------- making inputs

const PY_TAR: &str = r#"
import io, json, sys, tarfile
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
    for name, kind, arg in json.load(sys.stdin):
        ti = tarfile.TarInfo(name)
        ti.mode, ti.mtime = (0o755 if kind == 'd' else 0o644), 0
        data = None
        if kind == 'd': ti.type = tarfile.DIRTYPE
        elif kind == 's': ti.type, ti.linkname = tarfile.SYMTYPE, arg
        elif kind == 'h': ti.type, ti.linkname = tarfile.LNKTYPE, arg
        else: data = arg.encode(); ti.size = len(data)
        t.addfile(ti, io.BytesIO(data) if data is not None else None)
"#;

/// Writes a tar with python's tarfile: entries are (name, kind `f|d|s|h`, content or link).
fn py_tar(out: &Path, entries: &[(&str, &str, &str)]) -> PathBuf {
    let mut child = Command::new("python3")
        .args(["-c", PY_TAR, s(out)])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let spec = serde_json::to_vec(&json!(entries)).unwrap();
    child.stdin.take().unwrap().write_all(&spec).unwrap();
    assert!(child.wait().unwrap().success(), "python3 tarfile failed");
    out.to_path_buf()
}

fn random_file(p: &Path, len: usize, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut f = fs::File::create(p).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..len.div_ceil(buf.len()) {
        rng.fill_bytes(&mut buf);
        f.write_all(&buf).unwrap();
    }
}

fn set_xattr(p: &Path, name: &str, value: &str) {
    rustix::fs::lsetxattr(p, name, value.as_bytes(), rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {}: {e}", p.display()));
}

/// Writes `root/rel` with a mode and owner (and its parent directories).
fn put(root: &Path, rel: &str, content: &str, mode: u32, owner: (u32, u32)) {
    let p = &root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, content).unwrap();
    chown(p, Some(owner.0), Some(owner.1)).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A busybox rootfs (applet hardlinks, a symlink, /etc files, a user xattr), imported as
/// busybox:test with CMD ["/bin/sh"]. Returns the rootfs dir.
fn busybox_image(env: &Env) -> PathBuf {
    let rootfs = env.path("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in ["sh", "ls", "cat", "echo"] {
        fs::hard_link(rootfs.join("bin/busybox"), rootfs.join("bin").join(a)).unwrap();
    }
    symlink("busybox", rootfs.join("bin/vi")).unwrap();
    let passwd = "root:x:0:0:root:/root:/bin/sh\n";
    put(&rootfs, "etc/passwd", passwd, 0o644, (0, 0));
    put(&rootfs, "etc/shadow", "root:*:1::::::\n", 0o640, (0, 42));
    set_xattr(&rootfs.join("etc/passwd"), "user.origin", "cairn-test");
    let tar = env.path("rootfs.tar");
    tool("tar", &["--xattrs", "-C", s(&rootfs), "-cf", s(&tar), "."]);
    let cmd = r#"CMD ["/bin/sh"]"#;
    let id = env.ok(&["import", "-c", cmd, s(&tar), "busybox:test"]);
    assert!(id.starts_with("sha256:"), "import prints the ID: {id:?}");
    rootfs
}

/// Stores a blob in an OCI layout (moving `file`), returns its descriptor.
fn put_blob(layout: &Path, media_type: &str, file: &Path) -> Value {
    let bytes = fs::read(file).unwrap();
    let hex = sha256_hex(&bytes);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::rename(file, dir.join(&hex)).unwrap();
    json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
}

fn put_json_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let tmp = layout.join("blob.tmp");
    fs::write(&tmp, bytes).unwrap();
    put_blob(layout, media_type, &tmp)
}

/// One layer of a hand-made OCI layout: an uncompressed tar, optionally gzipped, and the media
/// type written in the manifest.
struct Layer<'a>(PathBuf, bool, &'a str);

fn plain(tar: PathBuf) -> Layer<'static> {
    Layer(tar, false, TAR_LAYER)
}

/// Writes an OCI image layout at `dir` (tag `t`) from `layers`; `config` replaces the generated
/// config JSON when given. Returns the blob path of the last layer.
fn oci_layout(dir: &Path, layers: Vec<Layer>, config: Option<&[u8]>) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let (mut descs, mut diff_ids, mut last) = (Vec::new(), Vec::new(), PathBuf::new());
    for Layer(tar, gzip, media_type) in layers {
        diff_ids.push(format!("sha256:{}", sha256_hex(&fs::read(&tar).unwrap())));
        let file = if gzip {
            tool("gzip", &["-n", s(&tar)]);
            tar.with_extension("tar.gz")
        } else {
            tar
        };
        let d = put_blob(dir, media_type, &file);
        last = blob_path(dir, &d["digest"]);
        descs.push(d);
    }
    let generated = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config = put_json_blob(dir, CONFIG, config.unwrap_or(&generated));
    let manifest =
        json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": descs});
    let mut mdesc = put_json_blob(dir, MANIFEST, &serde_json::to_vec(&manifest).unwrap());
    mdesc["annotations"] = json!({"org.opencontainers.image.ref.name": "t"});
    let index = json!({"schemaVersion": 2, "manifests": [mdesc]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    last
}

fn blob_path(layout: &Path, digest: &Value) -> PathBuf {
    let rel = digest.as_str().unwrap().replace(':', "/");
    layout.join("blobs").join(rel)
}

/// `PATH:t`, the image reference umoci and skopeo take for tag `t` of a layout.
fn at_t(layout: &Path) -> String {
    format!("{}:t", s(layout))
}

/// Config digest (= image ID) of tag `t` in an OCI layout.
fn layout_image_id(layout: &Path) -> String {
    let read = |p: PathBuf| -> Value { serde_json::from_slice(&fs::read(p).unwrap()).unwrap() };
    let index = read(layout.join("index.json"));
    let manifest = read(blob_path(layout, &index["manifests"][0]["digest"]));
    manifest["config"]["digest"].as_str().unwrap().to_string()
}

fn skopeo_copy(from: &str, to: &str) {
    tool("skopeo", &["copy", "-q", from, to]);
}

/// `umoci unpack --image LAYOUT:t BUNDLE`.
fn unpack(layout: &Path, bundle: &Path) {
    tool("umoci", &["unpack", "--image", &at_t(layout), s(bundle)]);
}

/// `umoci unpack`, let `edit` change the rootfs, `umoci repack`: one new layer on L:t.
fn umoci_round(layout: &Path, bundle: &Path, edit: impl FnOnce(&Path)) {
    unpack(layout, bundle);
    edit(&bundle.join("rootfs"));
    tool("umoci", &["repack", "--image", &at_t(layout), s(bundle)]);
    fs::remove_dir_all(bundle).unwrap();
}

/// An OCI layout L:t made by umoci with four layers: files with modes, owners and xattrs, a
/// symlink, hardlink pairs; then deleted files and directories (whiteouts); then an opaque
/// directory (a layer added with `umoci raw add-layer`).
fn umoci_image(env: &Env) -> PathBuf {
    let layout = env.path("L");
    let bundle = env.path("bundle");
    tool("umoci", &["init", "--layout", s(&layout)]);
    tool("umoci", &["new", "--image", &at_t(&layout)]);
    umoci_round(&layout, &bundle, |r| {
        put(r, "d/f", "hello\n", 0o4750, (1000, 1000));
        set_xattr(&r.join("d/f"), "user.foo", "bar");
        fs::create_dir_all(r.join("d/sub/deeper")).unwrap();
        put(r, "d/sub/deeper/x", "x\n", 0o600, (3, 4));
        put(r, "gone/x", "gone\n", 0o644, (0, 0));
        put(r, "del", "delete me\n", 0o644, (0, 0));
        put(r, "opq/a", "a\n", 0o644, (0, 0));
        put(r, "opq/b", "b\n", 0o644, (0, 0));
        put(r, "etc/conf", "k=v\n", 0o600, (42, 43));
        put(r, "hl1", "shared\n", 0o640, (5, 6));
        fs::hard_link(r.join("hl1"), r.join("hl2")).unwrap();
        symlink("d/f", r.join("link")).unwrap();
        symlink("/nowhere", r.join("dangling")).unwrap();
    });
    umoci_round(&layout, &bundle, |r| {
        fs::remove_file(r.join("del")).unwrap();
        fs::remove_dir_all(r.join("gone")).unwrap();
        fs::remove_dir_all(r.join("d/sub")).unwrap();
        put(r, "d/g", "g\n", 0o640, (7, 8));
        set_xattr(&r.join("d"), "user.dir", "1");
        put(r, "etc/conf", "k=v\nk2=v2\n", 0o600, (42, 43));
        put(r, "pair/a", "pair\n", 0o755, (9, 9));
        fs::hard_link(r.join("pair/a"), r.join("pair/b")).unwrap();
        fs::set_permissions(r.join("pair"), fs::Permissions::from_mode(0o710)).unwrap();
    });
    let opq = [
        ("opq", "d", ""),
        ("opq/.wh..wh..opq", "f", ""),
        ("opq/c", "f", "c\n"),
    ];
    let opaque = py_tar(&env.path("opaque.tar"), &opq);
    let image = at_t(&layout);
    tool(
        "umoci",
        &["raw", "add-layer", "--image", &image, s(&opaque)],
    );
    layout
}

// ---------------------------------------------------------------- the scenarios

/// Rows of a docker-style table, cells split at runs of two or more spaces.
fn table(out: &str) -> Vec<Vec<String>> {
    let cells = |l: &str| {
        l.split("  ")
            .map(|c| c.trim().to_string())
            .collect::<Vec<_>>()
    };
    let rows = out.lines().map(cells);
    rows.map(|r| r.into_iter().filter(|c| !c.is_empty()).collect())
        .collect()
}

#[test]
fn busybox_import_mounts_the_same_tree() {
    if !ready(&["tar"]) {
        return;
    }
    let env = Env::new();
    let rootfs = busybox_image(&env);
    let id = env.inspect("{{.Id}}", "busybox:test");
    let mnt = env.mount("busybox:test");
    assert_same_tree(&rootfs, &mnt);
    let sh = run(Command::new(mnt.join("bin/sh")).args(["-c", "echo hi"]));
    assert_eq!(sh, "hi\n", "busybox runs from the mount");

    let out = env.ok(&["images"]);
    let rows = table(&out);
    assert_eq!(rows.len(), 2, "{out}");
    let header = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
    assert_eq!(rows[0], header);
    assert_eq!(rows[1][..3], ["busybox", "test", &id[7..19]], "{out}");
    let (created, size) = (&rows[1][3], &rows[1][4]);
    assert!(created.ends_with(" ago") && size.ends_with("MB"), "{out}");

    let cmd = env.inspect("{{json .Config.Cmd}}", "busybox:test");
    assert_eq!(cmd, r#"["/bin/sh"]"#);
    let history = env.ok(&["history", "busybox:test"]);
    assert_eq!(table(&history).len(), 2, "a header and one row:\n{history}");
    let quiet = env.ok(&["history", "-q", "busybox:test"]);
    assert_eq!(quiet.lines().count(), 1);
    // docker's history header (docker/cli formatter_history.go: historyIDHeader = "IMAGE").
    let header = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"];
    assert_eq!(table(&history)[0], header, "{history}");
}

#[test]
fn save_is_read_by_skopeo_and_umoci() {
    if !ready(&["tar", "skopeo", "umoci"]) {
        return;
    }
    let env = Env::new();
    busybox_image(&env);
    let (x, y) = (env.path("x.tar"), env.path("y.tar"));
    env.ok(&["save", "-o", s(&x), "busybox:test"]);
    env.ok(&["save", "-o", s(&y), "busybox:test"]);
    let same = fs::read(&x).unwrap() == fs::read(&y).unwrap();
    assert!(same, "two saves of one image differ");

    let archive = format!("docker-archive:{}", s(&x));
    let skopeo: Value = serde_json::from_str(&tool("skopeo", &["inspect", &archive])).unwrap();
    let layers = env.inspect("{{json .RootFS.Layers}}", "busybox:test");
    let diff_ids: Value = serde_json::from_str(&layers).unwrap();
    assert_eq!(skopeo["Layers"], diff_ids, "skopeo inspect: {skopeo}");

    let (oci, bundle) = (env.path("oci"), env.path("bundle"));
    skopeo_copy(&archive, &format!("oci:{}", at_t(&oci)));
    unpack(&oci, &bundle);
    assert_same_tree(&bundle.join("rootfs"), &env.mount("busybox:test"));
}

#[test]
fn umoci_layers_with_whiteouts_load_in_every_form() {
    if !ready(&["tar", "skopeo", "umoci", "python3"]) {
        return;
    }
    let src = Env::new();
    let layout = umoci_image(&src);
    let want_id = layout_image_id(&layout);
    let reference = src.path("ref");
    unpack(&layout, &reference);
    let want = reference.join("rootfs");
    // The oracle itself hides what the whiteouts and the opaque directory remove.
    for gone in ["del", "gone", "d/sub", "opq/a", "opq/b"] {
        assert!(!want.join(gone).exists(), "umoci unpack shows {gone}");
    }
    let oracle = tree(&want);
    assert!(
        oracle.nodes["/d/f"].contains("user.foo"),
        "xattr: {:?}",
        oracle.nodes
    );
    assert_eq!(oracle.links.len(), 2, "hardlink pairs hl1/hl2, pair/a/b");

    let (da, oa) = (src.path("da.tar"), src.path("oa.tar"));
    let oci = format!("oci:{}", at_t(&layout));
    skopeo_copy(&oci, &format!("docker-archive:{}:img:t", s(&da)));
    skopeo_copy(&oci, &format!("oci-archive:{}", at_t(&oa)));
    let forms = [
        ("OCI layout", &layout),
        ("docker-archive", &da),
        ("OCI archive", &oa),
    ];
    for (form, input) in forms {
        let env = Env::new();
        let out = env.ok(&["load", "-i", s(input)]);
        if input == &da {
            assert_eq!(out, "Loaded image: img:t\n", "{form}");
        }
        let id_line = format!("Loaded image ID: {want_id}");
        let docker_style = |l: &str| l == id_line || l.starts_with("Loaded image: ");
        let good = !out.is_empty() && out.lines().all(docker_style);
        assert!(good, "{form}: {out:?}");
        let id = env.inspect("{{.Id}}", &want_id);
        assert_eq!(id, want_id, "{form}: the image ID is the config digest");
        let mnt = env.mount(&want_id);
        let opq = fs::read_dir(mnt.join("opq")).unwrap().count();
        assert_eq!(opq, 1, "{form}: the opaque opq/ shows only c");
        assert_same_tree(&want, &mnt);
    }
}

#[test]
fn rmi_tag_prune_and_image_filters() {
    if !ready(&["python3"]) {
        return;
    }
    let env = Env::new();
    let tar = |n: &str| py_tar(&env.path(&format!("{n}.tar")), &[(n, "f", n)]);
    let (one, two, three) = (tar("one"), tar("two"), tar("three"));
    let import = |t: &Path, name: &str| env.ok(&["import", s(t), name]).trim().to_string();
    let names = |extra: &[&str]| {
        let fmt = ["images", "--format", "{{.Repository}}:{{.Tag}}"];
        lines(&env.ok(&[&fmt[..], extra].concat()))
    };

    let old = import(&one, "a:1");
    env.ok(&["tag", "a:1", "b:2"]);
    assert_eq!(env.ok(&["rmi", "a:1"]), "Untagged: a:1\n");
    assert_eq!(names(&[]), ["b:2"]);
    env.ok(&["tag", "b:2", "a:1"]);
    let refused = env.cairn(&["rmi", &old[7..19]]).status;
    assert!(
        !refused.success(),
        "rmi of an ID in two repositories needs -f"
    );
    assert_eq!(names(&[]), ["a:1", "b:2"], "a refused rmi keeps the tags");
    let out = env.ok(&["rmi", "-f", &old[7..19]]);
    let got = lines(&out);
    for l in ["Untagged: a:1", "Untagged: b:2", &format!("Deleted: {old}")] {
        assert!(got.iter().any(|g| g == l), "rmi -f: no {l:?} in:\n{out}");
    }
    let docker_style =
        |l: &String| l.starts_with("Untagged: ") || l.starts_with("Deleted: sha256:");
    assert!(got.iter().all(docker_style), "{out}");
    assert_eq!(env.ok(&["images", "-q"]), "");
    assert_df_empty(&env);

    let id = import(&one, "busybox:1");
    env.ok(&["tag", "busybox:1", "busy:2"]);
    env.ok(&["tag", "busybox:1", "other:3"]);
    assert_eq!(names(&[]), ["busy:2", "busybox:1", "other:3"]);
    let busy = names(&["--filter", "reference=busy*"]);
    assert_eq!(busy, ["busy:2", "busybox:1"]);
    let no_trunc = env.ok(&["images", "--no-trunc"]);
    assert_eq!(table(&no_trunc)[1][2], id, "--no-trunc:\n{no_trunc}");
    let digests = table(&env.ok(&["images", "--digests", "busybox"]));
    assert_eq!(digests[0][..3], ["REPOSITORY", "TAG", "DIGEST"]);
    assert_eq!(digests[1][..4], ["busybox", "1", "<none>", &id[7..19]]);

    let dangling_id = import(&two, "x:1");
    let x_id = import(&three, "x:1");
    let dangling = ["images", "--filter", "dangling=true", "-q"];
    assert_eq!(env.ok(&dangling), format!("{}\n", &dangling_id[7..19]));
    assert_eq!(names(&["--filter", "dangling=true"]), ["<none>:<none>"]);
    let pruned = env.ok(&["image", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Images:\n"), "{pruned}");
    let deleted = format!("deleted: {dangling_id}");
    assert!(
        pruned.contains(&deleted) && !pruned.contains(&x_id),
        "{pruned}"
    );
    // docker prints one line per name (an ID repeats for each of its tags).
    let mut left = lines(&env.ok(&["images", "-q"]));
    left.dedup();
    assert_eq!(left, lines(&format!("{}\n{}", &id[7..19], &x_id[7..19])));
    env.ok(&["image", "prune", "-af"]);
    assert_eq!(env.ok(&["images", "-q", "-a"]), "");
    assert_df_empty(&env);
}

/// `system df` counts no images and no layers.
fn assert_df_empty(env: &Env) {
    let df = env.ok(&["system", "df"]);
    for kind in ["Images", "Layers"] {
        let row = df.lines().find(|l| l.starts_with(kind)).expect(kind);
        assert_eq!(row.split_whitespace().nth(1), Some("0"), "{df}");
    }
}

type Entries<'a> = Vec<(&'a str, &'a str, &'a str)>;

#[test]
fn bad_input_leaves_the_store_unchanged() {
    if !ready(&["tar", "gzip", "python3"]) {
        return;
    }
    let env = Env::new();
    let p = |n: &str| env.path(n);
    let load = |input: &str| vec!["load".to_string(), "-i".into(), s(&p(input)).into()];
    // Something already in the store, to see that it is not disturbed.
    let seed = [("etc", "d", ""), ("etc/passwd", "f", "root\n")];
    let seed = py_tar(&p("seed.tar"), &seed);
    env.ok(&["import", s(&seed), "seed:1"]);

    // A saved archive cut in the middle of its (1 MiB, random) layer blob.
    fs::create_dir(p("big")).unwrap();
    random_file(&p("big/data"), 1 << 20, 1);
    tool("tar", &["-C", s(&p("big")), "-cf", s(&p("big.tar")), "."]);
    let other = Env::new();
    other.ok(&["import", s(&p("big.tar")), "big:1"]);
    other.ok(&["save", "-o", s(&p("saved.tar")), "big:1"]);
    let bytes = fs::read(p("saved.tar")).unwrap();
    fs::write(p("truncated.tar"), &bytes[..bytes.len() / 2]).unwrap();

    // A gzip layer with flipped bytes (nothing else fixed: its digest no longer matches).
    let gz_layer = vec![Layer(p("big.tar"), true, GZIP_LAYER)];
    let blob = oci_layout(&p("corrupt"), gz_layer, None);
    let mut gz = fs::read(&blob).unwrap();
    let mid = gz.len() / 2;
    gz[mid..mid + 8].iter_mut().for_each(|b| *b ^= 0xa5);
    fs::write(&blob, gz).unwrap();

    // A config that is not JSON (all digests right); a layer of an unknown media type.
    let small = |n: &str| py_tar(&p(&format!("{n}.tar")), &[("file", "f", n)]);
    let bad_json = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","#;
    oci_layout(&p("badjson"), vec![plain(small("j"))], Some(bad_json));
    let lz9 = "application/vnd.example.layer.v1.tar+lz9";
    oci_layout(&p("mediatype"), vec![Layer(small("u"), false, lz9)], None);

    let mut cases: Vec<(Vec<String>, &str)> = vec![
        (load("truncated.tar"), "truncated|unexpected end|eof"),
        (load("corrupt"), "gzip|digest|sha256:"),
        (load("badjson"), "json"),
        (load("mediatype"), lz9),
    ];
    // Hostile layers, each through `import` and through `load` of an OCI layout.
    let long_name = "n".repeat(256);
    let (escape, evil) = (("../escape", "f", "evil"), ("a/passwd", "f", "evil"));
    let hostile: [(&str, Entries, &str); 4] = [
        ("escape", vec![("ok", "f", "x"), escape], ".."),
        ("symlink", vec![("a", "s", "/etc"), evil], "symlink"),
        ("hardlink", vec![("x", "h", "/etc/passwd")], "/etc/passwd"),
        ("longname", vec![(&long_name, "f", "x")], "255"),
    ];
    for (name, entries, needle) in &hostile {
        let tar = py_tar(&p(&format!("{name}.tar")), entries);
        let copy = p(&format!("{name}-layer.tar"));
        fs::copy(&tar, &copy).unwrap();
        oci_layout(&p(&format!("{name}-oci")), vec![plain(copy)], None);
        let import = vec!["import".into(), s(&tar).into(), format!("hostile:{name}")];
        cases.push((import, needle));
        cases.push((load(&format!("{name}-oci")), needle));
    }

    let mut problems = Vec::new();
    for (args, needles) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let before = env.store_state();
        problems.extend(env.refused(&args, needles).err());
        let after = env.store_state();
        if after != before {
            let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
            let removed: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
            let change = format!("+{added:?} -{removed:?}");
            problems.push(format!("{args:?} changed the store: {change}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(!Path::new("/escape").exists() && !p("escape").exists());
    assert!(!fs::read_to_string("/etc/passwd").unwrap().contains("evil"));
    let names = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(names, "seed:1\n");
    env.ok(&["system", "check"]);
}

#[test]
fn kill_during_load_leaves_a_sound_store() {
    if !ready(&["tar"]) {
        return;
    }
    let env = Env::new();
    let mut layers = Vec::new();
    for i in 0..3u64 {
        let d = env.path(&format!("l{i}"));
        fs::create_dir(&d).unwrap();
        random_file(&d.join(format!("blob{i}")), 64 << 20, 10 + i);
        let tar = env.path(&format!("l{i}.tar"));
        tool("tar", &["-C", s(&d), "-cf", s(&tar), "."]);
        fs::remove_dir_all(&d).unwrap();
        layers.push(plain(tar));
    }
    let (layout, big) = (env.path("layout"), env.path("big.tar"));
    oci_layout(&layout, layers, None);
    tool("tar", &["-C", s(&layout), "-cf", s(&big), "."]);
    fs::remove_dir_all(&layout).unwrap();

    let mut killed = 0;
    for ms in [100u64, 200, 300, 600, 1200] {
        let mut load = env.cmd(&["load", "-i", s(&big)]);
        let mut child = load.stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let running = child.try_wait().unwrap().is_none();
        if running {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        let check = env.cairn(&["system", "check"]);
        let report = format!("{}{}", text(&check.stdout), text(&check.stderr));
        assert!(
            check.status.success(),
            "check after a kill at {ms} ms: {report}"
        );
        if !running {
            break; // this load finished before its kill
        }
        let shown = env.ok(&["images", "-a", "-q"]);
        assert_eq!(shown, "", "a half image after the kill at {ms} ms");
    }
    assert!(
        killed > 0,
        "every load finished before its kill: nothing tested"
    );
    let out = env.ok(&["load", "-i", s(&big)]);
    assert!(out.starts_with("Loaded image"), "{out}");
    assert_eq!(env.ok(&["images", "-a", "-q"]).lines().count(), 1);
    env.ok(&["system", "check"]);
}
