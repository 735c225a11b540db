//! `cairn run`: run a command in a new container from an image, without a daemon: in the
//! foreground (this process supervises it) or with `-d` under a detached supervisor (prints
//! the id). Exits with the command's status (128+N for signal N), or docker's 125 (cairn
//! failed), 126 (not executable) and 127 (not found).

use anyhow::Result;
use cairn_engine::Error as EngineError;
use cairn_engine::StoreRoot;
use cairn_runtime::RunRequest;

/// Arguments of `cairn run` (`-h` is --hostname, as in docker; help is `--help`).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Run container in background and print container ID.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Restart policy to apply when a container exits (no, on-failure[:max-retries],
    /// always, unless-stopped).
    #[arg(long, default_value = "no")]
    restart: String,
    /// Signal to stop the container (default: the image's StopSignal, else SIGTERM).
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container (default 10).
    #[arg(
        long = "stop-timeout",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    stop_timeout: Option<i64>,
    #[command(flatten)]
    opts: super::container_opts::ContainerOpts,
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    tty: bool,
    /// The image to run.
    image: String,
    /// The command and its arguments (replaces the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Runs `cairn run`; exits the process with the container's status.
pub fn run(root: &StoreRoot, a: RunArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let restart: cairn_runtime::container::RestartPolicy = a.restart.parse()?;
    if a.rm && restart != Default::default() {
        anyhow::bail!("Conflicting options: --restart and --rm");
    }
    let req = RunRequest {
        image: a.image.clone(),
        options: a.opts.to_run_options(&a.command)?,
        name: a.opts.name.clone(),
        remove: a.rm,
        interactive: a.interactive,
        tty: a.tty,
        restart,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
    };
    if let Some(s) = &req.stop_signal {
        cairn_runtime::lifecycle::parse_signal(s)?;
    }
    let result = if a.detach {
        engine.run_detached(&req).map(|c| {
            println!("{}", c.id);
            0
        })
    } else {
        engine.run(&req)
    };
    match result {
        Ok(code) => super::exit_with(code),
        Err(EngineError::Runtime(e @ cairn_runtime::Error::Start { .. })) => {
            eprintln!(
                "cairn: Error response from daemon: failed to create task for container: \
                 unable to start container process: {e}"
            );
            super::exit_with(e.exit_code())
        }
        Err(e) => Err(super::store::unwrap_err(e)),
    }
}
