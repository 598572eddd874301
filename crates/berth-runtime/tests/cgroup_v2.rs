//! The cgroup v2 path on the real kernel: this host's cgroup2 mount
//! (/sys/fs/cgroup/unified) has no controllers, so it proves membership, freeze, kill and
//! events; controller files are covered by the file-tree tests in the crate. Run as root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::cgroups::{Layout, Manager, v2::V2Manager};
use berth_runtime::{CreateOptions, Error, Status};
use common::*;
use serde_json::json;

const UNIFIED: &str = "/sys/fs/cgroup/unified";

fn unified_available() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup/unified ") && l.contains(" - cgroup2 "))
        || Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn mount_point() -> PathBuf {
    if Path::new(UNIFIED).join("cgroup.procs").exists() { PathBuf::from(UNIFIED) } else { PathBuf::from("/sys/fs/cgroup") }
}

struct Parent(PathBuf);
impl Drop for Parent {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn membership_freeze_kill_and_events_on_real_cgroup2() {
    berth_testutil::require_root();
    assert!(unified_available(), "no cgroup2 mount on this host");
    let mount = mount_point();
    let parent = unique("berth-test");
    let _p = Parent(mount.join(&parent));
    let m = V2Manager::new(mount.clone(), &format!("/{parent}/c"));
    m.create().unwrap();
    let dir = mount.join(&parent).join("c");
    assert!(dir.join("cgroup.procs").exists());
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id() as i32;
    m.add(pid).unwrap();
    assert_eq!(m.pids().unwrap(), vec![pid]);
    let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap();
    assert!(events.contains("populated 1"), "{events}");
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    assert!(std::fs::read_to_string(dir.join("cgroup.events")).unwrap().contains("frozen 1"));
    m.thaw().unwrap();
    assert!(!m.is_frozen().unwrap());
    assert!(m.kill_all().unwrap(), "cgroup.kill missing");
    let st = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    assert!(std::fs::read_to_string(dir.join("cgroup.events")).unwrap().contains("populated 0"));
    // A limit needs a controller this mount does not offer: named, not silently dropped.
    let r: oci_spec::runtime::LinuxResources = serde_json::from_value(json!({"memory": {"limit": 1 << 26}})).unwrap();
    let e = m.set(&r).unwrap_err().to_string();
    assert!(e.contains("memory"), "{e}");
    m.destroy().unwrap();
    assert!(!dir.exists());
}

#[test]
fn a_container_on_the_v2_path_pauses_stats_and_is_deleted() {
    let _s = serial();
    assert!(unified_available(), "no cgroup2 mount on this host");
    let mount = mount_point();
    let mut b = TestBundle::new(&["sh", "-c", "cat /proc/self/cgroup; sleep 60"]);
    b.rt = berth_runtime::Runtime::new(b.tmp.path().join("state")).with_cgroup_layout(Layout::V2 { mount: mount.clone() });
    b.write();
    let (r, w) = pipe();
    let w2 = w.try_clone().unwrap();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions { stdio: Some([devnull(), w, w2]), ..Default::default() }).unwrap();
    let dir = mount.join(b.cgroup_parent.trim_start_matches('/')).join(&b.id);
    // Its own cgroup namespace: the container sees itself at the root of the v2 hierarchy.
    let mut reader = std::io::BufReader::new(std::fs::File::from(r));
    let mut line = String::new();
    while !line.starts_with("0::") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0, "no v2 line in /proc/self/cgroup");
    }
    assert_eq!(line, "0::/\n");
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l.trim() == st.pid.to_string()), "{procs}");
    b.rt.pause(&b.id).unwrap();
    assert_eq!(b.rt.state(&b.id).unwrap().status, Status::Paused);
    b.rt.resume(&b.id).unwrap();
    assert_eq!(b.rt.state(&b.id).unwrap().status, Status::Running);
    let stats = b.rt.stats(&b.id).unwrap();
    assert!(stats.cpu.usage.total > 0, "{stats:?}");
    assert!(!b.rt.oom_killed(&b.id).unwrap());
    assert!(matches!(b.rt.delete(&b.id, false), Err(Error::WrongState { .. })));
    b.rt.delete(&b.id, true).unwrap();
    assert_eq!(wait(st.pid), 137);
    assert!(!dir.exists(), "v2 cgroup left behind");
    let _ = std::fs::remove_dir(mount.join(b.cgroup_parent.trim_start_matches('/')));
}

#[test]
fn device_rules_are_enforced_by_ebpf_on_v2() {
    let _s = serial();
    assert!(unified_available(), "no cgroup2 mount on this host");
    let mount = mount_point();
    let mut b = TestBundle::new(&[
        "sh",
        "-c",
        "mknod /tmp/mem c 1 1 && echo MADE; head -c 1 /tmp/mem >/dev/null && echo READ-MEM; head -c 3 /dev/zero | wc -c",
    ]);
    b.rt = berth_runtime::Runtime::new(b.tmp.path().join("state")).with_cgroup_layout(Layout::V2 { mount: mount.clone() });
    b.config["root"]["readonly"] = json!(false);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_MKNOD"));
    }
    let (code, out) = b.run();
    b.rt.delete(&b.id, true).unwrap();
    let _ = std::fs::remove_dir(mount.join(b.cgroup_parent.trim_start_matches('/')));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("MADE"), "{out}");
    assert!(!out.contains("READ-MEM"), "eBPF device filter let /dev/mem through: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.trim_end().ends_with('3'), "allowed /dev/zero unreadable: {out}");
}
