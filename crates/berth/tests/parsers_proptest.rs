//! Property tests for the parsers that read untrusted text (API query parameters and
//! bodies, CLI flags, Dockerfiles, archives): image references (berth-image and
//! berth-registry), `filters` JSON, `-p` port specs (berth-cli and berth-net), `--mount`
//! specs, Dockerfile `RUN --mount` flags, Go templates (the CLI's `--format`, the
//! daemon's log `tag`) and tar headers (layers and archives as the daemon unpacks them). Each never panics, on arbitrary text and on text made
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

const TEMPLATE_PIECES: &[&str] = &[
    "{{", "}}", "{{-", "-}}", "{{.", ".ID", ".Names", ".Name", ".Config.Labels", ".State.Pid", ".Ports", ".Image", ".FullID",
    ".ImageName", "json", "join", "index", "printf", "\"%s\"", "\"%d\"", "\"%-10.3q\"", "range", "end", "if", "else", "with",
    "$", "$x", ":=", "=", "|", "(", ")", " ", "table", "\\t", "\"", "`", "'a'", "len", "upper", "lower", "title", "split",
    "println", "pad", "truncate", "eq", "ne", "lt", "and", "or", "not", "nil", "true", "0", "-1", "1e309", "0x", "99999999999999999999",
    "\n", "é", "\0", "/*", "*/", ".", "..",
];

/// What `--format` templates run against: a container as `docker ps` gives it.
fn template_data() -> berth_cli::format::Value {
    berth_cli::format::Value::from_json_str(
        r#"{"ID":"0123456789ab","Names":"web","Image":"busybox","Ports":"","Labels":{"a":"b"},"Config":{"Labels":{"a":"b"}},
            "State":{"Pid":42,"Running":true},"List":[1,"two",null,{"x":[]}],"Float":1.5,"Neg":-3}"#,
    )
    .unwrap()
}

/// A tar of `n` entries with generated names, kinds and link targets (`..`, absolute,
/// long, whiteouts...), then some of its first header's bytes changed and its checksum
/// made right again (a header that passes the check but lies about its size, type, mode,
/// ids or names), or any bytes changed (checksums that fail), or none.
fn tar_bytes() -> impl Strategy<Value = Vec<u8>> {
    const NAMES: &[&str] = &["a", "d/", "d/f", "../x", "/abs", "d/../../y", ".wh.a", "d/.wh..wh..opq", ".wh..wh.plnk", "\u{e9}", "", "./", "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"];
    let entry = (prop::sample::select(NAMES), 0u8..5, prop::sample::select(NAMES), 0usize..600);
    let flips = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12);
    let how = prop_oneof![Just((0u8, Vec::new())), flips.clone().prop_map(|f| (1u8, f)), flips.prop_map(|f| (2u8, f))];
    (prop::collection::vec(entry, 0..6), how).prop_map(|(entries, (how, flips))| {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, target, size) in entries {
            let mut h = tar::Header::new_gnu();
            let _ = h.set_path(name).or_else(|_| h.set_path("x"));
            h.set_mode(0o644);
            let data = vec![b'z'; size];
            match kind {
                0 => {
                    h.set_size(size as u64);
                    h.set_cksum();
                    let _ = b.append(&h, &data[..]);
                }
                1 => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_cksum();
                    let _ = b.append(&h, &[][..]);
                }
                2 | 3 => {
                    h.set_entry_type(if kind == 2 { tar::EntryType::Symlink } else { tar::EntryType::Link });
                    h.set_size(0);
                    let _ = b.append_link(&mut h, name, target);
                }
                _ => {
                    h.set_entry_type(tar::EntryType::Fifo);
                    h.set_size(0);
                    h.set_cksum();
                    let _ = b.append(&h, &[][..]);
                }
            }
        }
        let mut bytes = b.into_inner().unwrap_or_default();
        let span = if how == 1 { bytes.len().min(512) } else { bytes.len() };
        for (at, v) in flips {
            let i = if span == 0 { continue } else { at.index(span) };
            // The checksum field itself is left to the recomputation below.
            if how != 1 || !(148..156).contains(&i) {
                bytes[i] = v;
            }
        }
        if how == 1 && bytes.len() >= 512 {
            // The sum of the header's bytes with its checksum field read as spaces.
            let sum: u32 = bytes[..512].iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as u32 }).sum();
            bytes[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
        bytes
    })
}

/// Unpacks `bytes` into a fresh directory, as a layer and as a plain archive; returns
/// the names found beside that directory afterwards (there must be none).
fn unpack_both_ways(bytes: &[u8]) -> Vec<String> {
    let t = tempfile::tempdir().unwrap();
    let (layer, archive) = (t.path().join("layer"), t.path().join("archive"));
    std::fs::create_dir(&layer).unwrap();
    std::fs::create_dir(&archive).unwrap();
    let limit = berth_image::UnpackLimit { max_layer_bytes: Some(1 << 20), ..berth_image::UnpackLimit::keep_free(0) };
    let mut fs = berth_image::layer::fsops::RealLayerFs::new(&layer).unwrap();
    let _ = berth_image::layer::unpack::unpack_layer(bytes, &mut fs, &limit, &|| Ok(u64::MAX), true);
    let _ = berth_image::layer::unpack::extract_archive(bytes, &archive, &limit);
    std::fs::read_dir(t.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != "layer" && n != "archive").collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    /// `--format`: parsing never panics, and neither does running what parsed.
    #[test]
    fn templates_never_panic(s in prop_oneof![".{0,80}", pieces(TEMPLATE_PIECES, 24)]) {
        if let Ok(t) = berth_cli::format::Template::parse(&s) {
            let data = template_data();
            let _ = t.execute(&data);
            let _ = t.execute_header(&data);
        }
    }

    /// The daemon's `--log-opt tag=` template (a container create's LogConfig).
    #[test]
    fn log_tags_never_panic(s in prop_oneof![".{0,80}", pieces(TEMPLATE_PIECES, 24)]) {
        let info = berth_shim::logdriver::LogInfo { id: "0123456789abcdef".into(), name: "web".into(), image_id: "sha256:ab".into(), ..Default::default() };
        let _ = berth_engine::logconfig::render_tag(&s, &info);
    }
}

proptest! {
    // Each case unpacks twice into real directories: fewer cases.
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// Tar headers as a pulled layer, a loaded image or a `docker cp` upload bring them:
    /// unpacking never panics and writes nothing outside its directory, whatever the
    /// headers say.
    #[test]
    fn tar_headers_never_panic_nor_escape(bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..2048), tar_bytes()]) {
        let outside = unpack_both_ways(&bytes);
        prop_assert!(outside.is_empty(), "written outside: {:?}", outside);
    }
}
