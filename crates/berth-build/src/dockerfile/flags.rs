//! Instruction flags (`--from=`, `--link`, `--mount=` ...) checked against the flags an
//! instruction accepts, with BuildKit's `BFlags` rules and messages ("Unknown flag:
//! foo", "Duplicate flag specified: from", "Missing a value on flag: from").

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    String,
    /// Repeatable (`--mount`, `--exclude`).
    Strings,
}

/// The flags an instruction accepts.
pub(crate) struct FlagSpec {
    defs: Vec<(&'static str, Kind)>,
}

/// The flags as given.
#[derive(Debug, Default)]
pub(crate) struct FlagValues {
    bools: HashMap<&'static str, bool>,
    strings: HashMap<&'static str, String>,
    lists: HashMap<&'static str, Vec<String>>,
}

impl FlagSpec {
    pub(crate) fn new() -> FlagSpec {
        FlagSpec { defs: Vec::new() }
    }

    pub(crate) fn bool(mut self, name: &'static str) -> FlagSpec {
        self.defs.push((name, Kind::Bool));
        self
    }

    pub(crate) fn string(mut self, name: &'static str) -> FlagSpec {
        self.defs.push((name, Kind::String));
        self
    }

    pub(crate) fn strings(mut self, name: &'static str) -> FlagSpec {
        self.defs.push((name, Kind::Strings));
        self
    }

    /// Checks `args` (each `--name` or `--name=value`) in order; the first problem wins.
    pub(crate) fn parse(&self, args: &[String]) -> Result<FlagValues, String> {
        let mut out = FlagValues::default();
        let mut used: Vec<&'static str> = Vec::new();
        for arg in args {
            if arg == "--" {
                break;
            }
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("Arg should start with -- : {arg}"));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(name, kind)) = self.defs.iter().find(|(n, _)| *n == name) else {
                return Err(format!("Unknown flag: {name}"));
            };
            if used.contains(&name) && kind != Kind::Strings {
                return Err(format!("Duplicate flag specified: {name}"));
            }
            used.push(name);
            match kind {
                Kind::Bool => {
                    let v = match value {
                        Some("") => return Err(format!("Missing a value on flag: {name}")),
                        None => true,
                        Some(v) => match v.to_lowercase().as_str() {
                            "true" => true,
                            "false" => false,
                            _ => {
                                return Err(format!(
                                    "Expecting boolean value for flag {name}, not: {v}"
                                ));
                            }
                        },
                    };
                    out.bools.insert(name, v);
                }
                Kind::String => {
                    let Some(v) = value else {
                        return Err(format!("Missing a value on flag: {name}"));
                    };
                    out.strings.insert(name, v.to_string());
                }
                Kind::Strings => {
                    let Some(v) = value else {
                        return Err(format!("Missing a value on flag: {name}"));
                    };
                    out.lists.entry(name).or_default().push(v.to_string());
                }
            }
        }
        Ok(out)
    }
}

impl FlagValues {
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.bools.get(name).copied().unwrap_or(false)
    }

    /// The value, or None when the flag was not given or given empty (Docker treats
    /// an empty value as unset).
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.strings.get(name).filter(|v| !v.is_empty()).cloned()
    }

    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.lists.get(name).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn spec() -> FlagSpec {
        FlagSpec::new()
            .string("str1")
            .string("str2")
            .bool("bool1")
            .bool("bool2")
            .strings("many")
    }

    #[test]
    fn parses_values() {
        let v = spec()
            .parse(&args(&[
                "--str1=a",
                "--bool1",
                "--bool2=FALSE",
                "--many=x",
                "--many=y",
            ]))
            .unwrap();
        assert_eq!(v.string("str1").as_deref(), Some("a"));
        assert_eq!(v.string("str2"), None);
        assert!(v.bool("bool1"));
        assert!(!v.bool("bool2"));
        assert_eq!(v.strings("many"), ["x", "y"]);
        let v = spec().parse(&args(&["--str1=", "--bool1=true"])).unwrap();
        assert_eq!(v.string("str1"), None);
        assert!(v.bool("bool1"));
    }

    #[test]
    fn errors_read_like_bflags() {
        let e = |a: &[&str]| spec().parse(&args(a)).unwrap_err();
        assert_eq!(e(&["--foo"]), "Unknown flag: foo");
        assert_eq!(e(&["--foo=bar"]), "Unknown flag: foo");
        assert_eq!(
            e(&["--str1=a", "--str1=b"]),
            "Duplicate flag specified: str1"
        );
        assert_eq!(
            e(&["--bool1", "--bool1"]),
            "Duplicate flag specified: bool1"
        );
        assert_eq!(e(&["--str1"]), "Missing a value on flag: str1");
        assert_eq!(e(&["--many"]), "Missing a value on flag: many");
        assert_eq!(e(&["--bool1="]), "Missing a value on flag: bool1");
        assert_eq!(
            e(&["--bool1=yes"]),
            "Expecting boolean value for flag bool1, not: yes"
        );
    }

    #[test]
    fn double_dash_stops() {
        let v = spec().parse(&args(&["--bool1", "--", "--nope"])).unwrap();
        assert!(v.bool("bool1"));
    }
}
