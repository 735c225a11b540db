//! Helpers shared by the driver integration tests: in-memory tar building (including hostile
//! entries the `tar` crate's safe setters refuse), store inspection, root checks.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use cairn_driver::LayerStore;
use cairn_driver::store::Store;
use tar::{EntryType, Header};

pub const MTIME: u64 = 1_700_000_000;

/// True when running as root. Otherwise prints why the test is skipped — or panics in CI,
/// where tests must not skip.
pub fn need_root(what: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} needs root and CI=true");
    }
    eprintln!("skipping {what}: needs root (mknod, trusted xattrs, chown)");
    false
}

/// A layer tar built in memory.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

/// Everything about one raw entry.
pub struct Raw<'a> {
    pub kind: EntryType,
    pub path: &'a [u8],
    pub link: Option<&'a [u8]>,
    pub data: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dev: (u32, u32),
    pub pax: Vec<(String, Vec<u8>)>,
}

impl<'a> Raw<'a> {
    pub fn new(kind: EntryType, path: &'a [u8]) -> Raw<'a> {
        Raw {
            kind,
            path,
            link: None,
            data: b"",
            mode: if kind == EntryType::Directory {
                0o755
            } else {
                0o644
            },
            uid: 0,
            gid: 0,
            mtime: MTIME,
            dev: (0, 0),
            pax: Vec::new(),
        }
    }
}

impl Default for Tar {
    fn default() -> Self {
        Tar::new()
    }
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends an entry with raw name bytes (no validation at all); long names and link
    /// names go to PAX records.
    pub fn raw(&mut self, r: Raw<'_>) -> &mut Self {
        let mut h = Header::new_ustar();
        let mut pax = r.pax.clone();
        {
            let u = h.as_ustar_mut().unwrap();
            if r.path.len() <= 100 {
                u.name[..r.path.len()].copy_from_slice(r.path);
            } else {
                u.name.copy_from_slice(&r.path[..100]);
                pax.push(("path".into(), r.path.to_vec()));
            }
            if let Some(l) = r.link {
                if l.len() <= 100 {
                    u.linkname[..l.len()].copy_from_slice(l);
                } else {
                    pax.push(("linkpath".into(), l.to_vec()));
                }
            }
        }
        h.set_entry_type(r.kind);
        h.set_mode(r.mode);
        h.set_uid(r.uid);
        h.set_gid(r.gid);
        h.set_mtime(r.mtime);
        h.set_size(r.data.len() as u64);
        h.set_device_major(r.dev.0).unwrap();
        h.set_device_minor(r.dev.1).unwrap();
        h.set_cksum();
        if !pax.is_empty() {
            self.b
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        self.b.append(&h, r.data).unwrap();
        self
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        let mut r = Raw::new(EntryType::Regular, path.as_bytes());
        r.data = data;
        self.raw(r)
    }

    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.raw(Raw::new(EntryType::Directory, path.as_bytes()))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut r = Raw::new(EntryType::Symlink, path.as_bytes());
        r.link = Some(target.as_bytes());
        r.mode = 0o777;
        self.raw(r)
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut r = Raw::new(EntryType::Link, path.as_bytes());
        r.link = Some(target.as_bytes());
        self.raw(r)
    }

    /// A GNU-format entry through the tar crate's own long-name (././@LongLink) support.
    pub fn gnu_file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(MTIME);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(data), &mut out).unwrap();
    out
}

/// A fresh store in a temp dir.
pub fn layer_store() -> (tempfile::TempDir, LayerStore) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path().join("store")).unwrap();
    (t, LayerStore::new(s))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Asserts the store has no layers and nothing staged.
pub fn assert_store_empty(ls: &LayerStore) {
    let root = ls.store().root();
    assert_eq!(
        names(&root.join("layers")),
        Vec::<String>::new(),
        "layers/ not empty"
    );
    assert_eq!(
        names(&root.join("tmp")),
        Vec::<String>::new(),
        "tmp/ not empty"
    );
}

/// Asserts the store has exactly `n` layers and nothing staged.
pub fn assert_layers(ls: &LayerStore, n: usize) {
    let root = ls.store().root();
    assert_eq!(names(&root.join("layers")).len(), n, "layer count");
    assert_eq!(
        names(&root.join("tmp")),
        Vec::<String>::new(),
        "tmp/ not empty"
    );
}
