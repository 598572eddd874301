//! Identifiers: Docker-style 64-hex IDs and the short (12-hex) form.

use rand::RngExt;

/// A fresh random 256-bit identifier as 64 lowercase hex characters, like Docker's
/// network and endpoint IDs.
pub fn new_id() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// A short random hex string (`n` characters), for interface names.
pub fn short_random_hex(n: usize) -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let mut s = hex::encode(bytes);
    s.truncate(n);
    s
}

/// The first 12 characters of an ID (Docker's short ID).
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// True when `s` is a full 64-character lowercase hex ID.
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_unique() {
        let a = new_id();
        let b = new_id();
        assert!(is_full_id(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(short_id(&a).len(), 12);
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_random_hex(7).len(), 7);
        assert!(!is_full_id("xyz"));
    }
}
