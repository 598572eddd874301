//! Bad archives get a clear error and leave nothing half-stored: no blob, no layer
//! directory, no image, no staging leftovers.

mod common;

use std::fs;

use berth_image::{Descriptor, ErrorKind, ImageError};
use common::*;

fn assert_fails_cleanly(ts: &TestStore, archive: &[u8], check: impl Fn(&ImageError) -> bool) -> String {
    let err = ts.store().load(archive, &mut |_| {}).unwrap_err();
    assert!(check(&err), "unexpected error: {err:?}");
    assert_store_empty(ts);
    assert!(list_files(&ts.root().join("layers/.staging")).is_empty());
    assert!(list_files(&ts.root().join("layers/l")).is_empty(), "short links left");
    err.to_string()
}

#[test]
fn truncated_archives_are_refused() {
    let ts = TestStore::new("bi-cor1");
    let full = fs::read(fixture("layers-docker-save.tar")).unwrap();
    // Cut inside the big base layer, then inside the small ones near the end.
    for cut in [4096, full.len() / 3, full.len() - 3000, full.len() - 700] {
        let msg = assert_fails_cleanly(&ts, &full[..cut], |e| e.kind() == ErrorKind::InvalidArgument);
        assert!(
            msg.contains("truncated") || msg.contains("missing") || msg.contains("manifest.json"),
            "cut at {cut}: {msg}"
        );
    }
    let oci = fs::read(fixture("layers-oci-gzip.tar")).unwrap();
    assert_fails_cleanly(&ts, &oci[..oci.len() / 2], |e| e.kind() == ErrorKind::InvalidArgument);
}

#[test]
fn garbage_and_empty_input_are_refused() {
    let ts = TestStore::new("bi-cor2");
    let msg = assert_fails_cleanly(&ts, b"this is not a tar archive at all, just text", |e| {
        matches!(e, ImageError::InvalidArchive(_))
    });
    assert!(msg.starts_with("invalid archive"), "{msg}");
    assert_fails_cleanly(&ts, &[], |e| matches!(e, ImageError::InvalidArchive(_)));
    // A valid tar that is not an image archive.
    let other = make_archive(&[("hello.txt".into(), b"hi".to_vec())]);
    let msg = assert_fails_cleanly(&ts, &other, |e| matches!(e, ImageError::InvalidArchive(_)));
    assert!(msg.contains("neither manifest.json nor index.json"), "{msg}");
}

#[test]
fn a_manifest_pointing_at_a_missing_layer_is_refused() {
    let ts = TestStore::new("bi-cor3");
    let mut members = archive_members(&fs::read(fixture("layers-docker-save.tar")).unwrap());
    // Drop one layer (the whiteout layer), keep its mention in manifest.json.
    members.retain(|(n, _)| !n.starts_with("599c4b71"));
    let msg = assert_fails_cleanly(&ts, &make_archive(&members), |e| matches!(e, ImageError::InvalidArchive(_)));
    assert!(msg.contains("599c4b71") && msg.contains("missing"), "{msg}");

    let mut members = archive_members(&fs::read(fixture("layers-docker-save.tar")).unwrap());
    members.retain(|(n, _)| !n.ends_with("d3bce.json"));
    let msg = assert_fails_cleanly(&ts, &make_archive(&members), |e| matches!(e, ImageError::InvalidArchive(_)));
    assert!(msg.contains("config") && msg.contains("missing"), "{msg}");
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_refused() {
    let ts = TestStore::new("bi-cor4");
    let mut members = archive_members(&fs::read(fixture("layers-docker-save.tar")).unwrap());
    // Swap two layers' content: each still a valid tar, but not what the config says.
    let a = members.iter().position(|(n, _)| n.starts_with("49e5562d") && n.ends_with("layer.tar")).unwrap();
    let b = members.iter().position(|(n, _)| n.starts_with("df361765") && n.ends_with("layer.tar")).unwrap();
    let tmp = members[a].1.clone();
    members[a].1 = members[b].1.clone();
    members[b].1 = tmp;
    let msg = assert_fails_cleanly(&ts, &make_archive(&members), |e| matches!(e, ImageError::DigestMismatch { .. }));
    assert!(msg.contains("digest mismatch"), "{msg}");
}

/// OCI layouts name blobs by digest; a blob whose bytes do not match is refused.
#[test]
fn oci_blob_digest_mismatches_are_refused() {
    let ts = TestStore::new("bi-cor5");
    let orig = archive_members(&fs::read(fixture("layers-oci-gzip.tar")).unwrap());
    // A flipped byte in a compressed layer.
    let mut members = orig.clone();
    let i = members
        .iter()
        .position(|(n, _)| n.ends_with("a51a1039a47b6448135d141da92d90050f25cda3f933a8f81f27cf20fe52ab18"))
        .unwrap();
    let last = members[i].1.len() - 10;
    members[i].1[last] ^= 0xff;
    let msg = assert_fails_cleanly(&ts, &make_archive(&members), |e| e.kind() == ErrorKind::InvalidArgument);
    assert!(msg.contains("mismatch") || msg.contains("invalid"), "{msg}");
    // A changed config.
    let mut members = orig.clone();
    let i = members
        .iter()
        .position(|(n, _)| n.ends_with("036e3fa5f5c5c981307842e47ccd8a5ed796afcd329ad6dc7cd161340eafae95"))
        .unwrap();
    members[i].1 = members[i].1.iter().map(|b| if *b == b'8' { b'9' } else { *b }).collect();
    let msg = assert_fails_cleanly(&ts, &make_archive(&members), |e| matches!(e, ImageError::DigestMismatch { .. }));
    assert!(msg.contains("036e3fa5"), "{msg}");
}

#[test]
fn unknown_media_types_are_refused() {
    let ts = TestStore::new("bi-cor6");
    let mut members = archive_members(&fs::read(fixture("layers-oci-gzip.tar")).unwrap());
    // Rewrite the manifest with an unknown layer media type, and the index to match.
    let mi = members
        .iter()
        .position(|(n, _)| n.ends_with("f31b4d826ca453483e9201dda3eb98564a285df84c722bfeeff13f592c63dcf7"))
        .unwrap();
    let manifest = String::from_utf8(members[mi].1.clone())
        .unwrap()
        .replacen("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.example.weird", 1);
    let md = berth_image::Digest::of(manifest.as_bytes());
    members[mi] = (format!("blobs/sha256/{}", md.hex()), manifest.clone().into_bytes());
    let ii = members.iter().position(|(n, _)| n == "index.json").unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(),
         "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "weird:1"}}]});
    members[ii].1 = serde_json::to_vec(&index).unwrap();
    let msg = assert_fails_cleanly(&ts, &make_archive(&members), |e| matches!(e, ImageError::UnsupportedMediaType(_)));
    assert!(msg.contains("application/vnd.example.weird"), "{msg}");
}

#[test]
fn a_bad_tag_in_manifest_json_stores_nothing() {
    let ts = TestStore::new("bi-cor7");
    let mut members = archive_members(&fs::read(fixture("base-docker-save.tar")).unwrap());
    let i = members.iter().position(|(n, _)| n == "manifest.json").unwrap();
    members[i].1 = String::from_utf8(members[i].1.clone())
        .unwrap()
        .replace("fixture/base:1.0", "Fixture/BASE:1.0")
        .into_bytes();
    let msg = assert_fails_cleanly(&ts, &make_archive(&members), |e| matches!(e, ImageError::InvalidReference(_)));
    assert!(msg.contains("must be lowercase"), "{msg}");
}

/// The registry path: a layer blob whose bytes do not match the manifest's digest is
/// refused at commit and nothing becomes visible.
#[test]
fn layer_writer_refuses_a_wrong_digest() {
    let ts = TestStore::new("bi-cor8");
    let layer = common::tar::build(&[common::tar::Entry::file("a", b"hello")]);
    let lease = ts.store().lease();
    let desc = Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: berth_image::Digest::of(b"something else"),
        size: layer.len() as u64,
    };
    let mut lw = ts.store().layer_writer(&lease, "reg/x@1", &desc, None).unwrap();
    std::io::Write::write_all(&mut lw, &layer).unwrap();
    let err = lw.finish().unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    drop(lease);
    assert_store_empty(&ts);
    // An unknown media type is refused before anything is written.
    let lease = ts.store().lease();
    let bad = Descriptor {
        media_type: "application/x-rar".into(),
        ..desc
    };
    assert!(matches!(
        ts.store().layer_writer(&lease, "reg/x@2", &bad, None),
        Err(ImageError::UnsupportedMediaType(_))
    ));
}
