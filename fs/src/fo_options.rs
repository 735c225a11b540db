//! The `-o` options only fuse-overlayfs has (what containers/storage passes to a
//! `mount_program`, and what fuse-overlayfs.1 documents): each is implemented with
//! fuse-overlayfs' meaning, accepted because cairn already behaves that way, or refused with a
//! message naming it. The options overlayfs and FUSE share are in [`crate::mount`].

use fuser::MountOption;

use crate::error::{Error, Result};
use crate::idmap::{IdMap, IdMapping};
use crate::mount::MountRequest;

/// Options accepted with no change needed: cairn's behaviour already is what they ask for.
/// - `noacl`: cairn never enables FUSE POSIX ACLs (ACL xattrs are kept, not enforced).
/// - `threaded`: cairn always serves with several threads (`threads=N` sets how many).
/// - `fast_ino`, `fast_ino_check`: inode numbers are cairn's own, no layer probe to skip.
/// - `ino32_t`: inode numbers are node ids counted from 1; they fit 32 bits.
/// - `writeback`, `splice_*`, `kernel_cache`, `max_write`: data-path tuning; cairn keeps
///   page cache of unchanged files and uses passthrough where the kernel offers it.
/// - `debug`: the command line runs in the foreground (see the CLI), requests are not logged.
const ACCEPTED: &[&str] = &[
    "noacl",
    "threaded",
    "fast_ino",
    "fast_ino_check",
    "ino32_t",
    "writeback",
    "splice_write",
    "splice_read",
    "splice_move",
    "kernel_cache",
    "max_write",
    "debug",
];

impl MountRequest {
    /// Applies one fuse-overlayfs-only option; false when `key` is not one of them.
    pub(crate) fn apply_fuse_overlayfs_option(
        &mut self,
        key: &str,
        val: Option<&str>,
    ) -> Result<bool> {
        let opt = match val {
            Some(v) => format!("{key}={v}"),
            None => key.to_string(),
        };
        let need = || {
            val.filter(|v| !v.is_empty())
                .ok_or_else(|| Error::Config(format!("mount option '{key}' needs a value")))
        };
        let number = || -> Result<u32> {
            need()?
                .parse()
                .map_err(|_| Error::Config(format!("mount option '{opt}': not a number")))
        };
        let flag = || -> Result<bool> { Ok(number()? != 0) };
        match key {
            "uidmapping" => self.cfg.ids.uids.ranges = IdMapping::parse(key, need()?)?,
            "gidmapping" => self.cfg.ids.gids.ranges = IdMapping::parse(key, need()?)?,
            "squash_to_uid" => self.cfg.ids.uids.squash = Some(number()?),
            "squash_to_gid" => self.cfg.ids.gids.squash = Some(number()?),
            "squash_to_root" => self.cfg.ids.squash_to_root = true,
            "static_nlink" => self.cfg.static_nlink = true,
            // cairn's own: the upper may hold fuse-overlayfs' forms (the command line adds it).
            "fuse_overlayfs_upper" => self.cfg.adopt_upper = true,
            "fsync" => self.cfg.fsync = flag()?,
            // fuse-overlayfs' alias of fsync=; plain `sync` is the mount flag.
            "sync" if val.is_some() => self.cfg.fsync = flag()?,
            "context" => {
                need()?;
                self.flags.push(MountOption::CUSTOM(opt));
            }
            "noxattrs" if !flag()? => {}
            "xattr_permissions" if number()? == 0 => {}
            "noxattrs" | "xattr_permissions" | "plugins" => {
                return Err(Error::Config(format!(
                    "mount option '{opt}' (fuse-overlayfs) is not supported by cairn"
                )));
            }
            k if ACCEPTED.contains(&k) => {}
            _ => return Ok(false),
        }
        let ids = &mut self.cfg.ids;
        if !ids.is_identity() && ids.overflow == (0, 0) {
            ids.overflow = IdMap::kernel_overflow();
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(opts: &str) -> Result<MountRequest> {
        let mut r = MountRequest::new("/mnt".into());
        r.apply_options(opts)?;
        Ok(r)
    }

    #[test]
    fn what_containers_storage_passes_parses() {
        let r = req(
            "lowerdir=l/A:l/B,upperdir=/d/diff,workdir=/d/work,,volatile,\
                     uidmapping=0:1000:1:1:100000:65536,gidmapping=0:1000:1:1:100000:65536",
        )
        .unwrap();
        assert!(r.cfg.volatile && r.cfg.fsync);
        assert_eq!(r.cfg.lowers.len(), 2);
        assert_eq!(r.cfg.ids.shown(0, 1), (1000, 100000));
        assert_eq!(r.cfg.ids.overflow, IdMap::kernel_overflow());
        let r =
            req("lowerdir=/a,squash_to_uid=5,squash_to_gid=6,static_nlink,noacl,fsync=1").unwrap();
        assert_eq!(r.cfg.ids.shown(0, 0), (5, 6));
        assert!(r.cfg.static_nlink && r.cfg.fsync);
    }

    #[test]
    fn sync_with_a_value_is_fsync_and_plain_sync_is_the_flag() {
        let r = req("lowerdir=/a,sync=0").unwrap();
        assert!(!r.cfg.fsync && !r.flags.contains(&MountOption::Sync));
        let r = req("lowerdir=/a,sync").unwrap();
        assert!(r.cfg.fsync && r.flags.contains(&MountOption::Sync));
    }

    #[test]
    fn unsupported_fuse_overlayfs_options_are_refused_by_name() {
        for o in ["plugins=x", "xattr_permissions=2", "noxattrs=1"] {
            let e = req(&format!("lowerdir=/a,{o}")).unwrap_err().to_string();
            assert!(e.contains(o), "{o}: {e}");
        }
        for o in [
            "xattr_permissions=0",
            "noxattrs=0",
            "xino=off",
            "threaded=1",
            "ino32_t",
        ] {
            req(&format!("lowerdir=/a,{o}")).unwrap();
        }
        assert!(req("lowerdir=/a,squash_to_uid=x").is_err());
    }
}
