//! The step cache, persistent across builds: `<root>/build-cache/<key>` holds the image id a
//! step produced. The key is a sha256 over the parent image id, the instruction as written
//! (flags included), the build args in scope with their values and, for COPY/ADD, the hash of
//! the selected sources' content and metadata (never their times). A hit is used only while
//! its image is still in the store.

use std::path::PathBuf;

use cairn_driver::digest::Digest;
use cairn_driver::images::ImageStore;
use sha2::{Digest as _, Sha256};

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// Builds a key from its parts.
#[derive(Default)]
pub struct Key(Sha256);

impl Key {
    pub fn new(parent: &Digest) -> Key {
        let mut k = Key::default();
        k.add(&parent.to_string());
        k
    }

    /// Adds one part (length-prefixed, so parts never run together).
    pub fn add(&mut self, part: &str) -> &mut Key {
        self.0.update(format!("{}:", part.len()).as_bytes());
        self.0.update(part.as_bytes());
        self
    }

    pub fn finish(self) -> String {
        Digest::from_bytes(self.0.finalize().into()).hex()
    }
}

impl Cache {
    pub fn new(root: &std::path::Path) -> Cache {
        Cache {
            dir: root.join("build-cache"),
        }
    }

    /// The image a step with `key` made before, if still there.
    pub fn get(&self, images: &ImageStore, key: &str) -> Option<Digest> {
        let s = std::fs::read_to_string(self.dir.join(key)).ok()?;
        let id = Digest::parse(s.trim()).ok()?;
        images.find(&id.to_string()).ok().map(|(r, _)| r.id)
    }

    /// Remembers that `key` made `id` (best effort: a cache that cannot be written only costs
    /// a rebuild).
    pub fn put(&self, key: &str, id: &Digest) {
        let _ = std::fs::create_dir_all(&self.dir);
        let tmp = self.dir.join(format!(".{key}.{}", std::process::id()));
        if std::fs::write(&tmp, id.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join(key));
        }
    }
}

/// Bytes under `p` (not following symlinks).
fn du(p: &std::path::Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}

/// `builder prune`: forgets every cache entry and removes the `RUN --mount=type=cache`
/// directories; returns the bytes freed.
pub fn prune(root: &std::path::Path) -> crate::Result<u64> {
    let mut freed = 0;
    for d in ["build-cache", "build-mounts"] {
        let p = root.join(d);
        freed += du(&p);
        match std::fs::remove_dir_all(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(crate::Error::Io {
                    what: "remove",
                    path: p,
                    source: e,
                });
            }
            _ => {}
        }
    }
    Ok(freed)
}
