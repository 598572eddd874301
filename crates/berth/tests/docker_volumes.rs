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
        (vec!["volume", "create", "--opt", "bogus=1", "v2"], "create v2: invalid option: \"bogus\""),
        (vec!["volume", "create", "--opt", "type=ext4", "v3"], "create v3: missing required option: \"device\""),
        (vec!["volume", "create", "--opt", "o=ro", "--opt", "device=/dev/null", "v4"], "create v4: missing required option: \"type\""),
        (vec!["volume", "create", "--opt", "size=10m", "v5"], "create v5: quota size requested but no quota support"),
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

/// A loop device over a small file, detached when dropped.
struct Loop {
    dev: String,
    _file: std::path::PathBuf,
}

impl Loop {
    fn ext4(dir: &std::path::Path) -> Loop {
        let file = dir.join("ext4.img");
        let f = std::fs::File::create(&file).unwrap();
        f.set_len(16 << 20).unwrap();
        drop(f);
        run_ok(std::process::Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&file));
        let dev = run_ok(std::process::Command::new("losetup").args(["-f", "--show"]).arg(&file)).trim().to_string();
        Loop { dev, _file: file }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

#[test]
fn local_driver_mounts_a_filesystem_on_a_loop_device() {
    let d = daemon();
    let lo = Loop::ext4(&d.dir);
    run_ok(d.docker().args(["volume", "create", "--opt", "type=ext4", "--opt"]).arg(format!("device={}", lo.dev)).args(["--opt", "o=noatime", "extvol"]));
    let v: serde_json::Value = serde_json::from_str(&run_ok(d.docker().args(["volume", "inspect", "extvol"]))).unwrap();
    assert_eq!(v[0]["Options"], serde_json::json!({"type": "ext4", "device": lo.dev, "o": "noatime"}));
    // The container sees the ext4 filesystem (with the option) and writes to it.
    let out = run_ok(d.docker().args(["run", "--rm", "-v", "extvol:/data", "busybox", "sh", "-c", "grep ' /data ' /proc/mounts; echo kept > /data/file"]));
    assert!(out.contains(" ext4 ") && out.contains("noatime"), "{out}");
    // Unmounted when no container uses it; the data is on the device.
    let mp = v[0]["Mountpoint"].as_str().unwrap().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&format!(" {mp} ")), "still mounted after the container left");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "-v", "extvol:/data:ro", "busybox", "cat", "/data/file"])), "kept\n");
    // Two containers share one mount.
    let a = run_ok(d.docker().args(["run", "-d", "-v", "extvol:/data", "busybox", "sleep", "300"])).trim().to_string();
    run_ok(d.docker().args(["run", "--rm", "-v", "extvol:/data", "busybox", "sh", "-c", "echo two > /data/two"]));
    assert_eq!(run_ok(d.docker().args(["exec", &a, "cat", "/data/two"])), "two\n");
    run_ok(d.docker().args(["rm", "-f", &a]));
    run_ok(d.docker().args(["volume", "rm", "extvol"]));

    // A read-only bind: o=bind,ro (mounted, then remounted read-only).
    let src = d.dir.join("robind");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    run_ok(d.docker().args(["volume", "create", "--opt", "type=none", "--opt", "o=bind,ro", "--opt"]).arg(format!("device={}", src.display())).arg("robind"));
    let out = d.docker().args(["run", "--rm", "-v", "robind:/b", "busybox", "sh", "-c", "cat /b/f; touch /b/g"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"), "{}", String::from_utf8_lossy(&out.stderr));

    // A device that does not exist: the volume is created, the container fails to
    // start with the local driver's message, nothing stays mounted.
    run_ok(d.docker().args(["volume", "create", "--opt", "type=ext4", "--opt", "device=/dev/berth-no-such-dev", "badvol"]));
    let err = fails(&d, &["run", "--rm", "-v", "badvol:/x", "busybox", "true"]);
    assert!(err.contains("error while mounting volume") && err.contains("failed to mount local volume: mount /dev/berth-no-such-dev:"), "{err}");
    assert!(err.contains("no such file or directory"), "{err}");
}
