//! Human units as docker prints and parses them (moby's go-units and Go's `time`):
//! `1.98MB`, `576KiB`, `Up 3 minutes`, `64m`, `1m30s`.

use std::time::Duration;

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn scale(mut size: f64, base: f64, units: &'static [&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// go-units `HumanSizeWithPrecision`: decimal units, `precision` significant digits
/// (`%.*g`), e.g. 1984295 → "1.98MB" with precision 3.
pub fn human_size_precision(size: f64, precision: usize) -> String {
    let (v, unit) = scale(size, 1000.0, &DECIMAL);
    format!("{}{}", go_fmt_g(v, precision), unit)
}

/// go-units `HumanSize` (4 significant digits).
pub fn human_size(size: f64) -> String {
    human_size_precision(size, 4)
}

/// go-units `BytesSize`: binary units, 4 significant digits, e.g. "576KiB".
pub fn bytes_size(size: f64) -> String {
    let (v, unit) = scale(size, 1024.0, &BINARY);
    format!("{}{}", go_fmt_g(v, 4), unit)
}

/// Go's `%.*g` verb: `precision` significant digits, trailing zeros removed, exponent
/// form when the exponent is < -4 or >= precision (so 999.9 with 3 digits is "1e+03",
/// which docker really prints).
pub fn go_fmt_g(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return if v.is_nan() { "NaN".into() } else if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let p = precision.max(1);
    // Rust's `{:e}` rounds correctly, like Go's strconv; it tells us the decimal exponent
    // after rounding to `p` significant digits.
    let sci = format!("{:.*e}", p - 1, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, v)).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

/// go-units `HumanDuration` (shared with the daemon's status texts).
pub use berth_types::units::human_duration;

/// The time between a unix timestamp and now, saturating at zero (clock skew).
pub fn since_unix(ts: i64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let then = Duration::from_secs(ts.max(0) as u64);
    now.saturating_sub(then)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size: '{0}'")]
pub struct SizeError(pub String);

/// Splits "64m" / "1.5 GiB" into number and unit.
fn split_size(s: &str) -> Option<(f64, String)> {
    let t = s.trim();
    let end = t
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    let num: f64 = t[..end].parse().ok()?;
    if num < 0.0 {
        return None;
    }
    Some((num, t[end..].trim().to_ascii_lowercase()))
}

fn unit_power(unit: &str) -> Option<i32> {
    // go-units accepts "", "b", and k/m/g/t/p with an optional "b" or "ib" suffix.
    let u = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b')).unwrap_or(unit);
    Some(match u {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    })
}

/// go-units `RAMInBytes`: binary multiples whatever the suffix ("64m" = 64 MiB), as
/// `--memory`, `--shm-size` and friends parse them.
pub fn ram_in_bytes(s: &str) -> Result<i64, SizeError> {
    let (num, unit) = split_size(s).ok_or_else(|| SizeError(s.to_string()))?;
    let p = unit_power(&unit).ok_or_else(|| SizeError(s.to_string()))?;
    Ok((num * 1024f64.powi(p)) as i64)
}

/// go-units `FromHumanSize`: decimal multiples ("1k" = 1000).
pub fn from_human_size(s: &str) -> Result<i64, SizeError> {
    let (num, unit) = split_size(s).ok_or_else(|| SizeError(s.to_string()))?;
    let p = unit_power(&unit).ok_or_else(|| SizeError(s.to_string()))?;
    Ok((num * 1000f64.powi(p)) as i64)
}

pub use berth_types::units::{DurationError, parse_go_duration};

/// docker's `timetypes.GetTimestamp` for `--since`/`--until`: a Go duration relative to
/// now ("10m"), a unix timestamp ("1700000000", "1700000000.5"), or an RFC 3339 /
/// "2006-01-02" date. Returns the value the API wants ("seconds.nanoseconds").
pub fn api_timestamp(value: &str, now: std::time::SystemTime) -> Result<String, String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    if let Ok(ns) = parse_go_duration(value)
        && value.chars().any(|c| c.is_ascii_alphabetic()) {
            let now = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let t = now.as_nanos() as i128 - ns as i128;
            return Ok(format!("{}.{:09}", t.div_euclid(1_000_000_000), t.rem_euclid(1_000_000_000)));
        }
    if let Some((secs, frac)) = value.split_once('.') {
        if secs.chars().all(|c| c.is_ascii_digit()) && frac.chars().all(|c| c.is_ascii_digit()) && !secs.is_empty() {
            return Ok(format!("{secs}.{:0<9}", frac.chars().take(9).collect::<String>()));
        }
    } else if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        return Ok(value.to_string());
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(value)
        .map(|d| d.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f"))
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
                })
                .map(|n| n.and_utc())
        })
        .map_err(|_| format!("failed to parse value as time or duration: \"{value}\""))?;
    Ok(format!("{}.{:09}", parsed.timestamp(), parsed.timestamp_subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size_precision(1984295.0, 3), "1.98MB");
        assert_eq!(human_size_precision(0.0, 3), "0B");
        assert_eq!(human_size_precision(1350.0, 3), "1.35kB");
        assert_eq!(human_size_precision(999_900.0, 3), "1e+03kB");
        assert_eq!(human_size_precision(1_500_000.0, 3), "1.5MB");
        assert_eq!(human_size_precision(2048.0, 3), "2.05kB");
        assert_eq!(human_size(1024.0), "1.024kB");
        assert_eq!(bytes_size(576.0 * 1024.0), "576KiB");
        assert_eq!(bytes_size(23.54 * 1024.0 * 1024.0 * 1024.0), "23.54GiB");
        assert_eq!(bytes_size(0.0), "0B");
    }

    #[test]
    fn go_g_formatting() {
        assert_eq!(go_fmt_g(100.0, 3), "100");
        assert_eq!(go_fmt_g(0.0001234, 3), "0.000123");
        assert_eq!(go_fmt_g(0.00001234, 3), "1.23e-05");
        assert_eq!(go_fmt_g(12.0, 4), "12");
    }

    #[test]
    fn durations_match_go_units() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(Duration::from_millis(400)), "Less than a second");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(2)), "2 seconds");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(119)), "About a minute");
        assert_eq!(human_duration(s(180)), "3 minutes");
        assert_eq!(human_duration(s(3599)), "59 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5400)), "2 hours");
        assert_eq!(human_duration(s(47 * 3600)), "47 hours");
        assert_eq!(human_duration(s(48 * 3600)), "2 days");
        assert_eq!(human_duration(s(14 * 86400)), "2 weeks");
        assert_eq!(human_duration(s(60 * 86400)), "2 months");
        assert_eq!(human_duration(s(730 * 86400)), "2 years");
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(ram_in_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("64MB").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("1.5k").unwrap(), 1536);
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert_eq!(ram_in_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(ram_in_bytes("abc").unwrap_err().to_string(), "invalid size: 'abc'");
        assert!(ram_in_bytes("12x").is_err());
        assert_eq!(from_human_size("1k").unwrap(), 1000);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_go_duration("300ms").unwrap(), 300_000_000);
        assert_eq!(parse_go_duration("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_go_duration("0").unwrap(), 0);
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("1x").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn timestamps() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(api_timestamp("10s", now).unwrap(), "990.000000000");
        assert_eq!(api_timestamp("1700000000", now).unwrap(), "1700000000");
        assert_eq!(api_timestamp("12.5", now).unwrap(), "12.500000000");
        assert_eq!(api_timestamp("1970-01-01T00:01:00Z", now).unwrap(), "60.000000000");
        assert_eq!(api_timestamp("1970-01-02", now).unwrap(), "86400.000000000");
        assert!(api_timestamp("yesterday", now).is_err());
    }
}
