//! htpasswd Basic authentication (bcrypt entries only, as distribution accepts).
//!
//! bcrypt is deliberately slow (tens of ms per check), and a pull sends one request per
//! blob, so a successful check is remembered as a SHA-256 of `user:password`: the next
//! request with the same credentials costs one hash instead of one bcrypt.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use sha2::Digest as _;

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("cannot read htpasswd file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("htpasswd file {path}, line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
}

/// Users and their bcrypt hashes.
#[derive(Debug)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

/// The outcome of checking a request's Authorization header.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthResult {
    Allowed(String),
    Denied,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| HtpasswdError::Line {
            path: path.display().to_string(),
            line,
            reason,
        })
    }

    /// Parses `user:hash` lines; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Htpasswd, (usize, String)> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or((i + 1, "expected user:hash".to_string()))?;
            if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
                return Err((
                    i + 1,
                    format!("user {user:?}: only bcrypt hashes are supported (htpasswd -B)"),
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> AuthResult {
        let Some((user, pass)) = authorization.and_then(parse_basic) else {
            return AuthResult::Denied;
        };
        let Some(hash) = self.users.get(&user) else {
            return AuthResult::Denied;
        };
        let fingerprint: [u8; 32] = sha2::Sha256::digest(format!("{user}:{pass}")).into();
        if let Ok(cache) = self.verified.lock()
            && cache.get(&user) == Some(&fingerprint)
        {
            return AuthResult::Allowed(user);
        }
        if bcrypt::verify(&pass, hash).unwrap_or(false) {
            if let Ok(mut cache) = self.verified.lock() {
                cache.insert(user.clone(), fingerprint);
            }
            AuthResult::Allowed(user)
        } else {
            AuthResult::Denied
        }
    }
}

/// Decodes `Basic base64(user:pass)`.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[test]
    fn bcrypt_users() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let h = Htpasswd::parse(&format!("# users\nalice:{hash}\n")).unwrap();
        assert_eq!(h.check(Some(&basic("alice", "s3cret"))), AuthResult::Allowed("alice".into()));
        // Twice: the second answer comes from the cache and must agree.
        assert_eq!(h.check(Some(&basic("alice", "s3cret"))), AuthResult::Allowed("alice".into()));
        assert_eq!(h.check(Some(&basic("alice", "wrong"))), AuthResult::Denied);
        assert_eq!(h.check(Some(&basic("bob", "s3cret"))), AuthResult::Denied);
        assert_eq!(h.check(None), AuthResult::Denied);
        assert_eq!(h.check(Some("Bearer abc")), AuthResult::Denied);
    }

    #[test]
    fn rejects_non_bcrypt() {
        let err = Htpasswd::parse("bob:$apr1$xyz$abc\n").unwrap_err();
        assert_eq!(err.0, 1);
        assert!(err.1.contains("bcrypt"));
        assert!(Htpasswd::parse("nocolon\n").is_err());
    }
}
