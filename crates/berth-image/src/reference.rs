//! Image references, normalised the way Docker does (distribution/reference):
//! `busybox` → `docker.io/library/busybox:latest`, `localhost:5000/a/b:1`,
//! `name@sha256:...`, and back to the short "familiar" form Docker prints.
//!
//! The grammar is Docker's (distribution/reference's regexp), checked by hand: the
//! regex crate would build a multi-megabyte automaton for it (oci-spec's port keeps
//! about 12 MB resident, with Unicode `\w` for tags), which is most of an idle
//! daemon's memory. This module adds what Docker's users see: whether a tag was given,
//! the familiar form, and Docker's error messages.

use std::fmt;

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
        let parts = match split_reference(s) {
            Some(p) => p,
            None => {
                // Docker names the uppercase case specifically.
                let lower = s.to_ascii_lowercase();
                if lower != s && split_reference(&lower).is_some() {
                    let name = name_part(s);
                    let (_, norm) = split_domain(&name.to_ascii_lowercase());
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
        };
        let (domain, path) = split_domain(parts.name);
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(Some(format!(
                "repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
            ))));
        }
        let digest = match parts.digest {
            Some(d) => Some(Digest::parse(d).map_err(|e| invalid(Some(e.to_string())))?),
            None => None,
        };
        let r = Reference {
            domain,
            path,
            tag: parts.tag.map(str::to_owned),
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

/// Longest repository name Docker accepts (domain and path).
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A reference string cut into its parts; each part has passed its grammar.
#[derive(Debug, PartialEq, Eq)]
struct Parts<'a> {
    name: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Docker's `reference := name [ ":" tag ] [ "@" digest ]`, anchored: `None` unless
/// the whole string matches.
fn split_reference(s: &str) -> Option<Parts<'_>> {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest
        && !valid_digest(d)
    {
        return None;
    }
    // A `:` after the last `/` starts the tag; one before it belongs to a port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag
        && !valid_tag(t)
    {
        return None;
    }
    valid_name(name).then_some(Parts { name, tag, digest })
}

/// `name := [domain '/'] path-component ['/' path-component]*`.
fn valid_name(name: &str) -> bool {
    let comps: Vec<&str> = name.split('/').collect();
    if comps.iter().all(|c| valid_path_component(c)) {
        return true;
    }
    comps.len() > 1 && valid_domain(comps[0]) && comps[1..].iter().all(|c| valid_path_component(c))
}

/// `[a-z0-9]+` runs joined by one separator each: `.`, `_`, `__` or dashes.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `domain := host [':' port]`, host a dotted DNS name or a bracketed IPv6 address.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some(end) = rest.find(']') else { return false };
        let (v6, after) = (&rest[..end], &rest[end + 1..]);
        if v6.is_empty() || !v6.bytes().all(|x| x.is_ascii_hexdigit() || x == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => return !port.is_empty() && port.bytes().all(|x| x.is_ascii_digit()),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|x| x.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// `algorithm ":" hex`, the algorithm `[A-Za-z][A-Za-z0-9]*` components joined by
/// `+ . - _`, at least 32 hex digits.
fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else { return false };
    let alg_ok = alg.split(['+', '.', '-', '_']).all(|c| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|x| x.is_ascii_alphanumeric())
    });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|x| x.is_ascii_hexdigit())
}

/// Docker's `splitDockerDomain`: the first component is a registry host when it
/// looks like one (has `.` or `:`, or is `localhost`); Docker Hub's official images
/// live under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.to_ascii_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    if domain == "index.docker.io" {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_REPO_PREFIX}{path}");
    }
    (domain, path)
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
    #[test]
    fn grammar_matches_dockers() {
        for ok in [
            "a", "a0/b-c/d__e/f.g/h---i", "example.com/x", "example.com:5000/x/y:tag",
            "[::1]:5000/x", "[fe80::1]/x", "EXAMPLE.com/x", "x:_t.A-9", "x@sha256:0123456789abcdef0123456789abcdef",
        ] {
            assert!(split_reference(ok).is_some(), "{ok} should parse");
        }
        for bad in [
            "", "a..b", "a___b", "a._b", "_a", "a-", "a/", "/a", "a//b",
            "-example.com/x", "example.com:/x", "example.com:5a/x", "[::1/x", "[]:5/x",
            "x:", "x:-t", "x:t!", "x@sha256:abc", "x@sha256", "x@1sha:0123456789abcdef0123456789abcdef",
            "x:tàg", "x@sha256:0123456789abcdef0123456789abcdef@y",
        ] {
            assert!(split_reference(bad).is_none(), "{bad:?} should not parse");
        }
        let long = format!("x:{}", "t".repeat(128));
        assert!(split_reference(&long).is_some());
        assert!(split_reference(&format!("{long}t")).is_none(), "a tag is at most 128 characters");
        assert_eq!(
            split_reference("h:1/a/b:2"),
            Some(Parts { name: "h:1/a/b", tag: Some("2"), digest: None })
        );
    }

    #[test]
    fn domains_and_long_names() {
        let r = Reference::parse("[::1]:5000/x/y:1").unwrap();
        assert_eq!((r.domain(), r.path(), r.tag()), ("[::1]:5000", "x/y", Some("1")));
        let r = Reference::parse("Example.com/x").unwrap();
        assert_eq!(r.domain(), "Example.com", "an uppercase first component is a host");
        let name = format!("a/{}", "b".repeat(240));
        assert!(Reference::parse(&name).is_ok());
        let e = Reference::parse(&format!("{name}bbbbbbbbbbbbbbbb")).unwrap_err();
        assert!(e.to_string().contains("must not be more than 255 characters"), "{e}");
        let e = Reference::parse("x@sha512:0123456789abcdef0123456789abcdef").unwrap_err();
        assert!(e.to_string().starts_with("invalid reference format"), "{e}");
    }
}
