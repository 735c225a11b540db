//! Tree snapshots shared by the image and registry end-to-end tests: what a program can observe
//! of every entry of a directory tree (type, mode, owner, size, content hash, link target, link
//! count, user xattrs, hardlink groups), and an assertion that names every differing entry.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Calls `f(relative path, path, metadata)` for every entry under `root` (root itself as "").
pub fn walk(root: &Path, rel: &str, f: &mut dyn FnMut(&str, &Path, &fs::Metadata)) {
    let p = root.join(rel);
    let Ok(md) = fs::symlink_metadata(&p) else {
        return;
    };
    f(rel, &p, &md);
    if md.is_dir() {
        let entries = fs::read_dir(&p).unwrap();
        let mut names: Vec<_> = entries.map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for n in names {
            let child = format!("{rel}/{}", n.to_string_lossy());
            walk(root, child.trim_start_matches('/'), f);
        }
    }
}

/// One line per entry of a tree plus the groups of names that are one inode (hardlinks).
#[derive(Debug, PartialEq, Eq)]
pub struct Tree {
    pub nodes: BTreeMap<String, String>,
    pub links: BTreeSet<Vec<String>>,
}

/// Paths and sizes of everything in a store (directory sizes left out), `tmp/` too unless
/// `skip_tmp`: what a failed command must leave unchanged.
pub fn store_state(root: &Path, skip_tmp: bool) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    walk(root, "", &mut |rel, _, md| {
        if !skip_tmp || (rel != "tmp" && !rel.starts_with("tmp/")) {
            out.insert(rel.to_string(), if md.is_dir() { 0 } else { md.len() });
        }
    });
    out
}

pub fn user_xattrs(p: &Path) -> BTreeMap<String, String> {
    let mut buf = vec![0u8; 1 << 16];
    let n = rustix::fs::llistxattr(p, &mut buf[..]).unwrap_or(0);
    let mut out = BTreeMap::new();
    for name in buf[..n]
        .split(|b| *b == 0)
        .filter(|n| n.starts_with(b"user."))
    {
        let name = text(name);
        let mut val = vec![0u8; 1 << 16];
        let len = rustix::fs::lgetxattr(p, name.as_str(), &mut val[..])
            .unwrap_or_else(|e| panic!("{}: {name}: {e}", p.display()));
        out.insert(name, text(&val[..len]));
    }
    out
}

/// What a program can observe of each entry: type, mode, owner, size, content hash, link target,
/// link count, user xattrs. Times are left out, and so are the size and link count of
/// directories (overlayfs reports merged directories with nlink 1).
pub fn tree(root: &Path) -> Tree {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    walk(root, "", &mut |rel, p, md| {
        let ft = md.file_type();
        let (size, nlink) = (md.len(), md.nlink());
        let (kind, size, nlink, data) = if ft.is_dir() {
            ('d', 0, 0, String::new())
        } else if ft.is_symlink() {
            (
                'l',
                size,
                nlink,
                fs::read_link(p).unwrap().display().to_string(),
            )
        } else if ft.is_file() {
            ('f', size, nlink, sha256_hex(&fs::read(p).unwrap()))
        } else {
            ('?', size, nlink, String::new())
        };
        let (mode, uid, gid, xattrs) = (md.mode() & 0o7777, md.uid(), md.gid(), user_xattrs(p));
        let line =
            format!("{kind} {mode:o} {uid}:{gid} size={size} nlink={nlink} {data} {xattrs:?}");
        nodes.insert(format!("/{rel}"), line);
        if nlink > 1 {
            inodes
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(rel.to_string());
        }
    });
    let links = inodes.into_values().filter(|v| v.len() > 1).collect();
    Tree { nodes, links }
}

/// Asserts two trees are equal, naming every differing entry.
pub fn assert_same_tree(want: &Path, got: &Path) {
    let (a, b) = (tree(want), tree(got));
    if a == b {
        return;
    }
    let keys: BTreeSet<_> = a.nodes.keys().chain(b.nodes.keys()).collect();
    let diffs: Vec<String> = (keys.into_iter())
        .filter(|k| a.nodes.get(*k) != b.nodes.get(*k))
        .map(|k| {
            format!(
                "{k}:\n  want {:?}\n  got  {:?}",
                a.nodes.get(k),
                b.nodes.get(k)
            )
        })
        .collect();
    let (g, w) = (got.display(), want.display());
    panic!(
        "{g} differs from {w}:\n{}\nhardlinks want {:?}\n  got {:?}",
        diffs.join("\n"),
        a.links,
        b.links
    );
}
