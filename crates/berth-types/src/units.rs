//! Human-readable units as Docker prints them (go-units), shared by the daemon's
//! status texts ("Up 3 minutes") and the client's tables ("2 hours ago"), and Go's
//! duration syntax ("1m30s") that flags, `--change HEALTHCHECK` and filters use.

use std::time::Duration;

/// go-units `HumanDuration`: "Less than a second", "About a minute", "3 hours"...
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Go rounds to the nearest hour here (d.Round(time.Hour)), halves away from zero.
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", d.as_secs() / 3600 / 24 / 365)
}

/// A duration Go's `time.ParseDuration` would refuse, with Go's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(pub String);

/// Go's `time.ParseDuration` (`1h30m`, `1.5s`, `300ms`, `0`): nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError(format!("time: invalid duration {s:?}"));
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    let mut exact: i128 = 0;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: i128 = match unit {
            "" => return Err(DurationError(format!("time: missing unit in duration {s:?}"))),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            u => return Err(DurationError(format!("time: unknown unit {u:?} in duration {s:?}"))),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: i128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| invalid())? };
        exact = exact.checked_add(int.checked_mul(scale).ok_or_else(invalid)?).ok_or_else(invalid)?;
        if !frac.is_empty() {
            total += format!("0.{frac}").parse::<f64>().map_err(|_| invalid())? * scale as f64;
        }
    }
    let ns = exact + total.round() as i128;
    let ns = if neg { -ns } else { ns };
    i64::try_from(ns).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s: &str| parse_go_duration(s).unwrap();
        assert_eq!(d("0"), 0);
        assert_eq!(d("1ns"), 1);
        assert_eq!(d("300ms"), 300_000_000);
        assert_eq!(d("1.5s"), 1_500_000_000);
        assert_eq!(d("1h2m3.5s"), 3_723_500_000_000);
        assert_eq!(d(".5ms"), 500_000);
        assert_eq!(d("2µs"), 2_000);
        assert_eq!(d("-3m"), -180_000_000_000);
        for bad in ["", "s", "1", "1.2.3s", "3d", "abc", "1x", "9999999999999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_go_duration("10").unwrap_err().to_string(), "time: missing unit in duration \"10\"");
    }

    #[test]
    fn human_durations_read_like_dockers() {
        assert_eq!(human_duration(Duration::from_secs(0)), "Less than a second");
        assert_eq!(human_duration(Duration::from_secs(3 * 60)), "3 minutes");
    }
}
