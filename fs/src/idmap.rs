//! Owner translation of fuse-overlayfs' `uidmapping=`/`gidmapping=` and `squash_to_*`
//! options: ids stored in the layers are shown through the mount mapped ("direct"), and ids
//! given by callers (file creation, chown) are stored mapped back. Same rules as
//! fuse-overlayfs: `A:B:LEN` triples, a stored id in `A..A+LEN` is shown as `B + (id - A)`;
//! an id outside every range is the kernel's overflow id; squashing applies to what is shown.

use crate::error::{Error, Result};

/// One `A:B:LEN` triple: stored ids `A..A+LEN` are shown as `B..B+LEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub stored: u32,
    pub shown: u32,
    pub len: u32,
}

/// The translation of one kind of id (uids or gids).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMapping {
    pub ranges: Vec<IdRange>,
    /// `squash_to_uid=`/`squash_to_gid=`: every object is shown owned by this id.
    pub squash: Option<u32>,
}

/// The translation of owners, uids and gids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    pub uids: IdMapping,
    pub gids: IdMapping,
    /// `squash_to_root`: every object is shown owned by 0:0 (below the `squash_to_*` ids).
    pub squash_to_root: bool,
    /// Shown for a stored uid/gid no range covers (/proc/sys/kernel/overflow{u,g}id).
    pub overflow: (u32, u32),
}

impl IdRange {
    fn shown_of(&self, stored: u32) -> Option<u32> {
        stored
            .checked_sub(self.stored)
            .filter(|d| *d < self.len)
            .map(|d| self.shown + d)
    }

    fn stored_of(&self, shown: u32) -> Option<u32> {
        shown
            .checked_sub(self.shown)
            .filter(|d| *d < self.len)
            .map(|d| self.stored + d)
    }
}

impl IdMapping {
    /// Parses `A:B:LEN[:A:B:LEN...]` (empty parts ignored, as fuse-overlayfs does).
    pub fn parse(option: &str, s: &str) -> Result<Vec<IdRange>> {
        let bad = || Error::Config(format!("{option}={s}: expected A:B:LEN triples"));
        let parts: Vec<u32> = s
            .split(':')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        if parts.is_empty() || !parts.len().is_multiple_of(3) {
            return Err(bad());
        }
        Ok(parts
            .chunks(3)
            .map(|c| IdRange {
                stored: c[0],
                shown: c[1],
                len: c[2],
            })
            .collect())
    }

    fn shown(&self, stored: u32, squash_to_root: bool, overflow: u32) -> u32 {
        if let Some(id) = self.squash {
            return id;
        }
        if squash_to_root {
            return 0;
        }
        if self.ranges.is_empty() {
            return stored;
        }
        self.ranges
            .iter()
            .find_map(|r| r.shown_of(stored))
            .unwrap_or(overflow)
    }

    fn stored(&self, shown: u32, overflow: u32) -> u32 {
        if self.ranges.is_empty() {
            return shown;
        }
        self.ranges
            .iter()
            .find_map(|r| r.stored_of(shown))
            .unwrap_or(overflow)
    }
}

impl IdMap {
    /// True when ids pass unchanged (no option given).
    pub fn is_identity(&self) -> bool {
        self.uids == IdMapping::default()
            && self.gids == IdMapping::default()
            && !self.squash_to_root
    }

    /// The owner shown through the mount for a stored owner.
    pub fn shown(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            self.uids.shown(uid, self.squash_to_root, self.overflow.0),
            self.gids.shown(gid, self.squash_to_root, self.overflow.1),
        )
    }

    /// The uid stored for a uid a caller uses (creation, chown).
    pub fn stored_uid(&self, uid: u32) -> u32 {
        self.uids.stored(uid, self.overflow.0)
    }

    /// The gid stored for a gid a caller uses (creation, chown).
    pub fn stored_gid(&self, gid: u32) -> u32 {
        self.gids.stored(gid, self.overflow.1)
    }

    /// The kernel's overflow ids, as fuse-overlayfs reads them.
    pub fn kernel_overflow() -> (u32, u32) {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(65534)
        };
        (
            read("/proc/sys/kernel/overflowuid"),
            read("/proc/sys/kernel/overflowgid"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(uids: &str, gids: &str) -> IdMap {
        IdMap {
            uids: IdMapping {
                ranges: IdMapping::parse("uidmapping", uids).unwrap(),
                squash: None,
            },
            gids: IdMapping {
                ranges: IdMapping::parse("gidmapping", gids).unwrap(),
                squash: None,
            },
            squash_to_root: false,
            overflow: (65534, 65534),
        }
    }

    #[test]
    fn triples_map_both_ways_and_unmapped_ids_overflow() {
        // What containers/storage passes: ContainerID:HostID:Size.
        let m = map("0:1000:1:1:100000:65536", "0:1000:1:1:100000:65536");
        assert_eq!(m.shown(0, 0), (1000, 1000));
        assert_eq!(m.shown(5, 7), (100004, 100006));
        assert_eq!(m.shown(70000, 0), (65534, 1000));
        assert_eq!(m.stored_uid(1000), 0);
        assert_eq!(m.stored_gid(100004), 5);
        assert_eq!(m.stored_uid(42), 65534);
    }

    #[test]
    fn squashing_applies_to_what_is_shown_only() {
        let mut m = map("0:1000:10", "0:1000:10");
        m.squash_to_root = true;
        assert_eq!(m.shown(3, 4), (0, 0));
        m.uids.squash = Some(7);
        assert_eq!(m.shown(3, 4), (7, 0));
        assert_eq!(m.stored_uid(1003), 3);
        assert!(!m.is_identity());
        assert!(IdMap::default().is_identity());
    }

    #[test]
    fn bad_mappings_are_refused_naming_the_option() {
        for bad in ["0:1000", "a:b:c", "", "0:1:2:3"] {
            let e = IdMapping::parse("uidmapping", bad).unwrap_err();
            assert!(e.to_string().contains("uidmapping="), "{e}");
        }
        // Empty parts are skipped, as fuse-overlayfs does.
        assert_eq!(IdMapping::parse("u", ":0:1:2").unwrap().len(), 1);
    }
}
