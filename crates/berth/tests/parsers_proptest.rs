//! Property tests for the parsers that read untrusted text (API query parameters and
//! bodies, CLI flags, Dockerfiles): image references (berth-image and berth-registry),
//! `filters` JSON, `-p` port specs (berth-cli and berth-net), `--mount` specs and
//! Dockerfile `RUN --mount` flags. Each never panics, on arbitrary text and on text made
//! of pieces that reach deeper; where there is a formatter, parse ∘ format ∘ parse is
//! parse. (The Dockerfile parser's own properties are in crates/berth-build/tests.)
//! Pure functions: no root, no daemon. (berth publishes no sctp ports, so valid specs
//! here are tcp and udp.)

use std::collections::BTreeMap;

use proptest::prelude::*;

fn pieces(parts: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![prop::sample::select(parts).prop_map(str::to_string), "[a-zA-Z0-9._-]{0,4}"], 0..max)
        .prop_map(|v| v.concat())
}

const REF_PIECES: &[&str] = &[
    "docker.io/", "library/", "localhost:5000/", "127.0.0.1:5000/", "[::1]:5000/", "index.docker.io/", "a/", "B/", ":", ":latest",
    "@sha256:", "@", "/", "//", ".", "..", "-", "__", "sha256:", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "busybox", "UPPER", "é", " ", "\0",
];

/// A valid reference, by construction.
fn valid_reference() -> impl Strategy<Value = String> {
    (
        prop::option::of(prop::sample::select(&["localhost:5000", "registry.example.com", "127.0.0.1:5000", "docker.io", "a.b"][..])),
        prop::collection::vec("[a-z0-9]{1,6}([._-][a-z0-9]{1,4})?", 1..4),
        prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        prop::option::of("[0-9a-f]{64}"),
    )
        .prop_map(|(domain, path, tag, digest)| {
            let mut s = String::new();
            if let Some(d) = domain {
                s.push_str(d);
                s.push('/');
            }
            s.push_str(&path.join("/"));
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(d) = digest {
                s.push_str("@sha256:");
                s.push_str(&d);
            }
            s
        })
}

const FILTER_PIECES: &[&str] = &[
    "{", "}", "[", "]", "\"label\"", "\"name\"", ":", ",", "true", "false", "null", "1", "\"a=b\"", "{\"x\":true}", "\"", "\\u0000",
    "\\", " ", "1e999", "-0", "[[]]",
];

const PORT_PIECES: &[&str] = &[
    ":", "::", "[", "]", "[::1]:", "127.0.0.1:", "0.0.0.0:", "/", "/tcp", "/udp", "/sctp", "/TCP", "-", "0", "1", "80", "65535", "65536",
    "99999999999", "8000-8010", "1-65535", "-1", " ", "ab",
];

const MOUNT_PIECES: &[&str] = &[
    "type=", "bind", "volume", "tmpfs", "npipe", "cluster", "image", ",", "=", "source=", "src=", "target=", "dst=", "destination=",
    "readonly", "ro", "readonly=", "true", "false", "1", "bind-propagation=", "rshared", "bind-recursive=", "volume-driver=",
    "volume-label=", "a=b", "volume-nocopy", "volume-opt=", "tmpfs-size=", "tmpfs-mode=", "1m", "99999999999999999999", "0700",
    "consistency=", "\"", "'", "/", "/a", " ",
];

const RUN_MOUNT_PIECES: &[&str] = &[
    "type=", "cache", "bind", "tmpfs", "secret", "ssh", ",", "=", "target=", "id=", "from=", "source=", "mode=", "0755", "0x1",
    "uid=", "gid=", "99999999999", "-1", "sharing=", "locked", "private", "shared", "required", "size=", "rw", "readonly", "$A",
    "${A:-x}", "\"", "/",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn image_reference_never_panics(s in prop_oneof![".*", pieces(REF_PIECES, 12)]) {
        let _ = berth_image::reference::Reference::parse(&s);
        let _ = berth_image::reference::Reference::parse_tagged(&s);
        let _ = berth_image::digest::Digest::parse(&s);
        let _ = berth_registry::reference::Reference::parse(&s);
        let _ = berth_registry::reference::Reference::parse_repository(&s);
    }

    #[test]
    fn image_reference_round_trips(s in prop_oneof![valid_reference(), pieces(REF_PIECES, 8)]) {
        if let Ok(r) = berth_image::reference::Reference::parse(&s) {
            let again = berth_image::reference::Reference::parse(&r.to_string());
            prop_assert_eq!(again.as_ref().ok(), Some(&r), "berth-image: {:?} → {} did not parse back", s, r);
        }
        if let Ok(r) = berth_registry::reference::Reference::parse_any(&s) {
            let again = berth_registry::reference::Reference::parse_any(&r.to_string());
            prop_assert_eq!(again.as_ref().ok(), Some(&r), "berth-registry: {:?} → {} did not parse back", s, r);
        }
    }

    #[test]
    fn valid_references_parse_in_both_crates(s in valid_reference()) {
        let a = berth_image::reference::Reference::parse_tagged(&s);
        let b = berth_registry::reference::Reference::parse(&s);
        prop_assert!(a.is_ok(), "berth-image rejects {:?}: {:?}", s, a.err());
        prop_assert!(b.is_ok(), "berth-registry rejects {:?}: {:?}", s, b.err());
        prop_assert_eq!(a.unwrap().to_string(), b.unwrap().to_string());
    }

    #[test]
    fn filters_never_panic_and_round_trip(s in prop_oneof![".*", pieces(FILTER_PIECES, 16)]) {
        if let Ok(f) = berth_types::filters::Filters::parse(&s) {
            let again = berth_types::filters::Filters::parse(&f.to_json());
            prop_assert_eq!(again.ok(), Some(f));
        }
    }

    #[test]
    fn filters_from_pairs_round_trip(pairs in prop::collection::vec((".{0,8}", ".{0,8}"), 0..6)) {
        let f = berth_types::filters::Filters::from_pairs(pairs);
        prop_assert_eq!(berth_types::filters::Filters::parse(&f.to_json()).ok(), Some(f));
    }

    #[test]
    fn port_specs_never_panic(s in prop_oneof![".{0,40}", pieces(PORT_PIECES, 8)]) {
        let _ = berth_net::ports::parse_publish_spec(&s);
        let _ = berth_net::ports::parse_port_key(&s);
        let mut exposed = BTreeMap::new();
        let mut bindings = BTreeMap::new();
        let _ = berth_cli::opts::parse::parse_publish(&s, &mut exposed, &mut bindings);
    }

    #[test]
    fn valid_port_specs_agree(ip in prop::option::of(prop::sample::select(&["127.0.0.1", "0.0.0.0", "[::1]"][..])),
                              host in prop::option::of(1u16..=65535), container in 1u16..=65535,
                              proto in prop::sample::select(&["", "/tcp", "/udp"][..])) {
        let spec = match (ip, host) {
            (Some(ip), Some(h)) => format!("{ip}:{h}:{container}{proto}"),
            (Some(ip), None) => format!("{ip}::{container}{proto}"),
            (None, Some(h)) => format!("{h}:{container}{proto}"),
            (None, None) => format!("{container}{proto}"),
        };
        let b = berth_net::ports::parse_publish_spec(&spec);
        prop_assert!(b.is_ok(), "berth-net rejects {:?}: {:?}", spec, b.err());
        let b = b.unwrap();
        prop_assert_eq!(b.len(), 1);
        prop_assert_eq!(b[0].container_port, container);
        match host {
            Some(h) => prop_assert_eq!(&b[0].host_port, &berth_net::ports::HostPort::Single(h)),
            None => prop_assert_eq!(&b[0].host_port, &berth_net::ports::HostPort::Any),
        }
        let mut exposed = BTreeMap::new();
        let mut bindings = BTreeMap::new();
        let r = berth_cli::opts::parse::parse_publish(&spec, &mut exposed, &mut bindings);
        prop_assert!(r.is_ok(), "berth-cli rejects {:?}: {:?}", spec, r.err());
        let key = format!("{container}/{}", if proto.is_empty() { "tcp" } else { &proto[1..] });
        prop_assert!(exposed.contains_key(&key), "{:?}: {:?} not exposed", spec, key);
    }

    #[test]
    fn mount_specs_never_panic(s in prop_oneof![".{0,60}", pieces(MOUNT_PIECES, 12)]) {
        let _ = berth_cli::opts::parse::parse_mount(&s);
    }

    #[test]
    fn valid_mount_specs_keep_their_fields(kind in prop::sample::select(&["bind", "volume", "tmpfs"][..]),
                                           src in "/[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}", dst in "/[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}",
                                           ro in any::<bool>()) {
        let mut spec = format!("type={kind},target={dst}");
        if kind != "tmpfs" {
            let src = if kind == "volume" { src.trim_start_matches('/').replace('/', "_") } else { src.clone() };
            spec.push_str(&format!(",source={src}"));
        }
        if ro {
            spec.push_str(",readonly");
        }
        let m = berth_cli::opts::parse::parse_mount(&spec);
        prop_assert!(m.is_ok(), "{:?} rejected: {:?}", spec, m.err());
        let m = m.unwrap();
        prop_assert_eq!(m.kind.as_str(), kind);
        prop_assert_eq!(&m.target, &dst);
        prop_assert_eq!(m.read_only, ro);
    }

    #[test]
    fn run_mount_specs_never_panic(s in prop_oneof![".{0,60}", pieces(RUN_MOUNT_PIECES, 12)]) {
        let _ = berth_build::dockerfile::RunMount::parse(&s, None);
    }

    #[test]
    fn dockerignore_never_panics(s in ".{0,200}") {
        let _ = berth_build::ignore::parse_dockerignore(&s);
    }
}
