//! `cairn system df` and `cairn system check`: what the store holds and whether it is sound.

use anyhow::Result;
use cairn_driver::image::human_size;
use cairn_engine::StoreRoot;
use serde_json::json;

use super::format::{Format, render_rows};

/// Runs `cairn system df` (`-v`: per image).
pub fn df(root: &StoreRoot, verbose: bool, format: Option<String>) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
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
    let users = cairn_engine::users::image_users(&engine.containers())?;
    let reclaim_layers: u64 = per_image
        .iter()
        .filter(|(r, _, _)| !users.contains_key(&r.id.to_string()))
        .map(|(_, _, unique)| unique)
        .sum();
    let containers: Vec<std::path::PathBuf> = users
        .values()
        .flatten()
        .map(|c| engine.containers().join(c))
        .collect();
    let running = containers
        .iter()
        .filter(|d| {
            std::fs::read_to_string(d.join("state.json")).is_ok_and(|s| s.contains("\"running\""))
        })
        .count();
    let container_bytes: u64 = containers
        .iter()
        .map(|d| cairn_engine::containers::tree_bytes(&d.join("upper")))
        .sum();
    // Blobs no image refers to (left by an interrupted rmi or import): `image prune -a` and
    // `system check --repair` remove them.
    let blobs = engine.store().blobs()?;
    let blob_bytes: u64 = blobs
        .iter()
        .map(|d| std::fs::metadata(engine.store().blob_path(d)).map_or(0, |m| m.len()))
        .sum();
    let leaked = engine.leaked_blobs_of(&idx)?;
    let pct = |part: u64| (part * 100).checked_div(total).unwrap_or(0);
    let rows = vec![
        json!({"Type": "Images", "TotalCount": idx.images.len(), "Active": users.len(),
            "Size": human_size(total), "Reclaimable": format!("{} ({}%)", human_size(reclaim_layers), pct(reclaim_layers))}),
        json!({"Type": "Containers", "TotalCount": containers.len(), "Active": running,
            "Size": human_size(container_bytes), "Reclaimable": human_size(container_bytes)}),
        json!({"Type": "Blobs", "TotalCount": blobs.len(), "Active": blobs.len() - leaked.len(),
            "Size": human_size(blob_bytes), "Reclaimable": human_size(leaked.iter().map(|(_, s)| s).sum())}),
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
/// and layers, every container's state files and image, leaked blobs and dead mounts.
/// Leftovers of interrupted writers (stale temp entries) are always cleaned; with `--repair`,
/// bad files are quarantined, missing layers extracted again from their blobs, dead mounts
/// detached and orphans removed. Exits 1 when problems remain (README).
pub fn check(root: &StoreRoot, repair: bool) -> Result<()> {
    let engine = super::store::open(root)?;
    let report = engine.check()?;
    if report.stale_removed > 0 {
        let n = report.stale_removed;
        println!(
            "removed {n} leftover temp entr{} of interrupted writes",
            if n == 1 { "y" } else { "ies" }
        );
    }
    for l in &report.unused_layers {
        println!("unused layer (interrupted import): {}", l.display());
    }
    println!(
        "checked {} blobs, {} layers, {} images",
        report.blobs_checked, report.layers_checked, report.images_checked
    );
    if report.problems.is_empty() {
        println!("store is consistent");
        return Ok(());
    }
    for p in &report.problems {
        println!("problem: {p}");
    }
    if !repair {
        eprintln!(
            "cairn: {} problem(s) found; run `cairn system check --repair` to fix them",
            report.problems.len()
        );
        return super::exit_with(1);
    }
    let r = engine.repair()?;
    println!(
        "repaired: removed {} damaged and orphaned entries, quarantined {} files, \
         re-extracted {} layers, unmounted {} dead mounts",
        r.removed, r.quarantined, r.reextracted, r.unmounted
    );
    if r.remaining.is_empty() {
        println!("store is consistent");
        return Ok(());
    }
    for p in &r.remaining {
        println!("remaining problem: {p}");
    }
    eprintln!(
        "cairn: {} problem(s) remain after repair",
        r.remaining.len()
    );
    super::exit_with(1)
}
