//! Table tests of the union rules (no root, no FUSE, no file system).

use super::*;
use smallvec::smallvec;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn dir(opaque: bool, redirect: Option<&str>) -> UpperEntry {
    UpperEntry::Dir {
        opaque,
        redirect: redirect.map(p),
    }
}

#[test]
fn lookup_upper_part() {
    use RedirectDir::*;
    use UpperVerdict::*;
    let name = OsStr::new("d");
    let merge = |s: &str| MergeName(OsString::from(s));
    #[rustfmt::skip]
    let table: Vec<(UpperEntry, bool, RedirectDir, UpperVerdict)> = vec![
        // whiteouts hide, whatever is below
        (UpperEntry::Whiteout, true, On, Missing),
        (UpperEntry::Whiteout, false, On, Missing),
        // nothing in the upper: lowers decide
        (UpperEntry::Absent, true, On, Lowers),
        (UpperEntry::Absent, false, On, Lowers),
        // an upper non-directory wins outright
        (UpperEntry::NonDir, true, On, UpperOnly),
        // an opaque directory wins outright, even with a redirect
        (dir(true, None), true, On, UpperOnly),
        (dir(true, Some("/a/b")), true, On, UpperOnly),
        // a plain upper directory merges with the same name below
        (dir(false, None), true, On, merge("d")),
        (dir(false, None), false, On, UpperOnly),
        // absolute redirect: merge at that path, even in a parent without lowers
        (dir(false, Some("/a/b")), true, On, MergeAt(p("a/b"))),
        (dir(false, Some("/a/b")), false, On, MergeAt(p("a/b"))),
        (dir(false, Some("/a/b")), true, Follow, MergeAt(p("a/b"))),
        (dir(false, Some("/a/b")), true, Off, MergeAt(p("a/b"))),
        // relative redirect: the old name in the same parent's lowers
        (dir(false, Some("old")), true, On, merge("old")),
        (dir(false, Some("old")), false, On, UpperOnly),
        // nofollow ignores redirects: the directory merges under its own name
        (dir(false, Some("/a/b")), true, NoFollow, merge("d")),
        (dir(false, Some("old")), true, NoFollow, merge("d")),
        (dir(false, Some("/a/b")), false, NoFollow, UpperOnly),
    ];
    for (i, (e, parent_lowers, mode, want)) in table.into_iter().enumerate() {
        assert_eq!(
            upper_verdict(&e, name, parent_lowers, mode),
            want,
            "row {i}: {e:?} parent_lowers={parent_lowers} {mode:?}"
        );
    }
}

#[test]
fn lookup_winner() {
    use LowerEntry::*;
    #[rustfmt::skip]
    let table = [
        (false, Absent, Winner::Missing),
        (false, NonDir, Winner::Lower),
        (false, Dir, Winner::MergedDir),
        (true, Absent, Winner::UpperDirAlone),
        // an upper directory over a lower file: the file is hidden (the dir is not merged)
        (true, NonDir, Winner::UpperDirAlone),
        (true, Dir, Winner::MergedDir),
    ];
    for (upper_dir, lower, want) in table {
        assert_eq!(winner(upper_dir, lower), want, "{upper_dir} {lower:?}");
    }
}

#[test]
fn redirect_targets() {
    #[rustfmt::skip]
    let table = [
        ("a/b/c", "/x/y", "x/y"),
        ("a/b/c", "old", "a/b/old"),
        ("c", "old", "old"),
        ("c", "/", ""),
        ("a/c", "../z", "a/../z"),
    ];
    for (dir_path, r, want) in table {
        assert_eq!(redirect_target(Path::new(dir_path), Path::new(r)), p(want));
    }
}

#[test]
fn stacking_lower_directories() {
    let marks = |opaque, r: Option<&str>| LowerDirMarks {
        opaque,
        redirect: r.map(p),
    };
    #[rustfmt::skip]
    let table = [
        ("a/d", marks(false, None), RedirectDir::On, StackNext::Continue),
        ("a/d", marks(true, None), RedirectDir::On, StackNext::Stop),
        ("a/d", marks(true, Some("/x")), RedirectDir::On, StackNext::Stop),
        ("a/d", marks(false, Some("/x/y")), RedirectDir::On, StackNext::Jump(p("x/y"))),
        ("a/d", marks(false, Some("old")), RedirectDir::On, StackNext::Jump(p("a/old"))),
        ("a/d", marks(false, Some("old")), RedirectDir::Follow, StackNext::Jump(p("a/old"))),
        ("a/d", marks(false, Some("old")), RedirectDir::NoFollow, StackNext::Continue),
    ];
    for (path, m, mode, want) in table {
        assert_eq!(stack_next(Path::new(path), &m, mode), want, "{path} {m:?}");
    }
}

#[test]
fn create_plans() {
    use UpperName::*;
    #[rustfmt::skip]
    let table = [
        (Absent, false, Ok(CreatePlan::InPlace)),
        (Absent, true, Err(Errno::EXIST)),
        (Present, false, Err(Errno::EXIST)),
        (Present, true, Err(Errno::EXIST)),
        // a whiteout hides the lowers: the new object replaces it atomically
        (Whiteout, true, Ok(CreatePlan::OverWhiteout)),
        (Whiteout, false, Ok(CreatePlan::OverWhiteout)),
    ];
    for (u, lower, want) in table {
        assert_eq!(create_plan(u, lower), want, "{u:?} lower={lower}");
    }
}

#[test]
fn remove_plans() {
    use UpperName::*;
    #[rustfmt::skip]
    let table = [
        (Present, true, Ok(RemovePlan::ExchangeWithWhiteout)),
        (Present, false, Ok(RemovePlan::Unlink)),
        (Absent, true, Ok(RemovePlan::Whiteout)),
        (Absent, false, Err(Errno::NOENT)),
        (Whiteout, true, Err(Errno::NOENT)),
        (Whiteout, false, Err(Errno::NOENT)),
    ];
    for (u, lower, want) in table {
        assert_eq!(remove_plan(u, lower), want, "{u:?} lower={lower}");
    }
}

type RenameResult = Result<bool, Errno>;
type RenameRow = (Side, Option<Side>, RenameFlags, RenameResult);

#[test]
fn rename_checks() {
    let f = |id| Side {
        id,
        is_dir: false,
        empty: true,
        has_lowers: true,
    };
    let d = |id, empty| Side {
        id,
        is_dir: true,
        empty,
        has_lowers: false,
    };
    let none = RenameFlags::empty();
    let (nr, ex) = (RenameFlags::NOREPLACE, RenameFlags::EXCHANGE);
    #[rustfmt::skip]
    let table: Vec<RenameRow> = vec![
        (f(1), None, none, Ok(true)),
        (f(1), Some(f(2)), none, Ok(true)),
        // two names of one hard-linked object: POSIX no-op
        (f(1), Some(f(1)), none, Ok(false)),
        (f(1), Some(d(2, true)), none, Err(Errno::ISDIR)),
        (d(1, true), Some(f(2)), none, Err(Errno::NOTDIR)),
        (d(1, true), Some(d(2, true)), none, Ok(true)),
        (d(1, true), Some(d(2, false)), none, Err(Errno::NOTEMPTY)),
        (f(1), Some(f(2)), nr, Err(Errno::EXIST)),
        (f(1), None, nr, Ok(true)),
        (f(1), None, ex, Err(Errno::NOENT)),
        // exchange swaps any two objects, even a file with a non-empty directory
        (f(1), Some(d(2, false)), ex, Ok(true)),
        (f(1), Some(f(2)), nr | ex, Err(Errno::INVAL)),
        (f(1), Some(f(2)), RenameFlags::WHITEOUT, Err(Errno::INVAL)),
    ];
    for (i, (s, t, flags, want)) in table.into_iter().enumerate() {
        assert_eq!(rename_check(s, t, flags, RedirectDir::On), want, "row {i}");
        // none of these is a lower directory: redirect_dir does not matter
        assert_eq!(
            rename_check(s, t, flags, RedirectDir::Off),
            want,
            "row {i} off"
        );
    }
}

#[test]
fn rename_of_lower_directories_without_redirects_is_exdev() {
    let low = |id, empty| Side {
        id,
        is_dir: true,
        empty,
        has_lowers: true,
    };
    let up = |id, empty| Side {
        id,
        is_dir: true,
        empty,
        has_lowers: false,
    };
    let file = Side {
        id: 9,
        is_dir: false,
        empty: true,
        has_lowers: true,
    };
    let (none, ex) = (RenameFlags::empty(), RenameFlags::EXCHANGE);
    use RedirectDir::*;
    #[rustfmt::skip]
    let table: Vec<(Side, Option<Side>, RenameFlags, RedirectDir, RenameResult)> = vec![
        (low(1, true), None, none, Off, Err(Errno::XDEV)),
        (low(1, true), None, none, Follow, Err(Errno::XDEV)),
        (low(1, true), None, none, On, Ok(true)),
        // the VFS type checks come first...
        (low(1, true), Some(file), none, Off, Err(Errno::NOTDIR)),
        // ...then EXDEV, before ENOTEMPTY
        (low(1, true), Some(up(2, false)), none, Off, Err(Errno::XDEV)),
        (low(1, true), Some(up(2, false)), none, On, Err(Errno::NOTEMPTY)),
        // a pure upper directory moves; onto a lower one it replaces it
        (up(1, true), Some(low(2, true)), none, Off, Ok(true)),
        (up(1, true), Some(low(2, false)), none, Off, Err(Errno::NOTEMPTY)),
        // exchange needs both sides movable
        (up(1, true), Some(low(2, true)), ex, Off, Err(Errno::XDEV)),
        (up(1, true), Some(low(2, true)), ex, On, Ok(true)),
        (file, Some(up(2, true)), ex, Off, Ok(true)),
        (file, None, none, Off, Ok(true)),
    ];
    for (i, (s, t, flags, mode, want)) in table.into_iter().enumerate() {
        assert_eq!(rename_check(s, t, flags, mode), want, "row {i}");
    }
}

#[test]
fn moved_directory_marks() {
    use RedirectDir::*;
    let low = Some(Path::new("a/d"));
    #[rustfmt::skip]
    let table = [
        // non-directories are never marked
        (false, None, true, On, Ok(DirMark::None)),
        (false, low, true, Off, Ok(DirMark::None)),
        // a lower or merged directory records its lower path...
        (true, low, false, On, Ok(DirMark::Redirect(p("a/d")))),
        (true, low, true, On, Ok(DirMark::Redirect(p("a/d")))),
        // ...or, when redirects may not be created, is EXDEV like the kernel
        (true, low, true, Off, Err(Errno::XDEV)),
        (true, low, true, Follow, Err(Errno::XDEV)),
        (true, low, true, NoFollow, Err(Errno::XDEV)),
        // a pure upper directory moves freely; into a merged parent it turns opaque
        (true, None, true, On, Ok(DirMark::Opaque)),
        (true, None, true, Off, Ok(DirMark::Opaque)),
        (true, None, false, Off, Ok(DirMark::None)),
    ];
    for (is_dir, lp, dest_lowers, mode, want) in table {
        assert_eq!(
            moved_dir_mark(is_dir, lp, dest_lowers, mode),
            want,
            "dir={is_dir} lower={lp:?} dest_lowers={dest_lowers} {mode:?}"
        );
    }
}

#[test]
fn rename_ways() {
    use UpperName::*;
    #[rustfmt::skip]
    let table = [
        (true, Whiteout, false, RenameWay::ExchangeWhiteout),
        (true, Whiteout, true, RenameWay::ExchangeWhiteout),
        (true, Absent, false, RenameWay::LeaveWhiteout),
        (true, Present, true, RenameWay::LeaveWhiteout),
        (false, Whiteout, true, RenameWay::ExchangeThenUnlink),
        (false, Whiteout, false, RenameWay::Plain),
        (false, Absent, true, RenameWay::Plain),
        (false, Present, false, RenameWay::Plain),
    ];
    for (positive, target, is_dir, want) in table {
        assert_eq!(
            rename_way(positive, target, is_dir),
            want,
            "{positive} {target:?} {is_dir}"
        );
    }
}

#[test]
fn copy_up_plans() {
    use FileType::*;
    #[rustfmt::skip]
    let table = [
        (RegularFile, 1, true, true, false),
        (RegularFile, 2, true, true, true),
        // index=off: the copy-up breaks a lower hard link
        (RegularFile, 2, false, true, false),
        (Directory, 5, true, false, false),
        (Symlink, 1, true, false, false),
        (Symlink, 2, true, false, true),
        (Symlink, 2, false, false, false),
        (Fifo, 1, true, false, false),
        (CharacterDevice, 3, true, false, true),
    ];
    for (kind, nlink, index, data, links) in table {
        let plan = copy_up_plan(kind, nlink, index);
        assert_eq!(plan.make, kind);
        assert_eq!(plan.copy_data, data, "{kind:?}");
        assert_eq!(
            plan.link_other_names, links,
            "{kind:?} nlink={nlink} index={index}"
        );
    }
}

#[test]
fn hard_link_identity_by_index_mode() {
    use Identity::*;
    #[rustfmt::skip]
    let table = [
        // upper hard links are one object in both modes
        (Some((10, 2)), None, false, Upper(10)),
        (Some((10, 2)), Some((5, 2)), true, Upper(10)),
        (Some((10, 1)), None, true, Own),
        // a copied-up name of a broken lower link stands alone
        (Some((10, 1)), Some((5, 2)), false, Own),
        // lower hard links: one object only with index=on
        (None, Some((5, 2)), true, Lower(5)),
        (None, Some((5, 2)), false, Own),
        (None, Some((5, 1)), true, Own),
        (None, None, true, Own),
    ];
    for (upper, lower, index, want) in table {
        assert_eq!(
            identity(upper, lower, index, true),
            want,
            "{upper:?} {lower:?} index={index}"
        );
    }
    // without an upper nothing copies up: lower hard links are one object in both modes
    for index in [false, true] {
        assert_eq!(identity(None, Some((5, 2)), index, false), Lower(5));
        assert_eq!(identity(None, Some((5, 1)), index, false), Own);
    }
}

type Chain = &'static [(u32, bool)];

#[test]
fn copy_up_order_starts_below_the_deepest_upper_ancestor() {
    #[rustfmt::skip]
    let table: [(Chain, &[u32]); 4] = [
        (&[(1, true), (2, true), (3, false), (4, false)], &[3, 4]),
        (&[(1, true), (2, true)], &[]),
        (&[(1, false), (2, false)], &[1, 2]),
        (&[], &[]),
    ];
    for (chain, want) in table {
        assert_eq!(copy_up_order(chain), want.to_vec(), "{chain:?}");
    }
}

fn raw(name: &str, kind: FileType, wh: bool) -> RawEntry {
    RawEntry {
        name: name.into(),
        kind,
        ino: 1,
        rdev_zero: wh,
    }
}

fn merged(name: &str, kind: FileType) -> Merged {
    Merged {
        name: name.into(),
        kind,
        top: 0,
        ino: 9,
        dir_layers: smallvec![],
    }
}

fn names(v: &[RawEntry]) -> Vec<&str> {
    v.iter().map(|e| e.name.to_str().unwrap()).collect()
}

#[test]
fn readdir_merges_upper_with_lowers() {
    use FileType::*;
    let upper = vec![
        raw("up", RegularFile, false),
        raw("gone", CharacterDevice, true),
        raw("both", Directory, false),
        raw("dev", CharacterDevice, false),
    ];
    let lower = [
        merged("gone", RegularFile),
        merged("both", Directory),
        merged("low", Symlink),
    ];
    let out = merge_listing(upper.clone(), &lower, true);
    // whiteouts hide, upper shadows lower, a real char device stays, lower-only names follow
    assert_eq!(names(&out), ["up", "both", "dev", "low"]);
    assert_eq!(out[1].ino, 1, "the upper entry wins");
    // without lowers (opaque or pure upper) only the upper's entries, whiteouts dropped
    assert_eq!(
        names(&merge_listing(upper, &[], false)),
        ["up", "both", "dev"]
    );
    // an empty upper shows the lowers
    assert_eq!(
        names(&merge_listing(vec![], &lower, true)),
        ["gone", "both", "low"]
    );
}

#[test]
fn redirect_dir_values() {
    for (v, want, creates, follows) in [
        ("on", Some(RedirectDir::On), true, true),
        ("follow", Some(RedirectDir::Follow), false, true),
        ("nofollow", Some(RedirectDir::NoFollow), false, false),
        ("off", Some(RedirectDir::Off), false, true),
        ("yes", None, false, false),
    ] {
        assert_eq!(RedirectDir::parse(v), want, "{v}");
        if let Some(m) = want {
            assert_eq!((m.creates(), m.follows()), (creates, follows), "{v}");
        }
    }
}

#[test]
fn indexed_hard_link_counts() {
    // at copy-up: lower count 3 (one name hidden), two names linked in the upper
    assert_eq!(nlink_xattr(3, 2), "U+1");
    assert_eq!(nlink_xattr(2, 2), "U+0");
    assert_eq!(nlink_xattr(2, 3), "U-1");
    #[rustfmt::skip]
    let table: [(u64, Option<&[u8]>, u64); 8] = [
        (2, Some(b"U+1"), 3),
        // one name removed: the upper lost a link, the view one too
        (1, Some(b"U+1"), 2),
        (2, Some(b"U-1"), 1),
        (2, Some(b"U+0"), 2),
        (2, None, 2),
        // lower-relative ("L") and malformed values are not applied
        (2, Some(b"L+1"), 2),
        (2, Some(b"U1"), 2),
        (1, Some(b"U-1"), 1),
    ];
    for (upper, x, want) in table {
        assert_eq!(overlay_nlink(upper, x), want, "{upper} {x:?}");
    }
}
