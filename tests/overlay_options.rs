//! Hand-written scenarios for the overlay mount options, each run on kernel overlayfs with the
//! same options (the oracle) and on cairn, with identical op results, trees, trees after
//! remount and cross-mounts required (see tests/common/runner.rs):
//! - `index=off` (the kernel's default): a copy-up breaks a lower hard link; rename of two names of
//!   one lower file is a real rename; link and unlink of such names.
//! - `index=on` (cairn's default): the names stay one file, with the kernel's link counts
//!   after rm and rename.
//! - `redirect_dir=off`: renaming a lower or merged directory is EXDEV (before ENOTEMPTY),
//!   a directory that only lives in the upper still renames.
//!
//! Needs root, /dev/fuse and overlayfs; skips with a message otherwise (fails under `CI=true`).

mod common;

use common::{Ctx, Layers, Op, RenameMode, Scenario};

fn s(p: &str) -> String {
    p.to_string()
}

/// Three pairs of hard-linked files in the lower layer, plus one with three names.
fn linked(l: &mut Layers) {
    l.file(1, "p/a", b"pair a\n")
        .hardlink(1, "p/a", "p/b")
        .file(1, "q/a", b"pair q\n")
        .hardlink(1, "q/a", "q/b")
        .file(1, "r/a", b"pair r\n")
        .hardlink(1, "r/a", "r/b")
        .file(1, "t/a", b"three\n")
        .hardlink(1, "t/a", "t/b")
        .hardlink(1, "t/a", "t/c");
    l.file(0, "top", b"top\n");
}

/// Every name of every pair is changed or removed by the end (so no untouched pair is left for
/// the final tree, whose st_ino identity cairn does not reproduce with index=off).
fn link_ops(c: &mut Ctx) {
    c.ops([
        Op::Stat(s("p/a")),
        Op::Stat(s("p/b")),
        // copy-up through one name
        Op::Append(s("p/a"), b"more\n".to_vec()),
        Op::Read(s("p/a")),
        Op::Read(s("p/b")),
        Op::Stat(s("p/a")),
        Op::Stat(s("p/b")),
        Op::Chmod(s("p/b"), 0o600),
        Op::Stat(s("p/a")),
        Op::Stat(s("p/b")),
        // rename of one name over the other
        Op::Rename(s("q/a"), s("q/b"), RenameMode::Plain),
        Op::Stat(s("q/a")),
        Op::Stat(s("q/b")),
        Op::Read(s("q/b")),
        // unlink of one name, link of the other
        Op::Unlink(s("r/a")),
        Op::Stat(s("r/b")),
        Op::Link(s("r/b"), s("r/c")),
        Op::Stat(s("r/b")),
        Op::Stat(s("r/c")),
        Op::Append(s("r/c"), b"c\n".to_vec()),
        Op::Read(s("r/b")),
        // three names: rename one away, remove one, write the last
        Op::Rename(s("t/a"), s("moved"), RenameMode::Plain),
        Op::Stat(s("moved")),
        Op::Stat(s("t/b")),
        Op::Unlink(s("t/c")),
        Op::Stat(s("t/b")),
        Op::Truncate(s("t/b"), 2),
        Op::Read(s("moved")),
        Op::Stat(s("moved")),
    ]);
}

#[test]
fn index_off_breaks_lower_hard_links_on_copy_up() {
    Scenario::new("index=off hard links", 2, &linked, &link_ops)
        .options("redirect_dir=on,index=off")
        .run();
}

#[test]
fn default_options_are_index_on() {
    Scenario::new("default hard links", 2, &linked, &link_ops)
        .options("")
        .kernel_options("redirect_dir=on,index=on")
        .run();
}

#[test]
fn index_on_keeps_lower_hard_links() {
    Scenario::new("index=on hard links", 2, &linked, &link_ops)
        .options("redirect_dir=on,index=on")
        .run();
}

fn dirs(l: &mut Layers) {
    l.file(1, "low/f", b"f\n")
        .dir(1, "low/sub")
        .file(1, "merged/in1", b"1\n")
        .dir(1, "emptylow");
    l.file(0, "merged/in0", b"0\n").dir(0, "toponly");
}

#[test]
fn redirect_dir_off_renames_of_lower_dirs_are_exdev() {
    let ops = |c: &mut Ctx| {
        c.ops([
            Op::Rename(s("low"), s("low2"), RenameMode::Plain),
            Op::Rename(s("merged"), s("m2"), RenameMode::Plain),
            Op::Rename(s("low/sub"), s("sub2"), RenameMode::Plain),
            // EXDEV comes before ENOTEMPTY
            Op::Rename(s("emptylow"), s("merged"), RenameMode::Plain),
            // the VFS's type checks come first
            Op::Rename(s("low"), s("low/f"), RenameMode::Plain),
            Op::Rename(s("low"), s("toponly"), RenameMode::Exchange),
            Op::Mkdir(s("fresh"), 0o755),
            Op::Create(s("fresh/x"), 0o644),
            Op::Rename(s("fresh"), s("low/fresh"), RenameMode::Plain),
            Op::Rename(s("low/fresh"), s("again"), RenameMode::Plain),
            // a directory of the upper only replaces an empty lower one
            Op::Mkdir(s("e2"), 0o755),
            Op::Rename(s("e2"), s("emptylow"), RenameMode::Plain),
            // files still move anywhere
            Op::Rename(s("low/f"), s("merged/f"), RenameMode::Plain),
            Op::ReadDir(s("merged")),
            Op::ReadDir(s("low")),
        ]);
    };
    Scenario::new("redirect_dir=off", 2, &dirs, &ops)
        .options("redirect_dir=off")
        .run();
}
