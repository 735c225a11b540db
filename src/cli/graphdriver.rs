//! `cairn graphdriver`: serves Docker's graphdriver plugin API (dockerd 20.10–27 in
//! experimental mode) on a unix socket until SIGINT/SIGTERM, then unmounts every union it
//! mounted and removes its socket (and spec file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use cairn_graphdriver::server::Plugin;

/// Arguments of `cairn graphdriver`.
#[derive(Debug, clap::Args)]
pub struct GraphdriverArgs {
    /// Unix socket to listen on. dockerd finds a plugin named NAME as
    /// /run/docker/plugins/NAME.sock (or through a spec file).
    #[arg(
        long,
        value_name = "SOCKET",
        default_value = "/run/docker/plugins/cairn.sock"
    )]
    listen: PathBuf,
    /// Also write a spec file (e.g. /etc/docker/plugins/cairn.spec) naming the socket.
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
}

/// Runs the plugin server in the foreground.
pub fn graphdriver(a: GraphdriverArgs) -> Result<()> {
    // The stop signals go to this thread only (every thread started later inherits the mask).
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [
        nix::sys::signal::SIGINT,
        nix::sys::signal::SIGTERM,
        nix::sys::signal::SIGHUP,
    ] {
        set.add(s);
    }
    set.thread_block().context("block signals")?;
    if let Some(dir) = a.listen.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if a.listen.exists() {
        std::fs::remove_file(&a.listen)
            .with_context(|| format!("remove stale {}", a.listen.display()))?;
    }
    let server = Arc::new(
        tiny_http::Server::http_unix(&a.listen)
            .map_err(|e| anyhow!("listen on {}: {e}", a.listen.display()))?,
    );
    if let Some(spec) = &a.spec {
        write_spec(spec, &a.listen)?;
    }
    let exe = std::env::current_exe().context("path of the cairn binary")?;
    let plugin = Arc::new(Plugin::new(&exe));
    let serving = {
        let (server, plugin) = (Arc::clone(&server), Arc::clone(&plugin));
        std::thread::spawn(move || plugin.serve(&server))
    };
    let _ = set.wait();
    server.unblock();
    let _ = serving.join();
    let _ = std::fs::remove_file(&a.listen);
    if let Some(spec) = &a.spec {
        let _ = std::fs::remove_file(spec);
    }
    plugin.cleanup().context("unmount layers")
}

fn write_spec(spec: &Path, sock: &Path) -> Result<()> {
    if let Some(dir) = spec.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let sock = std::path::absolute(sock).context("socket path")?;
    std::fs::write(spec, format!("unix://{}\n", sock.display()))
        .with_context(|| format!("write {}", spec.display()))
}
