//! `cairn load`: image archives into the store. Reads the form Docker 25+ writes (OCI layout
//! plus `manifest.json` in one tar), the legacy docker-archive, and OCI layouts (directory or
//! tar). The archive is unpacked once into a private staging directory of the store; every
//! blob is opened beneath it (symlinks inside the archive may not lead out), configs and
//! layers are verified against their digests, layers are imported in parallel, and the image
//! becomes visible (named) only after all of that succeeded.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::archive::Compression;
use crate::digest::{Digest, chain_next};
use crate::image::{
    EntryName, ImageConfig, ManifestOrIndex, index_entry_name, parse_archive_manifest,
    parse_manifest_or_index,
};
use crate::images::{ImageRecord, ImageStore, ImagesError, Result};
use crate::layer::ImportOptions;
use crate::refs::Reference;

/// One image that was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub id: Digest,
    /// The names it got (normalised references).
    pub tags: Vec<Reference>,
}

/// One image found in an archive, before import.
#[derive(Debug, Clone)]
struct Found {
    config: PathBuf,
    config_digest: Option<Digest>,
    /// (path, blob digest if the archive states one), bottom first.
    layers: Vec<(PathBuf, Option<Digest>)>,
    tags: Vec<Reference>,
    manifest: Option<Digest>,
}

fn archive_err(msg: impl Into<String>) -> ImagesError {
    ImagesError::Archive(msg.into())
}

/// Loads every image of an archive read from `input` (a tar, possibly gzip/zstd compressed).
pub fn load_stream<R: Read>(images: &ImageStore, input: R) -> Result<Vec<Loaded>> {
    let staging = images.store().staging()?;
    let mut input = BufReader::new(input);
    let magic = input.fill_buf().map_err(io("read archive"))?.to_vec();
    let reader: Box<dyn Read> = match Compression::detect(&magic) {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::Decoder::new(input).map_err(io("zstd"))?),
    };
    let mut ar = tar::Archive::new(reader);
    let dest = staging.path().join("archive");
    std::fs::create_dir(&dest).map_err(io("create staging"))?;
    let mut any = false;
    for entry in ar.entries().map_err(io("read archive"))? {
        let mut entry = entry.map_err(io("read archive (truncated or not a tar?)"))?;
        let name = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        // unpack_in refuses `..` and absolute paths; symlinks are checked when followed.
        if !entry
            .unpack_in(&dest)
            .map_err(|e| archive_err(format!("archive entry {name:?}: {}", root_cause(&e))))?
        {
            return Err(archive_err(format!(
                "archive entry {name:?} would be outside the archive"
            )));
        }
        any = true;
    }
    if !any {
        return Err(archive_err("empty input: not an image archive"));
    }
    load_dir(images, &dest)
}

/// Loads every image of an unpacked archive or OCI layout directory.
pub fn load_dir(images: &ImageStore, dir: &Path) -> Result<Vec<Loaded>> {
    let root = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| archive_err(format!("{}: {e}", dir.display())))?;
    let fd = root.as_fd();
    let found = if exists(fd, "manifest.json") {
        docker_archive(fd)?
    } else if exists(fd, "index.json") {
        oci_layout(fd)?
    } else {
        return Err(archive_err(
            "not an image archive: neither manifest.json nor index.json found",
        ));
    };
    if found.is_empty() {
        return Err(archive_err("the archive contains no image"));
    }
    found.iter().map(|f| import_one(images, fd, f)).collect()
}

/// The innermost cause of an error (the tar crate wraps "unexpected end of file" in a message
/// naming its temp path, which means nothing to the user).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let msg = cur.to_string();
    let truncated = [
        "unexpected end of file",
        "failed to fill whole buffer",
        "failed to write entire file",
    ];
    if truncated.iter().any(|t| msg.contains(t)) {
        "the archive is truncated (unexpected end of file)".into()
    } else {
        msg
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> ImagesError {
    move |e| archive_err(format!("{what}: {e}"))
}

fn exists(dir: BorrowedFd<'_>, name: &str) -> bool {
    open_beneath(dir, Path::new(name)).is_ok()
}

/// Opens a file of the archive; symlinks may only lead to other files inside it.
fn open_beneath(dir: BorrowedFd<'_>, path: &Path) -> std::result::Result<File, String> {
    let fd = rustix::fs::openat2(
        dir,
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(File::from(fd))
}

fn read_file(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<u8>> {
    let mut f = open_beneath(dir, path).map_err(|e| archive_err(format!("archive file {e}")))?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)
        .map_err(|e| archive_err(format!("archive file {}: {e}", path.display())))?;
    Ok(v)
}

fn digest_of_path(p: &str) -> Option<Digest> {
    p.strip_prefix("blobs/sha256/")
        .and_then(|h| Digest::from_hex(h).ok())
}

fn docker_archive(dir: BorrowedFd<'_>) -> Result<Vec<Found>> {
    let entries = parse_archive_manifest(&read_file(dir, Path::new("manifest.json"))?)?;
    entries
        .into_iter()
        .map(|e| {
            Ok(Found {
                config_digest: digest_of_path(&e.config),
                config: PathBuf::from(&e.config),
                layers: e
                    .layers
                    .iter()
                    .map(|l| (PathBuf::from(l), digest_of_path(l)))
                    .collect(),
                tags: e.references()?,
                manifest: None,
            })
        })
        .collect()
}

fn blob(d: &str) -> Result<(PathBuf, Digest)> {
    let digest = Digest::parse(d)?;
    Ok((
        PathBuf::from(format!("blobs/sha256/{}", digest.hex())),
        digest,
    ))
}

fn oci_layout(dir: BorrowedFd<'_>) -> Result<Vec<Found>> {
    let index = match parse_manifest_or_index(&read_file(dir, Path::new("index.json"))?, None)? {
        ManifestOrIndex::Index(i) => i,
        ManifestOrIndex::Manifest(_) => return Err(archive_err("index.json holds a manifest")),
    };
    let mut out = Vec::new();
    for desc in index.manifests() {
        let name = index_entry_name(desc);
        let (path, digest) = blob(desc.digest().as_ref())?;
        let bytes = read_file(dir, &path)?;
        if Digest::of(&bytes) != digest {
            return Err(archive_err(format!(
                "manifest {digest}: content does not match its digest"
            )));
        }
        let manifest = match parse_manifest_or_index(&bytes, Some(desc.media_type().as_ref()))? {
            ManifestOrIndex::Manifest(m) => m,
            ManifestOrIndex::Index(_) => {
                return Err(archive_err(format!(
                    "{digest}: multi-platform indexes inside an archive are not supported yet"
                )));
            }
        };
        let (config, config_digest) = blob(manifest.config().digest().as_ref())?;
        let layers = manifest
            .layers()
            .iter()
            .map(|l| blob(l.digest().as_ref()).map(|(p, d)| (p, Some(d))))
            .collect::<Result<_>>()?;
        let tags = match name {
            EntryName::Reference(r) if r.tag().is_some() => vec![r],
            _ => vec![],
        };
        out.push(Found {
            config,
            config_digest: Some(config_digest),
            layers,
            tags,
            manifest: Some(digest),
        });
    }
    Ok(out)
}

fn import_one(images: &ImageStore, dir: BorrowedFd<'_>, f: &Found) -> Result<Loaded> {
    let raw = read_file(dir, &f.config)?;
    let id = Digest::of(&raw);
    if let Some(d) = f.config_digest.filter(|d| *d != id) {
        return Err(archive_err(format!(
            "config {d}: content does not match its digest"
        )));
    }
    let config = ImageConfig::from_bytes(raw.clone())?;
    let diff_ids = config
        .diff_ids()
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if diff_ids.len() != f.layers.len() {
        return Err(archive_err(format!(
            "image {id}: config lists {} layers, the archive {}",
            diff_ids.len(),
            f.layers.len()
        )));
    }
    let mut parents = Vec::with_capacity(diff_ids.len());
    let mut chain: Option<Digest> = None;
    for d in &diff_ids {
        parents.push(chain);
        chain = Some(chain_next(chain.as_ref(), d));
    }
    let layers = images.layers();
    let store = images.store();
    let blobs: Vec<Digest> = f
        .layers
        .par_iter()
        .zip(diff_ids.par_iter())
        .zip(parents.par_iter())
        .map(|(((path, blob), diff_id), parent)| -> Result<Digest> {
            let file = open_beneath(dir, path).map_err(|e| archive_err(format!("layer {e}")))?;
            let opts = ImportOptions {
                parent: parent.as_ref(),
                expected_diff_id: Some(diff_id),
                expected_blob: blob.as_ref(),
            };
            let keep = file.try_clone().map_err(io("layer"))?;
            layers.import_with(BufReader::with_capacity(1 << 20, file), &opts)?;
            // Keep the layer as distributed (for save/push): the import just verified its
            // digest, so the archive's file itself becomes the blob (a hardlink, no copy).
            let digest = blob.unwrap_or(*diff_id);
            if !store.has_blob(&digest) && !link_blob(store, &keep, &digest) {
                let file =
                    open_beneath(dir, path).map_err(|e| archive_err(format!("layer {e}")))?;
                store.put_blob(file, Some(&digest))?;
            }
            Ok(digest)
        })
        .collect::<Result<_>>()?;
    store.put_blob(&raw[..], Some(&id))?;
    let rec = ImageRecord {
        id,
        diff_ids,
        manifest: f.manifest,
        layer_blobs: blobs.into_iter().map(Some).collect(),
        added: crate::images::now(),
        last_tag: None,
    };
    let tags: Vec<String> = f.tags.iter().map(|t| t.to_string()).collect();
    images.add(rec, &tags, &[])?;
    Ok(Loaded {
        id,
        tags: f.tags.clone(),
    })
}

/// Links an open (verified) file into `blobs/sha256/` under its digest; false if it could not.
fn link_blob(store: &crate::store::Store, file: &File, digest: &Digest) -> bool {
    let dest = store.blob_path(digest);
    let Some(dir) = dest.parent() else {
        return false;
    };
    let Ok(dirfd) = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    let name = digest.hex();
    let linked = rustix::fs::linkat(
        file,
        "",
        &dirfd,
        name.as_str(),
        rustix::fs::AtFlags::EMPTY_PATH,
    );
    linked.is_ok() && rustix::fs::fsync(&dirfd).is_ok()
}
