//! Conformance scenarios: each test builds a small layer stack, runs a list of operations through
//! the merged mount on kernel overlayfs (the oracle) and on cairn, and requires identical op
//! results (errno-exact), merged trees, trees after remount, and cross-mounts of each backend over
//! the upper the other one wrote. Covers copy-up of every file type by every metadata/data op,
//! whiteouts, opaque dirs, renames (incl. lower directories and renameat2 flags), hard links and
//! inode identity, xattrs, sparse files, mmap, non-root permissions, statfs and read-only mounts.
//!
//! Needs root, /dev/fuse and overlayfs; skips with a message otherwise (fails under `CI=true`).
//! `CAIRN_TEST_SELF_CHECK=1` serves the cairn side with the kernel too (harness self-test).

mod common;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{Ctx, Layers, Op, RenameMode, Scenario};
use rustix::fs::SeekFrom;

fn s(p: &str) -> String {
    p.to_string()
}

/// Lower layer: one entry of every type, each with distinct owner, mode, time and user xattr.
fn every_type(l: &mut Layers) {
    l.file_mode(1, "d/reg", b"regular contents\n", 0o640)
        .owner(1, "d/reg", 11, 12)
        .xattr(1, "d/reg", "user.k", b"v1")
        .mtime(1, "d/reg", 1_500_000_000)
        .symlink(1, "d/sym", "reg")
        .owner(1, "d/sym", 13, 14)
        .fifo(1, "d/fifo")
        .owner(1, "d/fifo", 15, 16)
        .chardev(1, "d/null", 1, 3)
        .mode(1, "d/null", 0o666)
        .file(1, "d/hl1", b"linked\n")
        .hardlink(1, "d/hl1", "d/hl2")
        .mtime(1, "d", 1_400_000_000);
    l.file(0, "top", b"top layer\n");
}

const TYPES: [&str; 5] = ["d/reg", "d/sym", "d/fifo", "d/null", "d/hl1"];

fn copy_up_each_type(name: &str, op: impl Fn(&str) -> Vec<Op>) {
    let ops = |c: &mut Ctx| {
        for t in TYPES {
            c.ops(op(t));
            c.op(Op::Stat(s(t))).ok();
        }
        c.ops([Op::Stat(s("d/hl2")), Op::ReadDir(s("d"))]);
    };
    Scenario::new(name, 2, &every_type, &ops).run();
}

#[test]
fn copy_up_by_chmod() {
    copy_up_each_type("chmod", |p| vec![Op::Chmod(s(p), 0o4751)]);
}

#[test]
fn copy_up_by_chown() {
    copy_up_each_type("chown", |p| vec![Op::Chown(s(p), 1000, 1001)]);
}

#[test]
fn copy_up_by_utimens() {
    copy_up_each_type("utimens", |p| vec![Op::Utimens(s(p), 1_234_567_890)]);
}

#[test]
fn copy_up_by_user_xattr() {
    copy_up_each_type("setxattr", |p| {
        vec![
            Op::SetXattr(s(p), s("user.new"), b"value".to_vec()),
            Op::ListXattr(s(p)),
            Op::GetXattr(s(p), s("user.k")),
        ]
    });
}

#[test]
fn copy_up_by_write_append_truncate() {
    copy_up_each_type("write", |p| {
        vec![
            Op::Write(s(p), 3, b"XY".to_vec()),
            Op::Append(s(p), b"tail\n".to_vec()),
            Op::Truncate(s(p), 7),
            Op::Read(s(p)),
        ]
    });
}

#[test]
fn hardlinked_lower_pair_copy_up() {
    let ops = |c: &mut Ctx| {
        let same = |c: &Ctx| Ok::<_, io::Error>(c.ino("d/hl1")? == c.ino("d/hl2")?);
        let r = same(c);
        c.record("hl1 and hl2 share st_ino before copy-up", &r);
        c.ops([
            Op::Append(s("d/hl1"), b"more\n".to_vec()),
            Op::Read(s("d/hl2")),
        ]);
        let r = same(c);
        c.record("hl1 and hl2 share st_ino after copy-up", &r);
        c.ops([Op::Stat(s("d/hl1")), Op::Stat(s("d/hl2"))]);
    };
    Scenario::new("hardlink pair", 2, &every_type, &ops).run();
}

#[test]
fn ino_stable_across_copy_up() {
    let ops = |c: &mut Ctx| {
        for (path, op) in [
            ("d/reg", Op::Append(s("d/reg"), b"x".to_vec())),
            ("d/sym", Op::Chown(s("d/sym"), 1, 1)),
            ("d/fifo", Op::Chmod(s("d/fifo"), 0o600)),
            ("d", Op::Create(s("d/new"), 0o644)),
        ] {
            let before = c.ino(path);
            c.op(op).ok();
            let r = before.and_then(|b| Ok(b == c.ino(path)?));
            c.record(format!("st_ino of {path} unchanged by copy-up"), &r);
        }
    };
    Scenario::new("ino stability", 2, &every_type, &ops).run();
}

#[test]
fn link_lower_file() {
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Link(s("d/reg"), s("d/reg.link")),
            Op::Link(s("d/reg"), s("other/reg.link")),
            Op::Link(s("d"), s("dlink")),
            Op::Link(s("nope"), s("x")),
            Op::Link(s("top"), s("d/reg")),
            Op::Stat(s("d/reg")),
            Op::Append(s("d/reg.link"), b"via link\n".to_vec()),
            Op::Read(s("d/reg")),
        ]);
        let r = c.ino("d/reg").and_then(|a| Ok(a == c.ino("d/reg.link")?));
        c.record("link shares st_ino", &r);
    };
    let build = |l: &mut Layers| {
        every_type(l);
        l.dir(0, "other");
    };
    Scenario::new("link", 2, &build, &ops).run();
}

/// Three layers sharing directories, with files at every level.
fn three_layers(l: &mut Layers) {
    l.file(2, "a/deep/f2", b"2")
        .file(2, "a/only2", b"2")
        .file(2, "gone/x", b"x");
    l.file(2, "f", b"bottom")
        .dir(2, "emptylow")
        .file(2, "shadowed", b"low");
    l.file(1, "a/deep/f1", b"1")
        .file(1, "a/only1", b"1")
        .file(1, "shadowed", b"mid");
    l.file(0, "a/f0", b"0")
        .dir(0, "a/deep/d0")
        .file(0, "b/f", b"b");
}

#[test]
fn unlink_and_rmdir() {
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Unlink(s("a/only2")),
            Op::Unlink(s("shadowed")),
            Op::Stat(s("shadowed")),
            Op::Unlink(s("a")),
            Op::Rmdir(s("emptylow")),
            Op::Rmdir(s("a")),
            Op::Rmdir(s("a/deep")),
            Op::Rmdir(s("f")),
            Op::Unlink(s("missing")),
            Op::RemoveAll(s("gone")),
            Op::ReadDir(s("a")),
            Op::ReadDir(s(".")),
        ]);
    };
    Scenario::new("unlink/rmdir", 3, &three_layers, &ops).run();
}

#[test]
fn rm_r_merged_dir_across_layers() {
    let ops = |c: &mut Ctx| {
        c.ops([Op::RemoveAll(s("a")), Op::Stat(s("a")), Op::ReadDir(s("."))]);
        c.ops([
            Op::Mkdir(s("a"), 0o700),
            Op::ReadDir(s("a")),
            Op::Stat(s("a")),
        ]);
    };
    Scenario::new("rm -r", 3, &three_layers, &ops).run();
}

#[test]
fn create_over_whiteout() {
    let build = |l: &mut Layers| {
        l.file(1, "f", b"old")
            .file(1, "d/old", b"old")
            .file(1, "d/sub/x", b"x");
        l.whiteout(0, "f").whiteout(0, "d");
    };
    let ops = |c: &mut Ctx| {
        c.ops([Op::Stat(s("f")), Op::Stat(s("d")), Op::ReadDir(s("."))]);
        c.ops([
            Op::Create(s("f"), 0o600),
            Op::Append(s("f"), b"new".to_vec()),
            Op::Read(s("f")),
        ]);
        c.ops([
            Op::Mkdir(s("d"), 0o755),
            Op::ReadDir(s("d")),
            Op::Stat(s("d/sub")),
        ]);
        c.ops([Op::Mkdir(s("d/sub"), 0o755), Op::ReadDir(s("d/sub"))]);
        c.ops([
            Op::Symlink(s("target"), s("d/old")),
            Op::Readlink(s("d/old")),
        ]);
    };
    Scenario::new("create over whiteout", 2, &build, &ops).run();
}

#[test]
fn whiteout_of_lower_then_recreate_dir() {
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::RemoveAll(s("a")),
            Op::Mkdir(s("a"), 0o755),
            Op::ReadDir(s("a")),
        ]);
        c.ops([
            Op::Create(s("a/only1"), 0o644),
            Op::Read(s("a/only1")),
            Op::Stat(s("a")),
        ]);
    };
    Scenario::new("recreate dir", 3, &three_layers, &ops).run();
}

#[test]
fn opaque_dir_in_middle_layer() {
    let build = |l: &mut Layers| {
        l.file(2, "d/low", b"hidden")
            .file(2, "d/sub/low", b"hidden")
            .file(2, "keep", b"k");
        l.opaque(1, "d").file(1, "d/mid", b"mid");
        l.file(0, "d/top", b"top");
    };
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::ReadDir(s("d")),
            Op::Stat(s("d/low")),
            Op::Stat(s("d/sub")),
        ]);
        c.ops([
            Op::ListXattr(s("d")),
            Op::GetXattr(s("d"), s("trusted.overlay.opaque")),
        ]);
        c.ops([
            Op::Unlink(s("d/mid")),
            Op::Create(s("d/low"), 0o644),
            Op::ReadDir(s("d")),
        ]);
    };
    Scenario::new("opaque", 3, &build, &ops).run();
}

#[test]
fn oci_whiteouts_and_opaque() {
    let build = |l: &mut Layers| {
        l.file(2, "f", b"x")
            .file(2, "d/low", b"x")
            .file(2, "e/x", b"x")
            .file(2, "keep", b"k");
        l.whiteout(1, "f")
            .opaque(1, "d")
            .file(1, "d/mid", b"m")
            .whiteout(1, "e");
        l.file(0, "d/top", b"t");
    };
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::ReadDir(s(".")),
            Op::ReadDir(s("d")),
            Op::Stat(s("f")),
            Op::Stat(s("e")),
        ]);
        c.ops([
            Op::Create(s("f"), 0o644),
            Op::Mkdir(s("e"), 0o755),
            Op::ReadDir(s("e")),
        ]);
        c.ops([Op::Unlink(s("d/mid")), Op::ReadDir(s("d"))]);
    };
    Scenario::new("oci whiteouts", 3, &build, &ops).oci().run();
}

#[test]
fn rename_files() {
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Rename(s("a/only2"), s("a/renamed2"), RenameMode::Plain),
            Op::Rename(s("a/only1"), s("b/moved1"), RenameMode::Plain),
            Op::Rename(s("a/f0"), s("f"), RenameMode::Plain),
            Op::Rename(s("shadowed"), s("b/shadowed"), RenameMode::Plain),
            Op::Rename(s("missing"), s("b/x"), RenameMode::Plain),
            Op::Rename(s("b/f"), s("nodir/f"), RenameMode::Plain),
            Op::Rename(s("b/f"), s("b/f"), RenameMode::Plain),
            Op::ReadDir(s("a")),
            Op::ReadDir(s("b")),
            Op::Read(s("f")),
        ]);
    };
    Scenario::new("rename files", 3, &three_layers, &ops).run();
}

#[test]
fn rename_lower_dir_to_other_parent() {
    let build = |l: &mut Layers| {
        l.file(2, "src/low", b"l")
            .file(2, "src/sub/deep", b"d")
            .dir(2, "dst");
        l.file(1, "src/mid", b"m")
            .file(1, "src/sub/mid", b"m")
            .mtime(1, "src", 1_300_000_000);
        l.file(0, "src/top", b"t").dir(0, "dst/p");
    };
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Rename(s("src"), s("dst/p/moved"), RenameMode::Plain),
            Op::Stat(s("src")),
            Op::ReadDir(s("dst/p/moved")),
            Op::ReadDir(s("dst/p/moved/sub")),
            Op::Read(s("dst/p/moved/sub/deep")),
            Op::Mkdir(s("src"), 0o755),
            Op::ReadDir(s("src")),
            Op::Rename(s("dst/p/moved/sub"), s("sub2"), RenameMode::Plain),
            Op::ReadDir(s("sub2")),
            Op::Rename(s("dst/p/moved"), s("back"), RenameMode::Plain),
            Op::Rename(s("back"), s("back/inside"), RenameMode::Plain),
            Op::ReadDir(s("back")),
        ]);
    };
    Scenario::new("rename lower dir", 3, &build, &ops).run();
}

#[test]
fn rename_over_existing() {
    let build = |l: &mut Layers| {
        three_layers(l);
        l.dir(1, "emptymid").file(0, "b/g", b"g");
    };
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Rename(s("a/only1"), s("a/only2"), RenameMode::Plain),
            Op::Rename(s("b"), s("emptylow"), RenameMode::Plain),
            Op::Rename(s("emptymid"), s("a"), RenameMode::Plain),
            Op::Rename(s("f"), s("a"), RenameMode::Plain),
            Op::Rename(s("a"), s("f"), RenameMode::Plain),
            Op::Rename(s("emptylow"), s("gone"), RenameMode::Plain),
            Op::ReadDir(s(".")),
            Op::ReadDir(s("gone")),
            Op::Read(s("a/only2")),
        ]);
    };
    Scenario::new("rename over existing", 3, &build, &ops).run();
}

#[test]
fn renameat2_noreplace_and_exchange() {
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Rename(s("a/only1"), s("a/only2"), RenameMode::NoReplace),
            Op::Rename(s("a/only1"), s("a/fresh"), RenameMode::NoReplace),
            Op::Rename(s("f"), s("shadowed"), RenameMode::Exchange),
            Op::Read(s("f")),
            Op::Read(s("shadowed")),
            Op::Rename(s("b"), s("f"), RenameMode::Exchange),
            Op::Rename(s("a"), s("gone"), RenameMode::Exchange),
            Op::Rename(s("f"), s("nothere"), RenameMode::Exchange),
            Op::ReadDir(s(".")),
            Op::ReadDir(s("f")),
            Op::ReadDir(s("a")),
            Op::ReadDir(s("gone")),
        ]);
    };
    Scenario::new("renameat2", 3, &three_layers, &ops).run();
}

#[test]
fn xattrs_user_and_private() {
    let build = |l: &mut Layers| {
        l.file(1, "f", b"x")
            .xattr(1, "f", "user.a", b"1")
            .xattr(1, "f", "user.b", b"\x00\xff");
        l.dir(1, "d")
            .xattr(1, "d", "user.dir", b"d")
            .opaque(0, "o")
            .file(0, "o/x", b"");
    };
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::ListXattr(s("f")),
            Op::GetXattr(s("f"), s("user.b")),
            Op::GetXattr(s("f"), s("user.none")),
            Op::SetXattr(s("f"), s("user.c"), b"3".to_vec()),
            Op::RemoveXattr(s("f"), s("user.a")),
            Op::RemoveXattr(s("f"), s("user.a")),
            Op::ListXattr(s("f")),
            Op::SetXattr(s("d"), s("user.dir"), b"changed".to_vec()),
            Op::Rename(s("d"), s("d2"), RenameMode::Plain),
            Op::ListXattr(s("d2")),
            Op::ListXattr(s("o")),
            Op::GetXattr(s("d2"), s("trusted.overlay.redirect")),
            Op::SetXattr(s("f"), s("trusted.overlay.opaque"), b"y".to_vec()),
            Op::SetXattr(s("f"), s("trusted.other"), b"t".to_vec()),
            Op::ListXattr(s("f")),
            Op::RemoveAll(s("o")),
            Op::Mkdir(s("o"), 0o755),
            Op::ListXattr(s("o")),
        ]);
    };
    Scenario::new("xattrs", 2, &build, &ops).run();
}

/// Where data and holes are, in terms that do not depend on copy-up chunk size: the kernel copies
/// up in 1 MiB chunks, so a hole may start later than in the lower file, but it is still a hole.
fn sparse_info(p: &Path, second_extent: u64) -> io::Result<String> {
    let f = std::fs::File::open(p)?;
    let m = f.metadata()?;
    let data = rustix::fs::seek(&f, SeekFrom::Data(0))?;
    let hole = rustix::fs::seek(&f, SeekFrom::Hole(0))?;
    let next_data = rustix::fs::seek(&f, SeekFrom::Data(hole))?;
    let sparse = m.blocks() * 512 < m.size() / 2;
    Ok(format!(
        "size={} first data@{data} hole before {second_extent}: {} data again@{next_data} \
         sparse={sparse}",
        m.size(),
        hole < second_extent
    ))
}

#[test]
fn sparse_file_copy_up_keeps_holes() {
    let build = |l: &mut Layers| {
        let mib = 1 << 20;
        l.sparse(0, "sp", 8 * mib, &[(0, b"head"), (5 * mib, b"middle")]);
        l.sparse(0, "sp2", 8 * mib, &[(6 * mib, b"late")]);
    };
    let ops = |c: &mut Ctx| {
        for (f, ext) in [("sp", 5 << 20), ("sp2", 6 << 20)] {
            let r = sparse_info(&c.path(f), ext);
            c.record(format!("lower {f}"), &r);
        }
        c.ops([
            Op::Chmod(s("sp"), 0o600),
            Op::Append(s("sp2"), b"end".to_vec()),
        ]);
        for (f, ext) in [("sp", 5 << 20), ("sp2", 6 << 20)] {
            let r = sparse_info(&c.path(f), ext);
            c.record(format!("copied-up {f}"), &r);
        }
    };
    Scenario::new("sparse", 1, &build, &ops).run();
}

#[test]
fn mmap_shared_write_of_lower_file() {
    let build = |l: &mut Layers| {
        l.file(0, "m", &[b'.'; 10000]).hardlink(0, "m", "m2");
    };
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::MmapWrite(s("m"), 4096, b"mapped".to_vec()),
            Op::Read(s("m2")),
        ]);
        let r = std::fs::read(c.path("m"))
            .map(|d| String::from_utf8_lossy(&d[4090..4110]).into_owned());
        c.record("read back after munmap", &r);
    };
    Scenario::new("mmap", 1, &build, &ops).run();
}

/// Root-owned 0755 dir, world-writable dir, sticky dir, and files owned by root and by uid 1000.
fn perm_layers(l: &mut Layers) {
    l.dir_mode(1, "rootdir", 0o755)
        .file(1, "rootdir/f", b"root's");
    l.dir_mode(1, "open", 0o777).file(1, "open/rootfile", b"r");
    l.dir_mode(1, "sticky", 0o1777)
        .file(1, "sticky/rootfile", b"r");
    l.file_mode(1, "sticky/mine", b"m", 0o644)
        .owner(1, "sticky/mine", 1000, 1000);
    l.file_mode(1, "suid", b"s", 0o6755)
        .owner(1, "suid", 1000, 1000);
    l.file_mode(0, "mine", b"m", 0o600)
        .owner(0, "mine", 1000, 1000);
    l.file_mode(0, "rootsuid", b"s", 0o4755);
    l.dir_mode(0, "private", 0o700).file(0, "private/x", b"x");
}

#[test]
fn permissions_as_non_root() {
    let ops = |c: &mut Ctx| {
        c.as_user(1000, 1000, |c| {
            c.ops([
                Op::Write(s("rootdir/f"), 0, b"no".to_vec()),
                Op::Unlink(s("rootdir/f")),
                Op::Create(s("rootdir/new"), 0o644),
                Op::Create(s("open/new"), 0o666),
                Op::Mkdir(s("open/newdir"), 0o777),
                Op::Unlink(s("open/rootfile")),
                Op::Unlink(s("sticky/rootfile")),
                Op::Rename(s("sticky/mine"), s("sticky/mine2"), RenameMode::Plain),
                Op::Chmod(s("rootdir/f"), 0o777),
                Op::Chown(s("mine"), 1001, 1000),
                Op::Chmod(s("mine"), 0o640),
                Op::Append(s("mine"), b"+".to_vec()),
                Op::Append(s("suid"), b"+".to_vec()),
                Op::SetXattr(s("rootdir/f"), s("user.x"), b"1".to_vec()),
                Op::ReadDir(s("private")),
                Op::Read(s("private/x")),
                Op::Utimens(s("rootdir/f"), 1_000_000_000),
            ]);
        });
        c.ops([
            Op::Stat(s("open/new")),
            Op::Stat(s("open/newdir")),
            Op::Stat(s("suid")),
        ]);
        c.ops([Op::Chown(s("rootsuid"), 2, 2), Op::Stat(s("rootsuid"))]);
    };
    Scenario::new("permissions", 2, &perm_layers, &ops).run();
}

/// World-writable set-id files, each changed once by uid 1000 (no CAP_FSETID) and once by root.
fn setid_layers(l: &mut Layers) {
    for f in ["w", "w2", "t", "o", "g", "gnox", "root_w", "root_t", "up"] {
        l.file_mode(1, f, b"data\n", 0o4777);
    }
    l.mode(1, "g", 0o2777).mode(1, "gnox", 0o2767);
}

#[test]
fn setid_bits_cleared_by_unprivileged_write_truncate_and_o_trunc() {
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Append(s("up"), b"root first\n".to_vec()),
            Op::Append(s("root_w"), b"+".to_vec()),
            Op::Truncate(s("root_t"), 1),
        ]);
        c.as_user(1000, 1000, |c| {
            c.ops([
                Op::Append(s("w"), b"+".to_vec()),
                Op::Write(s("w2"), 0, b"x".to_vec()),
                Op::Write(s("w2"), 1, b"y".to_vec()),
                Op::Truncate(s("t"), 1),
                Op::OpenTrunc(s("o")),
                Op::Append(s("g"), b"+".to_vec()),
                Op::Append(s("gnox"), b"+".to_vec()),
                Op::Append(s("up"), b"+".to_vec()),
            ]);
        });
        for f in ["w", "w2", "t", "o", "g", "gnox", "root_w", "root_t", "up"] {
            c.op(Op::Stat(s(f))).ok();
        }
    };
    Scenario::new("setid bits", 2, &setid_layers, &ops).run();
}

#[test]
fn statfs_works() {
    let ops = |c: &mut Ctx| {
        let r = rustix::fs::statfs(c.root())
            .map_err(io::Error::from)
            .map(|st| {
                format!(
                    "bsize={} blocks={} files={} namelen={}",
                    st.f_bsize, st.f_blocks, st.f_files, st.f_namelen
                )
            });
        c.record("statfs", &r);
    };
    Scenario::new("statfs", 3, &three_layers, &ops).run();
}

#[test]
fn read_only_mount_gives_erofs() {
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Create(s("new"), 0o644),
            Op::Create(s("f"), 0o644),
            Op::Write(s("f"), 0, b"x".to_vec()),
            Op::Truncate(s("f"), 0),
            Op::Unlink(s("f")),
            Op::Mkdir(s("a/x"), 0o755),
            Op::Rmdir(s("emptylow")),
            Op::Rename(s("f"), s("g"), RenameMode::Plain),
            Op::Chmod(s("f"), 0o600),
            Op::SetXattr(s("f"), s("user.x"), b"1".to_vec()),
            Op::Utimens(s("f"), 1),
            Op::Read(s("f")),
            Op::ReadDir(s("a")),
        ]);
    };
    Scenario::new("read-only", 3, &three_layers, &ops)
        .read_only()
        .run();
}

#[test]
fn directory_nlink() {
    let build = |l: &mut Layers| {
        l.dir(1, "merged/s1")
            .dir(1, "merged/s2")
            .dir(0, "merged/s3");
        l.dir(1, "loweronly/s1")
            .dir(1, "loweronly/s2")
            .dir(0, "toponly/s");
    };
    let ops = |c: &mut Ctx| {
        c.ops([Op::Mkdir(s("fresh"), 0o755), Op::Mkdir(s("fresh/a"), 0o755)]);
        c.ops([
            Op::Mkdir(s("loweronly/s3"), 0o755),
            Op::Rmdir(s("merged/s1")),
        ]);
        for d in [".", "merged", "loweronly", "toponly", "fresh"] {
            c.op(Op::Stat(s(d))).ok();
        }
    };
    Scenario::new("dir nlink", 2, &build, &ops).run();
}

#[test]
fn readdir_many_entries_across_layers() {
    let build = |l: &mut Layers| {
        for i in 0..300 {
            let layer = i % 3;
            l.file(
                layer,
                &format!("big/entry-{i:04}"),
                format!("{i}").as_bytes(),
            );
            if i % 7 == 0 && layer > 0 {
                l.whiteout(0, &format!("big/entry-{i:04}"));
            }
        }
    };
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::ReadDir(s("big")),
            Op::Unlink(s("big/entry-0001")),
            Op::ReadDir(s("big")),
        ]);
        c.ops([Op::RemoveAll(s("big")), Op::Stat(s("big"))]);
    };
    Scenario::new("readdir many", 3, &build, &ops).run();
}

#[test]
fn symlinks_and_readlink() {
    let build = |l: &mut Layers| {
        l.file(1, "dir/target", b"through the link");
        l.symlink(1, "rel", "dir/target")
            .symlink(1, "abs", "/nonexistent/abs");
        l.symlink(0, "dangling", "nowhere")
            .symlink(0, "dirlink", "dir");
    };
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Readlink(s("rel")),
            Op::Readlink(s("abs")),
            Op::Readlink(s("dir/target")),
            Op::Read(s("rel")),
            Op::Read(s("dangling")),
            Op::ReadDir(s("dirlink")),
            Op::Append(s("rel"), b" + more".to_vec()),
            Op::Read(s("dir/target")),
            Op::Symlink(s("x/y"), s("dangling")),
            Op::Symlink(s("../up"), s("dir/new")),
            Op::Readlink(s("dir/new")),
            Op::Create(s("dirlink/via"), 0o644),
            Op::ReadDir(s("dir")),
            Op::Rename(s("rel"), s("rel2"), RenameMode::Plain),
            Op::Readlink(s("rel2")),
        ]);
    };
    Scenario::new("symlinks", 2, &build, &ops).run();
}

#[test]
fn copy_up_preserves_parent_dirs() {
    let build = |l: &mut Layers| {
        l.dir_mode(1, "p", 0o750)
            .owner(1, "p", 5, 6)
            .mtime(1, "p", 1_100_000_000);
        l.dir_mode(1, "p/q", 0o2775)
            .owner(1, "p/q", 7, 8)
            .xattr(1, "p/q", "user.q", b"q");
        l.file(1, "p/q/f", b"f").mtime(1, "p/q", 1_200_000_000);
    };
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Chmod(s("p/q/f"), 0o600),
            Op::Stat(s("p")),
            Op::Stat(s("p/q")),
        ]);
        c.ops([Op::Create(s("p/q/new"), 0o644), Op::Stat(s("p/q/new"))]);
    };
    Scenario::new("parent copy-up", 2, &build, &ops).run();
}

/// The harness must not be vacuous: a scenario whose two sides behave differently must fail, both
/// in the op log and in the tree snapshot.
#[test]
fn harness_detects_differences() {
    if !common::backend::env_ready() {
        return;
    }
    let differing_op = |c: &mut Ctx| {
        let mode = if c.backend() == common::backend::Backend::Kernel {
            0o600
        } else {
            0o640
        };
        c.op(Op::Chmod(s("f"), mode)).ok();
    };
    let sc = Scenario::new("broken op", 3, &three_layers, &differing_op);
    let err = common::runner::run_scenario(&sc).expect_err("differing chmod must be detected");
    assert!(
        err.contains("op results differ") && err.contains("merged tree"),
        "{err}"
    );

    let silent_change = |c: &mut Ctx| {
        if c.backend() == common::backend::Backend::Cairn {
            std::fs::write(c.path("a/only1"), b"changed").expect("write");
        }
    };
    let sc = Scenario::new("broken tree", 3, &three_layers, &silent_change);
    let err = common::runner::run_scenario(&sc).expect_err("differing tree must be detected");
    assert!(
        !err.contains("op results differ") && err.contains("a/only1"),
        "{err}"
    );
}
