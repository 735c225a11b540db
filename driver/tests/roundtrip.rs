//! Import every entry type (with whiteouts and an opaque dir), check the overlay-format result,
//! export it back, re-import, and check the tars are stable and deterministic.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use cairn_driver::Digest;
use cairn_driver::archive::Compression;
use cairn_driver::archive::tar_out::export_dir;
use cairn_driver::error::Error;
use common::*;
use tar::EntryType;

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A layer with every entry type, owners, modes, xattrs, long names, whiteouts and an opaque dir.
fn full_layer() -> Vec<u8> {
    let long_dir = format!("long/{}", "x".repeat(120));
    let long_target = format!("/{}", "t".repeat(150));
    let mut t = Tar::new();
    let mut d = Raw::new(EntryType::Directory, b"etc/");
    d.mode = 0o750;
    d.uid = 1000;
    d.gid = 1001;
    d.mtime = 1_000_000_000;
    t.raw(d);
    let mut f = Raw::new(EntryType::Regular, b"etc/config");
    f.data = b"hello\n";
    f.uid = 1000;
    f.gid = 1001;
    f.mode = 0o640;
    f.pax = vec![
        ("SCHILY.xattr.user.note".into(), b"kept".to_vec()),
        (
            "SCHILY.xattr.trusted.overlay.custom".into(),
            b"escaped".to_vec(),
        ),
    ];
    t.raw(f);
    let mut s = Raw::new(EntryType::Regular, b"bin/suid");
    s.data = b"#!/bin/true\n";
    s.mode = 0o4755;
    t.raw(s);
    t.hardlink("bin/suid-link", "bin/suid");
    t.symlink("bin/sh", "/bin/busybox");
    t.symlink("longlink", &long_target);
    let mut c = Raw::new(EntryType::Char, b"dev/null");
    c.dev = (1, 3);
    c.mode = 0o666;
    t.raw(c);
    let mut b = Raw::new(EntryType::Block, b"dev/loop0");
    b.dev = (7, 0);
    b.mode = 0o660;
    b.gid = 6;
    t.raw(b);
    let mut p = Raw::new(EntryType::Fifo, b"run/fifo");
    p.mode = 0o600;
    t.raw(p);
    t.file(".wh.gone", b"");
    t.dir("etc/sub/").file("etc/sub/.wh.old", b"");
    t.dir("opq/")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new", b"n");
    t.file(&format!("{long_dir}/file"), b"long");
    t.file("empty", b"");
    t.finish()
}

#[test]
fn import_translates_everything() {
    if !need_root("import_translates_everything") {
        return;
    }
    let (_t, ls) = layer_store();
    let data = full_layer();
    let info = ls
        .import(&gzip(&data)[..], None, Some(&Digest::of(&data)))
        .unwrap();
    let p = &info.path;
    let md = |rel: &str| p.join(rel).symlink_metadata().unwrap();

    let etc = md("etc");
    assert_eq!(
        (etc.mode() & 0o7777, etc.uid(), etc.gid()),
        (0o750, 1000, 1001)
    );
    assert_eq!(
        etc.mtime(),
        1_000_000_000,
        "dir mtime is set after its children"
    );
    let cfg = md("etc/config");
    assert_eq!(
        (cfg.mode() & 0o7777, cfg.uid(), cfg.gid()),
        (0o640, 1000, 1001)
    );
    assert_eq!(cfg.mtime(), MTIME as i64);
    assert_eq!(
        xattr(&p.join("etc/config"), "user.note").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(xattr(&p.join("etc/config"), "trusted.overlay.custom"), None);
    assert_eq!(
        xattr(&p.join("etc/config"), "trusted.overlay.overlay.custom").as_deref(),
        Some(&b"escaped"[..])
    );
    assert_eq!(md("bin/suid").mode() & 0o7777, 0o4755);
    assert_eq!(md("bin/suid").ino(), md("bin/suid-link").ino());
    assert_eq!(md("bin/suid").nlink(), 2);
    assert_eq!(
        std::fs::read_link(p.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        std::fs::read_link(p.join("longlink"))
            .unwrap()
            .as_os_str()
            .len(),
        151
    );
    let null = md("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.rdev(), null.mode() & 0o7777),
        (rustix::fs::makedev(1, 3), 0o666)
    );
    let lp = md("dev/loop0");
    assert!(lp.file_type().is_block_device());
    assert_eq!((lp.rdev(), lp.gid()), (rustix::fs::makedev(7, 0), 6));
    assert!(md("run/fifo").file_type().is_fifo());
    for wh in ["gone", "etc/sub/old"] {
        let m = md(wh);
        assert!(
            m.file_type().is_char_device() && m.rdev() == 0,
            "{wh} is a whiteout"
        );
    }
    assert!(!p.join(".wh.gone").exists());
    assert_eq!(
        xattr(&p.join("opq"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!p.join("opq/.wh..wh..opq").exists());
    assert_eq!(
        std::fs::read(p.join(format!("long/{}/file", "x".repeat(120)))).unwrap(),
        b"long"
    );
    assert_eq!(info.size, 6 + 12 + 1 + 4);
}

/// (path, type, link) of each entry of a tar, in order.
fn listing(data: &[u8]) -> Vec<(String, EntryType, Option<String>)> {
    let mut a = tar::Archive::new(data);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().entry_type(),
                link,
            )
        })
        .collect()
}

#[test]
fn export_reimport_is_stable_and_deterministic() {
    if !need_root("export_reimport_is_stable_and_deterministic") {
        return;
    }
    let (_t, ls) = layer_store();
    let l1 = ls.import(&full_layer()[..], None, None).unwrap();

    let mut e1 = Vec::new();
    let x1 = ls.export(&l1.chain_id, &mut e1, Compression::None).unwrap();
    assert_eq!(x1.diff_id, Digest::of(&e1));
    assert_eq!((x1.digest, x1.size), (x1.diff_id, e1.len() as u64));
    let mut again = Vec::new();
    ls.export(&l1.chain_id, &mut again, Compression::None)
        .unwrap();
    assert_eq!(e1, again, "export twice gives identical bytes");

    let list = listing(&e1);
    let names: Vec<&str> = list.iter().map(|(p, _, _)| p.as_str()).collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{n} in {names:?}"))
    };
    assert!(names.contains(&".wh.gone"));
    assert!(names.contains(&"etc/sub/.wh.old"));
    assert_eq!(
        pos("opq/.wh..wh..opq"),
        pos("opq/") + 1,
        "opaque marker first in its dir"
    );
    let link = &list[pos("bin/suid-link")];
    assert_eq!(
        (link.1, link.2.as_deref()),
        (EntryType::Link, Some("bin/suid"))
    );
    assert!(!names.iter().any(|n| n.contains("trusted.overlay.opaque")));
    // Sorted by name within each directory: bin/ before dev/ before etc/.
    assert!(pos("bin/") < pos("dev/") && pos("dev/") < pos("etc/"));

    // Re-import of the export: same diff_id, and exporting that gives the same bytes.
    let l2 = ls.import(&e1[..], None, None).unwrap();
    assert_eq!(l2.diff_id, x1.diff_id);
    let mut e2 = Vec::new();
    ls.export(&l2.chain_id, &mut e2, Compression::None).unwrap();
    assert_eq!(e1, e2, "export ∘ import ∘ export is a fixpoint");

    // gzip and zstd: deterministic, and they wrap the same tar.
    let mut g1 = Vec::new();
    let mut g2 = Vec::new();
    let xg = ls.export(&l1.chain_id, &mut g1, Compression::Gzip).unwrap();
    ls.export(&l2.chain_id, &mut g2, Compression::Gzip).unwrap();
    assert_eq!(g1, g2);
    assert_eq!(gunzip(&g1), e1);
    assert_eq!(
        (xg.diff_id, xg.digest, xg.size),
        (x1.diff_id, Digest::of(&g1), g1.len() as u64)
    );
    assert_eq!(&g1[4..8], &[0, 0, 0, 0], "gzip header mtime is 0");
    assert_eq!(g1[3] & 0x08, 0, "no file name in the gzip header");
    let mut z = Vec::new();
    let xz = ls.export(&l1.chain_id, &mut z, Compression::Zstd).unwrap();
    assert_eq!(zstd::decode_all(&z[..]).unwrap(), e1);
    let l3 = ls.import(&z[..], None, Some(&xz.diff_id)).unwrap();
    assert_eq!(l3.chain_id, l2.chain_id);
    assert_eq!(
        l3.blob, l2.blob,
        "already present: the stored layer is returned"
    );

    // Cross-check with GNU tar, when installed.
    if let Ok(mut child) = std::process::Command::new("tar")
        .args(["-tvf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&e1).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "GNU tar reads the export");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("bin/suid-link link to bin/suid"), "{text}");
        assert!(
            text.contains(&format!("long/{}/file", "x".repeat(120))),
            "{text}"
        );
    }
}

#[test]
fn export_of_an_upper() {
    let t = tempfile::tempdir().unwrap();
    let up = t.path().join("upper");
    std::fs::create_dir_all(up.join("d")).unwrap();
    std::fs::write(up.join("d/a"), b"a").unwrap();
    std::fs::hard_link(up.join("d/a"), up.join("b")).unwrap();
    // OCI-form markers (unprivileged uppers) pass through as they are.
    std::fs::write(up.join("d/.wh.gone"), b"").unwrap();
    std::fs::write(up.join("d/.wh..wh..opq"), b"").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(up.join("sock")).unwrap();
    let mut out = Vec::new();
    let x = export_dir(&up, &mut out, Compression::None).unwrap();
    assert_eq!(x.diff_id, Digest::of(&out));
    let names: Vec<String> = listing(&out).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(names, ["b", "d/", "d/.wh..wh..opq", "d/.wh.gone", "d/a"]);
    let l = listing(&out);
    assert_eq!((l[4].1, l[4].2.as_deref()), (EntryType::Link, Some("b")));
}

#[test]
fn export_refuses_redirect() {
    if !need_root("export_refuses_redirect") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let up = t.path().join("upper");
    std::fs::create_dir_all(up.join("moved")).unwrap();
    rustix::fs::lsetxattr(
        up.join("moved"),
        "trusted.overlay.redirect",
        b"/orig",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let err = export_dir(&up, std::io::sink(), Compression::None).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedRedirect { path } if path.ends_with("moved")),
        "{err}"
    );
    assert!(err.to_string().contains("Unsupported redirect"));
}

/// Whiteouts in whatever form the importer may write (overlay as root, OCI files otherwise)
/// export to the same OCI entries.
#[test]
fn whiteouts_export_the_same_in_either_form() {
    let (_t, ls) = layer_store();
    let mut t = Tar::new();
    t.dir("d/")
        .file("d/.wh.gone", b"")
        .dir("o/")
        .file("o/.wh..wh..opq", b"")
        .file("o/x", b"x");
    let info = ls.import(&t.finish()[..], None, None).unwrap();
    let want = if rustix::process::geteuid().is_root() {
        cairn_driver::archive::WhiteoutForm::Overlay
    } else {
        cairn_driver::archive::WhiteoutForm::Oci
    };
    assert_eq!(info.whiteouts, want);
    let mut out = Vec::new();
    ls.export(&info.chain_id, &mut out, Compression::None)
        .unwrap();
    let names: Vec<String> = listing(&out).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(names, ["d/", "d/.wh.gone", "o/", "o/.wh..wh..opq", "o/x"]);
}
