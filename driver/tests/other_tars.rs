//! Layer tars written by other tools import as those tools' readers see them: GNU tar (long
//! names, GNU sparse files), PAX (long names, PAX sparse), and streams that end right after
//! the last entry without the two zero blocks, even without the last entry's block padding
//! (umoci, Go's archive/tar without Close). A stream cut inside a header or an entry's data
//! is still refused as truncated.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use cairn_driver::error::Error;
use common::*;

/// The tar without its end-of-archive zero blocks (what a Go writer never closed leaves).
fn without_trailer(mut tar: Vec<u8>) -> Vec<u8> {
    while tar.len() >= 512 && tar[tar.len() - 512..].iter().all(|b| *b == 0) {
        tar.truncate(tar.len() - 512);
    }
    tar
}

/// A tree with a long path, a sparse file (1 MiB hole, then data) and a small file.
fn make_tree(dir: &Path) -> String {
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
    std::fs::create_dir_all(dir.join("d".repeat(120))).unwrap();
    std::fs::write(dir.join(&long), b"long name").unwrap();
    let f = std::fs::File::create(dir.join("sparse")).unwrap();
    f.set_len(1 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"after the hole", 1 << 20).unwrap();
    std::fs::write(dir.join("small"), b"small").unwrap();
    long
}

/// Runs GNU tar with `args` over the tree; `None` when there is no GNU tar.
fn gnu_tar(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("tar")
        .args(args)
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .ok()?;
    assert!(out.status.success(), "tar {args:?}: {out:?}");
    Some(out.stdout)
}

fn check_tree(root: &Path, long: &str, what: &str) {
    let names = Command::new("find").arg(root).output().unwrap();
    let read = |p: &str| {
        std::fs::read(root.join(p)).unwrap_or_else(|e| {
            panic!(
                "{what}: {p}: {e}\n{}",
                String::from_utf8_lossy(&names.stdout)
            )
        })
    };
    assert_eq!(read(long), b"long name");
    assert_eq!(read("small"), b"small");
    let sparse = read("sparse");
    assert_eq!(sparse.len(), (1 << 20) + 14, "{what}");
    assert!(sparse[..1 << 20].iter().all(|b| *b == 0));
    assert_eq!(&sparse[1 << 20..], b"after the hole");
    // Nothing else (no GNUSparseFile.0/… or PaxHeaders entries as files).
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["d".repeat(120), "small".into(), "sparse".into()],
        "{what}"
    );
}

#[test]
fn gnu_pax_and_sparse_tars_import_with_and_without_trailer() {
    let src = tempfile::tempdir().unwrap();
    let long = make_tree(src.path());
    let formats: [(&str, &[&str]); 6] = [
        ("gnu", &["--format=gnu"]),
        ("gnu sparse", &["--format=gnu", "--sparse"]),
        ("pax", &["--format=pax"]),
        ("pax sparse 1.0", &["--format=pax", "--sparse"]),
        (
            "pax sparse 0.1",
            &["--format=pax", "--sparse", "--sparse-version=0.1"],
        ),
        (
            "pax sparse 0.0",
            &["--format=pax", "--sparse", "--sparse-version=0.0"],
        ),
    ];
    for (what, args) in formats {
        let Some(tar) = gnu_tar(src.path(), args) else {
            eprintln!("skipping: no tar");
            return;
        };
        for (variant, data) in [("full", tar.clone()), ("no trailer", without_trailer(tar))] {
            let (_t, ls) = layer_store();
            let info = ls
                .import(&data[..], None, None)
                .unwrap_or_else(|e| panic!("{what} ({variant}): {e}"));
            check_tree(&info.path, &long, &format!("{what} ({variant})"));
            assert_eq!(info.diff_id, cairn_driver::Digest::of(&data), "{what}");
        }
    }
}

#[test]
fn a_stream_ending_after_the_last_entry_imports_as_the_full_one() {
    let mut t = Tar::new();
    t.dir("etc/")
        .file("etc/a", b"alpha")
        .file("b", &[7u8; 1000]);
    let full = t.finish();
    let short = without_trailer(full.clone());
    assert_eq!(full.len() - short.len(), 1024);
    let (_t, ls) = layer_store();
    let a = ls.import(&full[..], None, None).unwrap();
    let b = ls.import(&short[..], None, None).unwrap();
    assert_eq!(std::fs::read(b.path.join("etc/a")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(b.path.join("b")).unwrap(), vec![7u8; 1000]);
    // A different stream (different diff_id), the same files.
    assert_ne!(a.diff_id, b.diff_id);
    assert_eq!(
        std::fs::metadata(a.path.join("b")).unwrap().size(),
        std::fs::metadata(b.path.join("b")).unwrap().size()
    );
    // Compressed the same way.
    let c = ls.import(&gzip(&short)[..], None, None).unwrap();
    assert_eq!(c.diff_id, b.diff_id);
    // umoci's layers end right after the last file's data, without its block padding.
    let mut t = Tar::new();
    t.dir("etc/").file("etc/greeting", b"hello\n");
    let unpadded = without_trailer(t.finish());
    let unpadded = &unpadded[..unpadded.len() - 512 + 6];
    let d = ls.import(unpadded, None, None).unwrap();
    assert_eq!(
        std::fs::read(d.path.join("etc/greeting")).unwrap(),
        b"hello\n"
    );
    assert_eq!(d.diff_id, cairn_driver::Digest::of(unpadded));
}

#[test]
fn a_stream_cut_inside_an_entry_is_truncated() {
    let mut t = Tar::new();
    t.file("a", &[1u8; 3000]).file("b", b"bee");
    let full = without_trailer(t.finish());
    // header a | 6 data blocks of a | header b | 1 data block of b
    let cuts = [
        ("inside a's header", 300),
        ("after a's header, before its data", 512),
        ("inside a's data, on a block boundary", 512 * 3),
        ("inside a's data", 512 * 3 + 17),
        ("inside b's header", 512 * 7 + 100),
        ("after b's header", 512 * 8),
        ("inside b's data", 512 * 8 + 2),
    ];
    assert_eq!(full.len(), 512 * 9);
    for (what, at) in cuts {
        let (_t, ls) = layer_store();
        let err = ls.import(&full[..at], None, None).unwrap_err();
        assert!(
            matches!(err, Error::Stream { .. }) && err.to_string().contains("truncated"),
            "{what}: {err}"
        );
        assert_store_empty(&ls);
    }
}
