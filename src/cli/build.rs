//! `cairn build`: parse the arguments, one call to the builder, print its progress as
//! docker's classic builder does (`Step N/M : …`, ` ---> Using cache`, ` ---> <id>`,
//! `Successfully built`, `Successfully tagged`); `-q` prints only the image ID. A failing RUN
//! exits 1 after docker's `The command '…' returned a non-zero code: N`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use cairn_build::context::Context;
use cairn_build::{BuildOptions, Event};
use cairn_driver::refs::parse_normalized;
use cairn_engine::StoreRoot;

/// `cairn build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format (repeatable).
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: 'PATH/Dockerfile'; '-' reads it from stdin).
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables (K=V, or K to take the value from the environment).
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image.
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image (accepted; images come from the
    /// store).
    #[arg(long)]
    pull: bool,
    /// Set metadata for an image (K=V, repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Networking mode for the RUN instructions: none (default) or host.
    #[arg(long, default_value = "none")]
    network: String,
    /// Secret to expose to RUN --mount=type=secret (id=ID,src=PATH).
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// Also write the image to a file: type=oci|docker,dest=FILE (an OCI layout with docker's
    /// manifest.json, as `cairn save` writes; both loaders read it).
    #[arg(short = 'o', long)]
    output: Option<String>,
    /// Write the image ID to the file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Suppress the build output and print image ID on success.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Type of progress output (auto, plain, tty).
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Build context: a directory, a tar file, or '-' (a tar on stdin).
    context: String,
}

/// The Dockerfile's text and the context.
fn inputs(a: &BuildArgs, tmp: &Path) -> Result<(String, Context)> {
    if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        let ctx = Context::tar(std::io::stdin().lock(), tmp)?;
        let name = a.file.as_deref().unwrap_or("Dockerfile");
        let p = ctx.dir.join(name);
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("Cannot locate specified Dockerfile: {name}"))?;
        return Ok((text, ctx));
    }
    let path = Path::new(&a.context);
    let ctx = if path.is_file() {
        let f = std::fs::File::open(path).with_context(|| format!("open {}", a.context))?;
        Context::tar(f, tmp)?
    } else if path.is_dir() {
        let df =
            a.file
                .as_deref()
                .filter(|f| *f != "-")
                .map(|f| match Path::new(f).is_absolute() {
                    true => PathBuf::from(f),
                    false => std::env::current_dir().unwrap_or_default().join(f),
                });
        Context::dir(path, df.as_deref())?
    } else {
        bail!("unable to prepare context: path {:?} not found", a.context);
    };
    let text = match a.file.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        }
        Some(f) if ctx.dir.join(f).is_file() && !path.is_dir() => {
            std::fs::read_to_string(ctx.dir.join(f))?
        }
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("Cannot locate specified Dockerfile: {f}"))?,
        None => std::fs::read_to_string(ctx.dir.join("Dockerfile"))
            .context("Cannot locate specified Dockerfile: Dockerfile")?,
    };
    Ok((text, ctx))
}

/// Runs `cairn build`.
pub fn build(root: &StoreRoot, a: BuildArgs) -> Result<()> {
    if !matches!(a.progress.as_str(), "auto" | "plain" | "tty") {
        bail!(
            "invalid --progress value {:?}: auto, plain or tty",
            a.progress
        );
    }
    let network_host = match a.network.as_str() {
        "none" | "default" => false,
        "host" => true,
        n => bail!("network mode {n:?} not supported by cairn build (none or host)"),
    };
    let engine = super::store::open(root)?;
    let tags = a
        .tags
        .iter()
        .map(|t| Ok(parse_normalized(t)?.to_string()))
        .collect::<Result<Vec<_>>>()?;
    let labels = a
        .labels
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let (dockerfile, context) = inputs(&a, &engine.store().tmp_dir())?;
    let source_date_epoch = a
        .build_args
        .iter()
        .find_map(|b| b.strip_prefix("SOURCE_DATE_EPOCH="))
        .map(str::to_string)
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .and_then(|s| s.parse().ok());
    let mut secrets = std::collections::HashMap::new();
    for spec in &a.secrets {
        let (mut id, mut src) = (None, None);
        for kv in spec.split(',') {
            match kv.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("type", "file")) => {}
                _ => bail!("invalid secret {spec:?}: id=ID,src=PATH"),
            }
        }
        let src = src.ok_or_else(|| anyhow::anyhow!("invalid secret {spec:?}: no src"))?;
        let id = id.unwrap_or_else(|| {
            src.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        });
        let src = src
            .canonicalize()
            .with_context(|| format!("secret {id}: {}", src.display()))?;
        secrets.insert(id, src);
    }
    let opts = BuildOptions {
        secrets,
        dockerfile,
        context,
        tags: tags.clone(),
        build_args: a.build_args.clone(),
        target: a.target.clone(),
        no_cache: a.no_cache,
        labels,
        network_host,
        source_date_epoch,
    };
    let quiet = a.quiet;
    let mut print = |e: Event| {
        if quiet {
            return;
        }
        match e {
            Event::Step { n, total, text } => {
                println!("Step {n}/{total} : {text}");
            }
            Event::CacheHit => println!(" ---> Using cache"),
            Event::Running { container } => println!(" ---> Running in {container}"),
            Event::Removed { container } => println!("Removing intermediate container {container}"),
            Event::Done { image } => println!(" ---> {}", &image.hex()[..12]),
        }
    };
    let id = match cairn_build::build(&engine, &opts, &mut print) {
        Ok(id) => id,
        Err(e @ cairn_build::Error::RunFailed { .. }) => {
            eprintln!("{e}");
            return Err(super::Exit(1).into());
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(spec) = &a.output {
        write_output(&engine, spec, id, &a.tags)?;
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, id.to_string()).with_context(|| format!("write {}", f.display()))?;
    }
    if quiet {
        println!("{id}");
        return Ok(());
    }
    println!("Successfully built {}", &id.hex()[..12]);
    for t in &a.tags {
        println!("Successfully tagged {}", normalized_display(t));
    }
    Ok(())
}

/// `--output type=oci|docker,dest=FILE`.
fn write_output(
    engine: &cairn_engine::Engine,
    spec: &str,
    id: cairn_driver::Digest,
    tags: &[String],
) -> Result<()> {
    let (mut kind, mut dest) = ("docker", None);
    for kv in spec.split(',') {
        match kv.split_once('=') {
            Some(("type", t @ ("oci" | "docker"))) => kind = t,
            Some(("dest", d)) => dest = Some(PathBuf::from(d)),
            _ => bail!("unsupported --output {spec:?}: type=oci|docker,dest=FILE"),
        }
    }
    let _ = kind;
    let dest = dest.ok_or_else(|| anyhow::anyhow!("--output {spec:?}: dest=FILE missing"))?;
    let item = cairn_driver::save::SaveItem {
        id,
        tags: tags
            .iter()
            .map(|t| parse_normalized(t))
            .collect::<Result<_, _>>()?,
    };
    super::outfile::write_new(&dest, |file| {
        let mut w = std::io::BufWriter::new(file);
        cairn_driver::save::save(engine.images(), &[item], &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    })
}

/// docker prints the tag with `:latest` added when none was given.
fn normalized_display(t: &str) -> String {
    let last = t.rsplit('/').next().unwrap_or(t);
    match last.contains(':') || last.contains('@') {
        true => t.to_string(),
        false => format!("{t}:latest"),
    }
}

/// `cairn builder …`.
#[derive(Debug, clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove the build cache (step cache and RUN --mount=type=cache directories).
    Prune {
        /// Do not prompt for confirmation (accepted; cairn never prompts).
        #[arg(short, long)]
        force: bool,
    },
}

/// Runs `cairn builder prune`.
pub fn builder(root: &StoreRoot, c: BuilderCommand) -> Result<()> {
    let BuilderCommand::Prune { .. } = c;
    let engine = super::store::open(root)?;
    let freed = cairn_build::cache::prune(engine.layout().root())?;
    println!(
        "Total reclaimed space: {}",
        cairn_driver::image::human_size(freed)
    );
    Ok(())
}
