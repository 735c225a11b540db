//! Which device nodes a container may use (docker's device policy): every device may be
//! created (`mknod`), but only the default allow-list — null, zero, full, random, urandom,
//! tty, console, ptmx and the devpts terminals — and the `--device` ones may be opened;
//! any other node (made in the container or shipped in the image) gives EPERM. `--privileged`
//! allows every device.
//!
//! The rules are enforced by the container's cgroup: the v1 `devices` controller
//! (`devices.deny` `a`, then one `devices.allow` line per rule) or, on cgroup v2, a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program ([`bpf`]) attached to the container's cgroup.

pub mod bpf;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::SpecError;

/// The kind of device a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Both kinds (`a`).
    All,
    Char,
    Block,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::All => 'a',
            Kind::Char => 'c',
            Kind::Block => 'b',
        }
    }
}

/// Access bits of a rule (`r`, `w`, `m`).
pub const READ: u8 = 2;
pub const WRITE: u8 = 4;
pub const MKNOD: u8 = 1;
pub const RWM: u8 = READ | WRITE | MKNOD;

/// One line of the device policy: allow (or deny) `access` to devices of `kind` with this
/// major and minor (`None`: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Rule {
    const fn allow(kind: Kind, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// The cgroup v1 `devices.allow` / `devices.deny` line (`c 1:3 rwm`, `a *:* rwm`).
    pub fn v1_line(&self) -> String {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            access_string(self.access)
        )
    }

    /// Whether this rule is about a device of this kind and numbers, for this access.
    pub fn matches(&self, kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        (self.kind == Kind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && access & !self.access == 0
    }
}

/// `rwm` letters of an access mask.
pub fn access_string(access: u8) -> String {
    [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| access & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The access mask of `rwm` letters; `None` for anything else.
pub fn parse_access(s: &str) -> Option<u8> {
    let mut a = 0;
    for c in s.chars() {
        a |= match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => return None,
        };
    }
    (a != 0).then_some(a)
}

/// docker's (runc's) default allow-list, after denying everything.
pub const DEFAULT_ALLOWED: &[Rule] = &[
    // mknod of any device (opening it is what the rest decides).
    Rule::allow(Kind::Char, None, None, MKNOD),
    Rule::allow(Kind::Block, None, None, MKNOD),
    Rule::allow(Kind::Char, Some(1), Some(3), RWM), // null
    Rule::allow(Kind::Char, Some(1), Some(5), RWM), // zero
    Rule::allow(Kind::Char, Some(1), Some(7), RWM), // full
    Rule::allow(Kind::Char, Some(1), Some(8), RWM), // random
    Rule::allow(Kind::Char, Some(1), Some(9), RWM), // urandom
    Rule::allow(Kind::Char, Some(5), Some(0), RWM), // tty
    Rule::allow(Kind::Char, Some(5), Some(1), RWM), // console
    Rule::allow(Kind::Char, Some(5), Some(2), RWM), // ptmx
    Rule::allow(Kind::Char, Some(136), None, RWM),  // pts/*
];

/// Whether the policy lets a process use the device: the last matching rule decides; no
/// match denies (the policy starts with "deny all").
pub fn allowed(rules: &[Rule], kind: Kind, major: u32, minor: u32, access: u8) -> bool {
    rules
        .iter()
        .rev()
        .find(|r| r.matches(kind, major, minor, access))
        .is_some_and(|r| r.allow)
}

/// A host device given to the container (`--device HOST[:CONTAINER[:PERMS]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub host: PathBuf,
    /// Absolute path inside the container.
    pub container: String,
    pub kind: Kind,
    pub major: u32,
    pub minor: u32,
    pub access: u8,
    /// Mode bits, owner and group of the host node (the container's node gets the same).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Device {
    /// Parses `HOST[:CONTAINER[:PERMS]]` and looks the host node up.
    pub fn parse(s: &str) -> Result<Device, SpecError> {
        let bad = || SpecError::InvalidDevice(s.to_string());
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, perms) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, c] if parse_access(c).is_some() => (*h, *h, *c),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] => (*h, *c, *p),
            _ => return Err(bad()),
        };
        let access = parse_access(perms).ok_or_else(bad)?;
        if !host.starts_with('/') || !container.starts_with('/') {
            return Err(bad());
        }
        let meta = std::fs::metadata(host).map_err(|e| SpecError::DeviceLookup {
            path: host.to_string(),
            reason: e.to_string(),
        })?;
        let kind = if meta.file_type().is_char_device() {
            Kind::Char
        } else if meta.file_type().is_block_device() {
            Kind::Block
        } else {
            return Err(SpecError::NotADevice(host.to_string()));
        };
        let rdev = meta.rdev();
        Ok(Device {
            host: PathBuf::from(host),
            container: container.to_string(),
            kind,
            major: rustix::fs::major(rdev),
            minor: rustix::fs::minor(rdev),
            access,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }

    /// The allow rule of this device.
    pub fn rule(&self) -> Rule {
        Rule::allow(self.kind, Some(self.major), Some(self.minor), self.access)
    }
}

/// The whole policy of a container: deny all, the default allow-list, then its devices; or
/// allow all when privileged.
pub fn policy(devices: &[Device], privileged: bool) -> Vec<Rule> {
    if privileged {
        return vec![Rule::allow(Kind::All, None, None, RWM)];
    }
    let deny_all = Rule {
        allow: false,
        ..Rule::allow(Kind::All, None, None, RWM)
    };
    std::iter::once(deny_all)
        .chain(DEFAULT_ALLOWED.iter().copied())
        .chain(devices.iter().map(Device::rule))
        .collect()
}

/// Writes the policy into a v1 `devices` cgroup directory.
pub fn apply_v1(dir: &Path, rules: &[Rule]) -> std::io::Result<()> {
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        std::fs::write(dir.join(file), r.v1_line())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_allows_only_the_standard_nodes() {
        let p = policy(&[], false);
        for (maj, min) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ] {
            assert!(
                allowed(&p, Kind::Char, maj, min, READ | WRITE),
                "{maj}:{min}"
            );
        }
        assert!(allowed(&p, Kind::Char, 136, 4, READ | WRITE));
        // A loop device, the host's disk, /dev/mem, /dev/kmsg: only mknod.
        for (k, maj, min) in [
            (Kind::Block, 7, 0),
            (Kind::Block, 8, 0),
            (Kind::Char, 1, 1),
            (Kind::Char, 1, 11),
        ] {
            assert!(!allowed(&p, k, maj, min, READ), "{maj}:{min}");
            assert!(!allowed(&p, k, maj, min, WRITE), "{maj}:{min}");
            assert!(allowed(&p, k, maj, min, MKNOD), "{maj}:{min}");
        }
    }

    #[test]
    fn a_device_rule_and_privileged_open_more() {
        let loop0 = Device {
            host: "/dev/loop0".into(),
            container: "/dev/xvda".into(),
            kind: Kind::Block,
            major: 7,
            minor: 0,
            access: READ,
            mode: 0o660,
            uid: 0,
            gid: 6,
        };
        let p = policy(std::slice::from_ref(&loop0), false);
        assert!(allowed(&p, Kind::Block, 7, 0, READ));
        assert!(!allowed(&p, Kind::Block, 7, 0, WRITE));
        assert!(!allowed(&p, Kind::Block, 7, 1, READ));
        assert!(allowed(&policy(&[], true), Kind::Block, 8, 0, RWM));
    }

    #[test]
    fn v1_lines_are_what_the_kernel_reads() {
        let p = policy(&[], false);
        assert_eq!(p[0].v1_line(), "a *:* rwm");
        assert!(!p[0].allow);
        assert_eq!(p[1].v1_line(), "c *:* m");
        assert_eq!(p[3].v1_line(), "c 1:3 rwm");
        assert_eq!(p.last().unwrap().v1_line(), "c 136:* rwm");
    }

    #[test]
    fn device_flag_forms() {
        assert!(parse_access("rw").is_some() && parse_access("rx").is_none());
        let d = Device::parse("/dev/null").unwrap();
        assert_eq!(
            (d.kind, d.major, d.minor, d.access),
            (Kind::Char, 1, 3, RWM)
        );
        assert_eq!(d.container, "/dev/null");
        let d = Device::parse("/dev/null:/dev/mynull:r").unwrap();
        assert_eq!((d.container.as_str(), d.access), ("/dev/mynull", READ));
        let d = Device::parse("/dev/null:rw").unwrap();
        assert_eq!(
            (d.container.as_str(), d.access),
            ("/dev/null", READ | WRITE)
        );
        assert!(Device::parse("/dev/null:/x:q").is_err());
        assert!(Device::parse("/etc/hostname").is_err());
        assert!(Device::parse("/nonexistent-device").is_err());
        assert!(Device::parse("dev/null").is_err());
    }
}
