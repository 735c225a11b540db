//! Seeded generation of a multi-layer image archive for the image workloads, cached by profile
//! and seed under `<workdir>/images/<profile>-s<seed>-v<IMAGE_GENERATOR_VERSION>/image.tar`.
//!
//! The archive has the form `docker save` writes since Docker 25: an OCI layout (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) plus the legacy `manifest.json`, in one plain tar. So the very
//! same file is a valid `docker-archive:` and `oci-archive:` for skopeo and a valid input of
//! `cairn load`. Layers are gzip-compressed tars as registries serve them (default level, mtime 0),
//! with realistic content: many small files (two thirds text-like and compressible, one third
//! random bytes like binaries), symlinks, a few large incompressible files per layer, and in every
//! layer above the bottom an overwritten file, whiteouts and an opaque directory (OCI `.wh.`
//! form). Layers are generated in parallel, each from its own RNG stream, so the result does
//! not depend on scheduling. Built in a `.tmp` sibling and renamed into place when complete.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::profile::Profile;

/// Bump when the generated content changes, so stale caches are not reused.
pub const IMAGE_GENERATOR_VERSION: u32 = 3;

/// Name every importer gives the image.
pub const IMAGE_REF: &str = "cairn-bench/import:latest";

/// Fixed timestamps keep the archive byte-identical across runs.
const MTIME: u64 = 1_700_000_000;
const CREATED: &str = "2023-11-14T22:13:20Z";

/// A generated archive and what it holds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImageArchive {
    pub path: PathBuf,
    /// Size of the archive file.
    pub archive_bytes: u64,
    pub layers: usize,
    /// Regular files over all layers, and their uncompressed bytes.
    pub files: usize,
    pub uncompressed_bytes: u64,
    /// Sum of the gzip-compressed layer sizes.
    pub compressed_bytes: u64,
    /// A file of the top layer every importer must produce (relative to the rootfs).
    pub probe_file: String,
}

/// One generated layer blob.
struct Layer {
    blob: PathBuf,
    digest: String,
    diff_id: String,
    compressed: u64,
    uncompressed: u64,
    files: usize,
}

/// The archive for `profile` and `seed`, generated on first use.
pub fn archive(workdir: &Path, profile: &Profile, seed: u64) -> Result<ImageArchive> {
    let dir = workdir.join("images");
    let key = format!("{}-s{seed}-v{IMAGE_GENERATOR_VERSION}", profile.name);
    let root = dir.join(&key);
    let info_path = root.join("archive.json");
    if let Ok(text) = fs::read_to_string(&info_path) {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let field = |k: &str| v[k].as_u64().unwrap_or_default();
        eprintln!("using cached image archive {}", root.display());
        return Ok(ImageArchive {
            path: root.join("image.tar"),
            archive_bytes: field("archive_bytes"),
            layers: field("layers") as usize,
            files: field("files") as usize,
            uncompressed_bytes: field("uncompressed_bytes"),
            compressed_bytes: field("compressed_bytes"),
            probe_file: v["probe_file"].as_str().unwrap_or_default().to_string(),
        });
    }
    let tmp = dir.join(format!("{key}.tmp"));
    for stale in [&tmp, &root] {
        if stale.exists() {
            fs::remove_dir_all(stale).with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    fs::create_dir_all(&tmp)?;
    eprintln!(
        "generating {} image archive ({} layers, seed {seed}) in {}",
        profile.name,
        profile.image_layers,
        root.display()
    );
    let started = std::time::Instant::now();
    let layers: Vec<Layer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..profile.image_layers)
            .map(|i| {
                let tmp = &tmp;
                s.spawn(move || write_layer(tmp, profile, seed, i))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("layer generator panicked"))
            .collect::<Result<_>>()
    })?;
    let mut info = pack(&tmp, &layers)?;
    for l in &layers {
        fs::remove_file(&l.blob)?;
    }
    info.path = root.join("image.tar");
    fs::write(
        tmp.join("archive.json"),
        serde_json::to_string_pretty(&info)?,
    )?;
    rustix::fs::sync();
    fs::rename(&tmp, &root)?;
    eprintln!(
        "generated in {:.1} s: {} files, {} MiB uncompressed, {} MiB archive",
        started.elapsed().as_secs_f64(),
        info.files,
        info.uncompressed_bytes >> 20,
        info.archive_bytes >> 20
    );
    Ok(info)
}

/// Writes the archive `image.tar` in `dir` from the layer blobs; returns its description.
fn pack(dir: &Path, layers: &[Layer]) -> Result<ImageArchive> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let history: Vec<_> = (0..layers.len())
        .map(|i| json!({"created": CREATED, "created_by": format!("cairn-bench layer {i}")}))
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| format!("sha256:{}", l.diff_id)).collect::<Vec<_>>(),
        },
        "history": history,
    }))?;
    let config_hex = hex(&Sha256::digest(&config));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_hex}"),
            "size": config.len(),
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{}", l.digest),
            "size": l.compressed,
        })).collect::<Vec<_>>(),
    }))?;
    let manifest_hex = hex(&Sha256::digest(&manifest));
    let (name, tag) = IMAGE_REF.split_once(':').expect("IMAGE_REF has a tag");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_hex}"),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": format!("docker.io/{name}:{tag}"),
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))?;
    let docker_manifest = serde_json::to_vec(&json!([{
        "Config": format!("blobs/sha256/{config_hex}"),
        "RepoTags": [IMAGE_REF],
        "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", l.digest)).collect::<Vec<_>>(),
    }]))?;

    let path = dir.join("image.tar");
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, File::create(&path)?));
    for d in ["blobs", "blobs/sha256"] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, d, io::empty())?;
    }
    let small = |tar: &mut tar::Builder<_>, name: &str, data: &[u8]| -> io::Result<()> {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        tar.append_data(&mut h, name, data)
    };
    for l in layers {
        let mut h = header(tar::EntryType::Regular, 0o644, l.compressed);
        let name = format!("blobs/sha256/{}", l.digest);
        tar.append_data(&mut h, name, File::open(&l.blob)?)?;
    }
    small(&mut tar, &format!("blobs/sha256/{config_hex}"), &config)?;
    small(&mut tar, &format!("blobs/sha256/{manifest_hex}"), &manifest)?;
    small(&mut tar, "index.json", &index)?;
    small(&mut tar, "manifest.json", &docker_manifest)?;
    small(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let file = tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let top = layers.len() - 1;
    Ok(ImageArchive {
        archive_bytes: file.metadata()?.len(),
        path,
        layers: layers.len(),
        files: layers.iter().map(|l| l.files).sum(),
        uncompressed_bytes: layers.iter().map(|l| l.uncompressed).sum(),
        compressed_bytes: layers.iter().map(|l| l.compressed).sum(),
        probe_file: format!("opt/data{top}/big0.bin"),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Counts and hashes what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W: Write>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hash: Sha256::new(),
        bytes: 0,
    }
}

/// `left` bytes from the RNG: incompressible content.
struct RandomReader<'a> {
    rng: &'a mut ChaCha8Rng,
    left: u64,
}

impl Read for RandomReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        self.rng.fill_bytes(&mut buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Text-like content: words of a small seeded vocabulary, separated by spaces and newlines.
fn text(rng: &mut ChaCha8Rng, vocabulary: &[String], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(vocabulary[rng.random_range(0..vocabulary.len())].as_bytes());
        out.push(if rng.random_ratio(1, 12) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Layer `i` (0 = bottom) as a gzip blob in `dir`.
fn write_layer(dir: &Path, p: &Profile, seed: u64, i: usize) -> Result<Layer> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1000 + i as u64);
    let vocabulary: Vec<String> = {
        let mut v = ChaCha8Rng::seed_from_u64(seed);
        v.set_stream(999);
        (0..512)
            .map(|_| {
                let n = v.random_range(2..10);
                (0..n)
                    .map(|_| v.random_range(b'a'..=b'z') as char)
                    .collect()
            })
            .collect()
    };
    let blob = dir.join(format!("layer{i}.tar.gz"));
    let gz = flate2::GzBuilder::new().write(
        hashing(BufWriter::with_capacity(1 << 20, File::create(&blob)?)),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(hashing(gz));
    let mut dirs = BTreeSet::new();
    let mut files = 0usize;
    // Parents first, each directory once, as image builders write them.
    let mut parents = |tar: &mut tar::Builder<_>, path: &str| -> io::Result<()> {
        let mut at = 0;
        while let Some(slash) = path[at..].find('/') {
            let d = &path[..at + slash];
            if dirs.insert(d.to_string()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                tar.append_data(&mut h, format!("{d}/"), io::empty())?;
            }
            at += slash + 1;
        }
        Ok(())
    };
    let mut file = |tar: &mut tar::Builder<_>, path: &str, data: &[u8]| -> io::Result<()> {
        parents(tar, path)?;
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        tar.append_data(&mut h, path, data)
    };

    if i > 0 {
        // Changes to the layer below: an overwrite, whiteouts, an opaque directory.
        let below = i - 1;
        file(&mut tar, "etc/release", format!("layer {i}\n").as_bytes())?;
        // Text files of the layer below's `d1/` (its files 50..99; j % 3 == 2 are libraries).
        for j in [51, 52, 54] {
            let path = format!("usr/share/pkg{below}/d1/.wh.f{j}.txt");
            file(&mut tar, &path, b"")?;
        }
        file(
            &mut tar,
            &format!("usr/share/pkg{below}/d2/.wh..wh..opq"),
            b"",
        )?;
        file(
            &mut tar,
            &format!("usr/share/pkg{below}/d2/replaced"),
            b"x\n",
        )?;
    } else {
        file(&mut tar, "etc/release", b"layer 0\n")?;
    }
    let per_layer = p.image_small_files / p.image_layers.max(1);
    let per_dir = 50; // keep in step with the whiteouts above
    for j in 0..per_layer {
        let len = rng.random_range(0..=p.image_max_small_size);
        if j % 3 == 2 {
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            let path = format!("usr/lib/pkg{i}/d{}/lib{j}.so", j / per_dir);
            file(&mut tar, &path, &data)?;
            if j % 30 == 2 {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                let link = format!("{path}.1");
                tar.append_link(&mut h, link, format!("lib{j}.so"))?;
            }
        } else {
            let data = text(&mut rng, &vocabulary, len);
            let path = format!("usr/share/pkg{i}/d{}/f{j}.txt", j / per_dir);
            file(&mut tar, &path, &data)?;
        }
    }
    for b in 0..p.image_big_files_per_layer {
        let nominal = p.image_big_file_bytes;
        let len = rng.random_range(nominal / 2..=nominal + nominal / 2);
        let path = format!("opt/data{i}/big{b}.bin");
        parents(&mut tar, &path)?;
        let mut h = header(tar::EntryType::Regular, 0o644, len);
        let reader = RandomReader {
            rng: &mut rng,
            left: len,
        };
        tar.append_data(&mut h, &path, reader)?;
    }
    files += per_layer + p.image_big_files_per_layer + 1;
    let inner = tar.into_inner()?;
    let diff_id = hex(&inner.hash.finalize());
    let uncompressed = inner.bytes;
    let outer = inner.inner.finish()?;
    let mut out = outer.inner.into_inner().map_err(|e| e.into_error())?;
    out.flush()?;
    Ok(Layer {
        blob,
        digest: hex(&outer.hash.finalize()),
        diff_id,
        compressed: outer.bytes,
        uncompressed,
        files,
    })
}
