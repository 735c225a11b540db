//! `rmi` and `image prune` under docker's rules: an image with a container (running or not)
//! is never deleted; `-f` takes its names away only. The users are read and the image
//! deleted in one critical section of the store lock, the one under which containers are
//! created (see the crate's lock discipline).

use cairn_driver::Digest;
use cairn_driver::image::short_id;
use cairn_driver::images::Index;
use cairn_driver::refs::parse_normalized;
use cairn_driver::store::StoreLock;

use crate::users::image_users;
use crate::{Engine, Error, Result};

/// One line of `rmi`'s report, as docker prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A name (familiar form) that was taken away.
    Untagged(String),
    /// An image id or a layer chain id that was deleted.
    Deleted(Digest),
}

/// What `image prune` did.
#[derive(Debug, Default)]
pub struct Pruned {
    pub removed: Vec<Removed>,
    /// Bytes of the layers only the deleted images used.
    pub reclaimed: u64,
}

fn familiar(name: &str) -> Option<String> {
    parse_normalized(name).ok().map(|r| r.familiar())
}

impl Engine {
    /// `rmi ARG`: untags by name (deleting the image with its last name), deletes by ID.
    pub fn remove_image(&self, arg: &str, force: bool) -> Result<Vec<Removed>> {
        let images = self.images();
        let lock = self.store().lock()?;
        let idx = images.index()?;
        let (id, by_name) = idx.resolve(arg)?;
        let tags = idx.tags_of(&id);
        let mut out = Vec::new();
        match by_name {
            Some(r) if tags.len() > 1 && !force => {
                // Only this name goes; the image stays under its other names.
                self.untag_locked(&lock, &r.to_string(), &mut out)?;
                return Ok(out);
            }
            None if tags.len() > 1 && !force => {
                return Err(Error::Conflict {
                    id: short_id(&id.hex()).to_string(),
                    reason: "image is referenced in multiple repositories".into(),
                });
            }
            _ => {}
        }
        let users = image_users(&self.containers())?;
        if let Some(c) = users.get(&id.to_string()).and_then(|v| v.first()) {
            if !force {
                return Err(Error::Conflict {
                    id: short_id(&id.hex()).to_string(),
                    reason: format!("image is being used by container {}", short_id(c)),
                });
            }
            for t in &tags {
                self.untag_locked(&lock, t, &mut out)?;
            }
            return Ok(out);
        }
        self.delete_locked(&lock, &idx, &id, &mut out)?;
        Ok(out)
    }

    /// `image prune` (`all`: every image without a container, else the dangling ones). An
    /// image that vanished meanwhile (a concurrent `rmi`) is skipped, as docker does.
    pub fn prune_images(&self, all: bool) -> Result<Pruned> {
        let images = self.images();
        let mut pruned = Pruned::default();
        let candidates: Vec<Digest> = images.index()?.images.values().map(|r| r.id).collect();
        for id in candidates {
            let lock = self.store().lock()?;
            let idx = images.index()?;
            let Some(rec) = idx.images.get(&id.hex()) else {
                continue;
            };
            let tags = idx.tags_of(&id);
            if !tags.is_empty() && !all {
                continue;
            }
            if image_users(&self.containers())?.contains_key(&id.to_string()) {
                continue;
            }
            let (_, unique) = images.sizes(&idx, rec)?;
            self.delete_locked(&lock, &idx, &id, &mut pruned.removed)?;
            pruned.reclaimed += unique;
        }
        if all {
            // Blobs an interrupted rmi or import left behind.
            let _lock = self.store().lock()?;
            for (d, size) in self.leaked_blobs_of(&images.index()?)? {
                self.store().remove_blob(&d)?;
                pruned.reclaimed += size;
            }
        }
        Ok(pruned)
    }

    fn untag_locked(&self, lock: &StoreLock, tag: &str, out: &mut Vec<Removed>) -> Result<()> {
        self.images().update_locked(lock, |idx| {
            idx.tags.remove(tag);
            Ok(())
        })?;
        out.extend(familiar(tag).map(Removed::Untagged));
        Ok(())
    }

    /// Deletes an image with all its names (the caller checked it has no users).
    fn delete_locked(
        &self,
        lock: &StoreLock,
        idx: &Index,
        id: &Digest,
        out: &mut Vec<Removed>,
    ) -> Result<()> {
        for name in idx.tags_of(id).iter().chain(&idx.digests_of(id)) {
            out.extend(familiar(name).map(Removed::Untagged));
        }
        let layers = self.images().delete_locked(lock, id)?;
        out.push(Removed::Deleted(*id));
        out.extend(layers.into_iter().map(Removed::Deleted));
        Ok(())
    }
}
