//! `cairn exec` and `cairn top`: a command in a running container, and its processes.

use cairn_engine::StoreRoot;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_runtime::Error;
use cairn_runtime::container::{self, Container};
use cairn_runtime::exec::{ExecRequest, exec_in, running_pid};
use cairn_runtime::live::{ProcInfo, container_pids, proc_info};

use super::format::align;

/// The container a user named.
pub fn find(root: &StoreRoot, arg: &str) -> Result<Container> {
    super::store::open(root)?
        .find_container(arg)
        .map_err(super::store::unwrap_err)
}

/// `cairn exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background.
    #[arg(short, long)]
    detach: bool,
    /// Set environment variables.
    #[arg(short, long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Keep STDIN open.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    tty: bool,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// The container.
    container: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// Runs `cairn exec`; exits the process with the command's status.
pub fn exec(root: &StoreRoot, a: ExecArgs) -> Result<()> {
    let c = find(root, &a.container)?;
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("open {}", f.display()))?;
        env.extend(cairn_runtime::spec::parse_env_file(&text)?);
    }
    env.extend(a.env);
    let req = ExecRequest {
        command: a.command,
        env,
        workdir: a.workdir,
        user: a.user,
        interactive: a.interactive,
        tty: a.tty,
        detach: a.detach,
    };
    match exec_in(&c, &req) {
        Ok(code) => super::exit_with(code),
        Err(Error::NotRunning(_)) => {
            // docker's CLI: the daemon's refusal exits 1.
            eprintln!(
                "Error response from daemon: Container {} is not running",
                c.id
            );
            super::exit_with(1)
        }
        Err(e @ Error::Start { .. }) => {
            eprintln!(
                "cairn: OCI runtime exec failed: exec failed: unable to start container \
                 process: {e}: unknown"
            );
            super::exit_with(e.exit_code())
        }
        Err(e) => Err(e.into()),
    }
}

/// `cairn top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// The container.
    container: String,
    /// ps options (ignored: the columns are always those of `ps -ef`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_options: Vec<String>,
}

/// User names of the host (docker's top runs ps on the host).
fn host_users() -> Vec<(u32, String)> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f[0].to_string()))
        })
        .collect()
}

/// `ps -ef` columns of one process.
fn row(p: &ProcInfo, users: &[(u32, String)], now: i64) -> String {
    let uid = users
        .iter()
        .find(|(u, _)| *u == p.uid)
        .map_or_else(|| p.uid.to_string(), |(_, n)| n.clone());
    let stime = stime(p.start, now);
    let t = p.cpu_secs;
    let time = format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
    format!(
        "{uid}\t{}\t{}\t{}\t{stime}\t{}\t{time}\t{}",
        p.pid, p.ppid, p.cpu_percent, p.tty, p.cmd
    )
}

/// `ps`'s STIME: HH:MM today, else Mon DD (UTC).
fn stime(start: i64, now: i64) -> String {
    let day = |t: i64| t.div_euclid(86400);
    if day(start) == day(now) {
        let s = start.rem_euclid(86400);
        return format!("{:02}:{:02}", s / 3600, s / 60 % 60);
    }
    let ts = cairn_driver::image::Timestamp {
        secs: start,
        nanos: 0,
    }
    .to_rfc3339();
    // YYYY-MM-DD… → "Mon DD".
    let month: usize = ts.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}{}",
        MONTHS[(month + 11) % 12],
        ts.get(8..10).unwrap_or("01")
    )
}

/// Runs `cairn top`.
pub fn top(root: &StoreRoot, a: TopArgs) -> Result<()> {
    let c = find(root, &a.container)?;
    let Some(pid) = running_pid(&c) else {
        bail!(
            "Error response from daemon: container {} is not running",
            c.id
        );
    };
    let users = host_users();
    let now = container::now();
    let mut lines = vec!["UID\tPID\tPPID\tC\tSTIME\tTTY\tTIME\tCMD".to_string()];
    lines.extend(
        container_pids(pid)
            .into_iter()
            .filter_map(proc_info)
            .map(|p| row(&p, &users, now)),
    );
    print!("{}", align(&lines));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::stime;

    #[test]
    fn start_times() {
        assert_eq!(stime(86400 + 3600 + 120, 86400 + 7200), "01:02");
        assert_eq!(stime(0, 86400 * 40), "Jan01");
    }
}
