//! Up-front checks of mount options, each failing with one clear line before anything is
//! mounted: numeric options within sane bounds (a huge `threads=` once made the daemon try to
//! allocate hundreds of GB after the mount was live), lowerdir lists without empty layers,
//! and a mountpoint that is not one of its own layers (nor inside or above one: the daemon
//! would serve requests for its own layers through itself).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Most threads a mount may serve with (each holds a cloned /dev/fuse fd and a stack).
pub const MAX_THREADS: u64 = 256;
/// Longest attribute/entry cache timeout, in seconds (a year).
pub const MAX_TIMEOUT_SECS: f64 = 365.0 * 86400.0;

/// An integer option within `min..=max`.
pub fn bounded_int(key: &str, val: &str, min: u64, max: u64) -> Result<u64> {
    match val.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::Config(format!(
            "mount option '{key}={val}': expected a whole number from {min} to {max}"
        ))),
    }
}

/// `timeout=SECONDS` (fractions allowed), from 0 to [`MAX_TIMEOUT_SECS`].
pub fn timeout(val: &str) -> Result<Duration> {
    match val.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=MAX_TIMEOUT_SECS).contains(&s) => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => Err(Error::Config(format!(
            "mount option 'timeout={val}': expected seconds from 0 to {MAX_TIMEOUT_SECS}"
        ))),
    }
}

/// The layers of a `lowerdir=` value (`:` separated, `\:` escapes a colon): every layer
/// named, none empty (`L:`, `:L`, `L::L2` are refused as the kernel refuses them).
pub fn lowerdir(val: &str, parts: Vec<String>) -> Result<Vec<PathBuf>> {
    if parts.is_empty() || parts.iter().any(String::is_empty) {
        return Err(Error::Config(format!(
            "mount option 'lowerdir={val}': empty layer in the list (layers are separated by \
             single ':'; data-only '::' layers are not supported)"
        )));
    }
    Ok(parts.into_iter().map(PathBuf::from).collect())
}

/// `lowerdir` may be given once.
pub fn lowerdir_once(already: bool) -> Result<()> {
    match already {
        true => Err(Error::Config(
            "mount option 'lowerdir' given more than once (one list, layers separated by ':')"
                .into(),
        )),
        false => Ok(()),
    }
}

/// Refuses a mountpoint that is a layer, or inside one, or that contains one (all paths
/// canonical).
pub fn mountpoint_apart(mountpoint: &Path, layers: &[(&str, &Path)]) -> Result<()> {
    for (what, dir) in layers {
        let relation = if mountpoint == *dir {
            "is"
        } else if mountpoint.starts_with(dir) {
            "is inside"
        } else if dir.starts_with(mountpoint) {
            "contains"
        } else {
            continue;
        };
        return Err(Error::Config(format!(
            "mountpoint {} {relation} the {what} {}: a layer cannot be served through its own \
             mount",
            mountpoint.display(),
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_bounded() {
        assert_eq!(bounded_int("threads", "8", 1, MAX_THREADS).unwrap(), 8);
        for bad in ["0", "257", "99999999999", "-1", "x", "", "1e3"] {
            let e = bounded_int("threads", bad, 1, MAX_THREADS).unwrap_err();
            assert!(e.to_string().contains("from 1 to 256"), "{bad}: {e}");
        }
        assert_eq!(timeout("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(timeout("0").unwrap(), Duration::ZERO);
        for bad in ["-1", "nan", "inf", "1e300", "x", "-0.5"] {
            assert!(timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lowerdir_lists_have_no_empty_layer() {
        let ok = lowerdir("/a:/b", vec!["/a".into(), "/b".into()]).unwrap();
        assert_eq!(ok, [PathBuf::from("/a"), PathBuf::from("/b")]);
        for parts in [
            vec!["/a".to_string(), String::new()],
            vec!["/a".into(), String::new(), "/b".into()],
            vec![],
        ] {
            assert!(lowerdir("x", parts).is_err());
        }
        assert!(lowerdir_once(true).is_err() && lowerdir_once(false).is_ok());
    }

    #[test]
    fn the_mountpoint_is_no_layer() {
        let l = Path::new("/data/l");
        assert!(mountpoint_apart(Path::new("/data/m"), &[("lower dir", l)]).is_ok());
        for m in ["/data/l", "/data/l/sub", "/data"] {
            let e = mountpoint_apart(Path::new(m), &[("lower dir", l)]).unwrap_err();
            assert!(e.to_string().contains("/data/l"), "{m}: {e}");
        }
        // A sibling whose name shares a prefix is fine.
        assert!(mountpoint_apart(Path::new("/data/l2"), &[("lower dir", l)]).is_ok());
    }
}
