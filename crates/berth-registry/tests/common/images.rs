//! Test images in a DirStore: the fixture OCI archive made by skopeo from a Docker
//! image, and synthetic images of any size.

use std::path::Path;
use std::process::Command;

use berth_registry::Digest;
use berth_registry::manifest::{Descriptor, Platform, media};
use berth_registry::store::DirStore;

/// Imports an OCI image-layout archive into `store`; returns its manifest descriptor.
pub fn import_oci_archive(store: &DirStore, archive: &Path) -> Descriptor {
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new("tar").arg("-xf").arg(archive).arg("-C").arg(tmp.path()).status().unwrap();
    assert!(st.success());
    for e in std::fs::read_dir(tmp.path().join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let d = store.put(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(d.hex(), p.file_name().unwrap().to_str().unwrap());
    }
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("index.json")).unwrap()).unwrap();
    serde_json::from_value(index["manifests"][0].clone()).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so layers do not compress or collide.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An image with layers of the given sizes (random content) for `platform`.
/// The layers are not real tarballs: registries and DirStore do not look inside.
pub fn synthetic_image(store: &DirStore, sizes: &[usize], seed: u64, platform: (&str, &str)) -> Descriptor {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let data = noise(*n, seed * 1000 + i as u64);
        let d = store.put(&data).unwrap();
        diff_ids.push(Digest::sha256_of(&[&data[..], b"uncompressed"].concat()).to_string());
        layers.push(serde_json::json!({"mediaType": media::OCI_LAYER_GZIP, "digest": d, "size": data.len()}));
    }
    let config = serde_json::json!({
        "architecture": platform.1, "os": platform.0,
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let cd = store.put(config.as_bytes()).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": cd, "size": config.len()},
        "layers": layers,
    })
    .to_string();
    let md = store.put(manifest.as_bytes()).unwrap();
    Descriptor::new(media::OCI_MANIFEST, md, manifest.len() as u64)
}

/// An OCI index over `(manifest, platform)` entries.
pub fn index_of(store: &DirStore, entries: &[(Descriptor, Platform)]) -> Descriptor {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(d, p)| {
            let mut d = d.clone();
            d.platform = Some(p.clone());
            serde_json::to_value(d).unwrap()
        })
        .collect();
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests}).to_string();
    let d = store.put(index.as_bytes()).unwrap();
    Descriptor::new(media::OCI_INDEX, d, index.len() as u64)
}

/// Every blob an image manifest references, plus the manifest: (digest, bytes).
pub fn image_blobs(store: &DirStore, manifest: &Descriptor) -> Vec<Digest> {
    let m: serde_json::Value = serde_json::from_slice(&store.read(&manifest.digest).unwrap()).unwrap();
    let mut out = vec![manifest.digest.clone(), m["config"]["digest"].as_str().unwrap().parse().unwrap()];
    for l in m["layers"].as_array().unwrap() {
        out.push(l["digest"].as_str().unwrap().parse().unwrap());
    }
    out
}
