//! Images in and out as files: `save`, `load`, `import` (a rootfs tarball becomes an image).

use cairn_engine::StoreRoot;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_driver::Digest;
use cairn_driver::image::{Change, ImportOptions, new_config_for_import};
use cairn_driver::images::ImageRecord;
use cairn_driver::load::{load_dir, load_stream};
use cairn_driver::refs::parse_normalized;
use cairn_driver::save::{SaveItem, save as save_images};

/// `cairn save`.
#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// Write to a file instead of STDOUT.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Images (name[:tag] or ID).
    #[arg(required = true)]
    images: Vec<String>,
}

/// Runs `cairn save`.
pub fn save(root: &StoreRoot, a: SaveArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let idx = images.index()?;
    let mut items: Vec<SaveItem> = Vec::new();
    for arg in &a.images {
        let (id, by_name) = idx.resolve(arg)?;
        let tag = by_name.filter(|r| r.tag().is_some());
        match items.iter_mut().find(|i| i.id == id) {
            Some(i) => i.tags.extend(tag),
            None => items.push(SaveItem {
                id,
                tags: tag.into_iter().collect(),
            }),
        }
    }
    match &a.output {
        Some(path) => super::outfile::write_new(path, |file| {
            let mut w = BufWriter::new(file);
            save_images(images, &items, &mut w)?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            if f.metadata()?.is_file() {
                f.sync_all()?;
            }
            Ok(())
        })?,
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            save_images(images, &items, BufWriter::new(stdout.lock()))?;
        }
    }
    Ok(())
}

/// `cairn load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Read from a tar archive file (or an OCI layout directory) instead of STDIN.
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs `cairn load`.
pub fn load(root: &StoreRoot, a: LoadArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let loaded = match &a.input {
        Some(p) if p.is_dir() => load_dir(images, p)?,
        Some(p) => {
            let f = File::open(p).with_context(|| format!("open {}", p.display()))?;
            load_stream(images, BufReader::with_capacity(1 << 20, f))?
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            load_stream(images, stdin.lock())?
        }
    };
    if !a.quiet {
        for l in loaded {
            if l.tags.is_empty() {
                println!("Loaded image ID: {}", l.id);
            }
            for t in l.tags {
                println!("Loaded image: {}", t.familiar());
            }
        }
    }
    Ok(())
}

/// `cairn import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instructions to the created image (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR).
    #[arg(short, long)]
    change: Vec<String>,
    /// Commit message for the imported image.
    #[arg(short, long, default_value = "")]
    message: String,
    /// Rootfs tarball (plain, gzip or zstd), or `-` for STDIN.
    file: String,
    /// Name for the image.
    reference: Option<String>,
}

/// Runs `cairn import`: prints the new image ID.
pub fn import(root: &StoreRoot, a: ImportArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let tag = a.reference.as_deref().map(parse_normalized).transpose()?;
    let changes = a
        .change
        .iter()
        .map(|c| Change::parse(c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let store = images.store();
    // Keep the tarball as a blob (for save/push) and import the layer from it.
    let before = store.blobs()?;
    let blob = if a.file == "-" {
        store.put_blob(std::io::stdin().lock(), None)?
    } else {
        let f = File::open(&a.file).with_context(|| format!("open {}", a.file))?;
        store.put_blob(BufReader::with_capacity(1 << 20, f), None)?
    };
    let existed = before.contains(&blob.digest);
    let imported = images.layers().import(
        BufReader::with_capacity(1 << 20, store.open_blob(&blob.digest)?),
        None,
        None,
    );
    let layer = match imported {
        Ok(layer) => layer,
        Err(e) => {
            // Nothing of a refused tarball stays in the store.
            if !existed {
                let _ = store.remove_blob(&blob.digest);
            }
            return Err(e.into());
        }
    };
    let config = new_config_for_import(
        &[layer.diff_id.to_string()],
        &changes,
        &ImportOptions::new(&a.message),
    )?;
    let raw = config.raw().to_vec();
    let id = Digest::of(&raw);
    store.put_blob(&raw[..], Some(&id))?;
    let rec = ImageRecord {
        id,
        diff_ids: vec![layer.diff_id],
        manifest: None,
        layer_blobs: vec![Some(blob.digest)],
        added: cairn_driver::images::now(),
        last_tag: None,
    };
    let tags: Vec<String> = tag.iter().map(|t| t.to_string()).collect();
    images.add(rec, &tags, &[])?;
    println!("{id}");
    Ok(())
}
