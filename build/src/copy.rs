//! COPY and ADD into a mounted rootfs (host path `root`): sources selected from the context
//! (or another stage's rootfs) with globs and `.dockerignore`, docker's destination rules (a
//! trailing `/` or an existing directory receives the source by name, a source directory
//! copies its contents, several sources need a directory), `--chown`/`--chmod`, local tar
//! auto-extraction for ADD. Destination paths are resolved inside `root` (symlinks in the
//! image never lead out of it). Also the content hash of the sources, for the cache.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use cairn_driver::digest::Digest;
use sha2::{Digest as _, Sha256};

use crate::context::Ignore;
use crate::{Error, Result};

/// Where sources come from.
pub struct Source<'a> {
    pub root: &'a Path,
    /// `.dockerignore` of the context (None for another stage).
    pub ignore: Option<&'a Ignore>,
}

/// How copied entries are owned and moded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    pub owner: Option<(u32, u32)>,
    pub mode: Option<u32>,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Every path below `root` (relative, `/`-separated), not excluded, in sorted order.
fn walk(root: &Path, rel: &str, ignore: Option<&Ignore>, out: &mut Vec<String>) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(Error::io("read", &dir))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    for n in names {
        let r = if rel.is_empty() {
            n
        } else {
            format!("{rel}/{n}")
        };
        if ignore.is_some_and(|i| i.excluded(&r)) {
            continue;
        }
        let is_dir = fs::symlink_metadata(root.join(&r)).is_ok_and(|m| m.is_dir());
        out.push(r.clone());
        if is_dir {
            walk(root, &r, ignore, out)?;
        }
    }
    Ok(())
}

/// The source paths (relative to `src.root`) COPY arguments select, in order.
pub fn select(src: &Source, args: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut all: Option<Vec<String>> = None;
    for a in args {
        let rel = crate::context::Context::rel(a);
        if has_glob(&rel) {
            let glob = globset::GlobBuilder::new(&rel)
                .literal_separator(true)
                .build()
                .map_err(|source| Error::Ignore {
                    pattern: a.clone(),
                    source,
                })?
                .compile_matcher();
            let all = match &mut all {
                Some(v) => v,
                None => {
                    let mut v = Vec::new();
                    walk(src.root, "", src.ignore, &mut v)?;
                    all.insert(v)
                }
            };
            let hits: Vec<String> = all.iter().filter(|p| glob.is_match(p)).cloned().collect();
            if hits.is_empty() {
                return Err(Error::NoSource(a.clone()));
            }
            out.extend(hits);
        } else {
            let excluded = !rel.is_empty() && src.ignore.is_some_and(|i| i.excluded(&rel));
            if excluded || fs::symlink_metadata(src.root.join(&rel)).is_err() {
                return Err(Error::NoSource(a.clone()));
            }
            out.push(rel);
        }
    }
    Ok(out)
}

/// sha256 over the selected sources: names, types, modes, sizes, link targets, contents
/// (not times). Directories are hashed with everything below them that is not excluded.
pub fn hash(src: &Source, selected: &[String]) -> Result<Digest> {
    let mut h = Sha256::new();
    for s in selected {
        let mut paths = vec![s.clone()];
        let p = src.root.join(s);
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            let mut below = Vec::new();
            walk(src.root, s, src.ignore, &mut below)?;
            paths.extend(below);
        }
        for r in paths {
            let p = src.root.join(&r);
            let m = fs::symlink_metadata(&p).map_err(Error::io("stat", &p))?;
            h.update(format!("{r}\0{:o}\0{}\0", m.mode(), m.len()).as_bytes());
            if m.file_type().is_symlink() {
                let t = fs::read_link(&p).map_err(Error::io("readlink", &p))?;
                h.update(t.as_os_str().as_encoded_bytes());
            } else if m.is_file() {
                let mut f = fs::File::open(&p).map_err(Error::io("open", &p))?;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = f.read(&mut buf).map_err(Error::io("read", &p))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            h.update(b"\n");
        }
    }
    Ok(Digest::from_bytes(h.finalize().into()))
}

/// Resolves the container path `path` inside `root`, following symlinks (absolute targets
/// relative to `root`, `..` never above it); missing components are kept as written.
pub fn resolve_in(root: &Path, path: &str) -> PathBuf {
    let mut parts: Vec<String> = Vec::new();
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_string).collect();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => {
                let mut host = root.to_path_buf();
                host.extend(&parts);
                host.push(&c);
                match fs::read_link(&host) {
                    Ok(t) if links < 40 => {
                        links += 1;
                        let t = t.to_string_lossy().into_owned();
                        if t.starts_with('/') {
                            parts.clear();
                        }
                        todo.extend(t.split('/').rev().map(str::to_string));
                    }
                    _ => parts.push(c),
                }
            }
        }
    }
    let mut out = root.to_path_buf();
    out.extend(parts);
    out
}

fn is_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// Creates `dir` (inside the rootfs, already resolved) and its missing parents.
fn mkdirs(dir: &Path, meta: Meta) -> Result<()> {
    if is_dir(dir) {
        return Ok(());
    }
    if let Some(p) = dir.parent() {
        mkdirs(p, meta)?;
    }
    let _ = fs::remove_file(dir);
    fs::create_dir(dir).map_err(Error::io("create directory", dir))?;
    set_meta(dir, meta, 0o755)
}

fn set_meta(p: &Path, meta: Meta, mode: u32) -> Result<()> {
    let (uid, gid) = meta.owner.unwrap_or((0, 0));
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).map_err(Error::io("chown", p))?;
    if !fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
        let mode = meta.mode.unwrap_or(mode) & 0o7777;
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", p))?;
    }
    Ok(())
}

/// Copies one entry (recursively) from `from` to the resolved `to`.
fn copy_entry(src: &Source, rel: &str, to: &Path, meta: Meta) -> Result<()> {
    let from = src.root.join(rel);
    let m = fs::symlink_metadata(&from).map_err(Error::io("stat", &from))?;
    if m.is_dir() {
        if !is_dir(to) {
            let _ = fs::remove_file(to);
            fs::create_dir(to).map_err(Error::io("create directory", to))?;
        }
        let mut names: Vec<_> = fs::read_dir(&from)
            .map_err(Error::io("read", &from))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            if src.ignore.is_some_and(|i| i.excluded(&r)) {
                continue;
            }
            copy_entry(src, &r, &to.join(&n), meta)?;
        }
    } else if m.file_type().is_symlink() {
        remove_any(to)?;
        let t = fs::read_link(&from).map_err(Error::io("readlink", &from))?;
        std::os::unix::fs::symlink(&t, to).map_err(Error::io("symlink", to))?;
        set_meta(to, meta, m.mode())?;
    } else {
        // Few requests per file (each one a FUSE round trip): create over whatever is not a
        // directory or symlink, write, then owner and mode on the open file.
        let out = match create(to) {
            Ok(f) => f,
            Err(_) => {
                remove_any(to)?;
                create(to).map_err(Error::io("create", to))?
            }
        };
        let mut input = fs::File::open(&from).map_err(Error::io("open", &from))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &out);
        std::io::copy(&mut input, &mut w).map_err(Error::io("copy", to))?;
        w.into_inner()
            .map_err(|e| Error::io("copy", to)(e.into_error()))?;
        let (uid, gid) = meta.owner.unwrap_or((0, 0));
        if (uid, gid) != (0, 0) || !rustix::process::geteuid().is_root() {
            rustix::fs::fchown(
                &out,
                Some(rustix::process::Uid::from_raw(uid)),
                Some(rustix::process::Gid::from_raw(gid)),
            )
            .map_err(|e| Error::io("chown", to)(e.into()))?;
        }
        let mode = meta.mode.unwrap_or(m.mode()) & 0o7777;
        rustix::fs::fchmod(&out, rustix::fs::Mode::from_raw_mode(mode))
            .map_err(|e| Error::io("chmod", to)(e.into()))?;
        return Ok(());
    }
    if m.is_dir() {
        set_meta(to, meta, m.mode())?;
    }
    Ok(())
}

/// Opens `p` for writing, created or truncated; fails on a directory or a symlink.
fn create(p: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(p)
}

/// Removes whatever is at `p` (a directory with its contents).
fn remove_any(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(Error::io("replace", p)),
        Ok(_) => fs::remove_file(p).map_err(Error::io("replace", p)),
        Err(_) => Ok(()),
    }
}

/// Whether `p` is a tar archive (ADD extracts those).
fn is_tar(p: &Path) -> bool {
    let mut head = [0u8; 512];
    fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| &head[257..262] == b"ustar")
}

/// COPY/ADD `selected` sources to `dest` (a container path; relative ones are below
/// `workdir`) in the rootfs mounted at `root`.
pub fn copy(
    src: &Source,
    selected: &[String],
    dest: &str,
    workdir: &str,
    root: &Path,
    meta: Meta,
    extract: bool,
) -> Result<()> {
    let dest_abs = match dest.starts_with('/') {
        true => dest.to_string(),
        false => format!("{}/{dest}", workdir.trim_end_matches('/')),
    };
    let dir_wanted = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
    let to = resolve_in(root, &dest_abs);
    let into_dir = dir_wanted || is_dir(&to) || selected.len() > 1;
    if selected.len() > 1 && !dir_wanted {
        return Err(Error::at(
            0,
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ));
    }
    for rel in selected {
        let from = src.root.join(rel);
        let name = Path::new(rel)
            .components()
            .next_back()
            .map(|c| match c {
                Component::Normal(n) => n.to_string_lossy().into_owned(),
                _ => String::new(),
            })
            .unwrap_or_default();
        if is_dir(&from) {
            mkdirs(&to, meta)?;
            copy_entry(src, rel, &to, meta)?;
        } else if extract && is_tar(&from) {
            mkdirs(&to, meta)?;
            let f = fs::File::open(&from).map_err(Error::io("open", &from))?;
            let mut a = tar::Archive::new(f);
            a.set_preserve_permissions(true);
            a.set_preserve_ownerships(true);
            a.unpack(&to).map_err(Error::io("extract", &from))?;
        } else if into_dir {
            mkdirs(&to, meta)?;
            copy_entry(src, rel, &to.join(&name), meta)?;
        } else {
            if let Some(p) = to.parent() {
                mkdirs(p, Meta::default())?;
            }
            copy_entry(src, rel, &to, meta)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_rules_and_symlinks_stay_inside() {
        let ctx = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let c = ctx.path();
        fs::create_dir_all(c.join("d/sub")).unwrap();
        fs::write(c.join("d/sub/f"), "f").unwrap();
        fs::write(c.join("a.txt"), "a").unwrap();
        fs::write(c.join("b.txt"), "b").unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("link")).unwrap();
        let src = Source {
            root: c,
            ignore: None,
        };
        let sel = select(&src, &["*.txt".into()]).unwrap();
        assert_eq!(sel, ["a.txt", "b.txt"]);
        copy(
            &src,
            &sel,
            "/out/",
            "/",
            root.path(),
            Meta::default(),
            false,
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(root.path().join("out/b.txt")).unwrap(),
            "b"
        );
        copy(
            &src,
            &["d".into()],
            "/dd",
            "/",
            root.path(),
            Meta::default(),
            false,
        )
        .unwrap();
        assert!(
            root.path().join("dd/sub/f").exists(),
            "directory contents copied"
        );
        copy(
            &src,
            &["a.txt".into()],
            "new",
            "/w",
            root.path(),
            Meta::default(),
            false,
        )
        .unwrap();
        assert!(root.path().join("w/new").is_file());
        copy(
            &src,
            &["a.txt".into()],
            "/link/x",
            "/",
            root.path(),
            Meta::default(),
            false,
        )
        .unwrap();
        assert!(
            root.path().join("etc/x").is_file(),
            "symlink resolved inside the root"
        );
        assert!(matches!(
            select(&src, &["nope".into()]),
            Err(Error::NoSource(_))
        ));
        assert!(
            copy(
                &src,
                &sel,
                "/file",
                "/",
                root.path(),
                Meta::default(),
                false
            )
            .is_err()
        );
        let h1 = hash(&src, &sel).unwrap();
        fs::write(c.join("b.txt"), "B").unwrap();
        assert_ne!(h1, hash(&src, &sel).unwrap());
    }
}
