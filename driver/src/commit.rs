//! `cairn commit`: a container's upper directory becomes the top layer of a new image. The
//! upper (kernel overlay format) is exported as an OCI layer tar (whiteouts as `.wh.` files,
//! opaque directories as `.wh..wh..opq`), kept as a blob, imported into the layer store on top
//! of the parent image's layers, and a new config is written: the parent's, with the new
//! diff_id, a history entry (`created_by` the container's command, as docker records it,
//! `comment` and `author`), `-c` changes applied.

use std::io::{BufReader, BufWriter, Seek, Write};
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::archive::Compression;
use crate::archive::tar_out::{UpperExport, export_upper};
use crate::digest::Digest;
use crate::error::io_err;
use crate::image::{
    CONFIG, Change, ContainerConfig, ImageConfig, ImageError, Timestamp, apply_changes,
};
use crate::images::{ImageRecord, ImageStore, ImagesError, Result};

/// What a commit records besides the layer.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `-m`: the config's and the history entry's comment.
    pub message: String,
    /// `-a`: the author.
    pub author: String,
    /// `-c` changes, applied in order.
    pub changes: Vec<Change>,
    /// The history entry's `created_by` (docker: the container's command).
    pub created_by: String,
    /// Replaces the config's Cmd before the changes (docker: the container's command).
    pub cmd: Option<Vec<String>>,
    /// Normalised references to tag the image with.
    pub tags: Vec<String>,
    /// The config's and history entry's time (default now); with it, no entry of the layer
    /// is dated later (SOURCE_DATE_EPOCH: reproducible builds).
    pub created: Option<Timestamp>,
}

fn json_err(source: serde_json::Error) -> ImagesError {
    ImagesError::Image(ImageError::Json {
        what: CONFIG,
        source,
    })
}

/// The new config: the parent's with one more layer and history entry (pure).
pub fn commit_config(
    parent: &ImageConfig,
    diff_id: &Digest,
    opts: &CommitOptions,
    created: Timestamp,
) -> Result<ImageConfig> {
    let mut v: Map<String, Value> = serde_json::from_slice(parent.raw()).map_err(json_err)?;
    let mut config: ContainerConfig = parent.config().cloned().unwrap_or_default();
    if let Some(cmd) = &opts.cmd {
        config.cmd = Some(cmd.clone());
    }
    apply_changes(&mut config, &opts.changes)?;
    let created = created.to_rfc3339();
    v.insert(
        "config".into(),
        serde_json::to_value(&config).map_err(json_err)?,
    );
    v.insert("created".into(), json!(created));
    for (key, val) in [("author", &opts.author), ("comment", &opts.message)] {
        match val.is_empty() {
            true => v.remove(key),
            false => v.insert(key.into(), json!(val)),
        };
    }
    v.remove("container");
    v.remove("container_config");
    let rootfs = v
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers"}));
    let ids = rootfs
        .as_object_mut()
        .map(|r| r.entry("diff_ids").or_insert_with(|| json!([])));
    if let Some(Value::Array(a)) = ids {
        a.push(json!(diff_id.to_string()));
    }
    let mut entry = Map::new();
    entry.insert("created".into(), json!(created));
    if !opts.author.is_empty() {
        entry.insert("author".into(), json!(opts.author));
    }
    entry.insert("created_by".into(), json!(opts.created_by));
    if !opts.message.is_empty() {
        entry.insert("comment".into(), json!(opts.message));
    }
    match v.get_mut("history") {
        Some(Value::Array(h)) => h.push(Value::Object(entry)),
        _ => {
            v.insert("history".into(), json!([entry]));
        }
    }
    let raw = serde_json::to_vec(&v).map_err(json_err)?;
    Ok(ImageConfig::from_bytes(raw)?)
}

/// Commits `upper` on top of image `parent`, leaving out the paths (absolute in the
/// container) `skip` accepts; `merged` is the container's merged view (needed for renamed
/// directories). Returns the new image's record.
pub fn commit(
    images: &ImageStore,
    parent: &ImageRecord,
    upper: &Path,
    merged: Option<&Path>,
    opts: &CommitOptions,
    skip: &dyn Fn(&str) -> bool,
) -> Result<ImageRecord> {
    let store = images.store();
    let parent_config = ImageConfig::from_bytes(images.config_bytes(&parent.id)?)?;
    // The layer tar goes to an unlinked temp file first (its digest is known only after).
    let tmp = store.tmp_dir();
    let mut file = tempfile_in(&tmp)?;
    let info = {
        let mut w = BufWriter::new(&mut file);
        let skip_rel = |p: &[u8]| skip(&format!("/{}", String::from_utf8_lossy(p)));
        let how = UpperExport {
            skip: Some(&skip_rel),
            merged,
            clamp_mtime: opts.created.map(|t| u64::try_from(t.secs).unwrap_or(0)),
        };
        let info = export_upper(upper, &mut w, Compression::None, &how)?;
        w.flush().map_err(io_err("write layer", &tmp))?;
        info
    };
    file.rewind().map_err(io_err("rewind layer", &tmp))?;
    let blob = store.put_blob(BufReader::new(&mut file), Some(&info.diff_id))?;
    let layer = images.layers().import(
        BufReader::with_capacity(1 << 20, store.open_blob(&blob.digest)?),
        parent.top_chain().as_ref(),
        Some(&info.diff_id),
    )?;
    let created = opts.created.unwrap_or_else(Timestamp::now);
    let config = commit_config(&parent_config, &layer.diff_id, opts, created)?;
    let raw = config.raw().to_vec();
    let id = Digest::of(&raw);
    store.put_blob(&raw[..], Some(&id))?;
    let mut diff_ids = parent.diff_ids.clone();
    diff_ids.push(layer.diff_id);
    let mut layer_blobs = parent.layer_blobs.clone();
    layer_blobs.resize(parent.diff_ids.len(), None);
    layer_blobs.push(Some(blob.digest));
    let rec = ImageRecord {
        id,
        diff_ids,
        manifest: None,
        layer_blobs,
        added: crate::images::now(),
        last_tag: None,
    };
    images.add(rec, &opts.tags, &[])
}

/// An anonymous read-write file in `dir`.
fn tempfile_in(dir: &Path) -> Result<std::fs::File> {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .map_err(crate::error::errno_err("create temp file", dir))?;
    Ok(std::fs::File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_gets_layer_history_and_changes() {
        let d0 = Digest::of(b"0");
        let parent = ImageConfig::from_bytes(
            format!(
                r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"],"Env":["A=1"]}},
                "rootfs":{{"type":"layers","diff_ids":["{d0}"]}},
                "history":[{{"created":"2024-01-01T00:00:00Z"}}]}}"#
            )
            .into_bytes(),
        )
        .unwrap();
        let d1 = Digest::of(b"1");
        let opts = CommitOptions {
            message: "msg".into(),
            author: "me".into(),
            changes: vec![Change::parse(r#"CMD ["cat","/x"]"#).unwrap()],
            created_by: "sh -c echo hi".into(),
            cmd: Some(vec!["sh".into(), "-c".into(), "echo hi".into()]),
            tags: vec![],
            created: None,
        };
        let c = commit_config(&parent, &d1, &opts, Timestamp { secs: 0, nanos: 0 }).unwrap();
        assert_eq!(c.diff_ids(), [d0.to_string(), d1.to_string()]);
        assert_eq!(c.cmd().unwrap(), ["cat", "/x"]);
        assert_eq!(c.env(), ["A=1"]);
        assert_eq!(c.author(), Some("me"));
        assert_eq!(c.comment(), Some("msg"));
        let rows = c.history_rows().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].created_by, "sh -c echo hi");
        assert_eq!(rows[0].comment, "msg");
    }
}
