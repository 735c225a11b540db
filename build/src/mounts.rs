//! `RUN --mount=…` as BuildKit documents it, turned into the bind mounts of the step's
//! container: `type=cache` (a directory kept under `<root>/build-mounts/`, shared between
//! builds by `id`, default the target), `type=bind` (a context path, read-only unless `rw`),
//! `type=secret` (a `--secret` file at `/run/secrets/<id>` or `target`, read-only, never
//! committed) and `type=tmpfs` (an empty directory for the step only). Mount targets are
//! left out of the step's layer (they are the container's volumes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cairn_runtime::spec::Volume;
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: String,
    pub target: String,
    pub source: Option<String>,
    pub id: Option<String>,
    pub read_write: bool,
    pub required: bool,
}

/// Parses the value of one `--mount` flag.
pub fn parse(spec: &str, line: usize) -> Result<Mount> {
    let mut m = Mount {
        kind: "bind".into(),
        target: String::new(),
        source: None,
        id: None,
        read_write: false,
        required: false,
    };
    for kv in spec.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, "true"));
        match k {
            "type" => m.kind = v.to_string(),
            "target" | "dst" | "destination" => m.target = v.to_string(),
            "source" | "src" => m.source = Some(v.to_string()),
            "id" => m.id = Some(v.to_string()),
            "rw" | "readwrite" => m.read_write = v == "true",
            "ro" | "readonly" => m.read_write = v != "true",
            "required" => m.required = v == "true",
            "sharing" | "mode" | "uid" | "gid" | "size" => {}
            "from" => {
                return Err(Error::at(
                    line,
                    "RUN --mount from= is not supported by cairn build yet",
                ));
            }
            _ => return Err(Error::at(line, format!("unexpected key '{k}' in '{spec}'"))),
        }
    }
    if !matches!(m.kind.as_str(), "bind" | "cache" | "secret" | "tmpfs") {
        return Err(Error::at(
            line,
            format!("unsupported mount type {:?}", m.kind),
        ));
    }
    if m.kind == "secret" {
        let id =
            m.id.clone()
                .or_else(|| m.target.rsplit('/').next().map(str::to_string))
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::at(line, "secret mount needs an id or a target"))?;
        if m.target.is_empty() {
            m.target = format!("/run/secrets/{id}");
        }
        m.id = Some(id);
    }
    if m.target.is_empty() {
        return Err(Error::at(line, format!("mount {spec:?} has no target")));
    }
    Ok(m)
}

/// What the mounts of one RUN need from the build.
pub struct Sources<'a> {
    pub store_root: &'a Path,
    pub context: &'a Path,
    /// `--secret id=…,src=…`.
    pub secrets: &'a HashMap<String, PathBuf>,
    /// For tmpfs mounts: empty directories removed after the step.
    pub scratch: &'a Path,
}

/// The volumes of a RUN's container for its mounts (`workdir` resolves relative targets).
pub fn volumes(mounts: &[Mount], src: &Sources, workdir: &str, line: usize) -> Result<Vec<Volume>> {
    let mut out = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        let target = match m.target.starts_with('/') {
            true => m.target.clone(),
            false => format!("{}/{}", workdir.trim_end_matches('/'), m.target),
        };
        let (host, read_only) = match m.kind.as_str() {
            "cache" => {
                let id = m.id.clone().unwrap_or_else(|| target.clone());
                let key = hex(&Sha256::digest(id.as_bytes()));
                let dir = src.store_root.join("build-mounts").join(key);
                std::fs::create_dir_all(&dir).map_err(Error::io("create cache mount", &dir))?;
                (dir, false)
            }
            "bind" => {
                let rel = crate::context::Context::rel(m.source.as_deref().unwrap_or("."));
                let p = src.context.join(rel);
                if !p.exists() {
                    return Err(Error::at(
                        line,
                        format!(
                            "bind mount source {:?} not in the build context",
                            m.source.as_deref().unwrap_or(".")
                        ),
                    ));
                }
                (p, !m.read_write)
            }
            "secret" => {
                let id = m.id.as_deref().unwrap_or_default();
                match src.secrets.get(id) {
                    Some(p) => (p.clone(), true),
                    None if m.required => {
                        return Err(Error::at(
                            line,
                            format!("secret {id} not provided (--secret id={id},src=PATH)"),
                        ));
                    }
                    None => continue,
                }
            }
            _ => {
                let dir = src.scratch.join(format!("tmpfs-{i}"));
                std::fs::create_dir_all(&dir).map_err(Error::io("create tmpfs mount", &dir))?;
                (dir, false)
            }
        };
        out.push(Volume {
            host: host.to_string_lossy().into_owned(),
            container: target,
            read_only,
        });
    }
    Ok(out)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs() {
        let m = parse("type=cache,target=/root/.cache,sharing=locked", 1).unwrap();
        assert_eq!(
            (m.kind.as_str(), m.target.as_str()),
            ("cache", "/root/.cache")
        );
        let s = parse("type=secret,id=tok", 1).unwrap();
        assert_eq!(s.target, "/run/secrets/tok");
        let b = parse("source=src,target=/src,rw", 1).unwrap();
        assert!(b.read_write && b.kind == "bind");
        assert!(parse("type=nfs,target=/x", 1).is_err());
        assert!(parse("type=cache", 1).is_err());
        assert!(parse("type=cache,target=/x,bogus=1", 1).is_err());
    }
}
