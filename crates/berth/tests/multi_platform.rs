//! A multi-platform image kept whole (issue 18): a two-platform index (linux/amd64
//! busybox, linux/arm64 with a tiny aarch64 program) in berth's registry, pulled for
//! both platforms with the docker CLI, each run (arm64 through Debian's
//! qemu-user-static via binfmt_misc), inspected, saved, listed and removed by platform;
//! `GET /distribution/{name}/json`; and the clear error when no emulator is registered.

use std::path::Path;
use std::process::{Command, Stdio};

use berth_testutil::registry::Registry;
use berth_testutil::daemon::{TestDaemon, run_ok};

/// A static aarch64 Linux program that prints "hello from arm64" and exits 0:
/// write(1, msg, 17); exit(0), in one PT_LOAD segment.
fn aarch64_hello() -> Vec<u8> {
    let code: [u32; 8] = [
        0xd2800020, // mov x0, #1
        0x100000e1, // adr x1, msg (28 bytes on)
        0xd2800222, // mov x2, #17
        0xd2800808, // mov x8, #64 (write)
        0xd4000001, // svc #0
        0xd2800000, // mov x0, #0
        0xd2800ba8, // mov x8, #93 (exit)
        0xd4000001, // svc #0
    ];
    let mut text: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
    text.extend_from_slice(b"hello from arm64\n");
    let base: u64 = 0x400000;
    let entry = base + 64 + 56;
    let total = (64 + 56 + text.len()) as u64;
    let mut f = Vec::new();
    // ELF header
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&entry.to_le_bytes());
    f.extend_from_slice(&64u64.to_le_bytes()); // phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    f.extend_from_slice(&64u16.to_le_bytes()); // ehsize
    f.extend_from_slice(&56u16.to_le_bytes()); // phentsize
    f.extend_from_slice(&1u16.to_le_bytes()); // phnum
    f.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
    // Program header: PT_LOAD, R+X, the whole file at base.
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&5u32.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&base.to_le_bytes());
    f.extend_from_slice(&base.to_le_bytes());
    f.extend_from_slice(&total.to_le_bytes());
    f.extend_from_slice(&total.to_le_bytes());
    f.extend_from_slice(&0x1000u64.to_le_bytes());
    f.extend_from_slice(&text);
    f
}

/// `docker import --platform P` of a root holding one program at /hello.
fn import_program(d: &TestDaemon, name: &str, platform: &str, program: &[u8]) {
    let root = d.dir.join(format!("root-{}", platform.replace('/', "-")));
    std::fs::create_dir_all(&root).unwrap();
    let p = root.join("hello");
    std::fs::write(&p, program).unwrap();
    run_ok(Command::new("chmod").arg("755").arg(&p));
    let mut tar = Command::new("tar").arg("-C").arg(&root).args(["-cf", "-", "hello"]).stdout(Stdio::piped()).spawn().unwrap();
    let out = d.docker().args(["import", "--platform", platform, "-c", "CMD [\"/hello\"]", "-", name]).stdin(tar.stdout.take().unwrap()).output().unwrap();
    tar.wait().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// GET over the daemon's socket.
fn get(d: &TestDaemon, path: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = d.raw_http("GET", path, "");
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// A manifest's (media type, digest, size) in the registry.
fn head_manifest(reg: &str, repo: &str, tag: &str) -> (String, String, u64) {
    let out = run_ok(Command::new("curl").args(["-sS", "-I", "-H", "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"]).arg(format!("http://{reg}/v2/{repo}/manifests/{tag}")));
    let h = |k: &str| out.lines().find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.trim().to_string())).unwrap();
    (h("Content-Type"), h("Docker-Content-Digest"), h("Content-Length").parse().unwrap())
}

#[test]
fn a_two_platform_index_is_kept_whole_and_runs_for_both() {
    assert!(
        berth_engine_emulator_for("arm64"),
        "no binfmt_misc handler for arm64: scripts/setup.sh --test installs qemu-user-static and binfmt-support"
    );
    let reg = Registry::berth(Path::new(env!("CARGO_BIN_EXE_berth")));
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    let repo = format!("{}/multi", reg.addr);
    d.busybox_image(&format!("{repo}:amd64"));
    import_program(&d, &format!("{repo}:arm64"), "linux/arm64", &aarch64_hello());
    run_ok(d.docker().args(["push", "-q", &format!("{repo}:amd64")]));
    run_ok(d.docker().args(["push", "-q", &format!("{repo}:arm64")]));
    // The index, as `docker manifest create` makes it.
    let (mt_a, dg_a, sz_a) = head_manifest(&reg.addr, "multi", "amd64");
    let (mt_b, dg_b, sz_b) = head_manifest(&reg.addr, "multi", "arm64");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": mt_a, "digest": dg_a, "size": sz_a, "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": mt_b, "digest": dg_b, "size": sz_b, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    });
    let body = d.dir.join("index.json");
    std::fs::write(&body, index.to_string()).unwrap();
    let code = run_ok(Command::new("curl").args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/vnd.docker.distribution.manifest.list.v2+json", "--data-binary"]).arg(format!("@{}", body.display())).arg(format!("http://{}/v2/multi/manifests/latest", reg.addr)));
    assert_eq!(code, "201");
    run_ok(d.docker().args(["rmi", &format!("{repo}:amd64"), &format!("{repo}:arm64")]));
    let latest = format!("{repo}:latest");

    // GET /distribution/{name}/json: the index and both platforms.
    let (st, di) = get(&d, &format!("/v1.51/distribution/{}/json", enc(&latest)));
    assert_eq!(st, 200, "{di}");
    assert_eq!(di["Descriptor"]["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json");
    let plats: Vec<String> = di["Platforms"].as_array().unwrap().iter().map(|p| format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap())).collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64"]);

    // Pull the host's platform, then the other: both kept under the one tag.
    run_ok(d.docker().args(["pull", "-q", &latest]));
    run_ok(d.docker().args(["pull", "-q", "--platform", "linux/arm64", &latest]));
    let rows = run_ok(d.docker().args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert_eq!(rows.lines().filter(|l| l.ends_with("multi:latest")).count(), 1, "one row per tag:\n{rows}");
    assert_eq!(run_ok(d.docker().args(["image", "inspect", "-f", "{{.Architecture}}", &latest])).trim(), "amd64", "the host's by default");
    let (st, arm) = get(&d, &format!("/v1.49/images/{}/json?platform={}", enc(&latest), enc(r#"{"os":"linux","architecture":"arm64"}"#)));
    assert_eq!(st, 200, "{arm}");
    assert_eq!(arm["Architecture"], "arm64");
    assert_eq!(arm["RepoTags"], serde_json::json!([latest.clone()]));
    let (st, err) = get(&d, &format!("/v1.49/images/{}/json?platform={}", enc(&latest), enc(r#"{"os":"linux","architecture":"s390x"}"#)));
    assert_eq!(st, 404, "{err}");
    let (st, _) = get(&d, &format!("/v1.49/images/{}/json?platform={}", enc(&latest), enc(r#"{"os":"linux"}"#)));
    assert_eq!(st, 400, "both OS and Architecture must be provided");

    // Run both platforms from what is stored (no pull in between).
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "--pull", "never", "--platform", "linux/arm64", &latest])), "hello from arm64\n");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "--pull", "never", &latest, "echo", "amd64 busybox"])), "amd64 busybox\n");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "--pull", "never", "--platform", "linux/amd64", &latest, "uname", "-m"])).trim(), "x86_64");

    // save --platform writes that platform's image under the tag.
    let tar = d.dir.join("arm.tar");
    run_ok(d.docker().args(["save", "--platform", "linux/arm64", "-o"]).arg(&tar).arg(&latest));
    let manifest = run_ok(Command::new("tar").arg("-xOf").arg(&tar).arg("manifest.json"));
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m[0]["RepoTags"], serde_json::json!([latest.clone()]));
    let cfg = run_ok(Command::new("tar").arg("-xOf").arg(&tar).arg(m[0]["Config"].as_str().unwrap()));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["architecture"], "arm64");

    // The CLI's inspect --platform picks the kept platform too.
    assert_eq!(run_ok(d.docker().args(["image", "inspect", "--platform", "linux/arm64", "-f", "{{.Architecture}}", &latest])).trim(), "arm64");

    // rmi of the tag removes every platform.
    run_ok(d.docker().args(["rmi", &latest]));
    assert_eq!(run_ok(d.docker().args(["images", "-aq"])).trim(), "", "nothing left");

    // The whole index as an OCI archive (skopeo copy --all), loaded back: every platform
    // kept; with --platform, only that one.
    let oci = d.dir.join("multi-oci.tar");
    run_ok(Command::new("skopeo").args(["copy", "-q", "--all", "--insecure-policy", "--src-tls-verify=false"]).arg(format!("docker://{latest}")).arg(format!("oci-archive:{}:multi:latest", oci.display())));
    run_ok(d.docker().args(["load", "-q", "-i"]).arg(&oci));
    assert_eq!(run_ok(d.docker().args(["image", "inspect", "-f", "{{.Architecture}}", "multi:latest"])).trim(), "amd64");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "--pull", "never", "--platform", "linux/arm64", "multi:latest"])), "hello from arm64\n");
    run_ok(d.docker().args(["rmi", "multi:latest"]));
    assert_eq!(run_ok(d.docker().args(["images", "-aq"])).trim(), "");
    run_ok(d.docker().args(["load", "-q", "--platform", "linux/arm64", "-i"]).arg(&oci));
    assert_eq!(run_ok(d.docker().args(["image", "inspect", "-f", "{{.Architecture}}", "multi:latest"])).trim(), "arm64");
    assert_eq!(run_ok(d.docker().args(["images", "-q"])).lines().count(), 1);
    run_ok(d.docker().args(["rmi", "multi:latest"]));

    // An architecture no emulator is registered for: a clear error at start.
    import_program(&d, "wasmish:1", "linux/wasm", b"\0asm\x01\0\0\0");
    let out = d.docker().args(["run", "--rm", "wasmish:1"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no emulator is registered for wasm"), "{err}");
    assert!(err.contains("qemu-user-static"), "{err}");
}

/// Whether binfmt_misc has an enabled handler for `arch` (as the daemon checks).
fn berth_engine_emulator_for(arch: &str) -> bool {
    let want = match arch {
        "arm64" => "qemu-aarch64",
        _ => return false,
    };
    std::fs::read_to_string(format!("/proc/sys/fs/binfmt_misc/{want}")).map(|s| s.starts_with("enabled")).unwrap_or(false)
}

/// Uploads a file as a blob (POST, then PUT with the digest); returns (digest, size).
fn push_blob(reg: &str, repo: &str, path: &Path) -> (String, u64) {
    let sum = run_ok(Command::new("sha256sum").arg(path));
    let digest = format!("sha256:{}", sum.split_whitespace().next().unwrap());
    let size = std::fs::metadata(path).unwrap().len();
    let head = run_ok(Command::new("curl").args(["-sS", "-D", "-", "-o", "/dev/null", "-X", "POST"]).arg(format!("http://{reg}/v2/{repo}/blobs/uploads/")));
    let loc = head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.trim().to_string())).unwrap();
    let url = if loc.starts_with("http") { loc } else { format!("http://{reg}{loc}") };
    let sep = if url.contains('?') { '&' } else { '?' };
    let code = run_ok(Command::new("curl").args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary"]).arg(format!("@{}", path.display())).arg(format!("{url}{sep}digest={digest}")));
    assert_eq!(code, "201", "blob upload");
    (digest, size)
}

#[test]
fn bzip2_and_xz_layers_pull_and_run() {
    let reg = Registry::berth(Path::new(env!("CARGO_BIN_EXE_berth")));
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    let work = d.dir.join("bzxz");
    std::fs::create_dir_all(work.join("l1/bin")).unwrap();
    std::fs::create_dir_all(work.join("l2")).unwrap();
    std::fs::copy("/bin/busybox", work.join("l1/bin/busybox")).unwrap();
    std::fs::write(work.join("l2/msg"), "from an xz layer\n").unwrap();
    run_ok(Command::new("tar").arg("-C").arg(work.join("l1")).arg("-cf").arg(work.join("l1.tar")).arg("bin"));
    run_ok(Command::new("tar").arg("-C").arg(work.join("l2")).arg("-cf").arg(work.join("l2.tar")).arg("msg"));
    let diff = |p: &str| format!("sha256:{}", run_ok(Command::new("sha256sum").arg(work.join(p))).split_whitespace().next().unwrap());
    let (d1, d2) = (diff("l1.tar"), diff("l2.tar"));
    run_ok(Command::new("bzip2").arg("-k").arg(work.join("l1.tar")));
    run_ok(Command::new("xz").arg("-k").arg(work.join("l2.tar")));
    let (b1, s1) = push_blob(&reg.addr, "bzxz", &work.join("l1.tar.bz2"));
    let (b2, s2) = push_blob(&reg.addr, "bzxz", &work.join("l2.tar.xz"));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/busybox", "cat", "/msg"]},
        "rootfs": {"type": "layers", "diff_ids": [d1, d2]},
    });
    std::fs::write(work.join("config.json"), config.to_string()).unwrap();
    let (c, cs) = push_blob(&reg.addr, "bzxz", &work.join("config.json"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": cs},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+bzip2", "digest": b1, "size": s1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+xz", "digest": b2, "size": s2},
        ],
    });
    std::fs::write(work.join("manifest.json"), manifest.to_string()).unwrap();
    let code = run_ok(Command::new("curl").args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/vnd.oci.image.manifest.v1+json", "--data-binary"]).arg(format!("@{}", work.join("manifest.json").display())).arg(format!("http://{}/v2/bzxz/manifests/1", reg.addr)));
    assert_eq!(code, "201");
    let image = format!("{}/bzxz:1", reg.addr);
    run_ok(d.docker().args(["pull", "-q", &image]));
    assert_eq!(run_ok(d.docker().args(["run", "--rm", &image])), "from an xz layer\n");
    let layers = run_ok(d.docker().args(["image", "inspect", "-f", "{{json .RootFS.Layers}}", &image]));
    assert_eq!(layers.trim(), serde_json::json!([d1, d2]).to_string());
    // save keeps them loadable (layers written uncompressed, as Docker's save).
    let tar = d.dir.join("bzxz-save.tar");
    run_ok(d.docker().args(["save", "-o"]).arg(&tar).arg(&image));
    run_ok(d.docker().args(["rmi", &image]));
    run_ok(d.docker().args(["load", "-q", "-i"]).arg(&tar));
    assert_eq!(run_ok(d.docker().args(["run", "--rm", &image])), "from an xz layer\n");
}
