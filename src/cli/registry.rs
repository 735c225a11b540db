//! Registry commands: `pull`, `push`, `login`, `logout`, `search`.
//!
//! Registries on loopback addresses (localhost, 127.0.0.0/8, ::1) are spoken to over plain
//! HTTP; those given `--tls-verify=false` or listed in `$XDG_CONFIG_HOME/cairn/registries.json`
//! as `{"insecure":["host:port"]}` over HTTPS without certificate checks, or plain HTTP when
//! they do not speak HTTPS; verified HTTPS otherwise.
//! Credentials: `$REGISTRY_AUTH_FILE`, else `$XDG_CONFIG_HOME/cairn/auth.json`
//! (`~/.config/cairn/auth.json`); `${DOCKER_CONFIG:-~/.docker}/config.json` is read too.

use cairn_engine::StoreRoot;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use cairn_driver::refs::{DEFAULT_DOMAIN, parse_docker_ref, parse_normalized};
use cairn_driver::registry::credentials::{self, Credentials};
use cairn_driver::registry::pull::{self, PullOptions};
use cairn_driver::registry::{Client, ClientOptions, Platform, RegistryError, push, search};
use serde_json::json;

use super::format::{Format, render_rows};
use super::progress::{Op, Reporter};

/// `--tls-verify[=BOOL]`, shared by the registry commands.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct TlsArgs {
    /// `--tls-verify=false`: treat the registry as insecure (HTTPS without certificate
    /// checks if it speaks it, else plain HTTP). Loopback registries always use plain HTTP;
    /// $XDG_CONFIG_HOME/cairn/registries.json `{"insecure":["host:port"]}` lists more.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    tls_verify: bool,
}

impl TlsArgs {
    fn client(&self) -> ClientOptions {
        ClientOptions {
            insecure: !self.tls_verify,
            credentials: None,
        }
    }
}

/// `cairn pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Platform to pull from a multi-platform image: os/arch[/variant] (default: this host's).
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output: print only the image name.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    tls: TlsArgs,
    /// NAME[:TAG|@DIGEST].
    name: String,
}

/// Adds the context a bare "unauthorized" lacks.
fn with_subject<T>(r: std::result::Result<T, RegistryError>, what: &str) -> Result<T> {
    match r {
        Err(e @ RegistryError::Unauthorized { .. }) => Err(e).context(what.to_string()),
        other => Ok(other?),
    }
}

/// Runs `cairn pull`.
pub fn pull(root: &StoreRoot, a: PullArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let reference = parse_docker_ref(&a.name)?;
    let opts = PullOptions {
        platform: a.platform.as_deref().map(Platform::parse).transpose()?,
        client: a.tls.client(),
    };
    let out = Reporter::new(Op::Pull, a.quiet);
    let parsed = cairn_driver::refs::parse_normalized_named(&a.name)?;
    if parsed.is_name_only() {
        out.line("Using default tag: latest");
    }
    let subject = format!("pull {}", reference.familiar());
    let plan = with_subject(pull::resolve(images, &reference, &opts), &subject)?;
    let by = reference.digest().or(reference.tag()).unwrap_or("latest");
    out.line(&format!("{by}: Pulling from {}", reference.path()));
    let pulled = plan.fetch(images, &out);
    out.done();
    let pulled = with_subject(pulled, &subject)?;
    let digest = pulled
        .repo_digest
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_string();
    out.line(&format!("Digest: {digest}"));
    let status = if pulled.up_to_date {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    out.line(&format!("Status: {status} {}", reference.familiar()));
    println!("{reference}");
    Ok(())
}

/// `cairn push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Suppress verbose output: print only the image name.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    tls: TlsArgs,
    /// NAME[:TAG] of a local image; the name says where it goes (tag + push copies an image
    /// to another registry).
    name: String,
}

/// Runs `cairn push`.
pub fn push(root: &StoreRoot, a: PushArgs) -> Result<()> {
    let engine = super::store::open(root)?;
    let images = engine.images();
    let target = parse_normalized(&a.name)?;
    if target.digest().is_some() {
        bail!("cannot push a digest reference: {}", a.name);
    }
    let out = Reporter::new(Op::Push, a.quiet);
    out.line(&format!(
        "The push refers to repository [{}]",
        target.name()
    ));
    let subject = format!("push {}", target.familiar());
    let pushed = push::push(images, &a.name, &target, &a.tls.client(), &out);
    out.done();
    let pushed = with_subject(pushed, &subject)?;
    let tag = target.tag().unwrap_or("latest");
    out.line(&format!(
        "{tag}: digest: {} size: {}",
        pushed.digest, pushed.size
    ));
    if a.quiet {
        println!("{target}");
    }
    Ok(())
}

/// A registry argument as the user wrote it (`https://host:port/v1/`, `index.docker.io`)
/// reduced to the name used in references and in the credentials file.
fn registry_name(arg: Option<&str>) -> String {
    let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
        return DEFAULT_DOMAIN.to_string();
    };
    let s = arg
        .strip_prefix("https://")
        .or_else(|| arg.strip_prefix("http://"))
        .unwrap_or(arg);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_DOMAIN.to_string(),
        h => h.to_string(),
    }
}

/// `cairn login`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Credentials are checked against the registry, then stored (base64, mode 0600) in \
$REGISTRY_AUTH_FILE, else $XDG_CONFIG_HOME/cairn/auth.json (~/.config/cairn/auth.json), \
docker's config.json format; ${DOCKER_CONFIG:-~/.docker}/config.json is read as well."
)]
pub struct LoginArgs {
    /// Username.
    #[arg(short, long)]
    username: Option<String>,
    /// Password.
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Take the password from STDIN.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    tls: TlsArgs,
    /// The registry (default: Docker Hub).
    registry: Option<String>,
}

fn prompt(text: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "cannot prompt for {text}: STDIN is not a terminal (use -u and -p or --password-stdin)"
        );
    }
    print!("{text}: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Runs `cairn login`: verifies the credentials against `/v2/` and stores them.
pub fn login(a: LoginArgs) -> Result<()> {
    let registry = registry_name(a.registry.as_deref());
    let username = match a.username {
        Some(u) => u,
        None => prompt("Username")?,
    };
    let password = if a.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        match a.password {
            Some(p) => p,
            None => prompt("Password")?,
        }
    };
    if username.is_empty() || password.is_empty() {
        bail!("login to {registry}: username and password must not be empty");
    }
    let creds = Credentials { username, password };
    let opts = ClientOptions {
        credentials: Some(creds.clone()),
        ..a.tls.client()
    };
    let context = || format!("login to {registry}");
    Client::new(&registry, &opts)
        .and_then(|c| c.ping())
        .with_context(context)?;
    let path = credentials::auth_file().context("no place for credentials: HOME is unset")?;
    credentials::store_in(&path, &registry, &creds).with_context(context)?;
    println!("Login Succeeded");
    Ok(())
}

/// `cairn logout`.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    registry: Option<String>,
}

/// Runs `cairn logout`.
pub fn logout(a: LogoutArgs) -> Result<()> {
    let registry = registry_name(a.registry.as_deref());
    let path = credentials::auth_file().context("no credentials file: HOME is unset")?;
    if credentials::remove_in(&path, &registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(())
}

/// `cairn search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Max number of results.
    #[arg(long, default_value_t = 25)]
    limit: usize,
    /// Do not list each repository's tags (one request fewer per result).
    #[arg(long)]
    no_tags: bool,
    /// Format: table, json, or a Go template ({{.Name}} {{.Tags}} {{.Description}}).
    #[arg(long)]
    format: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// REGISTRY/TERM: repositories of REGISTRY's catalog whose name contains TERM
    /// (REGISTRY alone lists them all).
    term: String,
}

/// Splits `REGISTRY[/TERM]`; the first component must look like a registry host.
fn split_search(arg: &str) -> Result<(String, String)> {
    let (host, term) = arg.split_once('/').unwrap_or((arg, ""));
    if host.contains(['.', ':']) || host == "localhost" {
        return Ok((registry_name(Some(host)), term.to_string()));
    }
    bail!(
        "search needs a registry: REGISTRY/TERM (e.g. 127.0.0.1:5000/{arg}); searching Docker Hub is not supported"
    )
}

/// Runs `cairn search`.
pub fn search(a: SearchArgs) -> Result<()> {
    let (registry, term) = split_search(&a.term)?;
    let found = search::search(&registry, &term, a.limit, !a.no_tags, &a.tls.client())
        .with_context(|| format!("search {registry}"))?;
    let rows: Vec<serde_json::Value> = found
        .iter()
        .map(|f| {
            json!({
                "Name": format!("{registry}/{}", f.name),
                "Tags": f.tags.join(", "),
                "Description": "",
            })
        })
        .collect();
    let headers = BTreeMap::from([
        ("Name", "NAME"),
        ("Tags", "TAGS"),
        ("Description", "DESCRIPTION"),
    ]);
    let default = if a.no_tags {
        "{{.Name}}"
    } else {
        "{{.Name}}\t{{.Tags}}"
    };
    let fmt = Format::parse(a.format.as_deref(), default);
    print!("{}", render_rows(&fmt, &rows, &headers)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names() {
        assert_eq!(registry_name(None), "docker.io");
        assert_eq!(
            registry_name(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(
            registry_name(Some("http://127.0.0.1:5000")),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_name(Some("localhost:5000/")), "localhost:5000");
    }

    #[test]
    fn search_arguments() {
        let (r, t) = split_search("127.0.0.1:5000/busy").unwrap();
        assert_eq!((r.as_str(), t.as_str()), ("127.0.0.1:5000", "busy"));
        let (r, t) = split_search("localhost:5000").unwrap();
        assert_eq!((r.as_str(), t.as_str()), ("localhost:5000", ""));
        assert!(split_search("busybox").is_err());
    }
}
