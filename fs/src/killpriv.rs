//! Clearing set-user-ID / set-group-ID bits on write and truncate, which cairn does itself since
//! it negotiates FUSE_HANDLE_KILLPRIV_V2: the kernel then stops asking for `security.capability`
//! before every write() (one round trip per call) and leaves suid/sgid to the daemon.
//!
//! The kernel's rules, which kernel overlayfs applies through the upper's own file system: a
//! write or truncate by a caller without CAP_FSETID clears S_ISUID, and S_ISGID when S_IXGRP is
//! set or the caller is not in the file's group. The kernel marks such writes FUSE_WRITE_KILL_SUIDGID. For truncate and O_TRUNC opens it
//! sends FATTR_KILL_SUIDGID / FUSE_OPEN_KILL_SUIDGID, which fuser 0.18 does not pass on, so the
//! caller's capability is read from /proc instead (only for files that carry such a bit).
//! Passthrough writes never reach the daemon, so a writable open of such a file gets no
//! passthrough (`needs_daemon_writes`). Capabilities (`security.capability`) the kernel still
//! removes itself, with a REMOVEXATTR.

use std::os::fd::AsFd;

use rustix::fs::Mode;

use crate::error::Result;

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_IXGRP: u32 = 0o0010;
const CAP_FSETID: u32 = 4;

/// The mode bits a write by an unprivileged caller removes from `mode`; `in_group` tells
/// whether the caller is in the file's group (asked only for S_ISGID without S_IXGRP).
pub fn bits_to_kill(mode: u32, in_group: impl FnOnce() -> bool) -> u32 {
    let mut kill = mode & S_ISUID;
    if mode & S_ISGID != 0 && (mode & S_IXGRP != 0 || !in_group()) {
        kill |= S_ISGID;
    }
    kill
}

/// A writable open of a file with this mode must send its writes to the daemon.
pub fn needs_daemon_writes(mode: u32) -> bool {
    mode & (S_ISUID | S_ISGID) != 0
}

/// Clears what [`bits_to_kill`] names for the caller `pid` on the open file `fd`; returns the
/// mode the file has then.
pub fn kill_suidgid(fd: impl AsFd, pid: u32) -> Result<u32> {
    let st = rustix::fs::fstat(&fd)?;
    let kill = bits_to_kill(st.st_mode, || in_group(pid, st.st_gid));
    if kill != 0 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(st.st_mode & 0o7777 & !kill))?;
    }
    Ok(st.st_mode & !kill)
}

/// Whether process `pid` has `gid` as its fs gid or a supplementary group.
fn in_group(pid: u32, gid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    // "Gid:" is real, effective, saved, fs.
    ids("Gid:").get(3) == Some(&gid) || ids("Groups:").contains(&gid)
}

/// Whether the process `pid` (of a FUSE request) lacks CAP_FSETID in the daemon's user
/// namespace. Unknown pids (0, exited) fall back to "not uid 0".
pub fn lacks_fsetid(pid: u32, uid: u32) -> bool {
    if pid == 0 {
        return uid != 0;
    }
    let own_ns = std::fs::read_link("/proc/self/ns/user").ok();
    match std::fs::read_link(format!("/proc/{pid}/ns/user")) {
        Ok(ns) if Some(&ns) != own_ns.as_ref() => return true,
        Ok(_) => {}
        Err(_) => return uid != 0,
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return uid != 0;
    };
    match cap_eff(&status) {
        Some(caps) => caps & (1 << CAP_FSETID) == 0,
        None => uid != 0,
    }
}

/// The `CapEff:` mask of a /proc/PID/status text.
fn cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suid_always_and_sgid_only_with_group_exec_are_killed() {
        let member = || true;
        assert_eq!(bits_to_kill(0o4755, member), S_ISUID);
        assert_eq!(bits_to_kill(0o2775, member), S_ISGID);
        assert_eq!(
            bits_to_kill(0o2765, member),
            0,
            "sgid without g+x, caller in group"
        );
        assert_eq!(
            bits_to_kill(0o2765, || false),
            S_ISGID,
            "caller not in group"
        );
        assert_eq!(bits_to_kill(0o6777, member), S_ISUID | S_ISGID);
        assert!(!needs_daemon_writes(0o0777));
        assert!(needs_daemon_writes(0o2765));
    }

    #[test]
    fn own_groups_are_found() {
        let me = std::process::id();
        assert!(in_group(me, rustix::process::getegid().as_raw()));
    }

    #[test]
    fn capabilities_parse_from_proc_status() {
        assert_eq!(
            cap_eff("Name:\tx\nCapEff:\t000001ffffffffff\n"),
            Some(0x1ff_ffff_ffff)
        );
        assert_eq!(cap_eff("Name:\tx\n"), None);
        // This process: root with every capability in CI, or an unprivileged user.
        let me = std::process::id();
        let uid = rustix::process::getuid().as_raw();
        let expect = cap_eff(&std::fs::read_to_string("/proc/self/status").unwrap())
            .is_some_and(|c| c & (1 << CAP_FSETID) == 0);
        assert_eq!(lacks_fsetid(me, uid), expect);
    }
}
