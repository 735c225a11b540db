//! Container lifecycle commands, with docker's flags and output: `stop`, `kill`, `start`,
//! `restart`, `wait`, `rm`, `container prune`, `rename`, `port`. Commands taking several
//! containers print each one as given once done, report the failures on stderr and exit 1
//! if any failed (as docker does).

use cairn_engine::StoreRoot;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Result, bail};
use cairn_driver::image::human_size;
use cairn_runtime::container::{self, Container};
use cairn_runtime::lifecycle;
use cairn_runtime::supervisor::Attach;

/// The store's containers directory and a resolver for container arguments.
pub(super) struct Containers {
    pub dir: PathBuf,
}

impl Containers {
    pub fn open(root: &StoreRoot) -> Result<Containers> {
        Ok(Containers {
            dir: super::store::open(root)?.containers(),
        })
    }

    pub fn find(&self, arg: &str) -> Result<Container> {
        Ok(container::find(&self.dir, arg)?)
    }

    /// Runs `f` on each named container; prints each as given on success, the error on
    /// stderr otherwise; exits 1 if any failed.
    fn each(&self, args: &[String], f: impl Fn(&Container, &str) -> Result<()>) -> Result<()> {
        self.each_print(args, |c, arg| f(c, arg).map(|()| arg.to_string()))
    }

    /// Runs `f` on each named container and prints what it returns; errors as [`Self::each`].
    fn each_print(
        &self,
        args: &[String],
        f: impl Fn(&Container, &str) -> Result<String>,
    ) -> Result<()> {
        let mut failed = false;
        for arg in args {
            match self.find(arg).and_then(|c| f(&c, arg)) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!(
                        "Error response from daemon: {}",
                        super::super::error_line(&e)
                    );
                    failed = true;
                }
            }
        }
        if failed {
            return super::exit_with(1);
        }
        Ok(())
    }
}

/// `stop` / `restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        allow_hyphen_values = true
    )]
    time: Option<i64>,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `cairn stop`.
pub fn stop(root: &StoreRoot, a: StopArgs) -> Result<()> {
    let cs = Containers::open(root)?;
    cs.each(&a.containers, |c, _| Ok(lifecycle::stop(c, a.time)?))
}

/// Runs `cairn restart`.
pub fn restart(root: &StoreRoot, a: StopArgs) -> Result<()> {
    let cs = Containers::open(root)?;
    cs.each(&a.containers, |c, _| {
        lifecycle::stop(c, a.time)?;
        lifecycle::start(c, Attach::None)?;
        Ok(())
    })
}

/// `kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `cairn kill`.
pub fn kill(root: &StoreRoot, a: KillArgs) -> Result<()> {
    let sig = lifecycle::parse_signal(&a.signal)?;
    let cs = Containers::open(root)?;
    cs.each(&a.containers, |c, arg| match lifecycle::kill(c, sig) {
        Err(cairn_runtime::Error::NotRunning(id)) => {
            bail!("cannot kill container: {arg}: container {id} is not running")
        }
        r => Ok(r?),
    })
}

/// `start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short = 'a', long)]
    attach: bool,
    /// Attach container's STDIN.
    #[arg(short = 'i', long)]
    interactive: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `cairn start`; with `-a` exits with the container's status.
pub fn start(root: &StoreRoot, a: StartArgs) -> Result<()> {
    let cs = Containers::open(root)?;
    if a.attach || a.interactive {
        let [one] = a.containers.as_slice() else {
            bail!("you cannot start and attach multiple containers at once");
        };
        let c = cs.find(one)?;
        let attach = match a.interactive {
            true => Attach::OutputAndStdin,
            false => Attach::Output,
        };
        match lifecycle::start(&c, attach)? {
            Some(code) => return super::exit_with(code),
            None => return Ok(()),
        }
    }
    cs.each(&a.containers, |c, _| {
        lifecycle::start(c, Attach::None)?;
        Ok(())
    })
}

/// `wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `cairn wait`: prints each container's exit status.
pub fn wait(root: &StoreRoot, a: WaitArgs) -> Result<()> {
    let cs = Containers::open(root)?;
    cs.each_print(&a.containers, |c, _| Ok(lifecycle::wait(c)?.to_string()))
}

/// `rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove anonymous volumes associated with the container (there are none).
    #[arg(short = 'v', long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `cairn rm`.
pub fn rm(root: &StoreRoot, a: RmArgs) -> Result<()> {
    let cs = Containers::open(root)?;
    cs.each(&a.containers, |c, _| Ok(lifecycle::remove(c, a.force)?))
}

/// `container prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
}

/// Runs `cairn container prune`: removes every stopped container.
pub fn prune(root: &StoreRoot, a: PruneArgs) -> Result<()> {
    if !a.force {
        eprint!(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
        );
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes" | "YES") {
            return Ok(());
        }
    }
    let engine = super::store::open(root)?;
    let pruned = engine
        .prune_containers()
        .map_err(super::store::unwrap_err)?;
    let reclaimed: u64 = pruned.iter().map(|p| p.bytes).sum();
    let deleted: Vec<String> = pruned.into_iter().map(|p| p.id).collect();
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for id in &deleted {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(())
}

/// Runs `cairn rename OLD NEW`.
pub fn rename(root: &StoreRoot, old: &str, new: &str) -> Result<()> {
    let cs = Containers::open(root)?;
    let mut c = cs.find(old)?;
    c.rename(&cs.dir, new)?;
    Ok(())
}

/// Runs `cairn port CONTAINER [PORT]`: cairn publishes no ports (containers use the host's
/// network or none).
pub fn port(root: &StoreRoot, container: &str, port: Option<&str>) -> Result<()> {
    let cs = Containers::open(root)?;
    let c = cs.find(container)?;
    match port {
        Some(p) => {
            eprintln!("Error: No public port '{p}' published for {container}");
            super::exit_with(1)
        }
        None => {
            eprintln!(
                "{}: no published ports (cairn containers use the host's network or none; \
                 there is no port publishing)",
                c.name
            );
            Ok(())
        }
    }
}
