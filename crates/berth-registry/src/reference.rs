//! Image references the way Docker normalises them: `busybox` is
//! `docker.io/library/busybox:latest`, `127.0.0.1:5000/a/b@sha256:...` names a registry
//! on a port, a repository path and a digest.
//!
//! The grammar is distribution's (`reference/regexp.go`). Repository names are also
//! what the server turns into directories, so this module is the one place that decides
//! which names are safe: lowercase components separated by `.`, `_`, `__` or dashes,
//! joined by `/` (no `..`, no empty component, nothing starting with `_`).

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry Docker Hub names are normalised to.
pub const DOCKER_HUB: &str = "docker.io";
/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

const MAX_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?} is empty")]
    Empty(String),
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: {0:?}")]
    Format(String),
    #[error("invalid reference format: repository name {0:?} is longer than 255 characters")]
    TooLong(String),
    #[error("invalid tag format: {0:?}")]
    Tag(String),
    #[error("invalid reference format: {0}")]
    Digest(#[from] crate::digest::DigestError),
    #[error("invalid repository {0:?}: a tag or digest is not allowed here")]
    NotARepository(String),
}

/// A normalised image reference: registry, repository path, and tag and/or digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises like `docker pull NAME`: a bare name gets `:latest`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Self::parse_any(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses a repository name only (`docker push --all-tags`, `pull -a`): no tag, no digest.
    pub fn parse_repository(s: &str) -> Result<Reference, ReferenceError> {
        let r = Self::parse_any(s)?;
        if r.tag.is_some() || r.digest.is_some() {
            return Err(ReferenceError::NotARepository(s.to_string()));
        }
        Ok(r)
    }

    /// Parses without adding a default tag.
    pub fn parse_any(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty(s.to_string()));
        }
        let (name_and_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // A tag is a ':' after the last '/', so "host:5000/repo" keeps its port.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        let (registry, repository) = split_domain(name)?;
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Builds a reference from parts that are validated here.
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Reference, ReferenceError> {
        if !is_valid_domain(registry) {
            return Err(ReferenceError::Format(registry.to_string()));
        }
        validate_repository(repository)?;
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        Ok(Reference {
            registry: normalise_domain(registry),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry host as written in the reference (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`, `trace/bb`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifest endpoint for: the digest if there is one
    /// (it pins the content), else the tag.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// This repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag)?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// This repository pinned to a digest (and no tag).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The repository alone (no tag or digest).
    pub fn repository_only(&self) -> Reference {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// `busybox`, `someone/app`, `127.0.0.1:5000/trace/bb`: what Docker prints.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The familiar name with its tag and/or digest (`busybox:latest`).
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_ref());
        s
    }

    /// The fully qualified name without tag (`docker.io/library/busybox`).
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

fn push_suffix(s: &mut String, tag: Option<&str>, digest: Option<&Digest>) {
    if let Some(t) = tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(&d.to_string());
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form, `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.full_name();
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_ref());
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Splits `name` into (registry, repository) the way Docker's `splitDockerDomain` does.
fn split_domain(name: &str) -> Result<(String, String), ReferenceError> {
    let (domain, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_string())
        }
        _ => (DOCKER_HUB, name.to_string()),
    };
    if !is_valid_domain(domain) {
        return Err(ReferenceError::Format(name.to_string()));
    }
    let domain = normalise_domain(domain);
    let repository = if domain == DOCKER_HUB && !remainder.contains('/') {
        format!("library/{remainder}")
    } else {
        remainder
    };
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(name.to_string()));
    }
    validate_repository(&repository).map_err(|e| match e {
        ReferenceError::TooLong(_) => ReferenceError::TooLong(name.to_string()),
        _ => ReferenceError::Format(name.to_string()),
    })?;
    Ok((domain, repository))
}

fn normalise_domain(domain: &str) -> String {
    if domain == "index.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        domain.to_string()
    }
}

/// Checks a repository path (`library/busybox`) against distribution's grammar. Names
/// that pass are safe to use as relative directory paths.
pub fn validate_repository(repo: &str) -> Result<(), ReferenceError> {
    if repo.is_empty() {
        return Err(ReferenceError::Empty(repo.to_string()));
    }
    if repo.len() > MAX_NAME_LEN {
        return Err(ReferenceError::TooLong(repo.to_string()));
    }
    if repo.split('/').all(is_path_component) {
        Ok(())
    } else {
        Err(ReferenceError::Format(repo.to_string()))
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
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
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::Tag(tag.to_string()))
    }
}

pub fn is_valid_tag(tag: &str) -> bool {
    validate_tag(tag).is_ok()
}

/// A registry host: DNS labels or an IPv4 address, or a bracketed IPv6 address, with an
/// optional port.
fn is_valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match after {
                    "" => return true,
                    p => match p.strip_prefix(':') {
                        Some(port) => ("x", Some(port)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:cd18636d605bdb67f62831322bffdc8508445640772408206bffaa5099cc6ea7";

    #[test]
    fn normalises_docker_hub_names() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar_string(), "busybox:latest");
        assert_eq!(r.repository(), "library/busybox");
        let r = Reference::parse("index.docker.io/someone/app:1.0").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.familiar_string(), "someone/app:1.0");
    }

    #[test]
    fn keeps_registry_ports_and_digests() {
        let r = Reference::parse("127.0.0.1:5000/trace/bb:1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "trace/bb");
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.familiar_string(), "127.0.0.1:5000/trace/bb:1");

        let r = Reference::parse(&format!("localhost:5000/bb@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.tag_or_digest(), D);
        let r = Reference::parse(&format!("localhost/bb:x@{D}")).unwrap();
        assert_eq!(r.tag(), Some("x"));
        assert_eq!(r.tag_or_digest(), D);
        let r = Reference::parse("[::1]:5000/bb").unwrap();
        assert_eq!(r.registry(), "[::1]:5000");
    }

    #[test]
    fn rejects_bad_names() {
        assert!(matches!(
            Reference::parse("Busybox"),
            Err(ReferenceError::Uppercase(_))
        ));
        for bad in [
            "",
            "a/../b",
            "a//b",
            "a/_b",
            "a:",
            "a:-x",
            "host:5000/",
            "a/b/",
            "-a",
            "a..b",
            "a@sha256:xyz",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Reference::parse_repository("a:1").is_err());
        assert!(Reference::parse(&"a".repeat(300)).is_err());
    }

    #[test]
    fn path_components() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "a1-2.3_4"] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in ["a___b", "a.-b", "_a", "a.", "A", ".."] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }
}
