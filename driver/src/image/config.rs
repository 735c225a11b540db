//! The image config: raw bytes kept (image ID = their sha256), the container config with
//! docker's field names, validation naming the failing field, and `history` rows.

use super::*;
use std::collections::BTreeMap;

use oci_spec::image::{History, ImageConfiguration};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::refs::validate_digest;

// ---------------------------------------------------------------------------------------------
// The container config inside an image config (docker field names)
// ---------------------------------------------------------------------------------------------

/// The `{}` value of Go's `map[string]struct{}` (ExposedPorts, Volumes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The execution defaults of an image (`config` in the image config), with docker's field
/// names and order. Maps are `BTreeMap`s so serialisation is deterministic; absent fields
/// are omitted. Docker-only fields (Healthcheck, OnBuild, Shell, ...) are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// Docker-only top-level fields of the image config that oci-spec does not model.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DockerFields {
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    docker_version: Option<String>,
    #[serde(default)]
    config: Option<ContainerConfig>,
}

// ---------------------------------------------------------------------------------------------
// Image config
// ---------------------------------------------------------------------------------------------

pub(crate) const CONFIG: &str = "image config";

/// A parsed image config that keeps its raw bytes. The image ID is `sha256(raw)`.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    raw: Vec<u8>,
    id: String,
    oci: ImageConfiguration,
    docker: DockerFields,
    diff_ids: Vec<String>,
}

impl ImageConfig {
    /// Parses and validates a config blob: `architecture` and `os` non-empty strings,
    /// `rootfs.type == "layers"`, every `rootfs.diff_ids` entry a valid digest, `created`
    /// (top level and in history) RFC 3339. A missing or null `diff_ids` is read as no layers
    /// (docker writes it with `omitempty` for layerless images).
    pub fn from_bytes(raw: impl Into<Vec<u8>>) -> Result<ImageConfig> {
        let raw = raw.into();
        let mut value: Value = serde_json::from_slice(&raw).map_err(|source| ImageError::Json {
            what: CONFIG,
            source,
        })?;
        let obj = value
            .as_object_mut()
            .ok_or_else(|| invalid(CONFIG, "", "must be a JSON object"))?;
        for field in ["architecture", "os"] {
            match obj.get(field) {
                None | Some(Value::Null) => {
                    return Err(ImageError::MissingField {
                        what: CONFIG,
                        field,
                    });
                }
                Some(Value::String(s)) if !s.is_empty() => {}
                Some(Value::String(_)) => return Err(invalid(CONFIG, field, "must not be empty")),
                Some(_) => return Err(invalid(CONFIG, field, "must be a string")),
            }
        }
        let rootfs = match obj.get_mut("rootfs") {
            None | Some(Value::Null) => {
                return Err(ImageError::MissingField {
                    what: CONFIG,
                    field: "rootfs",
                });
            }
            Some(Value::Object(r)) => r,
            Some(_) => return Err(invalid(CONFIG, "rootfs", "must be an object")),
        };
        match rootfs.get("type") {
            Some(Value::String(t)) if t == "layers" => {}
            None => {
                return Err(ImageError::MissingField {
                    what: CONFIG,
                    field: "rootfs.type",
                });
            }
            Some(other) => {
                return Err(invalid(
                    CONFIG,
                    "rootfs.type",
                    format!("must be \"layers\", not {other}"),
                ));
            }
        }
        let diff_ids = match rootfs.get("diff_ids") {
            None | Some(Value::Null) => {
                rootfs.insert("diff_ids".into(), Value::Array(vec![]));
                vec![]
            }
            Some(Value::Array(a)) => {
                let mut ids = Vec::with_capacity(a.len());
                for (i, v) in a.iter().enumerate() {
                    let field = format!("rootfs.diff_ids[{i}]");
                    let s = v
                        .as_str()
                        .ok_or_else(|| invalid(CONFIG, field.clone(), "must be a string"))?;
                    validate_digest(s).map_err(|e| invalid(CONFIG, field, e.to_string()))?;
                    ids.push(s.to_string());
                }
                ids
            }
            Some(_) => return Err(invalid(CONFIG, "rootfs.diff_ids", "must be an array")),
        };
        check_time(obj.get("created"), "created")?;
        if let Some(h) = obj.get("history") {
            match h {
                Value::Null => {}
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if !item.is_object() {
                            return Err(invalid(
                                CONFIG,
                                format!("history[{i}]"),
                                "must be an object",
                            ));
                        }
                        check_time(item.get("created"), &format!("history[{i}].created"))?;
                    }
                }
                _ => return Err(invalid(CONFIG, "history", "must be an array")),
            }
        }
        if let Some(c) = obj.get("config")
            && !(c.is_null() || c.is_object())
        {
            return Err(invalid(CONFIG, "config", "must be an object"));
        }
        let docker: DockerFields =
            serde_json::from_value(value.clone()).map_err(|source| ImageError::Json {
                what: CONFIG,
                source,
            })?;
        let oci: ImageConfiguration =
            serde_json::from_value(value).map_err(|source| ImageError::Json {
                what: CONFIG,
                source,
            })?;
        let id = sha256_digest(&raw);
        Ok(ImageConfig {
            raw,
            id,
            oci,
            docker,
            diff_ids,
        })
    }

    /// The exact bytes this config was read from (what is stored and hashed).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
    /// `sha256:<hex>` of [`raw`](Self::raw).
    pub fn image_id(&self) -> &str {
        &self.id
    }
    /// The oci-spec view of the config.
    pub fn oci(&self) -> &ImageConfiguration {
        &self.oci
    }
    pub fn architecture(&self) -> String {
        self.oci.architecture().to_string()
    }
    pub fn os(&self) -> String {
        self.oci.os().to_string()
    }
    pub fn variant(&self) -> Option<&str> {
        self.oci.variant().as_deref()
    }
    /// `created` exactly as written in the config.
    pub fn created(&self) -> Option<&str> {
        self.oci.created().as_deref()
    }
    pub fn created_time(&self) -> Option<Timestamp> {
        self.created().and_then(Timestamp::parse_rfc3339)
    }
    pub fn author(&self) -> Option<&str> {
        self.oci.author().as_deref()
    }
    /// docker's top-level `comment` (e.g. the `import` message).
    pub fn comment(&self) -> Option<&str> {
        self.docker.comment.as_deref()
    }
    pub fn docker_version(&self) -> Option<&str> {
        self.docker.docker_version.as_deref()
    }
    /// The execution defaults (`config`), if any.
    pub fn config(&self) -> Option<&ContainerConfig> {
        self.docker.config.as_ref()
    }
    pub fn env(&self) -> &[String] {
        self.config().and_then(|c| c.env.as_deref()).unwrap_or(&[])
    }
    pub fn cmd(&self) -> Option<&[String]> {
        self.config().and_then(|c| c.cmd.as_deref())
    }
    pub fn entrypoint(&self) -> Option<&[String]> {
        self.config().and_then(|c| c.entrypoint.as_deref())
    }
    pub fn working_dir(&self) -> Option<&str> {
        self.config()
            .and_then(|c| c.working_dir.as_deref())
            .filter(|s| !s.is_empty())
    }
    pub fn user(&self) -> Option<&str> {
        self.config()
            .and_then(|c| c.user.as_deref())
            .filter(|s| !s.is_empty())
    }
    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.config().and_then(|c| c.labels.as_ref())
    }
    pub fn exposed_ports(&self) -> Vec<&str> {
        keys(self.config().and_then(|c| c.exposed_ports.as_ref()))
    }
    pub fn volumes(&self) -> Vec<&str> {
        keys(self.config().and_then(|c| c.volumes.as_ref()))
    }
    pub fn stop_signal(&self) -> Option<&str> {
        self.config().and_then(|c| c.stop_signal.as_deref())
    }
    /// `rootfs.diff_ids`, bottom layer first.
    pub fn diff_ids(&self) -> &[String] {
        &self.diff_ids
    }
    /// Chain IDs of the layers, bottom first (the last one names the whole stack).
    pub fn chain_ids(&self) -> Vec<String> {
        chain_ids(&self.diff_ids)
    }
    pub fn history(&self) -> &[History] {
        self.oci.history().as_deref().unwrap_or(&[])
    }

    /// Rows for `history`, newest first, as the docker daemon builds them: one row per history
    /// entry; entries with `empty_layer: true` have no layer and size 0, the others take the
    /// next diff ID in order. The topmost row carries the image ID, the rest `<missing>`
    /// (the caller may replace those with locally known parent IDs). `size` is 0 here: fill it
    /// from the layer store by `chain_id`. An image without history has no rows, as in docker.
    pub fn history_rows(&self) -> Result<Vec<HistoryRow>> {
        let chains = self.chain_ids();
        let mut rows = Vec::with_capacity(self.history().len());
        let mut layer = 0usize;
        for h in self.history() {
            let (diff_id, chain_id) = if h.empty_layer().unwrap_or(false) {
                (None, None)
            } else {
                let Some(d) = self.diff_ids.get(layer) else {
                    return Err(ImageError::HistoryMismatch {
                        diff_ids: self.diff_ids.len(),
                    });
                };
                layer += 1;
                (Some(d.clone()), Some(chains[layer - 1].clone()))
            };
            let created = h.created().clone();
            rows.push(HistoryRow {
                id: MISSING.to_string(),
                created_time: created.as_deref().and_then(Timestamp::parse_rfc3339),
                created,
                created_by: h.created_by().clone().unwrap_or_default(),
                comment: h.comment().clone().unwrap_or_default(),
                empty_layer: diff_id.is_none(),
                diff_id,
                chain_id,
                size: 0,
            });
        }
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top.id = self.id.clone();
        }
        Ok(rows)
    }
}

pub(crate) fn keys(m: Option<&BTreeMap<String, Empty>>) -> Vec<&str> {
    m.map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

pub(crate) fn check_time(v: Option<&Value>, field: &str) -> Result<()> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if Timestamp::parse_rfc3339(s).is_some() => Ok(()),
        Some(other) => Err(invalid(
            CONFIG,
            field,
            format!("must be an RFC 3339 time, not {other}"),
        )),
    }
}

/// The ID docker shows for history rows whose image is not known locally.
pub const MISSING: &str = "<missing>";

/// One line of `history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The image ID for the topmost row, [`MISSING`] otherwise.
    pub id: String,
    /// `created` as written in the config.
    pub created: Option<String>,
    pub created_time: Option<Timestamp>,
    pub created_by: String,
    pub comment: String,
    pub empty_layer: bool,
    /// The layer this row added (None for empty layers).
    pub diff_id: Option<String>,
    /// Chain ID of the stack up to and including this row's layer.
    pub chain_id: Option<String>,
    /// Placeholder (0): the layer's size comes from the store.
    pub size: u64,
}
