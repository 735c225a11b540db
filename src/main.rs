//! The `cairn` command line. Parses arguments (clap), runs one command, prints, and maps errors
//! to docker-like exit codes (125 for cairn's own errors).

mod cli;

use cairn_engine::StoreRoot;
use clap::{Parser, Subcommand};

/// cairn: container image layers on its own FUSE union filesystem.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    /// Store root (default: /var/lib/cairn as root, $XDG_DATA_HOME/cairn otherwise).
    #[arg(long, global = true, env = "CAIRN_ROOT")]
    root: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount a stack of layers as one union filesystem (overlayfs semantics).
    Mount(cli::mount::MountArgs),
    /// Unmount a cairn mount.
    #[command(alias = "unmount")]
    Umount(cli::mount::UmountArgs),
    /// Serve Docker's graphdriver plugin API (dockerd --experimental --storage-driver cairn).
    Graphdriver(cli::graphdriver::GraphdriverArgs),
    /// List images.
    Images(cli::images::ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag { source: String, target: String },
    /// Remove one or more images.
    Rmi(cli::images::RmiArgs),
    /// Show the history of an image.
    History(cli::images::HistoryArgs),
    /// Return low-level information on containers or images.
    Inspect(cli::inspect::InspectArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(cli::archive::SaveArgs),
    /// Load images from a tar archive or STDIN.
    Load(cli::archive::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(cli::archive::ImportArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage the store.
    #[command(subcommand)]
    System(SystemCommand),
    /// Create and run a new container from an image.
    Run(Box<cli::run::RunArgs>),
    /// Build an image from a Dockerfile.
    Build(Box<cli::build::BuildArgs>),
    /// Manage the build cache.
    #[command(subcommand)]
    Builder(cli::build::BuilderCommand),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    #[command(flatten)]
    ContainerFs(cli::container_fs::FsCommand),
    /// Write an OCI runtime bundle (config.json + the image mounted as rootfs) for runc.
    Bundle(Box<cli::bundle::BundleArgs>),
    /// Download an image from a registry.
    Pull(cli::registry::PullArgs),
    /// Upload an image to a registry.
    Push(cli::registry::PushArgs),
    /// Log in to a registry (credentials are checked, then stored).
    Login(cli::registry::LoginArgs),
    /// Log out from a registry.
    Logout(cli::registry::LogoutArgs),
    /// Search a registry's catalog (REGISTRY/TERM).
    Search(cli::registry::SearchArgs),
    /// List containers.
    Ps(cli::ps::PsArgs),
    #[command(flatten)]
    Lifecycle(LifecycleCommand),
}

/// Container commands that exist both at the top level and under `container`.
#[derive(Debug, Subcommand)]
enum LifecycleCommand {
    /// Stop one or more running containers.
    Stop(cli::lifecycle::StopArgs),
    /// Kill one or more running containers.
    Kill(cli::lifecycle::KillArgs),
    /// Start one or more stopped containers.
    Start(cli::lifecycle::StartArgs),
    /// Restart one or more containers.
    Restart(cli::lifecycle::StopArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(cli::lifecycle::WaitArgs),
    /// Remove one or more containers.
    Rm(cli::lifecycle::RmArgs),
    /// Rename a container.
    Rename { container: String, new_name: String },
    /// Fetch the logs of a container.
    Logs(cli::logs::LogsArgs),
    /// List port mappings for the container (cairn publishes none).
    Port {
        container: String,
        port: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// List images.
    #[command(alias = "list")]
    Ls(cli::images::ImagesArgs),
    /// Remove unused images.
    Prune(cli::images::PruneArgs),
    /// Remove one or more images.
    Rm(cli::images::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag { source: String, target: String },
    /// Show the history of an image.
    History(cli::images::HistoryArgs),
    /// Display detailed information on one or more images.
    Inspect(cli::images::InspectArgs),
    /// Save one or more images to a tar archive.
    Save(cli::archive::SaveArgs),
    /// Load images from a tar archive or STDIN.
    Load(cli::archive::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(cli::archive::ImportArgs),
    /// Download an image from a registry.
    Pull(cli::registry::PullArgs),
    /// Upload an image to a registry.
    Push(cli::registry::PushArgs),
}

#[derive(Debug, Subcommand)]
enum ContainerCommand {
    /// List containers.
    #[command(alias = "ps", alias = "list")]
    Ls(cli::ps::PsArgs),
    /// Remove all stopped containers.
    Prune(cli::lifecycle::PruneArgs),
    /// Display detailed information on one or more containers.
    Inspect(cli::inspect::InspectArgs),
    #[command(flatten)]
    Lifecycle(LifecycleCommand),
    #[command(flatten)]
    Fs(cli::container_fs::FsCommand),
}

#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// Show disk usage of the store.
    Df {
        /// Show detailed information on space usage.
        #[arg(short, long)]
        verbose: bool,
        /// Format: table, json or a Go template.
        #[arg(long)]
        format: Option<String>,
    },
    /// Verify every digest of the store; `--repair` removes damaged and orphaned entries.
    Check {
        #[arg(long)]
        repair: bool,
    },
}

/// Names under which mount(8) / mount.fuse3 run us: `cairn SOURCE MNT -o OPTS` or
/// `mount.fuse.cairn SOURCE MNT -o OPTS` mean `cairn mount SOURCE MNT -o OPTS`.
fn normalize_args(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let argv0 = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let helper = argv0.starts_with("mount.fuse.cairn") || argv0.starts_with("mount.cairn");
    let first = args.get(1).map(|a| a.to_string_lossy().into_owned());
    // Every subcommand name and alias clap knows (help included).
    let cmd = <Cli as clap::CommandFactory>::command();
    let known: Vec<String> = cmd
        .get_subcommands()
        .flat_map(|c| std::iter::once(c.get_name()).chain(c.get_all_aliases()))
        .map(str::to_string)
        .chain(["help".to_string()])
        .collect();
    let positional_source = match &first {
        Some(f) => !f.starts_with('-') && !known.iter().any(|k| k == f) && args.len() >= 3,
        None => false,
    };
    if helper || positional_source {
        args.insert(1, "mount".into());
    }
    args
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::new().filter("CAIRN_LOG")).init();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = if cli::mount_program::is_fuse_overlayfs_form(&args) {
        use cli::mount_program::{Invocation, translate};
        match translate(&args) {
            Invocation::Args(a) => a,
            Invocation::Print(text) => {
                println!("{text}");
                return;
            }
            Invocation::Usage(text) => {
                eprintln!("cairn: {text}");
                std::process::exit(1);
            }
        }
    } else {
        normalize_args(args)
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // Help and version go to stdout with status 0; a usage error is cairn's own: 125,
        // as docker's CLI.
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 125 } else { 0 });
        }
    };
    let root = &cairn_engine::StoreRoot::new(cli.root.as_deref());
    // docker's status for a missing image: 125 where a container is being created (run,
    // bundle) or a mount made, 1 for the commands about images (the daemon's refusal).
    let creates = matches!(
        cli.command,
        Command::Run(_) | Command::Bundle(_) | Command::Mount(_)
    );
    use cli::{archive, images};
    let result = match cli.command {
        Command::Mount(a) => cli::mount::mount(root, a),
        Command::Umount(a) => cli::mount::umount(a),
        Command::Graphdriver(a) => cli::graphdriver::graphdriver(a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::images(root, a),
        Command::Tag { source, target } | Command::Image(ImageCommand::Tag { source, target }) => {
            images::tag(root, &source, &target)
        }
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::rmi(root, a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => images::history(root, a),
        Command::Image(ImageCommand::Inspect(a)) => images::inspect(root, a),
        Command::Inspect(a) => cli::inspect::inspect(root, a, cli::inspect::Kind::Any),
        Command::Container(c) => container_command(root, c),
        Command::ContainerFs(c) => container_command(root, ContainerCommand::Fs(c)),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => archive::save(root, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => archive::load(root, a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => archive::import(root, a),
        Command::Image(ImageCommand::Prune(a)) => images::prune(root, a),
        Command::System(SystemCommand::Df { verbose, format }) => {
            cli::system::df(root, verbose, format)
        }
        Command::System(SystemCommand::Check { repair }) => cli::system::check(root, repair),
        Command::Run(a) => cli::run::run(root, *a),
        Command::Build(a) => cli::build::build(root, *a),
        Command::Builder(c) => cli::build::builder(root, c),
        Command::Bundle(a) => cli::bundle::bundle(root, *a),
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => cli::registry::pull(root, a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => cli::registry::push(root, a),
        Command::Login(a) => cli::registry::login(a),
        Command::Logout(a) => cli::registry::logout(a),
        Command::Search(a) => cli::registry::search(a),
        Command::Ps(a) => container_command(root, ContainerCommand::Ls(a)),
        Command::Lifecycle(c) => container_command(root, ContainerCommand::Lifecycle(c)),
    };
    if let Err(e) = result {
        std::process::exit(exit_code(&e, creates));
    }
}

/// Prints a failed command's error (unless it printed its own) and returns its exit status.
fn exit_code(e: &anyhow::Error, creates: bool) -> i32 {
    if let Some(cli::Exit(code)) = e.downcast_ref::<cli::Exit>() {
        return *code;
    }
    if !creates && no_such_image(e) {
        eprintln!("Error response from daemon: {}", error_line(e));
        return 1;
    }
    eprintln!("cairn: {}", error_line(e));
    125
}

/// The error says an image argument names no image.
fn no_such_image(e: &anyhow::Error) -> bool {
    use cairn_driver::images::ImagesError;
    use cairn_driver::refs::ResolveError;
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ResolveError>(),
            Some(ResolveError::NotFound(_) | ResolveError::Ambiguous { .. })
        ) || matches!(
            c.downcast_ref::<ImagesError>(),
            Some(ImagesError::NotFound(_) | ImagesError::Resolve(ResolveError::NotFound(_)))
        )
    })
}

/// Runs a container command; a failure exits 1 as docker's CLI does (errors about
/// containers are the "daemon's").
fn container_command(root: &StoreRoot, cmd: ContainerCommand) -> anyhow::Result<()> {
    let result = container_command_inner(root, cmd);
    if let Err(e) = &result {
        if e.is::<cli::Exit>() {
            return result;
        }
        if e.chain().any(|c| c.is::<cairn_runtime::Error>()) {
            eprintln!("Error response from daemon: {}", error_line(e));
        } else {
            eprintln!("cairn: {}", error_line(e));
        }
        return Err(cli::Exit(1).into());
    }
    result
}

fn container_command_inner(root: &StoreRoot, cmd: ContainerCommand) -> anyhow::Result<()> {
    use cli::lifecycle as l;
    match cmd {
        ContainerCommand::Ls(a) => cli::ps::ps(root, a),
        ContainerCommand::Prune(a) => l::prune(root, a),
        ContainerCommand::Inspect(a) => {
            cli::inspect::inspect(root, a, cli::inspect::Kind::Container)
        }
        ContainerCommand::Fs(c) => cli::container_fs::run(root, c),
        ContainerCommand::Lifecycle(c) => match c {
            LifecycleCommand::Stop(a) => l::stop(root, a),
            LifecycleCommand::Kill(a) => l::kill(root, a),
            LifecycleCommand::Start(a) => l::start(root, a),
            LifecycleCommand::Restart(a) => l::restart(root, a),
            LifecycleCommand::Wait(a) => l::wait(root, a),
            LifecycleCommand::Rm(a) => l::rm(root, a),
            LifecycleCommand::Rename {
                container,
                new_name,
            } => l::rename(root, &container, &new_name),
            LifecycleCommand::Logs(a) => cli::logs::logs(root, a),
            LifecycleCommand::Port { container, port } => {
                l::port(root, &container, port.as_deref())
            }
        },
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already has
/// (library errors often name their source in their own message).
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}
