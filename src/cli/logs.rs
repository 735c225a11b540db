//! `cairn logs [-f] [-t] [--tail N] [--since T] [--until T] CONTAINER`: the container's
//! json-file log, stdout entries to stdout and stderr entries to stderr; `-f` follows until
//! the container stops for good.

use cairn_engine::StoreRoot;
use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use cairn_runtime::lifecycle;
use cairn_runtime::logs::{Entry, LogReader, Stream, now_nanos, parse_since, rfc3339_nano};

/// Arguments of `cairn logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Show timestamps.
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs ("all" for all).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m).
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or relative time.
    #[arg(long)]
    until: Option<String>,
    container: String,
}

fn time_arg(flag: &str, v: &Option<String>) -> Result<Option<i128>> {
    match v {
        None => Ok(None),
        Some(s) => match parse_since(s, now_nanos()) {
            Some(t) => Ok(Some(t)),
            None => bail!("invalid value for \"{flag}\": {s}"),
        },
    }
}

/// Runs `cairn logs`.
pub fn logs(root: &StoreRoot, a: LogsArgs) -> Result<()> {
    let cs = super::lifecycle::Containers::open(root)?;
    let c = cs.find(&a.container)?;
    let since = time_arg("since", &a.since)?;
    let until = time_arg("until", &a.until)?;
    let tail: Option<usize> = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow::anyhow!("invalid tail: {n}"))?,
        ),
    };
    let keep = |e: &Entry| {
        let t = e.nanos();
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
    };
    let mut log = LogReader::new(&c.log_path());
    let mut entries: Vec<Entry> = log.read()?.into_iter().filter(|e| keep(e)).collect();
    if let Some(n) = tail {
        entries.drain(..entries.len().saturating_sub(n));
    }
    print_entries(&entries, a.timestamps)?;
    if !a.follow {
        return Ok(());
    }
    loop {
        // Read the state first: whatever was logged before it stopped is read after.
        let running = c.dir.exists() && lifecycle::is_running(&lifecycle::refresh(&c)?);
        let more: Vec<Entry> = log.read()?.into_iter().filter(|e| keep(e)).collect();
        print_entries(&more, a.timestamps)?;
        if !running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn print_entries(entries: &[Entry], timestamps: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for e in entries {
        let w: &mut dyn Write = match e.stream {
            Stream::Stdout => &mut out,
            Stream::Stderr => &mut err,
        };
        if timestamps {
            write!(w, "{} ", rfc3339_nano(e.nanos(), true))?;
        }
        w.write_all(e.log.as_bytes())?;
    }
    out.flush()?;
    err.flush()?;
    Ok(())
}
