//! docker's layers, each a directory under the driver's home:
//!
//! ```text
//! <home>/<id>/diff     the layer's own files, kernel overlay format (whiteout = char 0:0,
//!                      opaque = trusted.overlay.opaque)
//! <home>/<id>/parent   the parent layer's id (empty for a base layer)
//! <home>/<id>/work     overlay work dir — only for read-write layers (CreateReadWrite)
//! <home>/<id>/merged   where Get mounts the union
//! <home>/<id>/diff-id  sha256 of the tar ApplyDiff received (docker's diff_id)
//! ```
//!
//! `Get` mounts a cairn FUSE union of the whole chain on `merged`: a read-write layer as the
//! upper over its parents, a read-only layer read-only with its own diff on top. Mounts are
//! counted: the first `Get` mounts, the last `Put` unmounts; dockerd calls them in pairs and
//! concurrently. A layer is created under a temp name and renamed into place, so a crash never
//! leaves a half-made layer under its id.
//!
//! The union is served by the cairn binary's `mount` command ([`Layers::new`] takes its
//! path): a daemon process per mount, so the plugin's own threads never fork.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use cairn_driver::archive::Compression;
use cairn_driver::archive::tar_in::{ImportLimits, extract};
use cairn_driver::archive::tar_out::{UpperExport, export_dir, export_upper};
use cairn_driver::diff::{Change, changes};

use crate::{Error, Result, io_err};

/// The layers of one driver home.
#[derive(Debug)]
pub struct Layers {
    home: PathBuf,
    mount_program: PathBuf,
    /// Mounted layers and how many `Get`s hold them.
    mounts: Mutex<HashMap<String, usize>>,
}

impl Layers {
    /// Opens (creating) the driver home; unions are mounted by `<mount_program> mount`.
    pub fn new(home: &Path, mount_program: &Path) -> Result<Layers> {
        fs::create_dir_all(home.join(".tmp")).map_err(io_err("create driver home", home))?;
        fs::create_dir_all(home.join(".empty")).map_err(io_err("create driver home", home))?;
        Ok(Layers {
            home: home.to_path_buf(),
            mount_program: mount_program.to_path_buf(),
            mounts: Mutex::new(HashMap::new()),
        })
    }

    /// The driver home.
    pub fn home(&self) -> &Path {
        &self.home
    }

    fn dir(&self, id: &str) -> Result<PathBuf> {
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Err(Error::InvalidId(id.to_string()));
        }
        Ok(self.home.join(id))
    }

    fn existing(&self, id: &str) -> Result<PathBuf> {
        let d = self.dir(id)?;
        if d.join("diff").is_dir() {
            Ok(d)
        } else {
            Err(Error::NoSuchLayer(id.to_string()))
        }
    }

    /// Whether the layer exists.
    pub fn exists(&self, id: &str) -> bool {
        self.existing(id).is_ok()
    }

    /// Creates an empty layer on `parent` ("" for none); `rw` gives it a work dir.
    pub fn create(&self, id: &str, parent: &str, rw: bool) -> Result<()> {
        let dst = self.dir(id)?;
        if dst.exists() {
            return Err(Error::LayerExists(id.to_string()));
        }
        if !parent.is_empty() {
            self.existing(parent)?;
        }
        let tmp = self.home.join(".tmp").join(id);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err("remove stale layer", &tmp))?;
        }
        let mut dirs = vec!["diff", "merged"];
        if rw {
            dirs.push("work");
        }
        for d in dirs {
            let p = tmp.join(d);
            fs::create_dir_all(&p).map_err(io_err("create layer dir", &p))?;
        }
        let pf = tmp.join("parent");
        fs::write(&pf, parent).map_err(io_err("write layer parent", &pf))?;
        fs::rename(&tmp, &dst).map_err(io_err("create layer", &dst))
    }

    fn parent(&self, dir: &Path) -> Result<Option<String>> {
        let pf = dir.join("parent");
        let p = fs::read_to_string(&pf).map_err(io_err("read layer parent", &pf))?;
        Ok((!p.is_empty()).then_some(p))
    }

    /// The diff dirs of `id`'s ancestors, nearest first (overlay lowerdir order).
    fn ancestors(&self, id: &str) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut cur = self.parent(&self.existing(id)?)?;
        while let Some(p) = cur {
            let d = self.existing(&p)?;
            out.push(d.join("diff"));
            cur = self.parent(&d)?;
            if out.len() > 4096 {
                return Err(Error::Mount {
                    id: id.to_string(),
                    msg: "parent chain loops".into(),
                });
            }
        }
        Ok(out)
    }

    /// Mounts (or counts one more user of) the union of `id`; returns the mountpoint.
    pub fn get(&self, id: &str) -> Result<PathBuf> {
        let dir = self.existing(id)?;
        let merged = dir.join("merged");
        let mut mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = mounts.get_mut(id) {
            *n += 1;
            return Ok(merged);
        }
        if cairn_fs::mount::is_mountpoint(&merged) {
            // Left by an earlier plugin process: its daemon is gone or unknown, start afresh.
            let _ = cairn_fs::mount::unmount(&merged);
        }
        let mut lowers = self.ancestors(id)?;
        let work = dir.join("work");
        let mut cmd = Command::new(&self.mount_program);
        cmd.arg("mount");
        if work.is_dir() {
            if lowers.is_empty() {
                lowers.push(self.home.join(".empty"));
            }
            cmd.arg("--upper")
                .arg(dir.join("diff"))
                .arg("--work")
                .arg(&work);
        } else {
            lowers.insert(0, dir.join("diff"));
        }
        let lower = lowers
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":");
        cmd.arg("--lower").arg(lower).arg(&merged);
        let out = cmd.output().map_err(io_err("run", &self.mount_program))?;
        if !out.status.success() {
            return Err(Error::Mount {
                id: id.to_string(),
                msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        mounts.insert(id.to_string(), 1);
        Ok(merged)
    }

    /// Releases one `get`; the last one unmounts.
    pub fn put(&self, id: &str) -> Result<()> {
        let merged = self.dir(id)?.join("merged");
        let mut mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        match mounts.get_mut(id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                Ok(())
            }
            _ => {
                mounts.remove(id);
                unmount(id, &merged)
            }
        }
    }

    /// Removes a layer (unmounting it first).
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id)?;
        {
            let mut mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
            mounts.remove(id);
            unmount(id, &dir.join("merged"))?;
        }
        if !dir.exists() {
            return Ok(());
        }
        // Renamed away first, so the id is gone at once even if the removal is interrupted.
        let trash = self.home.join(".tmp").join(format!("rm-{id}"));
        let _ = fs::remove_dir_all(&trash);
        fs::rename(&dir, &trash).map_err(io_err("remove layer", &dir))?;
        fs::remove_dir_all(&trash).map_err(io_err("remove layer", &trash))
    }

    /// Unmounts every union (dockerd's Cleanup at shutdown, and the plugin's own exit).
    pub fn cleanup(&self) -> Result<()> {
        let mut mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        let mut first = None;
        for id in mounts.keys() {
            if let Err(e) = unmount(id, &self.home.join(id).join("merged")) {
                first.get_or_insert(e);
            }
        }
        mounts.clear();
        first.map_or(Ok(()), Err)
    }

    /// Extracts a layer tar (OCI whiteouts become overlay ones) into the empty layer `id`;
    /// returns the bytes of regular files written.
    pub fn apply_diff(&self, id: &str, tar: impl Read) -> Result<u64> {
        let dir = self.existing(id)?;
        let diff = dir.join("diff");
        let root = fs::File::open(&diff).map_err(io_err("open layer", &diff))?;
        let ex = extract(
            tar,
            std::os::fd::AsFd::as_fd(&root),
            &ImportLimits::default(),
        )
        .map_err(|source| Error::Archive {
            id: id.to_string(),
            source,
        })?;
        let f = dir.join("diff-id");
        fs::write(&f, ex.diff_id.to_string()).map_err(io_err("write diff-id", &f))?;
        Ok(ex.size)
    }

    /// Writes the layer's own changes as an uncompressed OCI layer tar (`.wh.` whiteouts,
    /// `.wh..wh..opq` opaque markers), deterministic for a given tree. A read-write layer is
    /// exported with its union mounted: a directory renamed in it (an overlay redirect, which
    /// a layer tar cannot express) is written as an opaque directory with its merged contents.
    pub fn diff(&self, id: &str, out: impl Write) -> Result<()> {
        let dir = self.existing(id)?;
        let diff = dir.join("diff");
        let archive_err = |source| Error::Archive {
            id: id.to_string(),
            source,
        };
        if !dir.join("work").is_dir() {
            return export_dir(&diff, out, Compression::None)
                .map(|_| ())
                .map_err(archive_err);
        }
        let merged = self.get(id)?;
        let opts = UpperExport {
            skip: None,
            merged: Some(&merged),
            clamp_mtime: None,
        };
        let r = export_upper(&diff, out, Compression::None, &opts).map_err(archive_err);
        self.put(id)?;
        r.map(|_| ())
    }

    /// The layer's changes to its parent chain.
    pub fn changes(&self, id: &str) -> Result<Vec<Change>> {
        let diff = self.existing(id)?.join("diff");
        let lowers = self.ancestors(id)?;
        changes(&diff, &lowers, &|_| false).map_err(|source| Error::Archive {
            id: id.to_string(),
            source,
        })
    }

    /// Bytes of the regular files of the layer's own diff.
    pub fn diff_size(&self, id: &str) -> Result<u64> {
        tree_size(&self.existing(id)?.join("diff"))
    }

    /// The layer's directories, as overlay2 reports them.
    pub fn metadata(&self, id: &str) -> Result<Vec<(&'static str, PathBuf)>> {
        let dir = self.existing(id)?;
        let mut m = vec![
            ("UpperDir", dir.join("diff")),
            ("MergedDir", dir.join("merged")),
        ];
        if dir.join("work").is_dir() {
            m.push(("WorkDir", dir.join("work")));
        }
        let lowers = self.ancestors(id)?;
        if !lowers.is_empty() {
            let l = lowers
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(":");
            m.push(("LowerDir", PathBuf::from(l)));
        }
        Ok(m)
    }

    /// How many unions are mounted now.
    pub fn mounted(&self) -> usize {
        self.mounts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn unmount(id: &str, merged: &Path) -> Result<()> {
    if !cairn_fs::mount::is_mountpoint(merged) {
        return Ok(());
    }
    cairn_fs::mount::unmount(merged).map_err(|e| Error::Mount {
        id: id.to_string(),
        msg: e.to_string(),
    })
}

/// Sum of the sizes of regular files below `dir` (hard links counted once).
fn tree_size(dir: &Path) -> Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(io_err("read layer dir", &d))? {
            let e = e.map_err(io_err("read layer dir", &d))?;
            let p = e.path();
            let md = fs::symlink_metadata(&p).map_err(io_err("stat", &p))?;
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() && (md.nlink() == 1 || seen.insert((md.dev(), md.ino()))) {
                total += md.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_chain_and_sizes() {
        let t = tempfile::tempdir().unwrap();
        let l = Layers::new(t.path(), Path::new("/nonexistent")).unwrap();
        l.create("base", "", false).unwrap();
        l.create("top", "base", true).unwrap();
        assert!(matches!(
            l.create("top", "base", true),
            Err(Error::LayerExists(_))
        ));
        assert!(matches!(
            l.create("x", "missing", false),
            Err(Error::NoSuchLayer(_))
        ));
        assert!(matches!(
            l.create("../x", "", false),
            Err(Error::InvalidId(_))
        ));
        fs::write(t.path().join("base/diff/a"), b"12345").unwrap();
        assert_eq!(l.diff_size("base").unwrap(), 5);
        assert_eq!(l.ancestors("top").unwrap(), [t.path().join("base/diff")]);
        l.remove("top").unwrap();
        assert!(!l.exists("top"));
        assert!(l.exists("base"));
    }

    #[test]
    fn diff_then_apply_gives_the_same_tar() {
        let t = tempfile::tempdir().unwrap();
        let l = Layers::new(t.path(), Path::new("/nonexistent")).unwrap();
        l.create("a", "", false).unwrap();
        fs::create_dir(t.path().join("a/diff/etc")).unwrap();
        fs::write(t.path().join("a/diff/etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
        let mut first = Vec::new();
        l.diff("a", &mut first).unwrap();
        l.create("b", "", false).unwrap();
        let size = l.apply_diff("b", first.as_slice()).unwrap();
        assert_eq!(size, 20);
        let mut second = Vec::new();
        l.diff("b", &mut second).unwrap();
        assert_eq!(
            first, second,
            "export of an imported export is byte-identical"
        );
        let ch = l.changes("b").unwrap();
        let paths: Vec<_> = ch.iter().map(|c| c.to_string()).collect();
        assert_eq!(paths, ["A /etc", "A /etc/hosts"]);
    }
}
