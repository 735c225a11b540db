//! The layer store API: parallel imports of one image, get/list/remove, fsck of layers.

mod common;

use cairn_driver::error::Error;
use cairn_driver::store::FsckProblem;
use cairn_driver::{Digest, chain_id};
use common::*;

fn layer(i: usize) -> Vec<u8> {
    let mut t = Tar::new();
    t.dir(&format!("l{i}/"));
    for j in 0..50 {
        t.file(
            &format!("l{i}/f{j}"),
            format!("layer {i} file {j}").as_bytes(),
        );
    }
    t.finish()
}

#[test]
fn parallel_import_of_a_stack() {
    let (_t, ls) = layer_store();
    let tars: Vec<Vec<u8>> = (0..4).map(layer).collect();
    let diff_ids: Vec<Digest> = tars.iter().map(|t| Digest::of(t)).collect();
    let streams: Vec<(Vec<u8>, Digest)> = tars
        .iter()
        .zip(&diff_ids)
        .map(|(t, d)| (gzip(t), *d))
        .collect();
    let infos = ls
        .import_stack(streams.iter().map(|(s, d)| (&s[..], *d)).collect())
        .unwrap();
    assert_eq!(infos.len(), 4);
    for (i, info) in infos.iter().enumerate() {
        assert_eq!(info.diff_id, diff_ids[i]);
        assert_eq!(Some(info.chain_id), chain_id(&diff_ids[..=i]));
        assert_eq!(
            info.parent,
            if i == 0 {
                None
            } else {
                Some(infos[i - 1].chain_id)
            }
        );
        assert!(info.path.join(format!("l{i}/f49")).is_file());
        assert_eq!(ls.get(&info.chain_id).unwrap().as_ref(), Some(info));
    }
    assert_layers(&ls, 4);
    let listed: Vec<Digest> = ls.list().unwrap().into_iter().map(|l| l.chain_id).collect();
    let mut want: Vec<Digest> = infos.iter().map(|l| l.chain_id).collect();
    want.sort();
    assert_eq!(listed, want);
    assert!(ls.store().fsck(false).unwrap().is_clean());
}

#[test]
fn same_layer_from_many_threads() {
    let (_t, ls) = layer_store();
    let data = gzip(&layer(7));
    let infos: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| ls.import(&data[..], None, None).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(infos.windows(2).all(|w| w[0] == w[1]));
    assert_layers(&ls, 1);
}

#[test]
fn remove_respects_children() {
    let (_t, ls) = layer_store();
    let base = ls.import(&layer(0)[..], None, None).unwrap();
    let top = ls
        .import(&layer(1)[..], Some(&base.chain_id), None)
        .unwrap();
    assert_ne!(top.chain_id, top.diff_id);
    let err = ls.remove(&base.chain_id).unwrap_err();
    assert!(
        matches!(err, Error::LayerInUse { chain, child } if chain == base.chain_id && child == top.chain_id),
        "{err}"
    );
    ls.remove(&top.chain_id).unwrap();
    ls.remove(&base.chain_id).unwrap();
    assert!(matches!(
        ls.remove(&base.chain_id),
        Err(Error::LayerNotFound { .. })
    ));
    assert_eq!(ls.get(&base.chain_id).unwrap(), None);
    assert_store_empty(&ls);
}

#[test]
fn fsck_reports_damaged_and_orphan_layers() {
    let (_t, ls) = layer_store();
    let base = ls.import(&layer(0)[..], None, None).unwrap();
    let mid = ls
        .import(&layer(1)[..], Some(&base.chain_id), None)
        .unwrap();
    let top = ls.import(&layer(2)[..], Some(&mid.chain_id), None).unwrap();
    let other = ls.import(&layer(3)[..], None, None).unwrap();
    let dir = |l: &cairn_driver::LayerInfo| l.path.parent().unwrap().to_path_buf();
    // Damage `base`: its diff disappears. Its children become orphans.
    std::fs::remove_dir_all(&base.path).unwrap();
    // Damage `other`: meta.json is garbage.
    std::fs::write(dir(&other).join("meta.json"), b"{").unwrap();
    let rep = ls.store().fsck(false).unwrap();
    assert_eq!(rep.layers_checked, 4);
    let damaged: Vec<_> = rep
        .damaged
        .iter()
        .map(|i| (i.path.clone(), i.problem.clone()))
        .collect();
    assert!(
        damaged.contains(&(dir(&base), FsckProblem::LayerMissingDiff)),
        "{damaged:?}"
    );
    assert!(
        damaged.contains(&(dir(&other), FsckProblem::LayerBadMeta)),
        "{damaged:?}"
    );
    let orphans: Vec<_> = rep.orphans.iter().map(|i| i.path.clone()).collect();
    assert!(
        orphans.contains(&dir(&mid)) && orphans.contains(&dir(&top)),
        "{orphans:?}"
    );
    let rep = ls.store().fsck(true).unwrap();
    assert!(rep.repaired);
    assert!(ls.store().fsck(false).unwrap().is_clean());
    assert_store_empty(&ls);
}
