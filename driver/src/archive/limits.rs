//! Limits on what one layer stream may expand to ("layer bombs"): the free-space reserve of
//! the store's filesystem, an optional cap on a layer's file bytes, and a cap on the
//! expansion ratio of a compressed stream (uncompressed tar bytes per compressed byte, checked
//! as the stream is read once it has produced more than a floor, so small layers of zeros
//! pass). Set from the environment by [`ImportLimits::from_env`]: `CAIRN_MAX_EXPAND`
//! (`RATIO` or `off`), `CAIRN_MAX_EXPAND_AFTER` (the floor) and `CAIRN_MAX_LAYER_SIZE`
//! (sizes in bytes, with k/m/g/t suffixes, or `off`).

use std::cell::Cell;
use std::io::{self, Read};

use crate::error::Error;

/// Default cap on the expansion ratio (a 47 MB gzip bomb of 10.7 GB is 228x; real layers,
/// even ones with large zero-filled files, stay far below once past the floor).
pub const DEFAULT_MAX_EXPAND: u64 = 100;
/// Uncompressed bytes a stream may produce before its ratio is checked.
pub const EXPAND_FLOOR: u64 = 1 << 30;

/// Guards against layers that would fill the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Extraction fails when a file would leave less than this many bytes free.
    pub min_free_bytes: u64,
    /// Extraction fails when the regular-file bytes of the layer exceed this.
    pub max_layer_bytes: Option<u64>,
    /// Extraction fails when the uncompressed stream exceeds this many times the compressed
    /// bytes read so far (checked past `expand_floor` bytes).
    pub max_expand: Option<u64>,
    pub expand_floor: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            min_free_bytes: 16 << 20,
            max_layer_bytes: None,
            max_expand: Some(DEFAULT_MAX_EXPAND),
            expand_floor: EXPAND_FLOOR,
        }
    }
}

/// `off`/`none`/`0` → no limit; otherwise bytes with an optional k/m/g/t suffix (powers of
/// 1024) when `bytes`, a plain number otherwise.
fn parse_limit(var: &'static str, value: &str, bytes: bool) -> Result<Option<u64>, Error> {
    let v = value.trim().to_ascii_lowercase();
    if matches!(v.as_str(), "off" | "none" | "0" | "") {
        return Ok(None);
    }
    let (num, mult) = match v.char_indices().last() {
        Some((i, c)) if bytes && "kmgt".contains(c) => {
            let shift = 10 * (1 + "kmgt".find(c).unwrap_or(0) as u32);
            (&v[..i], 1u64 << shift)
        }
        _ => (v.as_str(), 1),
    };
    num.trim_end_matches('b')
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .map(Some)
        .ok_or_else(|| Error::BadLimit {
            var,
            value: value.to_string(),
        })
}

impl ImportLimits {
    /// The defaults, changed by `CAIRN_MAX_EXPAND`, `CAIRN_MAX_EXPAND_AFTER` and
    /// `CAIRN_MAX_LAYER_SIZE`.
    pub fn from_env() -> Result<ImportLimits, Error> {
        let mut l = ImportLimits::default();
        if let Ok(v) = std::env::var("CAIRN_MAX_EXPAND") {
            l.max_expand = parse_limit("CAIRN_MAX_EXPAND", &v, false)?;
        }
        if let Ok(v) = std::env::var("CAIRN_MAX_EXPAND_AFTER") {
            let floor = parse_limit("CAIRN_MAX_EXPAND_AFTER", &v, true)?;
            l.expand_floor = floor.unwrap_or(0);
        }
        if let Ok(v) = std::env::var("CAIRN_MAX_LAYER_SIZE") {
            l.max_layer_bytes = parse_limit("CAIRN_MAX_LAYER_SIZE", &v, true)?;
        }
        Ok(l)
    }
}

/// Counts the bytes read through it into a shared cell.
pub(super) struct Counting<'a, R> {
    pub inner: R,
    pub count: &'a Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Fails the decompressed stream once it expands past the ratio; `tripped` says why it
/// failed, for the caller to report [`Error::TooExpanded`].
pub(super) struct ExpandGuard<'a, R> {
    pub inner: R,
    pub raw: &'a Cell<u64>,
    pub plain: u64,
    pub max: Option<u64>,
    pub floor: u64,
    pub tripped: &'a Cell<bool>,
}

impl<R: Read> Read for ExpandGuard<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.plain += n as u64;
        if let Some(max) = self.max
            && self.plain > self.floor
            && self.plain / self.raw.get().max(1) > max
        {
            self.tripped.set(true);
            return Err(io::Error::other("layer expansion limit"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(parse_limit("V", "off", true).unwrap(), None);
        assert_eq!(parse_limit("V", "0", false).unwrap(), None);
        assert_eq!(parse_limit("V", "50", false).unwrap(), Some(50));
        assert_eq!(parse_limit("V", "2g", true).unwrap(), Some(2 << 30));
        assert_eq!(parse_limit("V", "10M", true).unwrap(), Some(10 << 20));
        assert_eq!(parse_limit("V", "512", true).unwrap(), Some(512));
        for bad in ["x", "-1", "1.5"] {
            assert!(parse_limit("V", bad, true).is_err(), "{bad}");
        }
        // A ratio has no unit.
        assert!(parse_limit("V", "10m", false).is_err());
    }

    #[test]
    fn the_guard_trips_past_the_floor_only() {
        let data = vec![0u8; 5000];
        // Reads all of `data` through a guard (ratio 100, floor 2000) that has seen `raw`
        // compressed bytes; returns the read's outcome and whether the guard tripped.
        let read_all = |raw: u64| {
            let raw = Cell::new(raw);
            let tripped = Cell::new(false);
            let mut g = ExpandGuard {
                inner: &data[..],
                raw: &raw,
                plain: 0,
                max: Some(100),
                floor: 2000,
                tripped: &tripped,
            };
            let read = g.read_to_end(&mut Vec::new());
            (read, tripped.get())
        };
        let (read, tripped) = read_all(10);
        assert!(read.is_err());
        assert!(tripped);
        // Under the ratio: fine.
        let (read, tripped) = read_all(100);
        assert_eq!(read.unwrap(), 5000);
        assert!(!tripped);
    }
}
