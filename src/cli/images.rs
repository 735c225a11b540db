//! Docker's image commands over the store: `images`, `tag`, `rmi`, `image prune`, `history`,
//! `inspect`. Output shapes, flags and messages follow docker's.

use cairn_engine::StoreRoot;
use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use cairn_driver::Digest;
use cairn_driver::image::{
    ImageConfig, InspectImage, StoreFacts, Timestamp, human_size, short_id, time_ago,
};
use cairn_driver::images::{ImageRecord, ImageStore, Index};
use cairn_driver::refs::{Reference, parse_normalized};
use cairn_engine::images::Removed;
use serde_json::{Value, json};

use super::format::{Format, render_objects, render_rows};

/// `cairn images`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images of builds).
    #[arg(short, long)]
    all: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Filter: dangling=true|false, reference=PATTERN, before=IMAGE, since=IMAGE, label=K[=V].
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format: table, json, or a Go template ({{.Repository}} {{.Tag}} {{.ID}} {{.Digest}}
    /// {{.CreatedSince}} {{.CreatedAt}} {{.Size}}).
    #[arg(long)]
    format: Option<String>,
    /// Repository[:tag] to list.
    repository: Option<String>,
}

const HEADERS: [(&str, &str); 6] = [
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Repository", "REPOSITORY"),
    ("Size", "SIZE"),
];

fn headers() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from(HEADERS)
}

/// What the listing needs of one image.
struct Row {
    rec: ImageRecord,
    config: ImageConfig,
    created: Timestamp,
    size: u64,
}

fn load_rows(images: &ImageStore, idx: &Index) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for rec in idx.images.values() {
        let config = ImageConfig::from_bytes(images.config_bytes(&rec.id)?)?;
        let created = config.created_time().unwrap_or(Timestamp::GO_ZERO);
        let (size, _) = images.sizes(idx, rec)?;
        rows.push(Row {
            rec: rec.clone(),
            config,
            created,
            size,
        });
    }
    rows.sort_by(|a, b| b.created.cmp(&a.created).then(a.rec.id.cmp(&b.rec.id)));
    Ok(rows)
}

fn id_text(id: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        short_id(&id.hex()).to_string()
    }
}

/// Simple glob match (`*` and `?`) as docker's reference filter uses (path.Match).
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

struct Filters {
    dangling: Option<bool>,
    references: Vec<String>,
    before: Option<Timestamp>,
    since: Option<Timestamp>,
    labels: Vec<(String, Option<String>)>,
}

fn parse_filters(args: &[String], rows: &[Row], idx: &Index) -> Result<Filters> {
    let mut f = Filters {
        dangling: None,
        references: vec![],
        before: None,
        since: None,
        labels: vec![],
    };
    let created_of = |arg: &str| -> Result<Timestamp> {
        let (id, _) = idx.resolve(arg)?;
        rows.iter()
            .find(|r| r.rec.id == id)
            .map(|r| r.created)
            .with_context(|| format!("No such image: {arg}"))
    };
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("bad format of filter (expected name=value): {a}");
        };
        match k {
            "dangling" => match v {
                "true" | "1" => f.dangling = Some(true),
                "false" | "0" => f.dangling = Some(false),
                _ => bail!("invalid filter 'dangling={v}'"),
            },
            "reference" => f.references.push(v.to_string()),
            "before" => f.before = Some(created_of(v)?),
            "since" => f.since = Some(created_of(v)?),
            "label" => f.labels.push(match v.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (v.to_string(), None),
            }),
            _ => bail!("invalid filter '{k}'"),
        }
    }
    Ok(f)
}

/// Runs `cairn images`.
pub fn images(root: &StoreRoot, a: ImagesArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let idx = images.index()?;
    let rows = load_rows(images, &idx)?;
    let mut filters = parse_filters(&a.filter, &rows, &idx)?;
    if let Some(r) = &a.repository {
        filters.references.push(r.clone());
    }
    let now = Timestamp::now();
    let mut out = Vec::new();
    for row in &rows {
        let tags = idx.tags_of(&row.rec.id);
        let digests = idx.digests_of(&row.rec.id);
        if filters.dangling.is_some_and(|d| d != tags.is_empty()) {
            continue;
        }
        // Intermediate images of builds show only with -a, as in docker.
        if !a.all && tags.is_empty() && idx.has_children(&row.rec.id) {
            continue;
        }
        if filters.before.is_some_and(|t| row.created >= t)
            || filters.since.is_some_and(|t| row.created <= t)
        {
            continue;
        }
        let labels = row.config.labels().cloned().unwrap_or_default();
        if !filters.labels.iter().all(|(k, v)| match v {
            Some(v) => labels.get(k) == Some(v),
            None => labels.contains_key(k),
        }) {
            continue;
        }
        let names: Vec<Option<Reference>> = if tags.is_empty() {
            vec![None]
        } else {
            tags.iter().map(|t| parse_normalized(t).ok()).collect()
        };
        for name in names {
            if !filters.references.is_empty() {
                let Some(n) = &name else { continue };
                let fam = n.familiar();
                let matched = filters
                    .references
                    .iter()
                    .any(|p| glob(p, &fam) || glob(p, &n.familiar_name()));
                if !matched {
                    continue;
                }
            }
            let (repo, tag) = match &name {
                Some(n) => (n.familiar_name(), n.tag().unwrap_or("<none>").to_string()),
                None => ("<none>".into(), "<none>".into()),
            };
            let digest = digests
                .iter()
                .filter_map(|d| d.rsplit_once('@').map(|(_, d)| d.to_string()))
                .next()
                .unwrap_or_else(|| "<none>".into());
            out.push(json!({
                "Containers": "N/A",
                "CreatedAt": row.created.to_string(),
                "CreatedSince": time_ago(row.created, now),
                "Digest": digest,
                "ID": id_text(&row.rec.id, a.no_trunc),
                "Repository": repo,
                "Size": human_size(row.size),
                "Tag": tag,
            }));
        }
    }
    if a.quiet {
        for r in &out {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    let default = if a.digests {
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let fmt = Format::parse(a.format.as_deref(), default);
    print!("{}", render_rows(&fmt, &out, &headers())?);
    Ok(())
}

/// Runs `cairn tag SOURCE TARGET`.
pub fn tag(root: &StoreRoot, source: &str, target: &str) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let (id, _) = images.index()?.resolve(source)?;
    let r = parse_normalized(target)?;
    if r.digest().is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    images.tag(&id, &r.to_string())?;
    Ok(())
}

/// `cairn rmi`.
#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Force removal of the image (all its tags).
    #[arg(short, long)]
    force: bool,
    /// Images (name[:tag], ID or ID prefix, name@digest).
    #[arg(required = true)]
    images: Vec<String>,
}

/// Runs `cairn rmi`: untag by name (deleting the image with its last name), delete by ID.
/// Prints docker's `Untagged:` / `Deleted:` lines; failures are reported per image (exit 1).
pub fn rmi(root: &StoreRoot, a: RmiArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let mut failed = false;
    for arg in &a.images {
        match engine.remove_image(arg, a.force) {
            Ok(lines) => {
                for l in lines {
                    match l {
                        Removed::Untagged(n) => println!("Untagged: {n}"),
                        Removed::Deleted(d) => println!("Deleted: {d}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("Error response from daemon: {:#}", anyhow::Error::new(e));
                failed = true;
            }
        }
    }
    match failed {
        true => super::exit_with(1),
        false => Ok(()),
    }
}

/// `cairn image prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
}

/// Runs `cairn image prune`.
pub fn prune(root: &StoreRoot, a: PruneArgs) -> Result<()> {
    if !a.force {
        use std::io::BufRead;
        let what = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let engine = super::store::open(root)?;
    let pruned = engine.prune_images(a.all)?;
    if !pruned.removed.is_empty() {
        println!("Deleted Images:");
        for l in &pruned.removed {
            match l {
                Removed::Untagged(n) => println!("untagged: {n}"),
                Removed::Deleted(d) => println!("deleted: {d}"),
            }
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(pruned.reclaimed));
    Ok(())
}

/// `cairn history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Format: table, json or a Go template ({{.ID}} {{.CreatedSince}} {{.CreatedAt}}
    /// {{.CreatedBy}} {{.Size}} {{.Comment}}).
    #[arg(long)]
    format: Option<String>,
    /// Image.
    image: String,
}

/// Runs `cairn history`.
pub fn history(root: &StoreRoot, a: HistoryArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let idx = images.index()?;
    let (id, _) = idx.resolve(&a.image)?;
    let config = ImageConfig::from_bytes(images.config_bytes(&id)?)?;
    let now = Timestamp::now();
    let mut out = Vec::new();
    for row in config.history_rows()? {
        let size = match &row.chain_id {
            Some(c) => images
                .layers()
                .get(&Digest::parse(c)?)?
                .map_or(0, |l| l.size),
            None => 0,
        };
        let shown_id = if row.id == "<missing>" || a.no_trunc {
            row.id.clone()
        } else {
            short_id(row.id.trim_start_matches("sha256:")).to_string()
        };
        let mut created_by = row.created_by.replace('\t', " ");
        if !a.no_trunc && created_by.chars().count() > 45 {
            created_by = created_by.chars().take(44).collect::<String>() + "…";
        }
        let created = row.created_time.unwrap_or(Timestamp::GO_ZERO);
        out.push(json!({
            "ID": shown_id,
            "CreatedSince": if a.human { time_ago(created, now) } else { created.to_string() },
            "CreatedAt": created.to_string(),
            "CreatedBy": created_by,
            "Size": if a.human { human_size(size) } else { size.to_string() },
            "Comment": row.comment,
        }));
    }
    if a.quiet {
        for r in &out {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    let fmt = Format::parse(
        a.format.as_deref(),
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    );
    // docker's history table calls the ID column IMAGE.
    let mut hdr = headers();
    hdr.insert("ID", "IMAGE");
    print!("{}", render_rows(&fmt, &out, &hdr)?);
    Ok(())
}

/// `cairn inspect` / `cairn image inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Go template applied to each result ({{.Id}}, {{json .Config}}, ...).
    #[arg(short, long)]
    format: Option<String>,
    /// Images.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Runs `cairn inspect`: docker-shaped JSON array, or one line per image with `--format`.
pub fn inspect(root: &StoreRoot, a: InspectArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let idx = images.index()?;
    let mut out: Vec<Value> = Vec::new();
    let mut failed = false;
    for arg in &a.images {
        match inspect_one(images, &idx, arg) {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("Error: {e:#}");
                failed = true;
            }
        }
    }
    match &a.format {
        Some(f) => print!("{}", render_objects(&Format::Template(f.clone()), &out)?),
        None => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    match failed {
        true => super::exit_with(1),
        false => Ok(()),
    }
}

/// The inspect object of the image `arg` names.
pub fn inspect_image(images: &ImageStore, arg: &str) -> Result<InspectImage> {
    inspect_struct(images, &images.index()?, arg)
}

fn inspect_one(images: &ImageStore, idx: &Index, arg: &str) -> Result<Value> {
    Ok(serde_json::to_value(inspect_struct(images, idx, arg)?)?)
}

fn inspect_struct(images: &ImageStore, idx: &Index, arg: &str) -> Result<InspectImage> {
    let (id, _) = idx.resolve(arg)?;
    let rec = idx
        .images
        .get(&id.hex())
        .with_context(|| format!("No such image: {arg}"))?;
    let config = ImageConfig::from_bytes(images.config_bytes(&id)?)?;
    let parse = |v: Vec<String>| -> Vec<Reference> {
        v.iter().filter_map(|t| parse_normalized(t).ok()).collect()
    };
    let facts = StoreFacts {
        repo_tags: parse(idx.tags_of(&id)),
        repo_digests: parse(idx.digests_of(&id)),
        parent: None,
        size: images.sizes(idx, rec)?.0,
        last_tag_time: rec.last_tag.map(|s| Timestamp { secs: s, nanos: 0 }),
    };
    Ok(InspectImage::new(&config, &facts))
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn reference_filter_globs_like_path_match() {
        assert!(glob("busy*", "busybox:latest"));
        assert!(glob("busybox:*", "busybox:1.36"));
        assert!(!glob("busy*", "library/busybox"));
        assert!(glob("*/app", "team/app"));
        assert!(glob("b?sybox", "busybox"));
    }
}
