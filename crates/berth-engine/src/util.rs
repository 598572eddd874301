//! Small shared helpers: crash-safe file writes, IDs, names, times, type conversions.

use std::io::Write;
use std::path::Path;

use rand::RngExt;

/// Writes `data` to `path` so that a reader (or a restart after SIGKILL) sees either
/// the old or the new content, never a mix: temp file, fsync, rename, fsync the dir.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Replaces `path` by rename, without fsync: for files rebuilt at every start (the
/// bundle, resolver files), which must never be seen half-written but need not
/// survive a power loss.
pub fn write_replace(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let r = std::fs::write(&tmp, data).and_then(|()| std::fs::rename(&tmp, path));
    if r.is_err() {
        // (A full disk: leave no partial temp file behind.)
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &data)
}

/// A random 64-hex-digit ID, as Docker's container, exec and network IDs.
pub fn random_id() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Docker's names: `adjective_surname`. berth uses its own word lists.
pub fn random_name() -> String {
    const LEFT: &[&str] = &[
        "admiring", "agile", "amazing", "bold", "brave", "busy", "calm", "clever", "cool", "dazzling", "eager", "elastic",
        "epic", "festive", "focused", "friendly", "gallant", "gentle", "happy", "hopeful", "jolly", "keen", "kind", "lucid",
        "modest", "nice", "nimble", "optimistic", "patient", "quirky", "relaxed", "serene", "sharp", "stoic", "tender",
        "trusting", "upbeat", "vibrant", "wizardly", "zealous", "awesome", "beautiful", "blissful", "charming",
        "compassionate", "competent", "condescending", "confident", "cranky", "crazy", "determined", "distracted",
        "dreamy", "ecstatic", "elated", "elegant", "eloquent", "exciting", "fervent", "flamboyant", "frosty",
        "funny", "gifted", "goofy", "gracious", "great", "hardcore", "heuristic", "hungry", "infallible",
        "inspiring", "intelligent", "interesting", "jovial", "laughing", "loving", "magical", "mystifying",
        "naughty", "nervous", "nifty", "nostalgic", "objective", "peaceful", "pedantic", "pensive", "practical",
        "priceless", "quizzical", "recursing", "reverent", "romantic", "sad", "silly", "sleepy", "stupefied",
        "suspicious", "sweet", "thirsty", "unruffled", "vigilant", "vigorous", "wonderful", "xenodochial",
        "youthful", "zen",
    ];
    const RIGHT: &[&str] = &[
        "agnesi", "bardeen", "bohr", "cerf", "curie", "darwin", "dijkstra", "euler", "faraday", "fermi", "feynman", "galois",
        "gauss", "goldberg", "hamilton", "hopper", "hypatia", "johnson", "kepler", "knuth", "lamarr", "lovelace", "meitner",
        "mirzakhani", "newton", "noether", "pascal", "ramanujan", "ritchie", "shannon", "thompson", "turing", "wing", "wu",
        "allen", "archimedes", "babbage", "banach", "bell", "blackwell", "boyd", "brahmagupta", "cannon", "carson",
        "chandrasekhar", "clarke", "colden", "cori", "diffie", "driscoll", "einstein", "elion", "engelbart",
        "franklin", "gagarin", "galileo", "germain", "golick", "goodall", "hawking", "heisenberg", "hellman",
        "hermann", "hodgkin", "hoover", "jackson", "jang", "kalam", "keller", "khorana", "kilby", "kirch",
        "kowalevski", "lalande", "lamport", "leakey", "lehmann", "lewin", "liskov", "mahavira", "mayer",
        "mccarthy", "mcclintock", "mendel", "merkle", "montalcini", "moore", "morse", "napier", "nash",
        "neumann", "nightingale", "nobel", "payne", "perlman", "pike", "poincare", "raman", "rhodes", "ride",
        "robinson", "rosalind", "saha", "sammet", "shaw", "shockley", "sinoussi", "snyder", "solomon",
        "spence", "stonebraker", "sutherland", "swanson", "swartz", "tesla", "torvalds", "villani",
        "visvesvaraya", "volhard", "wescoff", "wiles", "williams", "wilson", "wozniak", "wright", "yalow",
        "yonath", "zhukovsky",
    ];
    let mut rng = rand::rng();
    format!("{}_{}", LEFT[rng.random_range(0..LEFT.len())], RIGHT[rng.random_range(0..RIGHT.len())])
}

/// Docker's container-name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_container_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    name.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Go's zero time, which Docker shows for times that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub fn parse_rfc3339(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// Docker's `since`/`until` forms: unix seconds (with optional fraction), RFC 3339,
/// or a duration relative to now ("10m", "1h30m").
pub fn parse_timestamp(s: &str, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(f) = s.parse::<f64>() {
        let secs = f.trunc() as i64;
        let nanos = ((f - f.trunc()) * 1e9).round() as u32;
        return chrono::DateTime::from_timestamp(secs, nanos);
    }
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Some(now - chrono::Duration::from_std(d).ok()?);
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok().map(|n| n.and_utc())
}

/// Converts between the crates' and the API's JSON-shaped types. A null member means
/// "not set" (Go's zero value, as Docker reads it), whatever the field's type on the
/// other side; anything else that does not fit is an error, never a silent default.
pub(crate) fn convert<A: serde::Serialize, B: serde::de::DeserializeOwned>(a: &A) -> crate::error::Result<B> {
    let mut v = serde_json::to_value(a).map_err(|e| crate::error::Error::system(format!("converting to {}: {e}", std::any::type_name::<B>())))?;
    berth_types::json::strip_nulls(&mut v);
    serde_json::from_value(v).map_err(|e| crate::error::Error::system(format!("converting to {}: {e}", std::any::type_name::<B>())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        let id = random_id();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(valid_container_name(&random_name()));
        assert!(valid_container_name("web-1.a_b"));
        assert!(!valid_container_name("-x"));
        assert!(!valid_container_name("a"));
        assert!(!valid_container_name("a b"));
    }

    #[test]
    fn timestamps() {
        let now = parse_rfc3339("2026-01-01T00:10:00Z").unwrap();
        assert_eq!(parse_timestamp("10m", now), parse_rfc3339("2026-01-01T00:00:00Z"));
        assert_eq!(parse_timestamp("1767225600", now), parse_rfc3339("2026-01-01T00:00:00Z"));
        assert_eq!(parse_timestamp("1767225600.5", now).unwrap().timestamp_subsec_millis(), 500);
        assert!(parse_timestamp("garbage", now).is_none());
    }
}
