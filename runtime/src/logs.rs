//! A container's output log in docker's `json-file` format: one JSON object per line,
//! `{"log":"<one line, with its \n>","stream":"stdout"|"stderr","time":"<RFC3339Nano>"}`,
//! written by the supervisor ([`LogWriter`]) and read by `cairn logs` ([`LogReader`]); plus
//! the time formats `logs` uses (RFC3339Nano, and `--since`'s timestamps and durations).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: Stream,
    pub time: String,
}

impl Entry {
    /// The entry's time in nanoseconds since the epoch (0 if unreadable).
    pub fn nanos(&self) -> i128 {
        parse_rfc3339(&self.time).unwrap_or(0)
    }
}

/// Appends output to a log, one entry per line (a last line without a newline is written
/// when the stream ends, as docker does).
#[derive(Debug)]
pub struct LogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

/// Longest line kept whole; longer ones are split (docker: 16 KiB).
const MAX_LINE: usize = 16 * 1024;

impl LogWriter {
    /// Opens (creates) the log for appending.
    pub fn open(path: &Path) -> Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(Error::io("open", path))?;
        Ok(LogWriter {
            file,
            partial: [vec![], vec![]],
        })
    }

    /// Logs a chunk of a stream's output.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let i = stream as usize;
        self.partial[i].extend_from_slice(data);
        let mut buf = std::mem::take(&mut self.partial[i]);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
            self.entry(stream, &buf[start..start + nl + 1]);
            start += nl + 1;
        }
        while buf.len() - start >= MAX_LINE {
            self.entry(stream, &buf[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        buf.drain(..start);
        self.partial[i] = buf;
    }

    /// Writes what is left of a stream's last line.
    pub fn finish(&mut self, stream: Stream) {
        let rest = std::mem::take(&mut self.partial[stream as usize]);
        if !rest.is_empty() {
            self.entry(stream, &rest);
        }
    }

    fn entry(&mut self, stream: Stream, line: &[u8]) {
        let e = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream,
            time: rfc3339_nano(now_nanos(), false),
        };
        let mut text = serde_json::to_vec(&e).expect("serializable");
        text.push(b'\n');
        // A full disk loses log lines, never the container.
        let _ = self.file.write_all(&text);
    }
}

/// Reads a log as it grows. The file stays open once found: what the supervisor wrote
/// before the container was removed (`--rm`) is still read after.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
}

impl LogReader {
    /// A reader from the start of the log at `path` (which may not exist yet).
    pub fn new(path: &Path) -> LogReader {
        LogReader {
            path: path.to_path_buf(),
            file: None,
            offset: 0,
        }
    }

    /// The complete entries written since the last call (a partial last line waits for the
    /// next).
    pub fn read(&mut self) -> Result<Vec<Entry>> {
        let f = match &mut self.file {
            Some(f) => f,
            None => match File::open(&self.path) {
                Ok(f) => self.file.insert(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
                Err(e) => return Err(Error::io("open", &self.path)(e)),
            },
        };
        let mut data = Vec::new();
        f.seek(SeekFrom::Start(self.offset))
            .and_then(|_| f.read_to_end(&mut data))
            .map_err(Error::io("read", &self.path))?;
        let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        self.offset += complete as u64;
        Ok(data[..complete]
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// (year, month, day) of a day number since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day number since 1970-01-01 of a date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// UTC time as RFC3339 with nanoseconds: Go's RFC3339Nano (trailing zeros dropped, as the
/// json-file log has it) or, with `fixed`, always nine digits (as `docker logs -t` prints).
pub fn rfc3339_nano(nanos: i128, fixed: bool) -> String {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let frac = nanos.rem_euclid(1_000_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    );
    let digits = format!("{frac:09}");
    let digits = if fixed {
        &digits[..]
    } else {
        digits.trim_end_matches('0')
    };
    if !digits.is_empty() {
        out.push('.');
        out.push_str(digits);
    }
    out.push('Z');
    out
}

/// Parses `YYYY-MM-DD[THH:MM[:SS[.frac]]][Z|±HH:MM]` into nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let num = |t: &str| -> Option<i64> {
        t.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (date, rest) = s.split_at(s.len().min(10));
    let mut dp = date.split('-');
    let (y, m, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
    if dp.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, m as u32, d as u32) * 86_400;
    let mut frac: i128 = 0;
    let mut rest = rest;
    if let Some(time) = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' ')) {
        let end = time.find(['Z', '+', '-']).unwrap_or(time.len());
        let (clock, tz) = time.split_at(end);
        let (clock, fraction) = clock.split_once('.').unwrap_or((clock, ""));
        let mut parts = clock.split(':');
        let h = num(parts.next()?)?;
        let mi = num(parts.next()?)?;
        let se = parts.next().map_or(Some(0), num)?;
        secs += h * 3600 + mi * 60 + se;
        if !fraction.is_empty() {
            let digits: String = fraction
                .chars()
                .chain("000000000".chars())
                .take(9)
                .collect();
            frac = num(&digits)? as i128;
        }
        rest = tz;
    }
    match rest {
        "" | "Z" => {}
        tz => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let (h, m) = tz[1..].split_once(':')?;
            secs -= sign * (num(h)? * 3600 + num(m)? * 60);
        }
    }
    Some(i128::from(secs) * 1_000_000_000 + frac)
}

/// Parses a Go duration (`300ms`, `10s`, `1h30m`) into nanoseconds.
pub fn parse_duration(s: &str) -> Option<i128> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    Some(total as i128)
}

/// `--since`/`--until`: a duration before `now`, a Unix timestamp (`1700000000[.123]`) or
/// an RFC3339 date/time; nanoseconds since the epoch.
pub fn parse_since(s: &str, now: i128) -> Option<i128> {
    if let Some(d) = parse_duration(s) {
        return Some(now - d);
    }
    if let Some((secs, frac)) = s.split_once('.').or(Some((s, "")))
        && !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let digits: String = frac.chars().chain("000000000".chars()).take(9).collect();
        return Some(secs.parse::<i128>().ok()? * 1_000_000_000 + digits.parse::<i128>().ok()?);
    }
    parse_rfc3339(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = 1_700_000_000_123_450_000i128;
        assert_eq!(rfc3339_nano(t, false), "2023-11-14T22:13:20.12345Z");
        assert_eq!(rfc3339_nano(t, true), "2023-11-14T22:13:20.123450000Z");
        assert_eq!(rfc3339_nano(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.12345Z"), Some(t));
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.12345+01:00"),
            Some(t),
            "offset"
        );
        assert_eq!(parse_rfc3339("1970-01-02"), Some(86_400_000_000_000));
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_since("10s", 20_000_000_000), Some(10_000_000_000));
        assert_eq!(
            parse_since("1700000000.5", 0),
            Some(1_700_000_000_500_000_000)
        );
    }

    #[test]
    fn lines_are_split_and_streams_kept_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log");
        let mut w = LogWriter::open(&p).unwrap();
        w.write(Stream::Stdout, b"a\nb");
        w.write(Stream::Stderr, b"err\n");
        w.write(Stream::Stdout, b"c\nlast");
        w.finish(Stream::Stdout);
        let mut r = LogReader::new(&p);
        let entries = r.read().unwrap();
        let got: Vec<_> = entries.iter().map(|e| (e.stream, e.log.as_str())).collect();
        assert_eq!(
            got,
            [
                (Stream::Stdout, "a\n"),
                (Stream::Stderr, "err\n"),
                (Stream::Stdout, "bc\n"),
                (Stream::Stdout, "last")
            ]
        );
        assert_eq!(r.offset, std::fs::metadata(&p).unwrap().len());
        assert!(r.read().unwrap().is_empty());
        // Removed (`--rm`) after the last line: still read.
        w.write(Stream::Stdout, b"gone\n");
        std::fs::remove_file(&p).unwrap();
        assert_eq!(r.read().unwrap()[0].log, "gone\n");
    }
}
