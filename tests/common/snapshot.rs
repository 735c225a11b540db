//! Tree snapshot of a merged mount and a readable diff of two snapshots.
//!
//! One line per entry: path, type, mode, owner, nlink, size (files, symlinks), sha256 (files),
//! symlink target, rdev (devices), all listable xattrs with values, mtime and the readdir d_type
//! (flagged only when it disagrees with lstat). Times from before 2021 are compared exactly;
//! anything newer is "recent" (set during the test, so it differs between backends by nature).
//! Hard-link identity is kept apart: each path maps to the first path sharing its st_ino.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Times at or after this (2021-01-01T00:00:00Z) are only reported as "recent".
const RECENT: i64 = 1_609_459_200;

/// What to record about each entry.
#[derive(Clone, Copy, Debug)]
pub struct SnapOpts {
    /// Record mtimes (old ones exactly, new ones as "recent").
    pub times: bool,
}

/// The observed state of a merged tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Relative path ("." for the root) → attribute line.
    pub entries: BTreeMap<String, String>,
    /// Relative path → the first path (in sorted order) with the same st_ino.
    pub inos: BTreeMap<String, String>,
}

impl Snapshot {
    /// Walks the tree under `root` (without following symlinks).
    pub fn take(root: &Path, opts: SnapOpts) -> Snapshot {
        let mut raw = BTreeMap::new();
        walk(root, root, None, opts, &mut raw);
        let mut first_by_ino: BTreeMap<(u64, u64), String> = BTreeMap::new();
        let mut entries = BTreeMap::new();
        let mut inos = BTreeMap::new();
        for (path, (line, key)) in raw {
            let leader = first_by_ino.entry(key).or_insert_with(|| path.clone());
            inos.insert(path.clone(), leader.clone());
            entries.insert(path, line);
        }
        Snapshot { entries, inos }
    }

    /// Differences to `other` as readable lines (`-` only here, `+` only there); empty if equal.
    /// Inode relations are compared only when `with_inos`.
    pub fn diff(&self, other: &Snapshot, with_inos: bool) -> String {
        let mut out = String::new();
        diff_maps(&self.entries, &other.entries, &mut out);
        if with_inos {
            diff_maps(&self.ino_lines(), &other.ino_lines(), &mut out);
        }
        out
    }

    fn ino_lines(&self) -> BTreeMap<String, String> {
        let line = |(p, leader): (&String, &String)| {
            let text = if p == leader {
                "st_ino shared with no earlier path".to_string()
            } else {
                format!("same st_ino as {leader}")
            };
            (p.clone(), text)
        };
        self.inos.iter().map(line).collect()
    }

    /// The whole snapshot, one entry per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (p, line) in &self.entries {
            let ino = &self.inos[p];
            let link = if ino == p {
                String::new()
            } else {
                format!(" ino=={ino}")
            };
            let _ = writeln!(out, "  {p}: {line}{link}");
        }
        out
    }
}

fn diff_maps(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, out: &mut String) {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                if let Some(x) = x {
                    let _ = writeln!(out, "  - {k}: {x}");
                }
                if let Some(y) = y {
                    let _ = writeln!(out, "  + {k}: {y}");
                }
            }
        }
    }
}

type Raw = BTreeMap<String, (String, (u64, u64))>;

fn walk(root: &Path, p: &Path, dtype: Option<fs::FileType>, opts: SnapOpts, out: &mut Raw) {
    let rel = match p.strip_prefix(root) {
        Ok(r) if r.as_os_str().is_empty() => ".".to_string(),
        Ok(r) => r.to_string_lossy().into_owned(),
        Err(_) => unreachable!("walk stays under root"),
    };
    let meta = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) => {
            out.insert(rel, (format!("lstat error: {e}"), (0, 0)));
            return;
        }
    };
    let line = describe(p, &meta, dtype, opts);
    out.insert(rel, (line, (meta.dev(), meta.ino())));
    if meta.is_dir() {
        match fs::read_dir(p) {
            Ok(rd) => {
                for e in rd {
                    let e = e.expect("readdir entry");
                    walk(root, &e.path(), e.file_type().ok(), opts, out);
                }
            }
            Err(e) => {
                out.insert(
                    format!("{}/<readdir>", p.display()),
                    (format!("{e}"), (0, 0)),
                );
            }
        }
    }
}

fn kind_name(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_char_device() {
        "chardev"
    } else if t.is_block_device() {
        "blockdev"
    } else if t.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}

fn describe(p: &Path, meta: &fs::Metadata, dtype: Option<fs::FileType>, opts: SnapOpts) -> String {
    let t = meta.file_type();
    let mut s = format!(
        "{} mode={:04o} uid={} gid={} nlink={}",
        kind_name(t),
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid(),
        meta.nlink()
    );
    if let Some(d) = dtype.filter(|d| kind_name(*d) != kind_name(t)) {
        let _ = write!(s, " d_type={}", kind_name(d));
    }
    if t.is_file() || t.is_symlink() {
        let _ = write!(s, " size={}", meta.size());
    }
    if t.is_file() {
        let _ = write!(s, " sha256={}", file_hash(p));
    }
    if t.is_symlink() {
        let target = fs::read_link(p).map(|t| t.display().to_string());
        let _ = write!(s, " target={target:?}");
    }
    if t.is_char_device() || t.is_block_device() {
        let dev = meta.rdev();
        let _ = write!(
            s,
            " rdev={}:{}",
            rustix::fs::major(dev),
            rustix::fs::minor(dev)
        );
    }
    let _ = write!(s, " xattrs={{{}}}", xattrs(p));
    if opts.times {
        let (sec, nsec) = (meta.mtime(), meta.mtime_nsec());
        if sec < RECENT {
            let _ = write!(s, " mtime={sec}.{nsec:09}");
        } else {
            s += " mtime=recent";
        }
    }
    s
}

fn file_hash(p: &Path) -> String {
    let mut f = match fs::File::open(p) {
        Ok(f) => f,
        Err(e) => return format!("<open: {e}>"),
    };
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) => return format!("<read: {e}>"),
        }
    }
    let digest = h.finalize();
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// All listable xattrs as `name=value`, sorted; errors are recorded, not hidden.
pub fn xattrs(p: &Path) -> String {
    let mut buf = vec![0u8; 1 << 16];
    let n = match rustix::fs::llistxattr(p, &mut buf[..]) {
        Ok(n) => n,
        Err(e) => return format!("<listxattr: {e}>"),
    };
    let mut names: Vec<&[u8]> = buf[..n]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    let mut parts = Vec::new();
    for name in names {
        let mut val = vec![0u8; 1 << 16];
        let shown = match rustix::fs::lgetxattr(p, name, &mut val[..]) {
            Ok(len) => escape(&val[..len]),
            Err(e) => format!("<getxattr: {e}>"),
        };
        parts.push(format!("{}={shown}", String::from_utf8_lossy(name)));
    }
    parts.join(",")
}

/// Bytes as text, with non-printable bytes escaped.
pub fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
