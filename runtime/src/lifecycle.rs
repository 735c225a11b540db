//! What commands do to an existing container: [`start`], [`stop`], [`kill`], [`wait`],
//! [`remove`]. The state as it truly is ([`refresh`] and friends) lives in [`crate::state`]
//! and is re-exported here.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::container::{Container, ProcessId, State, Status};
use crate::launch::Launch;
pub use crate::state::{
    dead_private_mounts, is_running, pid1, refresh, remove_private_mount, unmount_stale,
};
use crate::state::{kill_leftovers, signal};
use crate::supervisor::{Attach, detach, supervise};
use crate::{Error, Result};

/// Polls until `done` holds for the refreshed state (true) or `timeout` passes (false). A
/// container directory that disappeared (`--rm`) counts as done.
fn wait_until(c: &Container, timeout: Duration, done: impl Fn(&State) -> bool) -> Result<bool> {
    let start = Instant::now();
    loop {
        if !c.dir.exists() {
            return Ok(true);
        }
        let st = refresh(c)?;
        if done(&st) {
            return Ok(true);
        }
        if start.elapsed() >= timeout {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Not running and no supervisor left (its cleanup — unmount, cgroup — is done).
fn settled(st: &State) -> bool {
    !is_running(st) && st.supervisor.is_none()
}

/// The state once a container that is not running has no supervisor left: one that just
/// exited gets the time to finish its cleanup (unmount, cgroup).
fn settle(c: &Container) -> Result<State> {
    let st = refresh(c)?;
    if !is_running(&st) && st.supervisor.is_some() {
        wait_until(c, Duration::from_secs(15), |s| is_running(s) || settled(s))?;
        return refresh(c);
    }
    Ok(st)
}

/// Parses a signal as docker does: `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || Error::InvalidSignal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

/// The signal `stop` sends first: the image's StopSignal, else SIGTERM.
fn stop_signal(c: &Container) -> Signal {
    c.config()
        .ok()
        .and_then(|cfg| cfg.stop_signal)
        .and_then(|s| parse_signal(&s).ok())
        .unwrap_or(Signal::SIGTERM)
}

/// `stop`: the stop signal, SIGKILL after `timeout` (default: the container's
/// `--stop-timeout`, else 10 s; negative: no limit); returns once the container stopped and
/// its supervisor finished. No restart by the policy afterwards. A stopped container is fine.
pub fn stop(c: &Container, timeout: Option<i64>) -> Result<()> {
    let timeout = match timeout.or_else(|| c.config().ok().and_then(|cfg| cfg.stop_timeout)) {
        Some(t) if t < 0 => Duration::MAX,
        Some(t) => Duration::from_secs(t as u64),
        None => Duration::from_secs(10),
    };
    let st = refresh(c)?;
    if settled(&st) {
        return Ok(());
    }
    let st = c.update_state(|s| s.stopped_by_user = true)?;
    if let Some(p) = pid1(&st) {
        signal(p, stop_signal(c));
    }
    if wait_until(c, timeout, |s| !is_running(s))? {
        return finish(c);
    }
    if let Some(p) = pid1(&refresh(c)?) {
        signal(p, Signal::SIGKILL);
    }
    finish(c)
}

/// Waits for the supervisor to finish after pid 1 was stopped; kills it if it does not.
fn finish(c: &Container) -> Result<()> {
    if wait_until(c, Duration::from_secs(15), settled)? {
        return Ok(());
    }
    if let Some(sup) = c.state().ok().and_then(|s| s.supervisor) {
        signal(sup, Signal::SIGKILL);
    }
    wait_until(c, Duration::from_secs(5), settled)?;
    Ok(())
}

/// `kill`: sends a signal to pid 1 (SIGKILL and the stop signal also stop the restart
/// policy, as `stop` does).
pub fn kill(c: &Container, sig: Signal) -> Result<()> {
    let st = refresh(c)?;
    if !is_running(&st) {
        return Err(Error::NotRunning(c.id.clone()));
    }
    let st = if sig == Signal::SIGKILL || sig == stop_signal(c) {
        c.update_state(|s| s.stopped_by_user = true)?
    } else {
        st
    };
    if let Some(p) = pid1(&st) {
        signal(p, sig);
    }
    Ok(())
}

/// `wait`: blocks until the container stopped for good; its exit status (the last one seen
/// if `--rm` removed it meanwhile). One that is not running and has no supervisor that could
/// start it (never started) is stopped already, as docker's "not-running" condition.
pub fn wait(c: &Container) -> Result<i32> {
    let last = std::cell::Cell::new(0);
    wait_until(c, Duration::MAX, |s| {
        last.set(s.exit_code.unwrap_or(0));
        (s.status == Status::Exited && !s.restarting) || settled(s)
    })?;
    Ok(c.state()
        .ok()
        .and_then(|s| s.exit_code)
        .unwrap_or(last.get()))
}

/// `start`: starts a stopped container under a new detached supervisor (same upper, same
/// config), or attached supervises it in this process and returns its exit status.
/// A running container is left alone (`Ok(None)`).
pub fn start(c: &Container, attach: Attach) -> Result<Option<i32>> {
    let st = settle(c)?;
    if !settled(&st) {
        return Ok(None);
    }
    c.config()?;
    {
        // Claimed under the lock, by this process until the supervisor takes over: of two
        // concurrent starts, one starts the container and the other finds it starting.
        let _lock = c.lock()?;
        let mut st = c.state_or_new()?;
        if !settled(&st) {
            return Ok(None);
        }
        st.supervisor = ProcessId::current();
        st.stopped_by_user = false;
        st.restart_count = 0;
        st.error = None;
        c.set_state(&st)?;
    }
    let launch = Launch::Existing(c.clone());
    if attach != Attach::None {
        return supervise(launch, attach, &mut |_| {}).map(Some);
    }
    detach(launch)?;
    Ok(None)
}

/// `rm`: removes a stopped container; with `force` kills a running one first. Nothing is
/// left: no process, no mount, no cgroup, no directory.
pub fn remove(c: &Container, force: bool) -> Result<()> {
    let st = settle(c)?;
    if !settled(&st) {
        if !force {
            return Err(Error::RemoveRunning(c.name.clone()));
        }
        let st = c.update_state(|s| s.stopped_by_user = true)?;
        if let Some(p) = pid1(&st) {
            signal(p, Signal::SIGKILL);
        }
        finish(c)?;
    }
    if !c.dir.exists() {
        return Ok(());
    }
    let _lock = c.lock()?;
    kill_leftovers(c, &c.state().unwrap_or_default());
    match c.remove() {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("kill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("HUP").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }
}
