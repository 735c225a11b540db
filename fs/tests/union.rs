//! The union logic driven directly through `Overlay` (no FUSE): resolution across layers,
//! whiteouts in both forms, opaque directories, copy-up, directory rename by redirect.
//! Needs root (whiteouts are device nodes, markers are trusted.* xattrs); skips otherwise.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use cairn_fs::inode::ROOT;
use cairn_fs::namespace::{Caller, New};
use cairn_fs::{Config, Overlay};
use rustix::fs::{FileType, RenameFlags};

fn root_or_skip() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI must run as root"
    );
    eprintln!("skipping: needs root for whiteouts and trusted.* xattrs");
    false
}

fn whiteout(p: &Path) {
    rustix::fs::mknodat(rustix::fs::CWD, p, FileType::CharacterDevice, 0.into(), 0).unwrap();
}

fn xattr(p: &Path, name: &str, v: &[u8]) {
    rustix::fs::lsetxattr(p, name, v, rustix::fs::XattrFlags::empty()).unwrap();
}

fn config(t: &Path) -> Config {
    Config {
        lowers: vec![t.join("l1"), t.join("l2")],
        upper: Some(t.join("u")),
        work: Some(t.join("w")),
        timeout: Duration::from_secs(1),
        passthrough: false,
        oci_whiteouts: true,
        ids: Default::default(),
        static_nlink: false,
        fsync: true,
        adopt_upper: false,
        redirect_dir: cairn_fs::rules::RedirectDir::On,
        index: true,
        volatile: false,
    }
}

/// l1 (top) and l2 (bottom), an upper and a work dir.
fn stack() -> (tempfile::TempDir, Overlay) {
    let t = tempfile::tempdir().unwrap();
    let p = |s: &str| t.path().join(s);
    for d in [
        "l1", "l2", "u", "w", "l2/d/sub", "l2/gone", "l1/d", "l2/op", "l1/op", "l2/oci",
    ] {
        fs::create_dir_all(p(d)).unwrap();
    }
    fs::write(p("l2/d/low"), b"low").unwrap();
    fs::write(p("l2/d/sub/deep"), b"deep").unwrap();
    fs::write(p("l1/d/high"), b"high").unwrap();
    fs::write(p("l2/gone/x"), b"x").unwrap();
    whiteout(&p("l1/gone"));
    fs::write(p("l2/op/hidden"), b"h").unwrap();
    fs::write(p("l1/op/shown"), b"s").unwrap();
    xattr(&p("l1/op"), "trusted.overlay.opaque", b"y");
    fs::write(p("l2/oci/keep"), b"k").unwrap();
    fs::write(p("l2/oci/drop"), b"d").unwrap();
    fs::create_dir(p("l1/oci")).unwrap();
    fs::write(p("l1/oci/.wh.drop"), b"").unwrap();
    fs::write(p("l2/file"), vec![7u8; 10000]).unwrap();
    let ov = Overlay::new(config(t.path())).unwrap();
    (t, ov)
}

fn names(ov: &Overlay, id: u64) -> Vec<String> {
    let node = ov.nodes.get(id).unwrap();
    let mut v: Vec<String> = ov
        .dir_entries(&node)
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn id(ov: &Overlay, parent: u64, name: &str) -> u64 {
    ov.lookup(parent, OsStr::new(name)).unwrap().0.id
}

fn enoent(ov: &Overlay, parent: u64, name: &str) -> bool {
    ov.lookup(parent, OsStr::new(name))
        .err()
        .is_some_and(|e| e.errno() == libc::ENOENT)
}

#[test]
fn lookup_merges_layers_and_honours_whiteouts_and_opaque_dirs() {
    if !root_or_skip() {
        return;
    }
    let (_t, ov) = stack();
    assert_eq!(names(&ov, ROOT), ["d", "file", "oci", "op"]);
    assert!(enoent(&ov, ROOT, "gone"));
    let d = id(&ov, ROOT, "d");
    assert_eq!(names(&ov, d), ["high", "low", "sub"]);
    let op = id(&ov, ROOT, "op");
    assert_eq!(names(&ov, op), ["shown"]);
    assert!(enoent(&ov, op, "hidden"));
    let oci = id(&ov, ROOT, "oci");
    assert_eq!(names(&ov, oci), ["keep"]);
    assert!(enoent(&ov, oci, "drop"));
    // A merged directory reports nlink 1, like overlayfs.
    let (_, st) = ov.lookup(ROOT, OsStr::new("d")).unwrap();
    assert_eq!(st.st_nlink, 1);
}

#[test]
fn copy_up_keeps_data_mode_owner_times_and_xattrs() {
    if !root_or_skip() {
        return;
    }
    let (t, ov) = stack();
    let lower = t.path().join("l2/file");
    fs::set_permissions(&lower, fs::Permissions::from_mode(0o640)).unwrap();
    rustix::fs::chownat(
        rustix::fs::CWD,
        &lower,
        Some(rustix::process::Uid::from_raw(1234)),
        Some(rustix::process::Gid::from_raw(99)),
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    xattr(&lower, "user.k", b"v");
    let before = fs::metadata(&lower).unwrap();
    let (node, _) = ov.lookup(ROOT, OsStr::new("file")).unwrap();
    ov.ensure_upper(&node).unwrap();
    let up = t.path().join("u/file");
    let m = fs::metadata(&up).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o640, 1234, 99));
    assert_eq!(
        (m.mtime(), m.mtime_nsec()),
        (before.mtime(), before.mtime_nsec())
    );
    assert_eq!(fs::read(&up).unwrap(), vec![7u8; 10000]);
    assert_eq!(ov.getxattr(node.id, OsStr::new("user.k")).unwrap(), b"v");
    // Nothing is left behind in the work dir.
    assert_eq!(fs::read_dir(t.path().join("w/work")).unwrap().count(), 0);
}

#[test]
fn unlink_and_rmdir_leave_whiteouts_and_create_over_them_is_opaque() {
    if !root_or_skip() {
        return;
    }
    let (t, ov) = stack();
    let d = id(&ov, ROOT, "d");
    ov.unlink(d, OsStr::new("low")).unwrap();
    assert!(enoent(&ov, d, "low"));
    let wh = fs::symlink_metadata(t.path().join("u/d/low")).unwrap();
    assert_eq!((wh.mode() & libc::S_IFMT, wh.rdev()), (libc::S_IFCHR, 0));
    let e = ov.rmdir(d, OsStr::new("sub")).unwrap_err();
    assert_eq!(e.errno(), libc::ENOTEMPTY);
    let sub = id(&ov, d, "sub");
    ov.unlink(sub, OsStr::new("deep")).unwrap();
    ov.rmdir(d, OsStr::new("sub")).unwrap();
    assert!(enoent(&ov, d, "sub"));
    let caller = Caller { uid: 0, gid: 0 };
    ov.create_obj(d, OsStr::new("sub"), New::Dir, 0o755, caller)
        .unwrap();
    let sub = id(&ov, d, "sub");
    assert!(
        names(&ov, sub).is_empty(),
        "the old lower contents stay hidden"
    );
    let mut buf = [0u8; 8];
    let n = rustix::fs::lgetxattr(
        t.path().join("u/d/sub"),
        "trusted.overlay.opaque",
        &mut buf[..],
    );
    assert_eq!(&buf[..n.unwrap()], b"y");
}

#[test]
fn renamed_lower_directory_keeps_its_lower_children_through_a_redirect() {
    if !root_or_skip() {
        return;
    }
    let (t, ov) = stack();
    let d = id(&ov, ROOT, "d");
    let op = id(&ov, ROOT, "op");
    ov.rename(
        ROOT,
        OsStr::new("d"),
        op,
        OsStr::new("moved"),
        RenameFlags::empty(),
    )
    .unwrap();
    assert!(enoent(&ov, ROOT, "d"));
    assert_eq!(id(&ov, op, "moved"), d, "the node follows the rename");
    assert_eq!(names(&ov, d), ["high", "low", "sub"]);
    let mut buf = [0u8; 64];
    let n = rustix::fs::lgetxattr(
        t.path().join("u/op/moved"),
        "trusted.overlay.redirect",
        &mut buf[..],
    )
    .unwrap();
    assert_eq!(&buf[..n], b"/d");
    // A fresh instance over the same directories resolves the redirect from disk.
    drop(ov);
    let ov = Overlay::new(config(t.path())).unwrap();
    let op = id(&ov, ROOT, "op");
    let moved = id(&ov, op, "moved");
    assert_eq!(names(&ov, moved), ["high", "low", "sub"]);
    let sub = id(&ov, moved, "sub");
    assert_eq!(names(&ov, sub), ["deep"]);
    assert!(enoent(&ov, ROOT, "d"));
}

#[test]
fn rename_flags_noreplace_and_exchange() {
    if !root_or_skip() {
        return;
    }
    let (t, ov) = stack();
    let d = id(&ov, ROOT, "d");
    let e = ov
        .rename(
            d,
            OsStr::new("low"),
            d,
            OsStr::new("high"),
            RenameFlags::NOREPLACE,
        )
        .unwrap_err();
    assert_eq!(e.errno(), libc::EEXIST);
    ov.rename(
        d,
        OsStr::new("low"),
        d,
        OsStr::new("high"),
        RenameFlags::EXCHANGE,
    )
    .unwrap();
    assert_eq!(fs::read(t.path().join("u/d/high")).unwrap(), b"low");
    assert_eq!(fs::read(t.path().join("u/d/low")).unwrap(), b"high");
}

#[test]
fn names_of_name_max_bytes_resolve_with_oci_whiteouts_honoured() {
    if !root_or_skip() {
        return;
    }
    let (_t, ov) = stack();
    let d = id(&ov, ROOT, "d");
    // `.wh.` + 255 bytes is longer than NAME_MAX: the probe for an OCI whiteout must not fail.
    let long = "n".repeat(255);
    assert!(enoent(&ov, d, &long));
    let caller = Caller { uid: 0, gid: 0 };
    ov.create_obj(d, OsStr::new(&long), New::File, 0o644, caller)
        .unwrap();
    assert!(ov.lookup(d, OsStr::new(&long)).is_ok());
    ov.unlink(d, OsStr::new(&long)).unwrap();
    assert!(enoent(&ov, d, &long));
}
