//! Registry commands: `pull`, `push`, `login`, `logout`, `search`.
//!
//! Registries on loopback addresses (localhost, 127.0.0.0/8, ::1) are spoken to over plain
//! HTTP, so are those given `--tls-verify=false` and those listed in
//! `$XDG_CONFIG_HOME/cairn/registries.json` as `{"insecure":["host:port"]}`; HTTPS otherwise.
//! Credentials: `$REGISTRY_AUTH_FILE`, else `$XDG_CONFIG_HOME/cairn/auth.json`
//! (`~/.config/cairn/auth.json`); `${DOCKER_CONFIG:-~/.docker}/config.json` is read too.

use anyhow::{Context, Result};
use cairn_driver::refs::parse_docker_ref;
use cairn_driver::registry::pull::{self, PullOptions};
use cairn_driver::registry::{ClientOptions, Platform, RegistryError};

use super::progress::{Op, Reporter};
use super::store::open_images;

/// `--tls-verify[=BOOL]`, shared by the registry commands.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct TlsArgs {
    /// Require HTTPS with a verified certificate; `--tls-verify=false` speaks plain HTTP to
    /// the registry (loopback registries and those listed as insecure in
    /// $XDG_CONFIG_HOME/cairn/registries.json always use plain HTTP).
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
pub fn pull(root: Option<&str>, a: PullArgs) -> Result<()> {
    let images = open_images(root)?;
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
    let plan = with_subject(pull::resolve(&images, &reference, &opts), &subject)?;
    let by = reference.digest().or(reference.tag()).unwrap_or("latest");
    out.line(&format!("{by}: Pulling from {}", reference.path()));
    let pulled = with_subject(plan_fetch(plan, &images, &out), &subject)?;
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

fn plan_fetch(
    plan: pull::PullPlan,
    images: &cairn_driver::images::ImageStore,
    out: &Reporter,
) -> std::result::Result<pull::Pulled, RegistryError> {
    plan.fetch(images, out)
}
