//! `cairn commit`: a container's changes as a new image (docker's flags and output).

use anyhow::Result;
use cairn_driver::commit::CommitOptions;
use cairn_driver::image::Change;
use cairn_driver::refs::parse_normalized;
use cairn_engine::StoreRoot;
use cairn_runtime::container_fs::entrypoint_and_cmd;

/// `cairn commit`.
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short, long, default_value = "")]
    author: String,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long)]
    change: Vec<String>,
    /// Commit message.
    #[arg(short, long, default_value = "")]
    message: String,
    /// Pause container during commit.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pause: bool,
    /// The container.
    container: String,
    /// Repository[:tag] for the new image.
    reference: Option<String>,
}

/// Runs `cairn commit`: prints the new image's ID.
pub fn commit(root: &StoreRoot, a: CommitArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let c = engine
        .find_container(&a.container)
        .map_err(super::store::unwrap_err)?;
    let cfg = c.config()?;
    let image_entrypoint = images
        .find(&cfg.image_id)
        .ok()
        .and_then(|(_, conf)| conf.entrypoint().map(<[String]>::to_vec));
    let (_, cmd) = entrypoint_and_cmd(&cfg.spec.args, image_entrypoint.as_deref());
    let changes = a
        .change
        .iter()
        .map(|c| Change::parse(c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let tags = match &a.reference {
        Some(r) => vec![parse_normalized(r)?.to_string()],
        None => vec![],
    };
    let opts = CommitOptions {
        message: a.message,
        author: a.author,
        changes,
        created_by: cmd.join(" "),
        cmd: Some(cmd),
        tags,
        created: None,
    };
    let rec = engine
        .commit(&c, &opts, a.pause)
        .map_err(super::store::unwrap_err)?;
    println!("{}", rec.id);
    Ok(())
}
