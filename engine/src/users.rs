//! Which containers stand on which image. Every container directory names its image (the
//! `image` file written when it is created, or config.json of containers created before that
//! file existed). A container whose reference cannot be read is an error naming the file:
//! deciding a deletion on a silently skipped container would delete the image under it.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_runtime::container::{ContainerConfig, IMAGE_FILE};

use crate::{Error, Result};

/// Image id (`sha256:…`) → ids of the containers (of any status) created from it.
pub fn image_users(containers: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let rd = match std::fs::read_dir(containers) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(Error::Io {
                what: "read directory",
                path: containers.to_path_buf(),
                source,
            });
        }
    };
    for e in rd {
        let e = e.map_err(|source| Error::Io {
            what: "read directory",
            path: containers.to_path_buf(),
            source,
        })?;
        // `.lock`, and `.new-<id>` of creations that died (creation holds the store lock).
        let id = e.file_name().to_string_lossy().into_owned();
        if id.starts_with('.') {
            continue;
        }
        out.entry(image_of(&e.path())?).or_default().push(id);
    }
    Ok(out)
}

/// The image id a container directory records.
pub fn image_of(dir: &Path) -> Result<String> {
    let image_file = dir.join(IMAGE_FILE);
    match std::fs::read_to_string(&image_file) {
        Ok(s) if s.trim().starts_with("sha256:") => return Ok(s.trim().to_string()),
        Ok(s) => {
            return Err(Error::Corrupt {
                path: image_file,
                what: format!("not an image id: {:?}", s.trim()),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Io {
                what: "read",
                path: image_file,
                source,
            });
        }
    }
    let cfg_path = dir.join("config.json");
    let data = std::fs::read(&cfg_path).map_err(|e| Error::Corrupt {
        path: dir.to_path_buf(),
        what: format!("container records no image (no {IMAGE_FILE}, config.json: {e})"),
    })?;
    let cfg: ContainerConfig = serde_json::from_slice(&data).map_err(|e| Error::Corrupt {
        path: cfg_path,
        what: e.to_string(),
    })?;
    Ok(cfg.image_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_container_is_an_error_naming_its_file() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("aaa");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join(IMAGE_FILE), "sha256:11\n").unwrap();
        std::fs::create_dir(t.path().join(".new-x")).unwrap();
        let users = image_users(t.path()).unwrap();
        assert_eq!(users["sha256:11"], vec!["aaa".to_string()]);
        let b = t.path().join("bbb");
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("config.json"), "{trunc").unwrap();
        let err = image_users(t.path()).unwrap_err().to_string();
        assert!(err.contains("bbb/config.json"), "{err}");
    }
}
