//! `cairn ps` (also `container ls` / `container ps`): docker's columns CONTAINER ID, IMAGE,
//! COMMAND (quoted, truncated to 20 with `…`), CREATED, STATUS (`Up 3 seconds`, `Exited (0)
//! 2 minutes ago`, `Created`, `Restarting (1) 1 second ago`), PORTS, NAMES; `-a`, `-q`,
//! `-l`, `-n N`, `--no-trunc`, `--filter status=|name=|id=|ancestor=|exited=`, `--format`.

use cairn_engine::StoreRoot;
use cairn_engine::status::ContainerStatus;
use std::collections::BTreeMap;

use anyhow::{Result, bail};
use cairn_driver::image::human_duration;
use cairn_runtime::container::{self, Container, ContainerConfig, State, Status};
use cairn_runtime::lifecycle;
use serde_json::{Value, json};

use super::format::{Format, render_rows};

/// Arguments of `cairn ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Show the latest created container (includes all states).
    #[arg(short = 'l', long)]
    latest: bool,
    /// Show n last created containers (includes all states).
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    last: i64,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided (status=, name=, id=, ancestor=).
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', TEMPLATE).
    #[arg(long)]
    format: Option<String>,
}

const DEFAULT_TABLE: &str =
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// docker's state word (the engine's one status function).
pub fn state_word(st: &State) -> &'static str {
    cairn_engine::status::status(st).word()
}

fn ago(then: i64, now: i64) -> String {
    human_duration(i128::from(now - then) * 1_000_000_000)
}

/// docker's STATUS column.
pub fn status_text(st: &State, now: i64) -> String {
    let code = st.exit_code.unwrap_or(0);
    let finished = st.finished_at.unwrap_or(now);
    match cairn_engine::status::status(st) {
        ContainerStatus::Running => format!("Up {}", ago(st.started_at.unwrap_or(now), now)),
        ContainerStatus::Restarting => format!("Restarting ({code}) {} ago", ago(finished, now)),
        ContainerStatus::Created => "Created".into(),
        ContainerStatus::Exited | ContainerStatus::Dead if st.started_at.is_none() => {
            "Created".into()
        }
        ContainerStatus::Exited | ContainerStatus::Dead => {
            format!("Exited ({code}) {} ago", ago(finished, now))
        }
    }
}

/// docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// `YYYY-MM-DD HH:MM:SS +0000 UTC` (Go's default time format, in UTC).
fn created_at(secs: i64) -> String {
    let t = cairn_runtime::logs::rfc3339_nano(i128::from(secs) * 1_000_000_000, false);
    format!("{} {} +0000 UTC", &t[..10], &t[11..19])
}

struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    fn parse(args: &[String]) -> Result<Filters> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in args {
            let Some((k, v)) = f.split_once('=') else {
                bail!("bad format of filter (expected name=value)");
            };
            match k {
                "status" => {
                    const OK: &[&str] = &[
                        "created",
                        "restarting",
                        "running",
                        "removing",
                        "paused",
                        "exited",
                        "dead",
                    ];
                    if !OK.contains(&v) {
                        bail!("invalid filter 'status={v}'");
                    }
                }
                "exited" if v.parse::<i32>().is_err() => bail!("invalid filter 'exited={v}'"),
                "name" | "id" | "ancestor" | "exited" => {}
                _ => bail!("invalid filter '{k}'"),
            }
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        Ok(Filters(m))
    }

    fn matches(&self, c: &Container, cfg: &Shown, st: &State) -> bool {
        self.0.iter().all(|(k, vs)| {
            vs.iter().any(|v| match k.as_str() {
                "status" => state_word(st) == v,
                "name" => name_matches(&c.name, v),
                "exited" => {
                    st.status == Status::Exited
                        && !st.restarting
                        && st.exit_code.map(|c| c.to_string()).as_deref() == Some(v)
                }
                "id" => c.id.starts_with(v.as_str()),
                _ => {
                    let bare = cfg.image_id.trim_start_matches("sha256:");
                    cfg.image == *v
                        || cfg.image == format!("{v}:latest")
                        || bare.starts_with(v.trim_start_matches("sha256:"))
                }
            })
        })
    }
}

/// docker matches `name=` as a regular expression; here the common forms: a substring,
/// optionally anchored with `^` and `$` (a leading `/` is the name's own).
fn name_matches(name: &str, pattern: &str) -> bool {
    let name = format!("/{name}");
    let (start, p) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(p) => (true, p),
        None => (false, p),
    };
    let p = if start && !p.starts_with('/') {
        format!("/{p}")
    } else {
        p.to_string()
    };
    match (start, end) {
        (true, true) => name == p,
        (true, false) => name.starts_with(&p),
        (false, true) => name.ends_with(&p),
        (false, false) => name.contains(&p),
    }
}

/// What a row shows of a container's config. A container whose `run` was killed before
/// config.json was written is still listed (`ps -a`), so that it can be seen and removed.
struct Shown {
    image: String,
    image_id: String,
    args: Vec<String>,
    created: i64,
    network: &'static str,
}

impl Shown {
    fn of(c: &Container) -> Shown {
        match c.config() {
            Ok(cfg) => Shown::from_config(cfg),
            Err(_) => Shown {
                image: String::new(),
                image_id: String::new(),
                args: vec![],
                created: std::fs::metadata(&c.dir)
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs() as i64),
                network: "",
            },
        }
    }

    fn from_config(cfg: ContainerConfig) -> Shown {
        Shown {
            network: match cfg.spec.network {
                cairn_runtime::spec::Network::None => "none",
                _ => "host",
            },
            image: cfg.image,
            image_id: cfg.image_id,
            args: cfg.spec.args,
            created: cfg.created,
        }
    }
}

/// One row with docker's field names.
fn row(c: &Container, cfg: &Shown, st: &State, trunc: bool, now: i64) -> Value {
    let command = cfg.args.join(" ");
    let command = if trunc {
        ellipsis(&command, 20)
    } else {
        command
    };
    let id = if trunc { &c.id[..12] } else { &c.id[..] };
    json!({
        "ID": id,
        "Image": cfg.image,
        "Command": Value::String(command).to_string(),
        "CreatedAt": created_at(cfg.created),
        "RunningFor": format!("{} ago", ago(cfg.created, now)),
        "Status": status_text(st, now),
        "State": state_word(st),
        "Ports": "",
        "Names": c.name,
        "Labels": "",
        "Mounts": "",
        "Networks": cfg.network,
        "LocalVolumes": "0",
        "Size": "",
    })
}

/// Runs `cairn ps`.
pub fn ps(root: &StoreRoot, a: PsArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let containers = engine.containers();
    let filters = Filters::parse(&a.filter)?;
    let last = if a.latest { 1 } else { a.last };
    let all = a.all || last >= 0 || filters.0.contains_key("status");
    let now = container::now();
    let mut rows = Vec::new();
    let mut ids = Vec::new();
    for (n, c) in container::list(&containers).into_iter().enumerate() {
        if last >= 0 && n as i64 >= last {
            break;
        }
        let cfg = Shown::of(&c);
        let st = lifecycle::refresh(&c)?;
        if !(all || lifecycle::is_running(&st)) || !filters.matches(&c, &cfg, &st) {
            continue;
        }
        rows.push(row(&c, &cfg, &st, !a.no_trunc, now));
        ids.push(if a.no_trunc {
            c.id.clone()
        } else {
            c.id[..12].to_string()
        });
    }
    if a.quiet {
        for id in ids {
            println!("{id}");
        }
        return Ok(());
    }
    let fmt = Format::parse(a.format.as_deref(), DEFAULT_TABLE);
    let headers = BTreeMap::from([
        ("ID", "CONTAINER ID"),
        ("RunningFor", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("LocalVolumes", "LOCAL VOLUMES"),
    ]);
    print!("{}", render_rows(&fmt, &rows, &headers)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_columns() {
        assert_eq!(ellipsis("sleep 100", 20), "sleep 100");
        assert_eq!(
            ellipsis("sh -c while true; do echo hi; done", 20),
            "sh -c while true; d…"
        );
        let st = State {
            status: Status::Exited,
            exit_code: Some(3),
            started_at: Some(100),
            finished_at: Some(100),
            ..State::default()
        };
        assert_eq!(status_text(&st, 220), "Exited (3) 2 minutes ago");
        let up = State {
            status: Status::Running,
            started_at: Some(100),
            ..State::default()
        };
        assert_eq!(status_text(&up, 103), "Up 3 seconds");
        assert_eq!(status_text(&State::default(), 0), "Created");
        let never_started = State {
            status: Status::Exited,
            exit_code: Some(127),
            finished_at: Some(100),
            ..State::default()
        };
        assert_eq!(status_text(&never_started, 200), "Created");
        assert_eq!(state_word(&never_started), "created");
        let r = State {
            restarting: true,
            exit_code: Some(1),
            finished_at: Some(10),
            ..st
        };
        assert_eq!(status_text(&r, 11), "Restarting (1) 1 second ago");
        assert_eq!(state_word(&r), "restarting");
        assert_eq!(created_at(0), "1970-01-01 00:00:00 +0000 UTC");
        assert!(name_matches("web", "^web$") && name_matches("web", "^/web$"));
        assert!(name_matches("web-1", "web") && !name_matches("web-1", "^web$"));
        assert!(name_matches("my-web", "web$") && !name_matches("my-web", "^web"));
    }
}
