//! The real docker CLI against a berth daemon: files in and out, images from
//! containers, events, restart policies, and a daemon killed with SIGKILL.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, mount_options, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cp_in_and_out_diff_commit_export() {
    let d = daemon();
    run_ok(d.docker().args(["run", "-d", "--name", "box", "busybox", "sleep", "300"]));
    let host = d.dir.join("hostfile.txt");
    std::fs::write(&host, "from the host\n").unwrap();
    run_ok(d.docker().args(["cp"]).arg(&host).arg("box:/tmp/in.txt"));
    assert_eq!(run_ok(d.docker().args(["exec", "box", "cat", "/tmp/in.txt"])), "from the host\n");
    run_ok(d.docker().args(["exec", "box", "sh", "-c", "mkdir -p /out/sub && echo inside > /out/sub/f && rm /bin/vi"]));
    let dest = d.dir.join("copied");
    run_ok(d.docker().args(["cp", "box:/out"]).arg(&dest));
    assert_eq!(std::fs::read_to_string(dest.join("sub/f")).unwrap(), "inside\n");
    let diff = run_ok(d.docker().args(["diff", "box"]));
    for line in ["A /out", "A /out/sub/f", "D /bin/vi", "A /tmp/in.txt"] {
        assert!(diff.lines().any(|l| l == line), "missing {line:?} in diff:\n{diff}");
    }
    let id = run_ok(d.docker().args(["commit", "-c", "CMD [\"cat\", \"/out/sub/f\"]", "box", "snap:1"]));
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "snap:1"])), "inside\n");
    // export: the container's whole filesystem as a tar.
    let tar = d.dir.join("box.tar");
    run_ok(d.docker().args(["export", "-o"]).arg(&tar).arg("box"));
    let list = run_ok(std::process::Command::new("tar").arg("-tf").arg(&tar));
    assert!(list.lines().any(|l| l.trim_start_matches("./") == "out/sub/f"), "export lacks out/sub/f");
    assert!(!list.lines().any(|l| l.trim_start_matches("./") == "bin/vi"), "export has a deleted file");
    run_ok(d.docker().args(["rm", "-f", "box"]));
}

/// A copy the daemon refuses is answered with its message, after the archive has been
/// read: answering first would close the connection on the client still sending it, who
/// would report a broken pipe.
#[test]
fn cp_refused_after_the_archive_is_sent_gets_the_message() {
    let d = daemon();
    run_ok(d.docker().args(["run", "-d", "--read-only", "--name", "ro", "busybox", "sleep", "300"]));
    let big = d.dir.join("big");
    std::fs::write(&big, vec![7u8; 8 << 20]).unwrap();
    for _ in 0..3 {
        let out = d.docker().arg("cp").arg(&big).arg("ro:/tmp/").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("marked read-only") && !err.contains("broken pipe"), "{err}");
    }
    // The same connection's client can go on: a copy where it may works.
    run_ok(d.docker().args(["run", "-d", "--name", "rw", "busybox", "sleep", "300"]));
    run_ok(d.docker().arg("cp").arg(&big).arg("rw:/tmp/"));
    assert_eq!(run_ok(d.docker().args(["exec", "rw", "wc", "-c", "/tmp/big"])).split_whitespace().next(), Some("8388608"));
    run_ok(d.docker().args(["rm", "-f", "ro", "rw"]));
}

/// An archive that is not one, loaded or imported: the daemon's one-line message (no
/// raw header bytes), never a connection closed on the client still sending it.
#[test]
fn load_and_import_of_garbage_get_the_message() {
    let d = daemon();
    let junk = d.dir.join("junk.tar");
    let mut bytes = vec![0u8; 8 << 20];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8 | 1;
    }
    std::fs::write(&junk, bytes).unwrap();
    for _ in 0..3 {
        for args in [&["load", "-i"][..], &["import"][..]] {
            let out = d.docker().args(args).arg(&junk).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && err.contains("invalid tar header"), "{args:?}: {err}");
            assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{args:?}: {err:?}");
        }
    }
    // Nothing was stored.
    assert_eq!(run_ok(d.docker().args(["images", "-q"])).lines().count(), 1);
}

#[test]
fn save_load_import_images() {
    let d = daemon();
    let tar = d.dir.join("bb.tar");
    run_ok(d.docker().args(["save", "-o"]).arg(&tar).arg("busybox:latest"));
    let id = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "busybox:latest"]));
    run_ok(d.docker().args(["rmi", "busybox:latest"]));
    let out = run_ok(d.docker().args(["load", "-i"]).arg(&tar));
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "busybox:latest"])), id);
    let images = run_ok(d.docker().args(["images"]));
    assert!(images.starts_with("REPOSITORY") && images.contains("busybox"), "{images}");
    // a fixture written by real docker save
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/layers-docker-save.tar");
    let out = run_ok(d.docker().args(["load", "-i"]).arg(&fixture));
    assert!(out.contains("fixture/layers:1.0"), "{out}");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "fixture/layers:1.0"])), "hello from a layer\n");
    let hist = run_ok(d.docker().args(["history", "fixture/layers:1.0"]));
    assert!(hist.starts_with("IMAGE"), "{hist}");
}

#[test]
fn events_stream_a_container_lifecycle() {
    let d = daemon();
    let mut ev = d.docker().args(["events", "--filter", "type=container", "--format", "{{.Action}}"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    run_ok(d.docker().args(["run", "--rm", "busybox", "true"]));
    std::thread::sleep(Duration::from_millis(500));
    let _ = ev.kill();
    let out = ev.wait_with_output().unwrap();
    let actions: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    for a in ["create", "attach", "start", "die", "destroy"] {
        assert!(actions.iter().any(|x| x == a), "no {a} event in {actions:?}");
    }
    let pos = |a: &str| actions.iter().position(|x| x == a).unwrap();
    assert!(pos("create") < pos("start") && pos("start") < pos("die") && pos("die") < pos("destroy"), "{actions:?}");
}

#[test]
fn restart_policy_on_failure_and_always() {
    let d = daemon();
    run_ok(d.docker().args(["run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3"]));
    wait_for("two restarts", || {
        let s = run_ok(d.docker().args(["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "flaky"]));
        s.trim() == "2 exited"
    });
    run_ok(d.docker().args(["run", "-d", "--name", "forever", "--restart", "always", "busybox", "sleep", "300"]));
    let pid = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}}", "forever"])).trim().parse::<i32>().unwrap();
    // The process dies behind the daemon's back: always brings it back.
    // SAFETY: sending SIGKILL to the container's init.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for("a restart", || {
        let s = run_ok(d.docker().args(["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "forever"]));
        s.trim() == "1 running"
    });
    // A manual stop is respected.
    run_ok(d.docker().args(["stop", "-t", "1", "forever"]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}}", "forever"])).trim(), "exited");
}

#[test]
fn daemon_killed_with_sigkill_comes_back_with_running_containers() {
    let mut d = daemon();
    run_ok(d.docker().args(["run", "-d", "--name", "live", "-i", "busybox", "sh", "-c", "echo before; while true; do date +%s; sleep 0.2; done"]));
    run_ok(d.docker().args(["run", "-d", "--name", "shortlived", "busybox", "sh", "-c", "sleep 1; exit 5"]));
    let pid = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}}", "live"]));
    d.kill9();
    // While the daemon is down, one container keeps running, the other exits.
    std::thread::sleep(Duration::from_millis(1800));
    d.restart();
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "live"])).trim(), format!("running {}", pid.trim()));
    wait_for("the exit recorded while the daemon was down", || {
        run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "shortlived"])).trim() == "exited 5"
    });
    // logs kept flowing, exec and attach work again.
    let logs = run_ok(d.docker().args(["logs", "live"]));
    assert!(logs.starts_with("before\n") && logs.lines().count() > 5, "{logs}");
    assert_eq!(run_ok(d.docker().args(["exec", "live", "echo", "still here"])), "still here\n");
    let att = d.docker().args(["attach", "--no-stdin", "live"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    run_ok(d.docker().args(["kill", "live"]));
    let out = att.wait_with_output().unwrap();
    assert!(!out.stdout.is_empty(), "attach after restart got no output");
    let ps = run_ok(d.docker().args(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps.contains("live Exited (137)"), "{ps}");
}

#[test]
fn rm_containers_are_volatile_survive_restart_and_go_to_the_trash() {
    let mut d = daemon();
    let rootfs = |id: &str| d.data_root.join("containers").join(id.trim()).join("rootfs");
    let trash = d.data_root.join("trash");
    // A --rm container's overlay is volatile (no sync of the data root at its unmount);
    // any other's is not.
    let gone = run_ok(d.docker().args(["run", "-d", "--rm", "--name", "gone", "busybox", "sleep", "300"]));
    let keep = run_ok(d.docker().args(["run", "-d", "--name", "keep", "busybox", "sleep", "300"]));
    let opts = mount_options(&rootfs(&gone)).expect("the --rm container's rootfs is mounted");
    assert!(opts.contains("volatile"), "{opts}");
    let opts = mount_options(&rootfs(&keep)).expect("the other rootfs is mounted");
    assert!(!opts.contains("volatile"), "{opts}");
    // Both share the data root's init layer (shown first in LowerDir, as Docker shows
    // its per-container one); their own directories hold only their layers.
    let init = d.data_root.join("init/docker");
    for c in [&gone, &keep] {
        let lower = run_ok(d.docker().args(["inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", c.trim()]));
        assert!(lower.starts_with(&format!("{}:", init.display())), "{lower}");
        let own = d.data_root.join("containers").join(c.trim());
        assert!(own.join("upper").is_dir() && !own.join("init").exists());
    }
    assert_eq!(run_ok(d.docker().args(["exec", "keep", "sh", "-c", "test -f /.dockerenv && readlink /etc/mtab"])), "/proc/mounts\n");
    // docker restart keeps it, and its files (the volatile overlay mounts again).
    run_ok(d.docker().args(["exec", "gone", "sh", "-c", "echo kept > /x"]));
    run_ok(d.docker().args(["restart", "-t", "0", "gone"]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(run_ok(d.docker().args(["exec", "gone", "cat", "/x"])), "kept\n");
    assert!(mount_options(&rootfs(&gone)).unwrap().contains("volatile"));
    // Once it ends it is removed; its directory leaves at once, the trash empties.
    run_ok(d.docker().args(["stop", "-t", "0", "gone"]));
    wait_for("the --rm container's removal", || !d.docker().args(["inspect", "gone"]).output().unwrap().status.success());
    assert!(!d.data_root.join("containers").join(gone.trim()).exists());
    wait_for("the trash to empty", || std::fs::read_dir(&trash).unwrap().next().is_none());
    // A foreground `run --rm` returns with its directory gone.
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "busybox", "echo", "ok"])), "ok\n");
    let left: Vec<_> = std::fs::read_dir(d.data_root.join("containers")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from(keep.trim())]);
    // A --rm container that ends while the daemon is down is removed when it is back,
    // and what a crash left in the trash is deleted.
    let short = run_ok(d.docker().args(["run", "-d", "--rm", "busybox", "sh", "-c", "sleep 1"]));
    // (Only created, it goes too, as with dockerd.)
    run_ok(d.docker().args(["create", "--rm", "--name", "made", "busybox", "true"]));
    d.kill9();
    std::fs::create_dir_all(trash.join("leftover/sub")).unwrap();
    std::fs::write(trash.join("leftover/sub/f"), b"x").unwrap();
    std::thread::sleep(Duration::from_millis(1800));
    d.restart();
    wait_for("the --rm container that ended meanwhile to be removed", || {
        !d.docker().args(["inspect", short.trim()]).output().unwrap().status.success()
    });
    assert!(!d.data_root.join("containers").join(short.trim()).exists());
    wait_for("the created --rm container to be removed", || !d.docker().args(["inspect", "made"]).output().unwrap().status.success());
    wait_for("the trash to empty after the restart", || std::fs::read_dir(&trash).unwrap().next().is_none());
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}}", "keep"])).trim(), "running");
}
