//! Volumes and mounts through the docker CLI: named and anonymous volumes, copy-up,
//! binds, tmpfs, volumes-from, the local driver's options, errors.

use std::path::Path;

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

fn fails(d: &TestDaemon, args: &[&str]) -> String {
    let out = d.docker().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn named_volume_data_outlives_containers_and_restarts() {
    let mut d = daemon();
    run_ok(d.docker().args(["volume", "create", "--label", "k=v", "data"]));
    run_ok(d.docker().args(["run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo persisted > /data/f"]));
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f"])), "persisted\n");
    let err = fails(&d, &["run", "--rm", "-v", "data:/data:ro", "busybox", "touch", "/data/x"]);
    assert!(err.contains("Read-only file system"), "{err}");
    let insp = run_ok(d.docker().args(["volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels.k}} {{.Scope}}", "data"]));
    assert_eq!(insp.trim(), "data local v local");
    let ls = run_ok(d.docker().args(["volume", "ls", "-q", "--filter", "label=k=v"]));
    assert_eq!(ls.trim(), "data");
    // In use: refused; the data is intact after a daemon SIGKILL and restart.
    run_ok(d.docker().args(["run", "-d", "--name", "user", "-v", "data:/data", "busybox", "sleep", "300"]));
    let err = fails(&d, &["volume", "rm", "data"]);
    assert!(err.contains("volume is in use"), "{err}");
    d.restart();
    assert_eq!(run_ok(d.docker().args(["exec", "user", "cat", "/data/f"])), "persisted\n");
    run_ok(d.docker().args(["rm", "-f", "user"]));
    run_ok(d.docker().args(["volume", "rm", "data"]));
    assert!(fails(&d, &["volume", "inspect", "data"]).contains("no such volume"));
}

#[test]
fn copy_up_anonymous_volumes_and_rm_v() {
    let d = daemon();
    // An empty named volume over /etc gets the image's /etc (copy-up), once.
    let out = run_ok(d.docker().args(["run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/passwd"]));
    assert!(out.contains("root:x:0:0"), "{out}");
    let out = run_ok(d.docker().args(["run", "--rm", "-v", "emptyvol:/etc:nocopy", "busybox", "ls", "-A", "/etc"]));
    assert_eq!(out.trim(), "", "nocopy leaves the volume empty");
    // -v /path makes an anonymous volume; rm -v removes it, rm keeps it.
    run_ok(d.docker().args(["create", "--name", "anon", "-v", "/scratch", "busybox", "true"]));
    let name = run_ok(d.docker().args(["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "anon"]));
    let name = name.trim().to_string();
    assert_eq!(name.len(), 64, "{name}");
    let mounts = run_ok(d.docker().args(["inspect", "-f", "{{json .Mounts}}", "anon"]));
    let m: serde_json::Value = serde_json::from_str(&mounts).unwrap();
    assert_eq!(m[0]["Type"], "volume");
    assert_eq!(m[0]["Destination"], "/scratch");
    assert_eq!(m[0]["Driver"], "local");
    assert_eq!(m[0]["RW"], true);
    run_ok(d.docker().args(["rm", "-v", "anon"]));
    assert!(fails(&d, &["volume", "inspect", &name]).contains("no such volume"));
}

#[test]
fn binds_tmpfs_and_volumes_from() {
    let d = daemon();
    let host = d.dir.join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "hi\n").unwrap();
    let spec = format!("{}:/mnt", host.display());
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "-v", &spec, "busybox", "cat", "/mnt/from-host"])), "hi\n");
    run_ok(d.docker().args(["run", "--rm", "-v", &spec, "busybox", "sh", "-c", "echo back > /mnt/from-container"]));
    assert_eq!(std::fs::read_to_string(host.join("from-container")).unwrap(), "back\n");
    // -v creates a missing host path; --mount refuses it.
    let missing = d.dir.join("made-by-v");
    run_ok(d.docker().args(["run", "--rm", "-v", &format!("{}:/x", missing.display()), "busybox", "true"]));
    assert!(missing.is_dir());
    let err = fails(&d, &["run", "--rm", "--mount", &format!("type=bind,src={},dst=/x", d.dir.join("nope").display()), "busybox", "true"]);
    assert!(err.contains("bind source path does not exist"), "{err}");
    assert!(!d.dir.join("nope").exists());
    // tmpfs is a tmpfs, and empty in each new container.
    let out = run_ok(d.docker().args(["run", "--rm", "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c", "grep ' /scratch ' /proc/mounts; touch /scratch/a"]));
    assert!(out.contains("tmpfs /scratch tmpfs"), "{out}");
    let out = run_ok(d.docker().args(["run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=65536", "busybox", "ls", "-A", "/t"]));
    assert_eq!(out, "");
    // volumes-from.
    run_ok(d.docker().args(["run", "-d", "--name", "owner", "-v", "vf:/shared", "busybox", "sh", "-c", "echo owned > /shared/o; sleep 300"]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "--volumes-from", "owner:ro", "busybox", "cat", "/shared/o"])), "owned\n");
    let err = fails(&d, &["run", "--rm", "--volumes-from", "owner:ro", "busybox", "touch", "/shared/z"]);
    assert!(err.contains("Read-only"), "{err}");
}

#[test]
fn local_driver_options_and_bad_input() {
    let d = daemon();
    run_ok(d.docker().args(["volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=2m", "tvol"]));
    let out = run_ok(d.docker().args(["run", "--rm", "-v", "tvol:/v", "busybox", "sh", "-c", "grep ' /v ' /proc/mounts"]));
    assert!(out.contains("tmpfs"), "{out}");
    let src = d.dir.join("bindsrc");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("marker"), "bound\n").unwrap();
    run_ok(d.docker().args(["volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt"]).arg(format!("device={}", src.display())).arg("bvol"));
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "-v", "bvol:/b", "busybox", "cat", "/b/marker"])), "bound\n");
    for (args, needle) in [
        (vec!["run", "--rm", "-v", "data:relative", "busybox", "true"], "must be absolute"),
        (vec!["volume", "create", "bad/name"], "invalid characters"),
        (vec!["volume", "create", "--opt", "bogus=1", "v2"], "invalid option"),
        (vec!["run", "--rm", "--mount", "type=nfs,dst=/x", "busybox", "true"], "mount type unknown"),
    ] {
        let err = fails(&d, &args);
        assert!(err.to_lowercase().contains(&needle.to_lowercase()), "{args:?}: {err}");
    }
    let ls = run_ok(d.docker().args(["volume", "ls", "-q"]));
    let mut names: Vec<&str> = ls.lines().collect();
    names.sort();
    assert_eq!(names, vec!["bvol", "tvol"], "failed commands created nothing");
    let df = run_ok(d.docker().args(["system", "df"]));
    assert!(df.contains("Local Volumes"), "{df}");
}
