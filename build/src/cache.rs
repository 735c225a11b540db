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

    /// `builder prune`: forgets every entry.
    pub fn prune(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
