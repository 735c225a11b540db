//! Deterministic builder for lower layer directories.
//!
//! A scenario's builder function runs once per backend on a fresh set of empty layer directories,
//! so both backends see byte-identical layers. [`Layers::finish`] gives every entry a fixed old
//! timestamp (unless one was set explicitly), so times are reproducible too.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

/// 2020-01-01T00:00:00Z: lower-layer entries get this time plus a small per-layer offset.
pub const BASE_TIME: i64 = 1_577_836_800;

/// How whiteouts and opaque markers are written into a lower layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhiteoutForm {
    /// Kernel overlay form: char device 0:0 and `trusted.overlay.opaque=y`.
    Overlay,
    /// Kernel overlay form for `userxattr` mounts: char device 0:0 and `user.overlay.opaque=y`.
    OverlayUser,
    /// OCI image form: `.wh.<name>` files and `.wh..wh..opq` markers.
    Oci,
}

/// The lower layers of one scenario, index 0 = top (overlayfs `lowerdir=` order).
pub struct Layers {
    dirs: Vec<PathBuf>,
    form: WhiteoutForm,
    times: BTreeMap<PathBuf, i64>,
}

impl Layers {
    /// Creates `n` empty layer directories `l0..l{n-1}` under `root`.
    pub fn create(root: &Path, n: usize, form: WhiteoutForm) -> Layers {
        let dirs: Vec<PathBuf> = (0..n).map(|i| root.join(format!("l{i}"))).collect();
        for d in &dirs {
            mkdir_mode(d, 0o755);
        }
        Layers {
            dirs,
            form,
            times: BTreeMap::new(),
        }
    }

    /// The layer directories, top first.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The whiteout form this copy is written in.
    pub fn form(&self) -> WhiteoutForm {
        self.form
    }

    fn at(&self, layer: usize, rel: &str) -> PathBuf {
        let p = self.dirs[layer].join(rel);
        if let Some(parent) = p.parent() {
            let mut b = fs::DirBuilder::new();
            b.recursive(true).mode(0o755);
            b.create(parent)
                .unwrap_or_else(|e| panic!("mkdir -p {}: {e}", parent.display()));
        }
        p
    }

    /// A regular file with `content` and mode 0644.
    pub fn file(&mut self, layer: usize, rel: &str, content: &[u8]) -> &mut Self {
        self.file_mode(layer, rel, content, 0o644)
    }

    /// A regular file with `content` and `mode` (suid/sgid/sticky bits allowed).
    pub fn file_mode(&mut self, layer: usize, rel: &str, content: &[u8], mode: u32) -> &mut Self {
        let p = self.at(layer, rel);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        f.write_all(content).expect("write layer file");
        self.mode(layer, rel, mode)
    }

    /// A sparse file of `size` bytes with `data` written at each given offset.
    pub fn sparse(
        &mut self,
        layer: usize,
        rel: &str,
        size: u64,
        data: &[(u64, &[u8])],
    ) -> &mut Self {
        let p = self.at(layer, rel);
        let mut f = fs::File::create_new(&p).expect("create sparse file");
        for (off, bytes) in data {
            f.seek(SeekFrom::Start(*off)).expect("seek");
            f.write_all(bytes).expect("write");
        }
        f.set_len(size).expect("set_len");
        self
    }

    /// A directory with mode 0755 (parents are created as needed).
    pub fn dir(&mut self, layer: usize, rel: &str) -> &mut Self {
        self.dir_mode(layer, rel, 0o755)
    }

    /// A directory with the given mode.
    pub fn dir_mode(&mut self, layer: usize, rel: &str, mode: u32) -> &mut Self {
        let p = self.at(layer, rel);
        if !p.is_dir() {
            mkdir_mode(&p, 0o755);
        }
        self.mode(layer, rel, mode)
    }

    /// A symlink `rel -> target`.
    pub fn symlink(&mut self, layer: usize, rel: &str, target: &str) -> &mut Self {
        let p = self.at(layer, rel);
        symlink(target, &p).unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
        self
    }

    /// A named pipe.
    pub fn fifo(&mut self, layer: usize, rel: &str) -> &mut Self {
        self.node(layer, rel, FileType::Fifo, 0)
    }

    /// A character device `major:minor`.
    pub fn chardev(&mut self, layer: usize, rel: &str, major: u32, minor: u32) -> &mut Self {
        self.node(
            layer,
            rel,
            FileType::CharacterDevice,
            rustix::fs::makedev(major, minor),
        )
    }

    fn node(&mut self, layer: usize, rel: &str, kind: FileType, dev: u64) -> &mut Self {
        let p = self.at(layer, rel);
        rustix::fs::mknodat(CWD, &p, kind, Mode::from_raw_mode(0o644), dev)
            .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
        self
    }

    /// A hard link `rel` to the existing `existing` in the same layer.
    pub fn hardlink(&mut self, layer: usize, existing: &str, rel: &str) -> &mut Self {
        let p = self.at(layer, rel);
        fs::hard_link(self.dirs[layer].join(existing), &p)
            .unwrap_or_else(|e| panic!("link {}: {e}", p.display()));
        self
    }

    /// An extended attribute on an existing entry (not following symlinks).
    pub fn xattr(&mut self, layer: usize, rel: &str, name: &str, value: &[u8]) -> &mut Self {
        let p = self.dirs[layer].join(rel);
        rustix::fs::lsetxattr(&p, name, value, XattrFlags::empty())
            .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
        self
    }

    /// Whites out `rel` in this layer (hides it in the layers below).
    pub fn whiteout(&mut self, layer: usize, rel: &str) -> &mut Self {
        match self.form {
            WhiteoutForm::Overlay | WhiteoutForm::OverlayUser => self.chardev(layer, rel, 0, 0),
            WhiteoutForm::Oci => {
                let (dir, name) = split(rel);
                self.file(layer, &format!("{dir}.wh.{name}"), b"")
            }
        }
    }

    /// Makes the directory `rel` (created if missing) opaque in this layer.
    pub fn opaque(&mut self, layer: usize, rel: &str) -> &mut Self {
        self.dir(layer, rel);
        match self.form {
            WhiteoutForm::Overlay => self.xattr(layer, rel, "trusted.overlay.opaque", b"y"),
            WhiteoutForm::OverlayUser => self.xattr(layer, rel, "user.overlay.opaque", b"y"),
            WhiteoutForm::Oci => self.file(layer, &format!("{rel}/.wh..wh..opq"), b""),
        }
    }

    /// Sets permission bits (incl. suid/sgid/sticky) of an existing non-symlink entry.
    pub fn mode(&mut self, layer: usize, rel: &str, mode: u32) -> &mut Self {
        let p = self.dirs[layer].join(rel);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
        self
    }

    /// Sets the owner of an existing entry (not following symlinks).
    pub fn owner(&mut self, layer: usize, rel: &str, uid: u32, gid: u32) -> &mut Self {
        let p = self.dirs[layer].join(rel);
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        self
    }

    /// Gives an entry an explicit atime/mtime (seconds since the epoch), applied by `finish`.
    pub fn mtime(&mut self, layer: usize, rel: &str, secs: i64) -> &mut Self {
        self.times.insert(self.dirs[layer].join(rel), secs);
        self
    }

    /// Stamps every entry (children before their directory) with its explicit time or the
    /// layer's default old time, so that layer contents are fully deterministic.
    pub fn finish(&mut self) {
        for (i, d) in self.dirs.iter().enumerate() {
            stamp_tree(d, BASE_TIME + 1000 * i as i64, &self.times);
        }
    }
}

fn split(rel: &str) -> (String, &str) {
    match rel.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), rel),
    }
}

fn mkdir_mode(p: &Path, mode: u32) {
    fs::DirBuilder::new()
        .mode(mode)
        .create(p)
        .unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod new dir");
}

fn stamp_tree(p: &Path, default: i64, explicit: &BTreeMap<PathBuf, i64>) {
    let meta = fs::symlink_metadata(p).expect("lstat layer entry");
    if meta.is_dir() {
        for e in fs::read_dir(p).expect("read layer dir") {
            stamp_tree(&e.expect("dir entry").path(), default, explicit);
        }
    }
    set_times(p, explicit.get(p).copied().unwrap_or(default));
}

/// Sets atime and mtime of `p` (not following a final symlink) to `secs`.
pub fn set_times(p: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let ts = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, p, &ts, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}
