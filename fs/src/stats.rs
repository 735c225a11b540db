//! Request counters: how many requests of each FUSE opcode the daemon served, and its CPU time.
//! One relaxed atomic add per request (a round trip costs ~25 µs; the add is noise). With
//! `-o stats=FILE` the daemon writes the table to FILE when it is unmounted and on SIGUSR1, so a
//! benchmark can divide by the operations it made: requests per operation decide FUSE speed.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The opcodes cairn serves (the ones fuser answers by itself with ENOSYS are not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Op {
    Lookup,
    Forget,
    Getattr,
    Setattr,
    Readlink,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Symlink,
    Rename,
    Link,
    Open,
    Read,
    Write,
    Flush,
    Release,
    Fsync,
    Opendir,
    Readdir,
    Readdirplus,
    Releasedir,
    Fsyncdir,
    Statfs,
    Setxattr,
    Getxattr,
    Listxattr,
    Removexattr,
    Access,
    Create,
    Fallocate,
    Lseek,
}

const NAMES: [&str; 32] = [
    "LOOKUP",
    "FORGET",
    "GETATTR",
    "SETATTR",
    "READLINK",
    "MKNOD",
    "MKDIR",
    "UNLINK",
    "RMDIR",
    "SYMLINK",
    "RENAME",
    "LINK",
    "OPEN",
    "READ",
    "WRITE",
    "FLUSH",
    "RELEASE",
    "FSYNC",
    "OPENDIR",
    "READDIR",
    "READDIRPLUS",
    "RELEASEDIR",
    "FSYNCDIR",
    "STATFS",
    "SETXATTR",
    "GETXATTR",
    "LISTXATTR",
    "REMOVEXATTR",
    "ACCESS",
    "CREATE",
    "FALLOCATE",
    "LSEEK",
];

/// Requests served, per opcode.
#[derive(Debug, Default)]
pub struct Stats {
    counts: [AtomicU64; NAMES.len()],
}

impl Stats {
    /// Counts one request.
    pub fn hit(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of `op` so far.
    pub fn get(&self, op: Op) -> u64 {
        self.counts[op as usize].load(Ordering::Relaxed)
    }

    /// `OPCODE count` lines (non-zero ones), then `total`, then the process's CPU seconds
    /// (`cpu_user`, `cpu_sys`): plain text, one `key value` pair per line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut total = 0;
        for (name, c) in NAMES.iter().zip(&self.counts) {
            let c = c.load(Ordering::Relaxed);
            total += c;
            if c > 0 {
                let _ = writeln!(s, "{name} {c}");
            }
        }
        let _ = writeln!(s, "total {total}");
        // SAFETY: getrusage fills the zeroed struct it is given; it has no other effect.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut ru);
            ru
        };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let _ = writeln!(s, "cpu_user {:.6}", secs(ru.ru_utime));
        let _ = writeln!(s, "cpu_sys {:.6}", secs(ru.ru_stime));
        let _ = writeln!(s, "maxrss_kib {}", ru.ru_maxrss);
        s
    }

    /// Writes [`Stats::render`] to `path` (a temp name, then rename: readers never see half).
    pub fn dump(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.render())?;
        std::fs::rename(&tmp, path)
    }
}

/// Parses a stats file back into (key, value) pairs.
pub fn parse(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_and_parse_back() {
        let s = Stats::default();
        s.hit(Op::Lookup);
        s.hit(Op::Lookup);
        s.hit(Op::Create);
        let kv = parse(&s.render());
        let get = |k: &str| kv.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("LOOKUP"), Some(2.0));
        assert_eq!(get("CREATE"), Some(1.0));
        assert_eq!(get("total"), Some(3.0));
        assert_eq!(get("OPENDIR"), None);
        assert!(get("cpu_user").is_some());
    }
}
