//! Hostile and broken layer streams: each is refused with an error naming the entry (or the
//! stream), and the store is left with nothing new (no layer, empty tmp/).

mod common;

use cairn_driver::archive::tar_in::ImportLimits;
use cairn_driver::error::{DigestKind, EntryError, Error};
use cairn_driver::layer::ImportOptions;
use cairn_driver::{Digest, LayerStore};
use common::*;
use tar::EntryType;

/// Imports `data`, expects an entry error for `entry`, checks the store is untouched.
fn refused(ls: &LayerStore, data: &[u8], entry: &str) -> EntryError {
    let err = ls.import(data, None, None).unwrap_err();
    assert_store_empty(ls);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{entry:?}")),
        "message {msg:?} names {entry:?}"
    );
    match err {
        Error::Entry { entry: e, problem } => {
            assert_eq!(e, entry);
            problem
        }
        other => panic!("expected an entry error for {entry}, got {other}"),
    }
}

#[test]
fn dotdot_is_refused() {
    let (_t, ls) = layer_store();
    for bad in ["../x", "a/../../x", "a/b/../../../etc/x", "/../x"] {
        let mut t = Tar::new();
        t.file("ok", b"1").file(bad, b"evil");
        let p = refused(&ls, &t.finish(), bad);
        assert!(matches!(p, EntryError::DotDot), "{bad}: {p}");
    }
}

#[test]
fn absolute_paths_are_made_relative() {
    let (_t, ls) = layer_store();
    let mut t = Tar::new();
    t.file("/etc/hostname", b"inside")
        .dir("/abs/")
        .file("//abs///x", b"x");
    let info = ls.import(&t.finish()[..], None, None).unwrap();
    assert_eq!(
        std::fs::read(info.path.join("etc/hostname")).unwrap(),
        b"inside"
    );
    assert_eq!(std::fs::read(info.path.join("abs/x")).unwrap(), b"x");
}

#[test]
fn symlink_then_write_through_is_refused() {
    let (t, ls) = layer_store();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("passwd"), b"original").unwrap();
    let cases: Vec<(String, &str)> = vec![
        ("/etc".into(), "a/passwd"),
        (outside.to_string_lossy().into_owned(), "a/passwd"),
        ("../../../../../../../..".into(), "a/passwd"),
        (".".into(), "a/passwd"),
    ];
    for (target, entry) in cases {
        let mut tar = Tar::new();
        tar.symlink("a", &target).file(entry, b"pwned");
        let p = refused(&ls, &tar.finish(), entry);
        assert!(matches!(p, EntryError::ThroughSymlink), "{target}: {p}");
    }
    // A symlinked directory deeper down, and a dir entry through it.
    let mut tar = Tar::new();
    tar.dir("d/")
        .symlink("d/l", outside.to_str().unwrap())
        .dir("d/l/sub/");
    let p = refused(&ls, &tar.finish(), "d/l/sub/");
    assert!(matches!(p, EntryError::ThroughSymlink), "{p}");
    // Whiteout and opaque markers through a symlink.
    for entry in ["a/.wh.passwd", "a/.wh..wh..opq"] {
        let mut tar = Tar::new();
        tar.symlink("a", outside.to_str().unwrap()).file(entry, b"");
        let p = refused(&ls, &tar.finish(), entry);
        assert!(matches!(p, EntryError::ThroughSymlink), "{entry}: {p}");
    }
    assert_eq!(std::fs::read(outside.join("passwd")).unwrap(), b"original");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

#[test]
fn replacing_a_symlink_does_not_follow_it() {
    let (t, ls) = layer_store();
    let victim = t.path().join("victim");
    std::fs::write(&victim, b"original").unwrap();
    let mut tar = Tar::new();
    tar.symlink("f", victim.to_str().unwrap()).file("f", b"new");
    let info = ls.import(&tar.finish()[..], None, None).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"original");
    assert_eq!(std::fs::read(info.path.join("f")).unwrap(), b"new");
    assert!(!info.path.join("f").symlink_metadata().unwrap().is_symlink());
}

#[test]
fn hardlinks_must_stay_inside() {
    let (_t, ls) = layer_store();
    let mut t = Tar::new();
    t.file("ok", b"1").hardlink("x", "../../etc/passwd");
    let p = refused(&ls, &t.finish(), "x");
    assert!(matches!(p, EntryError::LinkOutside { .. }), "{p}");

    // Absolute target: made relative, and not an earlier entry of this layer.
    let mut t = Tar::new();
    t.hardlink("y", "/etc/passwd");
    let p = refused(&ls, &t.finish(), "y");
    assert!(matches!(p, EntryError::LinkTargetMissing { .. }), "{p}");

    // Through a symlink to outside.
    let mut t = Tar::new();
    t.symlink("a", "/etc").hardlink("z", "a/passwd");
    let p = refused(&ls, &t.finish(), "z");
    assert!(matches!(p, EntryError::LinkTargetMissing { .. }), "{p}");

    // Target appears later in the stream.
    let mut t = Tar::new();
    t.hardlink("early", "late").file("late", b"x");
    let p = refused(&ls, &t.finish(), "early");
    assert!(matches!(p, EntryError::LinkTargetMissing { .. }), "{p}");

    // A directory is never a hardlink target.
    let mut t = Tar::new();
    t.dir("d/").hardlink("l", "d");
    let p = refused(&ls, &t.finish(), "l");
    assert!(matches!(p, EntryError::LinkTargetMissing { .. }), "{p}");
}

#[test]
fn overlong_names_are_refused() {
    let (_t, ls) = layer_store();
    let long = "n".repeat(256);
    let mut t = Tar::new();
    t.file(&format!("dir/{long}"), b"x");
    let p = refused(&ls, &t.finish(), &format!("dir/{long}"));
    assert!(matches!(p, EntryError::NameTooLong { len: 256 }), "{p}");
    // 255 is fine, via PAX and via GNU long names.
    let ok = "m".repeat(255);
    let mut t = Tar::new();
    t.file(&format!("p/{ok}"), b"pax")
        .gnu_file(&format!("g/{ok}"), b"gnu");
    let info = ls.import(&t.finish()[..], None, None).unwrap();
    assert_eq!(
        std::fs::read(info.path.join("p").join(&ok)).unwrap(),
        b"pax"
    );
    assert_eq!(
        std::fs::read(info.path.join("g").join(&ok)).unwrap(),
        b"gnu"
    );
}

#[test]
fn bad_whiteouts_and_types_are_refused() {
    let (_t, ls) = layer_store();
    for bad in [".wh.", "d/.wh..", "d/.wh..."] {
        let mut t = Tar::new();
        t.file(bad, b"");
        let p = refused(&ls, &t.finish(), bad);
        assert!(
            matches!(p, EntryError::BadWhiteout | EntryError::DotDot),
            "{bad}: {p}"
        );
    }
    let mut t = Tar::new();
    t.raw(Raw::new(EntryType::new(b'Z'), b"weird"));
    let p = refused(&ls, &t.finish(), "weird");
    assert!(matches!(p, EntryError::UnsupportedType(b'Z')), "{p}");
}

fn sample() -> Vec<u8> {
    let mut t = Tar::new();
    t.dir("d/");
    for i in 0..20 {
        t.file(
            &format!("d/f{i}"),
            format!("content {i} ").repeat(200).as_bytes(),
        );
    }
    t.finish()
}

#[test]
fn truncated_and_corrupt_streams_are_refused() {
    let (_t, ls) = layer_store();
    let plain = sample();
    let gz = gzip(&plain);
    let zs = zstd(&plain);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated gzip", gz[..gz.len() / 2].to_vec()),
        ("gzip without trailer", gz[..gz.len() - 4].to_vec()),
        ("truncated zstd", zs[..zs.len() / 2].to_vec()),
        ("truncated tar mid-file", plain[..512 * 3 + 100].to_vec()),
        (
            "truncated tar at a block boundary",
            plain[..512 * 4].to_vec(),
        ),
        ("empty stream", Vec::new()),
        (
            "gzip with garbage after",
            [gz.clone(), b"garbage!".to_vec()].concat(),
        ),
        ("corrupt gzip", {
            let mut c = gz.clone();
            let mid = c.len() / 2;
            for b in &mut c[mid..mid + 16] {
                *b ^= 0x5a;
            }
            c
        }),
    ];
    for (what, data) in cases {
        let err = ls.import(&data[..], None, None).unwrap_err();
        assert!(
            matches!(err, Error::Stream { .. } | Error::Entry { .. }),
            "{what}: unexpected {err}"
        );
        assert_store_empty(&ls);
    }
    // The intact streams import, to the same diff_id.
    let a = ls.import(&gz[..], None, None).unwrap();
    let b = ls.import(&zs[..], None, None).unwrap();
    let c = ls.import(&plain[..], None, None).unwrap();
    assert_eq!(a.chain_id, b.chain_id);
    assert_eq!(b.chain_id, c.chain_id);
    assert_eq!(a.diff_id, Digest::of(&plain));
    assert_eq!(a.blob, Some(Digest::of(&gz)));
    assert_layers(&ls, 1);
}

#[test]
fn wrong_expected_digests_are_refused() {
    let (_t, ls) = layer_store();
    let plain = sample();
    let gz = gzip(&plain);
    let wrong = Digest::of(b"something else");
    let err = ls.import(&gz[..], None, Some(&wrong)).unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { kind: DigestKind::DiffId, expected, .. } if expected == wrong),
        "{err}"
    );
    assert_store_empty(&ls);
    let diff_id = Digest::of(&plain);
    let opts = ImportOptions {
        parent: None,
        expected_diff_id: Some(&diff_id),
        expected_blob: Some(&wrong),
    };
    let err = ls.import_with(&gz[..], &opts).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DigestMismatch {
                kind: DigestKind::LayerBlob,
                ..
            }
        ),
        "{err}"
    );
    assert_store_empty(&ls);
    // Present layer: the stream is still read and verified.
    ls.import(&gz[..], None, Some(&diff_id)).unwrap();
    let err = ls
        .import(&zstd(b"not the same")[..], None, Some(&diff_id))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DigestMismatch {
                kind: DigestKind::DiffId,
                ..
            }
        ),
        "{err}"
    );
    assert_layers(&ls, 1);
}

#[test]
fn layer_bombs_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let store = cairn_driver::Store::open(t.path()).unwrap();
    let ls = LayerStore::new(store).with_limits(ImportLimits {
        min_free_bytes: 0,
        max_layer_bytes: Some(10_000),
        ..Default::default()
    });
    let mut tar = Tar::new();
    tar.file("small", &[1; 6000]).file("big", &[2; 6000]);
    let p = refused(&ls, &tar.finish(), "big");
    assert!(matches!(p, EntryError::TooLarge { limit: 10_000 }), "{p}");

    // Free space: ask for a reserve larger than any disk.
    let store = cairn_driver::Store::open(t.path()).unwrap();
    let ls = LayerStore::new(store).with_limits(ImportLimits {
        min_free_bytes: u64::MAX / 2,
        max_layer_bytes: None,
        ..Default::default()
    });
    let mut tar = Tar::new();
    tar.file("empty-is-fine", b"").file("data", b"x");
    let p = refused(&ls, &tar.finish(), "data");
    assert!(matches!(p, EntryError::NoSpace { needed: 1, .. }), "{p}");
}

#[test]
fn gzip_bombs_are_refused_past_the_floor() {
    // 8 MiB of zeros gzip to ~8 KiB (ratio ~1000).
    let mut tar = Tar::new();
    tar.file("zeros", &vec![0u8; 8 << 20]);
    let gz = gzip(&tar.finish());
    let t = tempfile::tempdir().unwrap();
    let limited = |max_expand, expand_floor| {
        let store = cairn_driver::Store::open(t.path()).unwrap();
        LayerStore::new(store).with_limits(ImportLimits {
            max_expand,
            expand_floor,
            ..Default::default()
        })
    };
    let ls = limited(Some(100), 1 << 20);
    let err = ls.import(&gz[..], None, None).unwrap_err();
    assert!(
        matches!(err, Error::TooExpanded { limit: 100, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("CAIRN_MAX_EXPAND"), "{err}");
    assert_store_empty(&ls);
    // Below the floor, or with the limit off, or a high enough limit: imported.
    for (max, floor) in [(Some(100), 16 << 20), (None, 0), (Some(5000), 0)] {
        let ls = limited(max, floor);
        ls.import(&gz[..], None, None).unwrap();
    }
}
