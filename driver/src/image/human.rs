//! Human formatting as docker does it (go-units): sizes and durations.

use super::*;

// ---------------------------------------------------------------------------------------------
// Human formatting (docker/go-units)
// ---------------------------------------------------------------------------------------------

pub(crate) const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// Size as the docker CLI prints it in `images`/`history`/`ps -s`:
/// go-units `HumanSizeWithPrecision(size, 3)` ("4.26MB", "0B", "112kB").
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes as f64, 3)
}

/// go-units `HumanSizeWithPrecision`: decimal units, `%.{precision}g`.
/// (go-units' own `HumanSize` is precision 4.)
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let mut size = size;
    let mut i = 0;
    while size >= 1000.0 && i < DECIMAL_UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g(size, precision), DECIMAL_UNITS[i])
}

/// Go's `%.{prec}g`.
pub(crate) fn format_g(x: f64, prec: usize) -> String {
    let prec = prec.max(1);
    if x == 0.0 {
        return "0".into();
    }
    let sci = format!("{:.*e}", prec - 1, x);
    let (mant, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::from(if neg { "-" } else { "" });
    if exp < -4 || exp >= prec as i32 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    } else {
        let dp = exp + 1;
        if dp <= 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-dp) as usize));
            out.push_str(digits);
        } else if digits.len() <= dp as usize {
            out.push_str(digits);
            out.push_str(&"0".repeat(dp as usize - digits.len()));
        } else {
            out.push_str(&digits[..dp as usize]);
            out.push('.');
            out.push_str(&digits[dp as usize..]);
        }
    }
    out
}

/// go-units `HumanDuration` ("Less than a second", "About a minute", "3 weeks", ...).
/// `nanos` may be negative (a time in the future), which reads as "Less than a second".
pub fn human_duration(nanos: i128) -> String {
    let d = nanos as f64;
    let seconds = (d / 1e9) as i64;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (d / 6e10) as i64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours_f = d / 3.6e12;
    let hours = (hours_f + 0.5) as i64;
    if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours_f as i64 / 24 / 365)
    }
}

/// "2 hours ago", as docker prints CREATED.
pub fn time_ago(created: Timestamp, now: Timestamp) -> String {
    let nanos = (now.secs as i128 - created.secs as i128) * 1_000_000_000
        + (now.nanos as i128 - created.nanos as i128);
    format!("{} ago", human_duration(nanos))
}

pub use crate::refs::short_id;
