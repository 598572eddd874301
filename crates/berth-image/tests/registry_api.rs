//! The API the registry client builds on: resumable ingests, layers unpacked while
//! they download, and an image recorded from a manifest and config. Driven here with
//! the blobs of skopeo's OCI archive, as a registry would serve them.

mod common;

use std::collections::HashMap;
use std::io::Write;

use berth_image::content::Expected;
use berth_image::manifest::{self, ManifestDoc};
use berth_image::{Descriptor, ImageError, NewImage, Reference};
use common::*;

/// The blobs of an OCI layout tar, by digest.
fn blobs(name: &str) -> HashMap<String, Vec<u8>> {
    archive_members(&std::fs::read(fixture(name)).unwrap())
        .into_iter()
        .filter_map(|(n, d)| n.strip_prefix("blobs/sha256/").map(|h| (format!("sha256:{h}"), d)))
        .collect()
}

const MANIFEST: &str = "sha256:f31b4d826ca453483e9201dda3eb98564a285df84c722bfeeff13f592c63dcf7";

#[test]
fn pull_with_an_interrupted_layer_then_resume() {
    let ts = TestStore::new("bi-reg1");
    let s = ts.store();
    let b = blobs("layers-oci-gzip.tar");
    let manifest_bytes = &b[MANIFEST];
    let ManifestDoc::Manifest(m) = manifest::parse(manifest_bytes, None).unwrap() else {
        panic!("manifest expected")
    };
    let config_bytes = &b[&m.config.digest.to_string()];
    let config = berth_image::ImageConfig::parse(config_bytes).unwrap();

    // First attempt: the big base layer stops half-way (connection dropped).
    {
        let lease = s.lease();
        let big = &m.layers[0];
        let data = &b[&big.digest.to_string()];
        let mut lw = s
            .layer_writer(&lease, &format!("docker.io/fixture/layers@{}", big.digest), big, Some(config.rootfs.diff_ids[0].clone()))
            .unwrap();
        lw.write_all(&data[..data.len() / 2]).unwrap();
        drop(lw);
    }
    // Nothing visible, the partial data kept for the next attempt.
    assert!(!s.content().exists(&m.layers[0].digest));
    let st = s.content().list_ingests().unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].offset, b[&m.layers[0].digest.to_string()].len() as u64 / 2);
    assert!(list_files(&ts.root().join("layers/.staging")).is_empty());

    // Second attempt: all layers, the big one resumed from its offset.
    let lease = s.lease();
    let mut pending = Vec::new();
    for (i, l) in m.layers.iter().enumerate() {
        let data = &b[&l.digest.to_string()];
        let mut lw = s
            .layer_writer(&lease, &format!("docker.io/fixture/layers@{}", l.digest), l, Some(config.rootfs.diff_ids[i].clone()))
            .unwrap();
        let from = lw.offset() as usize;
        if i == 0 {
            assert_eq!(from, data.len() / 2, "resumed");
        }
        lw.write_all(&data[from..]).unwrap();
        // Commit now, wait for the unpack later: downloads and unpacks overlap.
        pending.push(lw.commit().unwrap());
    }
    for p in pending {
        p.wait().unwrap();
    }
    // The config goes through a plain ingest with its expected digest.
    let mut w = s
        .writer(&lease, "docker.io/fixture/layers@config", Expected { digest: m.config.digest.clone(), size: Some(m.config.size) })
        .unwrap();
    w.write_all(config_bytes).unwrap();
    w.commit(None, None).unwrap();

    let tag = Reference::parse_tagged("fixture/layers:1.0").unwrap();
    let digest_ref = tag.with_digest(berth_image::Digest::parse(MANIFEST).unwrap());
    let (id, _) = s
        .record_image(
            &lease,
            NewImage {
                config: config_bytes,
                manifest: Some((manifest_bytes, manifest::OCI_MANIFEST)),
                layers: m.layers.clone(),
                tags: vec![tag],
                repo_digests: vec![digest_ref],
                ..Default::default()
            },
        )
        .unwrap();
    drop(lease);
    assert_eq!(id.to_string(), OCI_CONFIG_ID);
    let insp = s.inspect(&format!("fixture/layers@{MANIFEST}")).unwrap();
    assert_eq!(insp.repo_digests, vec![format!("fixture/layers@{MANIFEST}")]);
    assert_eq!(insp.repo_tags, vec!["fixture/layers:1.0"]);
    assert_eq!(insp.root_fs.layers, LAYERS_DIFF_IDS.to_vec());
    assert!(s.content().list_ingests().unwrap().is_empty());
    // Pushing later needs the compressed blobs as they were: they are stored.
    for l in &m.layers {
        assert_eq!(s.content().info(&l.digest).unwrap().size, l.size);
    }
    // The file tree is right.
    let cdir = ts.dir.path().join("c");
    s.prepare_snapshot("c", OCI_CONFIG_ID, &cdir, &Default::default()).unwrap();
    assert_eq!(tar_listing(&s.export("c", Vec::new()).unwrap()), fixture_listing());
    s.remove_snapshot("c").unwrap();
}

/// A second pull of an image whose layers are present records it from the stored
/// blobs alone (the client skips the downloads).
#[test]
fn record_from_present_blobs() {
    let ts = TestStore::new("bi-reg2");
    let s = ts.store();
    ts.load_fixture("layers-oci-zstd.tar");
    let b = blobs("layers-oci-zstd.tar");
    let rec = s.record("fixture/layers:1.0").unwrap();
    let manifest_bytes = s.content().read_blob(&rec.manifest.as_ref().unwrap().digest, 1 << 20).unwrap();
    let ManifestDoc::Manifest(m) = manifest::parse(&manifest_bytes, None).unwrap() else { panic!() };
    s.remove("fixture/layers:1.0", false, true, &Default::default()).unwrap();
    assert_store_empty(&ts);

    // Layers present but no image: blobs written through plain ingests; record_image
    // unpacks them itself.
    let lease = s.lease();
    for l in m.layers.iter().chain([&m.config]) {
        let mut w = s.writer(&lease, &format!("x@{}", l.digest), Expected { digest: l.digest.clone(), size: Some(l.size) }).unwrap();
        w.write_all(&b[&l.digest.to_string()]).unwrap();
        w.commit(None, None).unwrap();
    }
    let (id, _) = s
        .record_image(
            &lease,
            NewImage {
                config: &b[&m.config.digest.to_string()],
                layers: m.layers.clone(),
                tags: vec![Reference::parse_tagged("again").unwrap()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(id.to_string(), OCI_CONFIG_ID);
    assert_eq!(s.layers().list().unwrap().len(), 5);

    // A manifest whose layer count disagrees with the config is refused.
    let e = s
        .record_image(
            &lease,
            NewImage {
                config: &b[&m.config.digest.to_string()],
                layers: m.layers[..4].to_vec(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, ImageError::InvalidManifest(_)), "{e}");
    // A layer blob that is missing is named.
    let missing = Descriptor {
        digest: berth_image::Digest::of(b"not here"),
        ..m.layers[4].clone()
    };
    let mut layers = m.layers[..4].to_vec();
    layers.push(missing);
    let e = s
        .record_image(
            &lease,
            NewImage {
                config: &b[&m.config.digest.to_string()],
                layers,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, ImageError::BlobNotFound(_)), "{e}");
    // Blobs in the wrong order (each real, but not what the config says).
    let mut swapped = m.layers.clone();
    swapped.swap(1, 2);
    let e = s
        .record_image(
            &lease,
            NewImage {
                config: &b[&m.config.digest.to_string()],
                layers: swapped,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
}

/// A layer whose uncompressed content does not match the DiffID the config promises
/// is refused when its unpack finishes.
#[test]
fn layer_writer_checks_the_diff_id() {
    let ts = TestStore::new("bi-reg3");
    let s = ts.store();
    let tar = common::tar::build(&[common::tar::Entry::file("f", b"content")]);
    let gz = common::tar::gzip(&tar);
    let desc = Descriptor {
        media_type: manifest::OCI_LAYER_GZIP.into(),
        digest: berth_image::Digest::of(&gz),
        size: gz.len() as u64,
    };
    let lease = s.lease();
    let mut lw = s
        .layer_writer(&lease, "r@1", &desc, Some(berth_image::Digest::of(b"another diff id")))
        .unwrap();
    lw.write_all(&gz).unwrap();
    let e = lw.finish().unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains("uncompressed layer"), "{e}");
    drop(lease);
    s.gc().unwrap();
    assert_store_empty(&ts);
}
