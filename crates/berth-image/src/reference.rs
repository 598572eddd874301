//! Image references, normalised the way Docker does (distribution/reference):
//! `busybox` → `docker.io/library/busybox:latest`, `localhost:5000/a/b:1`,
//! `name@sha256:...`, and back to the short "familiar" form Docker prints.
//!
//! The grammar itself is oci-spec's (`oci_spec::distribution::Reference`, a port of
//! Docker's regexp); this module adds what Docker's users see: whether a tag was given,
//! the familiar form, and Docker's error messages.

use std::fmt;

use oci_spec::distribution::{ParseError, Reference as OciReference};

use crate::digest::Digest;
use crate::error::{ImageError, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const OFFICIAL_REPO_PREFIX: &str = "library/";

/// A normalised image reference: a repository name with an optional tag and digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises `s` without adding a default tag (`busybox` stays name-only;
    /// see [`Reference::parse_tagged`] for lookups).
    pub fn parse(s: &str) -> Result<Reference> {
        let invalid = |why: Option<String>| {
            ImageError::InvalidReference(match why {
                None => "invalid reference format".to_string(),
                Some(w) => format!("invalid reference format: {w}"),
            })
        };
        if s.is_empty() {
            return Err(invalid(Some("repository name must have at least one component".into())));
        }
        let oci = match OciReference::try_from(s) {
            Ok(r) => r,
            Err(ParseError::ReferenceInvalidFormat) => {
                // Docker names the uppercase case specifically.
                let lower = s.to_ascii_lowercase();
                if lower != s && OciReference::try_from(lower.as_str()).is_ok() {
                    let name = name_part(s);
                    let norm = match OciReference::try_from(name_part(&lower)) {
                        Ok(r) => r.repository().to_string(),
                        Err(_) => name.to_string(),
                    };
                    // Show the user's spelling in the normalised position.
                    let shown = if norm.starts_with(OFFICIAL_REPO_PREFIX) && !name.contains('/') {
                        format!("{OFFICIAL_REPO_PREFIX}{name}")
                    } else {
                        name.to_string()
                    };
                    return Err(invalid(Some(format!(
                        "repository name ({shown}) must be lowercase"
                    ))));
                }
                return Err(invalid(None));
            }
            Err(ParseError::NameTooLong) => {
                return Err(invalid(Some(
                    "repository name must not be more than 255 characters".into(),
                )));
            }
            Err(e) => return Err(invalid(Some(e.to_string()))),
        };
        let digest = match oci.digest() {
            Some(d) => Some(Digest::parse(d).map_err(|e| invalid(Some(e.to_string())))?),
            None => None,
        };
        // oci-spec adds `latest` when neither tag nor digest is present; Docker keeps the
        // name bare until someone asks for the default tag.
        let tag = if has_explicit_tag(s) {
            oci.tag().map(str::to_owned)
        } else {
            None
        };
        let r = Reference {
            domain: oci.registry().to_owned(),
            path: oci.repository().to_owned(),
            tag,
            digest,
        };
        if r.tag.is_none() && r.digest.is_none() && is_64_hex(&r.familiar_name()) {
            return Err(ImageError::InvalidReference(format!(
                "invalid repository name ({}), cannot specify 64-byte hexadecimal strings",
                r.familiar_name()
            )));
        }
        Ok(r)
    }

    /// Parses `s` and adds the `latest` tag when it has neither a tag nor a digest, as
    /// Docker does for lookups, pulls and tagging.
    pub fn parse_tagged(s: &str) -> Result<Reference> {
        let mut r = Reference::parse(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// The registry host (with port), e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// True when the user gave neither a tag nor a digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// The full repository name: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as Docker prints it: `busybox`, `fixture/layers`,
    /// `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The reference as Docker prints it: `busybox:latest`, `busybox@sha256:...`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// This repository with `tag` (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        if !valid_tag(tag) {
            return Err(ImageError::InvalidReference(format!(
                "invalid reference format: invalid tag {tag:?}"
            )));
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }

    /// This repository with `digest` (and no tag): a RepoDigest.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The bare repository (no tag, no digest).
    pub fn repository(&self) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: None,
        }
    }
}

impl fmt::Display for Reference {
    /// The full normalised form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl std::str::FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

/// The name part of a reference string (without `:tag` and `@digest`).
fn name_part(s: &str) -> &str {
    let s = s.split('@').next().unwrap_or(s);
    let last_slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    match s[last_slash..].find(':') {
        Some(i) => &s[..last_slash + i],
        None => s,
    }
}

/// A tag can only sit in the last path component (a `:` before the last `/` is a port).
fn has_explicit_tag(s: &str) -> bool {
    let s = s.split('@').next().unwrap_or(s);
    let last = s.rsplit('/').next().unwrap_or(s);
    last.contains(':')
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

pub(crate) fn is_64_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse_tagged(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("index.docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("fixture/layers:1.0"), "docker.io/fixture/layers:1.0");
        assert_eq!(full("localhost/foo"), "localhost/foo:latest");
        assert_eq!(full("localhost:5000/foo/bar:v2"), "localhost:5000/foo/bar:v2");
        assert_eq!(full("127.0.0.1:5000/x"), "127.0.0.1:5000/x:latest");
        assert_eq!(full("quay.io/a/b/c:t"), "quay.io/a/b/c:t");
        // `foo:5000` without a slash is a name with a tag, not a host.
        assert_eq!(full("foo:5000"), "docker.io/library/foo:5000");
    }

    #[test]
    fn keeps_digests_and_name_only_state() {
        let d = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), d);
        assert_eq!(r.familiar(), format!("busybox@{d}"));
        let both = Reference::parse(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(both.tag(), Some("1"));
        assert!(Reference::parse("busybox").unwrap().is_name_only());
        assert!(Reference::parse("localhost:5000/busybox").unwrap().is_name_only());
        assert!(Reference::parse("localhost:5000/busybox").unwrap().tag().is_none());
    }

    #[test]
    fn familiar_forms() {
        let f = |s: &str| Reference::parse_tagged(s).unwrap().familiar();
        assert_eq!(f("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(f("docker.io/library/a/b:1"), "library/a/b:1");
        assert_eq!(f("fixture/layers:1.0"), "fixture/layers:1.0");
        assert_eq!(f("localhost:5000/x:1"), "localhost:5000/x:1");
    }

    #[test]
    fn clear_errors_for_invalid_references() {
        let e = |s: &str| Reference::parse(s).unwrap_err().to_string();
        assert_eq!(e("Busybox"), "invalid reference format: repository name (library/Busybox) must be lowercase");
        assert_eq!(e("foo/Bar:1"), "invalid reference format: repository name (foo/Bar) must be lowercase");
        assert_eq!(e("bad::ref"), "invalid reference format");
        assert_eq!(e("-x"), "invalid reference format");
        assert_eq!(e("a b"), "invalid reference format");
        assert!(e("").contains("at least one component"));
        assert!(e("busybox@sha256:abc").starts_with("invalid reference format"));
        let hex = "a".repeat(64);
        assert!(e(&hex).contains("cannot specify 64-byte hexadecimal strings"));
        assert!(Reference::parse(&format!("{hex}:tag")).is_ok());
    }

    #[test]
    fn with_tag_validates() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.with_tag("v1").unwrap().familiar(), "busybox:v1");
        assert!(r.with_tag("-bad").is_err());
        assert!(r.with_tag("").is_err());
    }
}
