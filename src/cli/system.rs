//! `cairn system df` and `cairn system check`: what the store holds and whether it is sound.

use anyhow::{Result, bail};
use cairn_driver::image::human_size;
use cairn_driver::store::FsckProblem;
use serde_json::json;

use super::format::{Format, render_rows};
use super::store::open_images;

/// Runs `cairn system df` (`-v`: per image).
pub fn df(root: Option<&str>, verbose: bool, format: Option<String>) -> Result<()> {
    let images = open_images(root)?;
    let idx = images.index()?;
    let layers = images.layers().list()?;
    let used = idx.used_chains();
    let mut total = 0u64;
    let mut per_image = Vec::new();
    for rec in idx.images.values() {
        let (size, unique) = images.sizes(&idx, rec)?;
        per_image.push((rec, size, unique));
    }
    for l in &layers {
        total += l.size;
    }
    // Images no container was created from are reclaimable, as docker counts it.
    let users = cairn_runtime::container::image_users(images.store().root());
    let reclaim_layers: u64 = per_image
        .iter()
        .filter(|(r, _, _)| !users.contains_key(&r.id.to_string()))
        .map(|(_, _, unique)| unique)
        .sum();
    let containers: Vec<std::path::PathBuf> = users
        .values()
        .flatten()
        .map(|c| cairn_runtime::container::containers_dir(images.store().root()).join(c))
        .collect();
    let running = containers
        .iter()
        .filter(|d| {
            std::fs::read_to_string(d.join("state.json")).is_ok_and(|s| s.contains("\"running\""))
        })
        .count();
    let container_bytes: u64 = containers
        .iter()
        .map(|d| tree_bytes(&d.join("upper")))
        .sum();
    let pct = |part: u64| (part * 100).checked_div(total).unwrap_or(0);
    let rows = vec![
        json!({"Type": "Images", "TotalCount": idx.images.len(), "Active": users.len(),
            "Size": human_size(total), "Reclaimable": format!("{} ({}%)", human_size(reclaim_layers), pct(reclaim_layers))}),
        json!({"Type": "Containers", "TotalCount": containers.len(), "Active": running,
            "Size": human_size(container_bytes), "Reclaimable": human_size(container_bytes)}),
        json!({"Type": "Layers", "TotalCount": layers.len(), "Active": used.len(),
            "Size": human_size(total), "Reclaimable": human_size(layers.iter().filter(|l| !used.contains(&l.chain_id)).map(|l| l.size).sum())}),
    ];
    let headers = std::collections::BTreeMap::from([
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ]);
    let fmt = Format::parse(
        format.as_deref(),
        "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
    );
    print!("{}", render_rows(&fmt, &rows, &headers)?);
    if verbose {
        println!("\nImages space usage:\n");
        let rows: Vec<_> = per_image
            .iter()
            .map(|(r, size, unique)| {
                json!({"ID": &r.id.hex()[..12], "Tags": idx.tags_of(&r.id).join(","),
                "Size": human_size(*size), "SharedSize": human_size(size - unique), "UniqueSize": human_size(*unique)})
            })
            .collect();
        let headers = std::collections::BTreeMap::from([
            ("ID", "IMAGE ID"),
            ("Tags", "TAGS"),
            ("Size", "SIZE"),
            ("SharedSize", "SHARED SIZE"),
            ("UniqueSize", "UNIQUE SIZE"),
        ]);
        let fmt =
            Format::Table("{{.ID}}\t{{.Tags}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}".into());
        print!("{}", render_rows(&fmt, &rows, &headers)?);
    }
    Ok(())
}

/// Runs `cairn system check`: verifies every blob digest, every layer, every image's config
/// and layers. Leftovers of interrupted writers (stale temp entries) are always cleaned; with
/// `--repair`, damaged and orphaned entries are removed too. Exits 1 when problems remain.
pub fn check(root: Option<&str>, repair: bool) -> Result<()> {
    let images = open_images(root)?;
    let mut report = images.store().fsck(false)?;
    let stale = report
        .orphans
        .iter()
        .filter(|i| matches!(i.problem, FsckProblem::StaleStaging))
        .count();
    if stale > 0 {
        for i in report
            .orphans
            .iter()
            .filter(|i| matches!(i.problem, FsckProblem::StaleStaging))
        {
            let _ = std::fs::remove_dir_all(&i.path).or_else(|_| std::fs::remove_file(&i.path));
        }
        println!(
            "removed {stale} leftover temp entr{} of interrupted writes",
            if stale == 1 { "y" } else { "ies" }
        );
        report
            .orphans
            .retain(|i| !matches!(i.problem, FsckProblem::StaleStaging));
    }
    let idx = images.index()?;
    let mut problems = Vec::new();
    for rec in idx.images.values() {
        if !images.store().has_blob(&rec.id) {
            problems.push(format!("image {}: config blob missing", rec.id));
        }
        if let Err(e) = images.lower_dirs(rec) {
            problems.push(format!("{e}"));
        }
    }
    for i in report.damaged.iter().chain(report.orphans.iter()) {
        match i.problem {
            // A layer of an interrupted load whose parent never arrived: valid, unused,
            // reclaimable (`image prune` / `--repair`), not damage.
            FsckProblem::LayerMissingParent { .. } => {
                println!("unused layer (interrupted import): {}", i.path.display())
            }
            _ => problems.push(format!("{}: {:?}", i.path.display(), i.problem)),
        }
    }
    println!(
        "checked {} blobs, {} layers, {} images",
        report.blobs_checked,
        report.layers_checked,
        idx.images.len()
    );
    if problems.is_empty() {
        println!("store is consistent");
        return Ok(());
    }
    for p in &problems {
        println!("problem: {p}");
    }
    if repair {
        let r = images.store().fsck(true)?;
        println!(
            "repaired: removed {} damaged and {} orphaned entries",
            r.damaged.len(),
            r.orphans.len()
        );
        return Ok(());
    }
    bail!(
        "{} problem(s) found; run `cairn system check --repair` to remove them",
        problems.len()
    )
}

/// Bytes of the regular files under a directory (not following symlinks).
pub(super) fn tree_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
