//! `cairn-bench`: how does cairn compare with kernel overlayfs and fuse-overlayfs on this
//! machine? Builds (or takes) a layer stack, mounts it with every implementation, runs the
//! workloads, and prints a markdown table of medians and ratios to kernel overlayfs; JSON and an
//! SVG chart go to files, progress to stderr. See bench/README.md.

mod image_gen;
mod impls;
mod profile;
mod report;
mod runner;
mod scan;
mod stack;
mod svg;
mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;

use impls::{Impl, Kind};
use profile::Profile;
use report::{BASELINE, ImplSummary, Report, StackSummary, WorkloadResult};
use runner::Runner;
use scan::StackInfo;
use stack::{Stack, StackSet};
use workloads::StackRef;
use workloads::image::{IMAGE_BASELINE, ImageWorkload, Importer};

#[derive(Parser, Debug)]
#[command(
    name = "cairn-bench",
    version,
    about = "Compare cairn with kernel overlayfs and fuse-overlayfs"
)]
struct Args {
    /// Tiny stack, 1 repetition: seconds. For CI.
    #[arg(long, conflicts_with = "quick")]
    smoke: bool,
    /// ~10k files, 256 MiB, 20k-entry dir, 1/16/64 layers: a few minutes on 2 cores.
    #[arg(long, conflicts_with = "large")]
    quick: bool,
    /// Issue 21's stack: 10 layers over a 46k-file tree in dirs of 10 (a Python tree's shape)
    /// and a 1 GiB file; no depth stacks.
    #[arg(long, conflicts_with = "smoke")]
    large: bool,
    /// Repetitions of each workload (default: 1 smoke, 3 otherwise).
    #[arg(long, short = 'r')]
    repeats: Option<usize>,
    /// Seed of the generated stacks and of every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where stacks are cached and mounts happen.
    #[arg(
        long,
        default_value = "/var/tmp/cairn-bench",
        env = "CAIRN_BENCH_WORKDIR"
    )]
    workdir: PathBuf,
    /// Use this existing stack (lowerdir order: top first, `:`-separated) instead of generating.
    #[arg(long, value_name = "TOP:...:BOTTOM")]
    layers: Option<String>,
    /// The cairn binary (default: `cairn` next to this executable, else on PATH).
    #[arg(long, value_name = "PATH")]
    cairn: Option<PathBuf>,
    /// The fuse-overlayfs binary (1.x, C).
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/fuse-overlayfs")]
    fuse_overlayfs: String,
    /// The fuse-overlayfs 2.x binary (the Rust rewrite), built from containers/fuse-overlayfs
    /// with cargo; skipped with the reason when it is not there.
    #[arg(
        long,
        value_name = "PATH",
        env = "CAIRN_BENCH_FUSE_OVERLAYFS2",
        default_value = "/usr/local/bin/fuse-overlayfs2"
    )]
    fuse_overlayfs2: String,
    /// The skopeo binary (image workloads).
    #[arg(long, value_name = "PATH", default_value = "skopeo")]
    skopeo: PathBuf,
    /// The umoci binary (image workloads).
    #[arg(long, value_name = "PATH", default_value = "umoci")]
    umoci: PathBuf,
    /// Extra implementation: NAME=COMMAND with {lowerdir} {upperdir} {workdir} {mnt}
    /// placeholders, or NAME=BINARY (fuse-overlayfs style options). Repeatable.
    #[arg(long = "impl", value_name = "NAME=CMD")]
    extra: Vec<String>,
    /// Only these implementations / image tools (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only workloads whose name contains one of these (comma-separated).
    #[arg(long, short = 'w', value_delimiter = ',')]
    workloads: Vec<String>,
    /// List the workloads and exit.
    #[arg(long)]
    list: bool,
    /// JSON results (default: <workdir>/results-<profile>.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// SVG chart of ratios (default: <workdir>/ratios-<profile>.svg).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Reader threads of parallel-read (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds one repetition may take before a hung FUSE mount is aborted.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Exit non-zero when any workload fails on any implementation (default: only the baseline).
    #[arg(long)]
    strict: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_cairn() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("cairn")));
    match beside {
        Some(p) if p.is_file() => p,
        _ => impls::find_program(Path::new("cairn")).unwrap_or_else(|| PathBuf::from("cairn")),
    }
}

/// Stacks as the registry needs them to name workloads, without generating anything.
fn planned_stacks(profile: &Profile) -> StackSet {
    StackSet {
        main: Stack {
            label: "main".into(),
            layers: vec![],
        },
        depth: profile
            .depth_layers
            .iter()
            .map(|&n| {
                (
                    n,
                    Stack {
                        label: format!("L{n}"),
                        layers: vec![],
                    },
                )
            })
            .collect(),
    }
}

/// What the filesystem part of a run produced.
#[derive(Default)]
struct FsPart {
    implementations: Vec<ImplSummary>,
    stacks: Vec<StackSummary>,
    workloads: Vec<WorkloadResult>,
}

/// What the image part of a run produced.
#[derive(Default)]
struct ImagePart {
    tools: Vec<ImplSummary>,
    archive: Option<image_gen::ImageArchive>,
    workloads: Vec<WorkloadResult>,
}

fn run(args: Args) -> Result<ExitCode> {
    let profile = if args.smoke {
        Profile::smoke()
    } else if args.quick {
        Profile::quick()
    } else if args.large {
        Profile::large()
    } else {
        Profile::full()
    };
    let repeats = args.repeats.unwrap_or(profile.repeats).max(1);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let selected = |name: &str| {
        args.workloads.is_empty() || args.workloads.iter().any(|w| name.contains(w.as_str()))
    };
    let image_list: Vec<Box<dyn ImageWorkload>> = workloads::image::registry(&profile)
        .into_iter()
        .filter(|w| selected(&w.name()))
        .collect();

    if args.list {
        for w in workloads::registry(&profile, &planned_stacks(&profile))
            .iter()
            .filter(|w| selected(&w.name()))
        {
            println!("{:24} {}", w.name(), w.about());
        }
        for w in &image_list {
            println!("{:24} [image] {}", w.name(), w.about());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !rustix::process::geteuid().is_root() {
        bail!(
            "needs root: kernel overlay mounts, whiteout device nodes and drop_caches all require it"
        );
    }
    std::fs::create_dir_all(&args.workdir)
        .with_context(|| format!("creating {}", args.workdir.display()))?;
    let workdir = std::fs::canonicalize(&args.workdir)?;
    let runner = Runner {
        workdir: workdir.clone(),
        profile: &profile,
        seed: args.seed,
        threads,
        timeout: std::time::Duration::from_secs(args.timeout),
    };
    runner.clean()?;

    let user_set = args.layers.as_deref().map(stack::user_stack).transpose()?;
    let naming = user_set.clone().unwrap_or_else(|| planned_stacks(&profile));
    let fs_selected = workloads::registry(&profile, &naming)
        .iter()
        .any(|w| selected(&w.name()));
    let fs = if fs_selected {
        run_fs(&args, &runner, &workdir, user_set, repeats, &selected)?
    } else {
        FsPart::default()
    };
    let images = run_images(&args, &runner, &workdir, &image_list, repeats)?;

    let report = Report {
        tool: "cairn-bench",
        version: env!("CARGO_PKG_VERSION"),
        timestamp_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        host: report::Host {
            kernel: rustix::system::uname()
                .release()
                .to_string_lossy()
                .into_owned(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        profile: profile.clone(),
        seed: args.seed,
        repeats,
        lower_layers: "shared read-only by all implementations; fresh upper+work per repetition",
        stacks: fs.stacks,
        baseline: BASELINE,
        implementations: fs.implementations,
        workloads: fs.workloads,
        image_baseline: IMAGE_BASELINE,
        image_tools: images.tools,
        image_archive: images.archive,
        image_workloads: images.workloads,
    };

    print!("{}", report::markdown(&report));
    let json_path = args
        .json
        .unwrap_or_else(|| workdir.join(format!("results-{}.json", profile.name)));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    eprintln!("JSON written to {}", json_path.display());
    let svg_path = args
        .svg
        .unwrap_or_else(|| workdir.join(format!("ratios-{}.svg", profile.name)));
    match svg::chart(&report) {
        Some(svg) => {
            std::fs::write(&svg_path, svg)
                .with_context(|| format!("writing {}", svg_path.display()))?;
            eprintln!("SVG chart written to {}", svg_path.display());
        }
        None => eprintln!("no SVG chart: no filesystem ratios to the {BASELINE} baseline"),
    }

    let failed = |workloads: &[WorkloadResult], name: &str| {
        workloads
            .iter()
            .any(|w| w.results.get(name).is_some_and(|r| r.error.is_some()))
    };
    let baseline_failed =
        failed(&report.workloads, BASELINE) || failed(&report.image_workloads, IMAGE_BASELINE);
    let any_failed = report
        .implementations
        .iter()
        .any(|i| failed(&report.workloads, &i.name))
        || report
            .image_tools
            .iter()
            .any(|t| failed(&report.image_workloads, &t.name));
    if baseline_failed || (args.strict && any_failed) {
        eprintln!("some workloads failed (see the Failures section)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The filesystem workloads: probe the implementations, generate (or take) the stacks, run.
fn run_fs(
    args: &Args,
    runner: &Runner,
    workdir: &Path,
    user_set: Option<StackSet>,
    repeats: usize,
    selected: &dyn Fn(&str) -> bool,
) -> Result<FsPart> {
    let profile = runner.profile;
    let mut all_impls = vec![
        Impl {
            name: BASELINE.into(),
            kind: Kind::Kernel,
        },
        Impl {
            name: "fuse-overlayfs".into(),
            kind: Kind::Template(impls::fuse_template(&args.fuse_overlayfs)),
        },
        Impl {
            name: "fuse-overlayfs2".into(),
            kind: Kind::Template(impls::fuse_template(&args.fuse_overlayfs2)),
        },
        Impl {
            name: "cairn".into(),
            kind: Kind::Cairn(args.cairn.clone().unwrap_or_else(default_cairn)),
        },
    ];
    for spec in &args.extra {
        all_impls.push(Impl::parse_extra(spec)?);
    }
    if !args.only.is_empty() {
        all_impls.retain(|i| args.only.contains(&i.name));
    }

    let probe = stack::probe_stack(workdir)?;
    let mut summaries = Vec::new();
    let mut available = Vec::new();
    for imp in &all_impls {
        let reason = match imp.missing() {
            Some(r) => Some(r),
            None => runner
                .probe(imp, &probe)
                .err()
                .map(|e| format!("probe mount failed: {e:#}")),
        };
        match &reason {
            Some(r) => eprintln!("skipping {}: {r}", imp.name),
            None => available.push(imp.clone()),
        }
        summaries.push(ImplSummary {
            name: imp.name.clone(),
            command: imp.describe(),
            available: reason.is_none(),
            skipped_reason: reason,
        });
    }
    let Some(reference) = available.first().cloned() else {
        bail!("no implementation could mount; nothing to measure");
    };

    let set = match user_set {
        Some(set) => set,
        None => stack::generated(workdir, profile, args.seed)?,
    };
    let list: Vec<_> = workloads::registry(profile, &set)
        .into_iter()
        .filter(|w| selected(&w.name()))
        .collect();
    let mut stacks: BTreeMap<StackRef, (Stack, StackInfo)> = BTreeMap::new();
    let wanted = |r: StackRef| list.iter().any(|w| w.stack() == r);
    let mut all_stacks = vec![(StackRef::Main, set.main.clone())];
    all_stacks.extend(
        set.depth
            .iter()
            .map(|(n, s)| (StackRef::Depth(*n), s.clone())),
    );
    for (r, s) in all_stacks.into_iter().filter(|(r, _)| wanted(*r)) {
        eprintln!(
            "scanning stack {} ({} layers) through {}",
            s.label,
            s.layers.len(),
            reference.name
        );
        let info = runner.scan(&reference, &s)?;
        stacks.insert(r, (s, info));
    }

    let outcomes = runner.run_all(&list, &available, &stacks, repeats);
    let workloads = list
        .iter()
        .zip(&outcomes)
        .map(|(w, o)| WorkloadResult {
            name: w.name(),
            about: w.about(),
            stack: stacks
                .get(&w.stack())
                .map_or_else(|| format!("{:?}", w.stack()), |(s, _)| s.label.clone()),
            baseline: BASELINE,
            results: report::summarize(o, BASELINE),
        })
        .collect();
    Ok(FsPart {
        implementations: summaries,
        stacks: stacks
            .values()
            .map(|(s, i)| StackSummary {
                label: s.label.clone(),
                layers: s.layers.iter().map(|l| l.display().to_string()).collect(),
                files: i.files.len(),
                entries: i.entries,
            })
            .collect(),
        workloads,
    })
}

/// runc for the `start` workload: on PATH, else installed with apt when the start workload
/// is selected and we are root (a failed install leaves it missing: skipped with the reason).
fn runc_binary(args: &Args) -> PathBuf {
    let name = Path::new("runc");
    if let Some(p) = impls::find_program(name) {
        return p;
    }
    let wanted = args.only.is_empty() || args.only.iter().any(|o| o == "runc");
    let start_selected =
        args.workloads.is_empty() || args.workloads.iter().any(|w| "start".contains(w.as_str()));
    if wanted && start_selected && rustix::process::geteuid().is_root() {
        eprintln!("runc not found: apt-get install -y runc");
        let _ = std::process::Command::new("apt-get")
            .args(["install", "-y", "-q", "runc"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null())
            .status();
    }
    impls::find_program(name).unwrap_or_else(|| name.to_path_buf())
}

/// The image workloads: check the tools, generate the archive once, run.
fn run_images(
    args: &Args,
    runner: &Runner,
    workdir: &Path,
    list: &[Box<dyn ImageWorkload>],
    repeats: usize,
) -> Result<ImagePart> {
    if list.is_empty() {
        return Ok(ImagePart::default());
    }
    let mut tools = vec![
        Importer::skopeo_umoci(args.skopeo.clone(), args.umoci.clone()),
        Importer::skopeo_oci_umoci(args.skopeo.clone(), args.umoci.clone()),
        Importer::cairn(args.cairn.clone().unwrap_or_else(default_cairn)),
        Importer::runc(runc_binary(args)),
    ];
    if !args.only.is_empty() {
        tools.retain(|t| args.only.contains(&t.name));
    }
    let mut part = ImagePart::default();
    let mut available = Vec::new();
    for tool in tools {
        let reason = tool.missing();
        match &reason {
            Some(r) => eprintln!("skipping image tool {}: {r}", tool.name),
            None => available.push(tool.clone()),
        }
        part.tools.push(ImplSummary {
            name: tool.name.clone(),
            command: tool.describe(),
            available: reason.is_none(),
            skipped_reason: reason,
        });
    }
    if available.is_empty() {
        eprintln!("skipping image workloads: no image tool available");
        return Ok(part);
    }
    let archive = image_gen::archive(workdir, runner.profile, args.seed)?;
    let outcomes = runner.run_images(list, &available, &archive, repeats);
    part.workloads = list
        .iter()
        .zip(&outcomes)
        .map(|(w, o)| WorkloadResult {
            name: w.name(),
            about: w.about(),
            stack: "image archive".into(),
            baseline: w.baseline(),
            results: report::summarize(o, w.baseline()),
        })
        .collect();
    part.archive = Some(archive);
    Ok(part)
}
