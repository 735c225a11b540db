//! The image config each step derives from its parent's: the `config` object edited, one
//! history entry (`empty_layer` for metadata-only steps, as docker records them), one more
//! diff_id for a layer; and recording the result as an (untagged) image.

use cairn_driver::digest::Digest;
use cairn_driver::images::{ImageRecord, ImageStore};
use serde_json::{Map, Value, json};

use crate::Result;

/// The config of `FROM scratch`.
pub fn scratch() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": []
    }))
    .expect("static json")
}

/// A parsed config being edited.
#[derive(Debug, Clone)]
pub struct Config {
    pub v: Map<String, Value>,
}

impl Config {
    pub fn parse(raw: &[u8]) -> Config {
        let v = serde_json::from_slice(raw).unwrap_or_default();
        Config { v }
    }

    /// The container `config` object.
    pub fn c(&mut self) -> &mut Map<String, Value> {
        let e = self.v.entry("config").or_insert_with(|| json!({}));
        if !e.is_object() {
            *e = json!({});
        }
        e.as_object_mut().expect("object")
    }

    /// A string-array field of `config` (Env, Cmd, Entrypoint, Shell, OnBuild).
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        let a = self.v.get("config")?.get(key)?.as_array()?;
        Some(
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
        )
    }

    /// A string field of `config` (User, WorkingDir).
    pub fn string(&self, key: &str) -> Option<String> {
        Some(self.v.get("config")?.get(key)?.as_str()?.to_string())
    }

    /// Sets a field (null removes it).
    pub fn set(&mut self, key: &str, val: Value) {
        match val.is_null() {
            true => self.c().remove(key),
            false => self.c().insert(key.to_string(), val),
        };
    }

    /// Inserts `k` into the object field `key` (Labels, ExposedPorts, Volumes).
    pub fn insert_in(&mut self, key: &str, k: &str, val: Value) {
        let e = self.c().entry(key).or_insert_with(|| json!({}));
        if !e.is_object() {
            *e = json!({});
        }
        e.as_object_mut()
            .expect("object")
            .insert(k.to_string(), val);
    }

    /// `ENV k=v`: replaces an existing entry or appends.
    pub fn set_env(&mut self, k: &str, val: &str) {
        let mut env = self.list("Env").unwrap_or_default();
        let entry = format!("{k}={val}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(k)) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
        self.set("Env", json!(env));
    }

    /// The value of ENV `k`.
    pub fn env(&self, k: &str) -> Option<String> {
        self.list("Env")?
            .iter()
            .find_map(|e| e.strip_prefix(k)?.strip_prefix('=').map(str::to_string))
    }

    /// Appends the history entry and, for a layer, its diff_id; sets `created`.
    pub fn step(&mut self, created_by: &str, diff_id: Option<&Digest>, created: &str) {
        self.v.insert("created".into(), json!(created));
        self.v.remove("container");
        self.v.remove("container_config");
        let mut entry = Map::new();
        entry.insert("created".into(), json!(created));
        entry.insert("created_by".into(), json!(created_by));
        match diff_id {
            Some(d) => {
                let rootfs = self
                    .v
                    .entry("rootfs")
                    .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
                if let Some(Value::Array(a)) = rootfs.get_mut("diff_ids") {
                    a.push(json!(d.to_string()));
                }
            }
            None => {
                entry.insert("empty_layer".into(), json!(true));
            }
        }
        match self.v.get_mut("history") {
            Some(Value::Array(h)) => h.push(Value::Object(entry)),
            _ => {
                self.v.insert("history".into(), json!([entry]));
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.v).expect("serializable")
    }
}

/// Records config `raw` as an untagged image, child of `parent`, on its layers plus `layer`
/// (diff_id, blob digest), and returns its record.
pub fn record(
    images: &ImageStore,
    parent: &ImageRecord,
    raw: &[u8],
    layer: Option<(Digest, Digest)>,
) -> Result<ImageRecord> {
    let id = Digest::of(raw);
    images.store().put_blob(raw, Some(&id))?;
    let mut diff_ids = parent.diff_ids.clone();
    let mut layer_blobs = parent.layer_blobs.clone();
    layer_blobs.resize(parent.diff_ids.len(), None);
    if let Some((d, b)) = layer {
        diff_ids.push(d);
        layer_blobs.push(Some(b));
    }
    let rec = ImageRecord {
        id,
        diff_ids,
        manifest: None,
        layer_blobs,
        added: cairn_driver::images::now(),
        last_tag: None,
    };
    Ok(images.add_child(rec, &parent.id)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_step_is_an_empty_layer_entry() {
        let mut c = Config::parse(&scratch());
        c.set_env("A", "1");
        c.set_env("A", "2");
        c.set("Cmd", json!(["sh"]));
        c.step(
            "/bin/sh -c #(nop)  CMD [\"sh\"]",
            None,
            "1970-01-01T00:00:00Z",
        );
        let d = Digest::of(b"x");
        c.step(
            "/bin/sh -c #(nop) COPY file:x in / ",
            Some(&d),
            "1970-01-01T00:00:00Z",
        );
        assert_eq!(c.env("A").as_deref(), Some("2"));
        assert_eq!(c.list("Env").unwrap(), ["A=2"]);
        let h = c.v["history"].as_array().unwrap();
        assert_eq!(h[0]["empty_layer"], json!(true));
        assert!(h[1].get("empty_layer").is_none());
        assert_eq!(c.v["rootfs"]["diff_ids"][0], json!(d.to_string()));
    }
}
