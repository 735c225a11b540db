//! Writing an output file (`save -o`) so that a killed writer leaves nothing behind: the data
//! goes to an unnamed O_TMPFILE in the destination's directory and gets a name only once
//! complete (linked under a pid-stamped temp name, renamed over the destination). Where the
//! file system has no O_TMPFILE, a named `<dest>.cairn-tmp-<pid>` is used; leftovers of
//! writers that died (their pid gone) are removed by the next write to the same destination.
//! A destination that exists and is not a regular file (a device, a FIFO) is written in place.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, CWD, Mode, OFlags};

/// Writes `path` through `fill`, atomically. An existing destination that is not a regular
/// file (`/dev/null`, a FIFO, a terminal) is written in place: it must never be replaced.
pub fn write_new(path: &Path, fill: impl FnOnce(&File) -> Result<()>) -> Result<()> {
    if path.metadata().is_ok_and(|m| !m.is_file()) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("{}", path.display()))?;
        return fill(&file);
    }
    remove_stale(path);
    let tmp = tmp_name(path, std::process::id());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let unnamed = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    );
    let guard = Remove(Some(tmp.clone()));
    match unnamed {
        Ok(fd) => {
            let file = File::from(fd);
            fill(&file)?;
            let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
            rustix::fs::linkat(CWD, proc.as_str(), CWD, &tmp, AtFlags::SYMLINK_FOLLOW)
                .with_context(|| format!("{}", tmp.display()))?;
        }
        Err(_) => {
            let file = File::create(&tmp).with_context(|| format!("{}", tmp.display()))?;
            fill(&file)?;
        }
    }
    std::fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))?;
    std::mem::forget(guard);
    Ok(())
}

fn tmp_name(path: &Path, pid: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".cairn-tmp-{pid}"));
    PathBuf::from(name)
}

/// Removes `<path>.cairn-tmp-<pid>` files whose writer is gone.
fn remove_stale(path: &Path) {
    let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.cairn-tmp-", base.to_string_lossy());
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes the temp name on an early return.
struct Remove(Option<PathBuf>);

impl Drop for Remove {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}
