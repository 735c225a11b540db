//! `cairn save`: images out of the store as one tar in the form Docker 25+ writes: an OCI
//! image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) plus docker's `manifest.json`.
//! Layers are written uncompressed, byte for byte the tars their diff_ids name (a compressed
//! layer blob is decompressed and checked against its diff_id on the way). Entries are written
//! in a fixed order with fixed headers, so saving the same images twice gives the same bytes.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};

use oci_spec::image::MediaType;

use crate::archive::Compression;
use crate::digest::{Digest, HashingReader};
use crate::image::{
    ArchiveManifestEntry, IndexEntry, LayerCompression, ManifestBuilder, ManifestFlavor,
    archive_manifest_to_bytes, build_index, index_to_bytes, manifest_to_bytes,
};
use crate::images::{ImageStore, ImagesError, Result};
use crate::refs::Reference;

/// One image to save and the names to save it under.
#[derive(Debug, Clone)]
pub struct SaveItem {
    pub id: Digest,
    pub tags: Vec<Reference>,
}

fn err(msg: impl Into<String>) -> ImagesError {
    ImagesError::Archive(msg.into())
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

struct Writer<W: Write> {
    tar: tar::Builder<W>,
    written: BTreeSet<String>,
}

impl<W: Write> Writer<W> {
    fn add(&mut self, path: &str, size: u64, data: impl Read) -> Result<()> {
        if !self.written.insert(path.to_string()) {
            return Ok(());
        }
        let mut h = header(size, 0o644);
        self.tar
            .append_data(&mut h, path, data)
            .map_err(|e| err(format!("writing {path}: {e}")))
    }

    fn add_bytes(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.add(path, data.len() as u64, data)
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = header(0, 0o755);
        h.set_entry_type(tar::EntryType::Directory);
        self.tar
            .append_data(&mut h, path, std::io::empty())
            .map_err(|e| err(format!("writing {path}: {e}")))
    }
}

/// Writes `items` as one archive to `out`.
pub fn save<W: Write>(images: &ImageStore, items: &[SaveItem], out: W) -> Result<()> {
    let staging = images.store().staging()?;
    let mut w = Writer {
        tar: tar::Builder::new(out),
        written: BTreeSet::new(),
    };
    w.tar.mode(tar::HeaderMode::Deterministic);
    w.dir("blobs/")?;
    w.dir("blobs/sha256/")?;
    let idx = images.index()?;
    let mut index_entries = Vec::new();
    let mut archive_entries = Vec::new();
    for item in items {
        let rec = idx
            .images
            .get(&item.id.hex())
            .ok_or_else(|| ImagesError::NotFound(item.id.to_string()))?;
        let config = images.config_bytes(&item.id)?;
        w.add_bytes(&format!("blobs/sha256/{}", item.id.hex()), &config)?;
        let mut mb = ManifestBuilder::new(
            ManifestFlavor::Oci,
            &item.id.to_string(),
            config.len() as u64,
        )?;
        let mut layer_digests = Vec::new();
        for (i, diff_id) in rec.diff_ids.iter().enumerate() {
            let blob = rec
                .layer_blobs
                .get(i)
                .copied()
                .flatten()
                .filter(|b| images.store().has_blob(b))
                .ok_or_else(|| {
                    err(format!(
                        "image {}: the data of layer {diff_id} is not in the store",
                        item.id
                    ))
                })?;
            let tmp = staging.path().join(format!("layer-{i}.tar"));
            let (mut file, size) = uncompressed(images, &blob, diff_id, &tmp)?;
            w.add(&format!("blobs/sha256/{}", diff_id.hex()), size, &mut file)?;
            mb = mb.layer(&diff_id.to_string(), size, LayerCompression::None)?;
            layer_digests.push(diff_id.to_string());
        }
        let manifest = manifest_to_bytes(&mb.build());
        let mdigest = Digest::of(&manifest);
        w.add_bytes(&format!("blobs/sha256/{}", mdigest.hex()), &manifest)?;
        let refs = if item.tags.is_empty() {
            vec![None]
        } else {
            item.tags.iter().cloned().map(Some).collect()
        };
        for r in refs {
            index_entries.push(IndexEntry {
                manifest_digest: mdigest.to_string(),
                manifest_size: manifest.len() as u64,
                media_type: MediaType::ImageManifest,
                reference: r,
                platform: None,
            });
        }
        archive_entries.push(ArchiveManifestEntry::new(
            &item.id.to_string(),
            &item.tags,
            &layer_digests,
        )?);
    }
    w.add_bytes("index.json", &index_to_bytes(&build_index(&index_entries)?))?;
    w.add_bytes(
        "manifest.json",
        &archive_manifest_to_bytes(&archive_entries),
    )?;
    w.add_bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut out = w
        .tar
        .into_inner()
        .map_err(|e| err(format!("finishing the archive: {e}")))?;
    out.flush()
        .map_err(|e| err(format!("writing the archive: {e}")))
}

/// The uncompressed layer tar of a stored blob: the blob itself, or a decompressed copy in
/// `tmp` — checked against `diff_id` either way.
fn uncompressed(
    images: &ImageStore,
    blob: &Digest,
    diff_id: &Digest,
    tmp: &std::path::Path,
) -> Result<(File, u64)> {
    let mut src = BufReader::new(images.store().open_blob(blob)?);
    let magic = {
        use std::io::BufRead;
        src.fill_buf()
            .map_err(|e| err(format!("blob {blob}: {e}")))?
            .to_vec()
    };
    let reader: Box<dyn Read> = match Compression::detect(&magic) {
        Compression::None => Box::new(src),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(src)),
        Compression::Zstd => {
            Box::new(zstd::Decoder::new(src).map_err(|e| err(format!("blob {blob}: {e}")))?)
        }
    };
    let mut hashing = HashingReader::new(reader);
    let mut file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| err(format!("{}: {e}", tmp.display())))?;
    std::io::copy(&mut hashing, &mut file).map_err(|e| err(format!("layer {diff_id}: {e}")))?;
    if hashing.digest() != *diff_id {
        return Err(err(format!(
            "layer {diff_id}: stored data hashes to {}",
            hashing.digest()
        )));
    }
    file.rewind()
        .map_err(|e| err(format!("{}: {e}", tmp.display())))?;
    Ok((file, hashing.byte_count()))
}
