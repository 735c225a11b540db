//! `pull`: the generated image pulled from a loopback registry into a fresh store, cold —
//! `cairn pull` against `skopeo copy docker://… oci:DIR:t && umoci unpack` (the baseline).
//! Smoke and quick pull the `load` image; full pulls one of its own of ~200 MB (generated
//! and cached like the `load` archive, as profile `full-pull`).
//!
//! The registry is `docker-registry serve` (distribution) on a free 127.0.0.1 port, plain HTTP.
//! Its storage is cached beside the generated archive (`<archive dir>/registry/`): filled once
//! with `skopeo copy oci-archive:ARCHIVE docker://…` (blobs as they are, gzip layers), reused
//! by later runs. Every repetition starts the registry on that storage (untimed), drops caches,
//! times the pull, checks the result, and stops the registry.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::image::{
    ImageEnv, ImageWorkload, Importer, ImporterKind, describe_image, fmt_bytes, skopeo_umoci,
};
use super::{Measured, timed};
use crate::image_gen::ImageArchive;
use crate::impls::{find_program, run_with_timeout};
use crate::profile::Profile;
use crate::runner::{drop_caches, fmt_duration};

/// The repository and tag the image is served as.
const REPO: &str = "cairn-bench/pull:latest";

pub struct Pull {
    about: String,
    /// The full profile pulls an image of its own (~200 MB of gzip layers: the full `load`
    /// image with smaller big files); smaller profiles pull the `load` image.
    own: Option<Profile>,
    generated: Mutex<Option<ImageArchive>>,
}

/// Big files of the full profile's pull image (10 of them, 0.5–1.5× this size).
const FULL_PULL_BIG_FILE: u64 = 13 << 20;

impl Pull {
    /// The workload, or why it cannot run here.
    pub fn new(p: &Profile) -> std::result::Result<Pull, String> {
        let missing: Vec<&str> = ["docker-registry", "skopeo"]
            .into_iter()
            .filter(|p| find_program(Path::new(p)).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} not found (apt-get install docker-registry skopeo)",
                missing.join(" and ")
            ));
        }
        let own = (p.name == "full").then(|| Profile {
            name: "full-pull",
            image_big_file_bytes: FULL_PULL_BIG_FILE,
            ..p.clone()
        });
        let image = describe_image(own.as_ref().unwrap_or(p));
        Ok(Pull {
            about: format!(
                "cold: pull {image} from a loopback docker-registry into a fresh store / OCI \
                 dir + bundle"
            ),
            own,
            generated: Mutex::new(None),
        })
    }

    /// The image to serve: the `load` archive, or this workload's own (generated once).
    fn archive(&self, env: &ImageEnv) -> Result<ImageArchive> {
        let Some(profile) = &self.own else {
            return Ok(env.archive.clone());
        };
        let mut generated = self.generated.lock().unwrap();
        if generated.is_none() {
            *generated = Some(crate::image_gen::archive(env.workdir, profile, env.seed)?);
        }
        Ok(generated.clone().unwrap())
    }
}

impl ImageWorkload for Pull {
    fn name(&self) -> String {
        "pull".into()
    }

    fn about(&self) -> String {
        self.about.clone()
    }

    /// cairn and the baseline; the oci-archive variant of skopeo would pull the same way.
    fn applies_to(&self, tool: &Importer) -> bool {
        match &tool.kind {
            ImporterKind::Cairn(_) => true,
            ImporterKind::SkopeoUmoci { transport, .. } => *transport == "docker-archive",
            ImporterKind::Runc(_) => false,
        }
    }

    fn run(&self, tool: &Importer, env: &ImageEnv) -> Result<Measured> {
        let archive = self.archive(env)?;
        let served = Served::start(&archive, env)?;
        let image = format!("127.0.0.1:{}/{REPO}", served.port);
        let counts = (archive.layers as u64, archive.compressed_bytes);
        match &tool.kind {
            ImporterKind::Cairn(bin) => {
                let store = env.scratch.join("store");
                let mut pull = Command::new(bin);
                pull.arg("--root").arg(&store).args(["pull", "-q", &image]);
                drop_caches()?;
                let m = timed(|| {
                    run_with_timeout(pull, None, env.timeout)?;
                    Ok(counts)
                })?;
                let out = Command::new(bin)
                    .arg("--root")
                    .arg(&store)
                    .args(["images", "-q"])
                    .output()
                    .context("running cairn images -q")?;
                let ids = String::from_utf8_lossy(&out.stdout);
                if !out.status.success() || ids.lines().count() != 1 {
                    bail!("after cairn pull, `cairn images -q` shows {ids:?}, expected one image");
                }
                Ok(m)
            }
            ImporterKind::SkopeoUmoci { skopeo, umoci, .. } => {
                let src = format!("docker://{image}");
                let flags = ["--src-tls-verify=false"];
                skopeo_umoci(
                    skopeo,
                    umoci,
                    &flags,
                    &src,
                    env,
                    &archive.probe_file,
                    counts,
                )
            }
            ImporterKind::Runc(_) => bail!("runc does not pull images"),
        }
    }
}

/// A running registry serving the archive's image; stopped on drop.
struct Served {
    port: u16,
    child: Child,
}

impl Served {
    /// Starts the registry on the cached storage, filling it first if needed.
    fn start(archive: &ImageArchive, env: &ImageEnv) -> Result<Served> {
        let cache = (archive.path.parent())
            .context("archive without a directory")?
            .join("registry");
        let done = cache.join("pushed");
        if done.exists() {
            return Served::launch(&cache, env);
        }
        if cache.exists() {
            std::fs::remove_dir_all(&cache)?;
        }
        std::fs::create_dir_all(&cache)?;
        let served = Served::launch(&cache, env)?;
        let start = Instant::now();
        let mut push = Command::new("skopeo");
        push.args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"]);
        push.arg(format!("oci-archive:{}", archive.path.display()));
        push.arg(format!("docker://127.0.0.1:{}/{REPO}", served.port));
        run_with_timeout(push, None, env.timeout).context("pushing the image with skopeo")?;
        std::fs::write(&done, "")?;
        eprintln!(
            "registry storage {} filled in {} ({})",
            cache.display(),
            fmt_duration(start.elapsed()),
            fmt_bytes(archive.compressed_bytes)
        );
        Ok(served)
    }

    fn launch(cache: &Path, env: &ImageEnv) -> Result<Served> {
        let mut last = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let config = config(&cache.join("data"), port);
            let yml = env.scratch.join("registry.yml");
            std::fs::create_dir_all(&env.scratch)?;
            std::fs::write(&yml, config)?;
            let log = env.scratch.join("registry.log");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&yml)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()
                .context("spawning docker-registry")?;
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) && child.try_wait()?.is_none() {
                if answers(port) {
                    return Ok(Served { port, child });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            last = std::fs::read_to_string(&log).unwrap_or_default();
        }
        bail!("docker-registry did not start: {last}")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(data: &Path, port: u16) -> String {
    format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        data.display()
    )
}

/// Whether `GET /v2/` answers 200.
fn answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let req = format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut buf = [0u8; 12];
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    s.write_all(req.as_bytes()).is_ok()
        && s.read_exact(&mut buf).is_ok()
        && buf.starts_with(b"HTTP/1.1 200")
}
