//! berth-runtime on the real kernel, through the library API: isolation, limits, the
//! lifecycle, exec, terminals, and that bad input leaves nothing behind. Run as root.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;

use berth_runtime::{CreateOptions, Error, ExecOptions, Status};
use common::*;
use serde_json::json;

#[test]
fn isolation_pid1_hostname_mounts_processes_masks() {
    let _s = serial();
    let b = TestBundle::new(&[
        "sh",
        "-c",
        "echo pid=$$; echo host=$(hostname); echo nproc=$(ls -d /proc/[0-9]* | wc -l); \
         echo work=$(ls /work 2>&1 | head -c 40); echo keys=$(cat /proc/keys | wc -c); \
         echo fw=$(ls /sys/firmware | wc -l); echo kcore=$(cat /proc/timer_list 2>&1 | wc -c)",
    ]);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("host=berth-test\n"), "{out}");
    // sh, the $(...) subshell and its pipeline at most: no host process is visible.
    let n: usize = out.split("nproc=").nth(1).unwrap().lines().next().unwrap().trim().parse().unwrap();
    assert!(n <= 5, "{out}");
    assert!(out.contains("No such file or directory"), "host /work visible: {out}");
    assert!(out.contains("keys=0\n"), "masked /proc/keys readable: {out}");
    assert!(out.contains("fw=0\n"), "{out}");
    assert!(out.contains("kcore=0\n"), "{out}");
}

#[test]
fn dropped_capabilities_are_gone() {
    let _s = serial();
    let mut b = TestBundle::new(&[
        "sh",
        "-c",
        "mknod /tmp/n c 1 3 && echo MKNOD-OK; mount -t tmpfs t /mnt && echo MOUNT-OK; grep CapEff /proc/self/status",
    ]);
    b.config["root"]["readonly"] = json!(false);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("MKNOD-OK"), "{out}");
    assert!(!out.contains("MOUNT-OK"), "{out}");
    // CAP_AUDIT_WRITE | CAP_KILL | CAP_NET_BIND_SERVICE
    assert!(out.contains("0000000020000420"), "{out}");
}

#[test]
fn seccomp_rule_blocks_its_syscall() {
    let _s = serial();
    let mut b = TestBundle::new(&["sh", "-c", "mkdir /tmp/blocked && echo MADE; echo rc=$?; touch /tmp/ok && echo TOUCHED"]);
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("MADE"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("TOUCHED"), "{out}");
}

#[test]
fn seccomp_argument_conditions() {
    let _s = serial();
    // kill(2) is refused only when its signal argument is SIGUSR1 (10).
    let mut b = TestBundle::new(&[
        "sh",
        "-c",
        "trap '' USR1 USR2; kill -USR2 $$ && echo USR2-SENT; kill -USR1 $$ || echo USR1-BLOCKED",
    ]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}]
    });
    let (_code, out) = b.run();
    assert!(out.contains("USR2-SENT"), "{out}");
    assert!(out.contains("USR1-BLOCKED"), "{out}");
}

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    let _s = serial();
    let mut b = TestBundle::new(&["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
    b.write();
    let opts = CreateOptions { stdio: Some([devnull(), devnull(), devnull()]), ..Default::default() };
    let st = b.rt.run(&b.id, &b.bundle, opts).unwrap();
    let limit = std::fs::read_to_string(b.cgroup_dir("memory").join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (32u64 << 20).to_string());
    let code = wait(st.pid);
    assert_eq!(code, 137, "dd should be OOM-killed");
    assert!(b.rt.oom_killed(&b.id).unwrap());
    b.rt.delete(&b.id, false).unwrap();
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let _s = serial();
    let mut b = TestBundle::new(&["sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo ALL-FORKED"]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 10});
    b.write();
    let (r, w) = pipe();
    let w2 = w.try_clone().unwrap();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions { stdio: Some([devnull(), w, w2]), ..Default::default() }).unwrap();
    let max = std::fs::read_to_string(b.cgroup_dir("pids").join("pids.max")).unwrap();
    let procs = b.rt.processes(&b.id).unwrap().len();
    // ash gives up at the first refused fork; its exit ends the pid namespace.
    let code = wait(st.pid);
    let out = read_all(r);
    assert_eq!(max.trim(), "10");
    assert!(procs <= 10, "{procs} processes");
    assert!(out.contains("can't fork"), "no fork was refused: {out}");
    assert!(!out.contains("ALL-FORKED"), "{out}");
    assert_ne!(code, 0);
}

#[test]
fn readonly_rootfs_refuses_writes() {
    let _s = serial();
    let b = TestBundle::new(&[
        "sh",
        "-c",
        "touch /newfile || echo REFUSED; echo 1 > /proc/sys/kernel/ns_last_pid || echo PROCSYS-RO",
    ]);
    let (_code, out) = b.run();
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("REFUSED"), "{out}");
    // readonlyPaths: /proc/sys is read-only inside even for root.
    assert!(out.contains("PROCSYS-RO"), "{out}");
}

#[test]
fn user_namespace_maps_root_to_unprivileged_uid() {
    let _s = serial();
    let mut b = TestBundle::new(&["sh", "-c", "id -u; cat /proc/self/uid_map; sleep 30"]);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    // devpts' gid=5 must be mapped; it is (5 -> 200005).
    b.write();
    let (r, w) = pipe();
    let w2 = w.try_clone().unwrap();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions { stdio: Some([devnull(), w, w2]), ..Default::default() }).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", st.pid)).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
    let mut reader = std::io::BufReader::new(std::fs::File::from(r));
    let mut out = String::new();
    for _ in 0..2 {
        std::io::BufRead::read_line(&mut reader, &mut out).unwrap();
    }
    b.rt.kill(&b.id, libc::SIGKILL, false).unwrap();
    wait(st.pid);
    assert!(uid_line.contains("200000"), "host sees {uid_line}");
    assert!(out.starts_with("0\n"), "{out}");
    assert!(out.contains("200000"), "{out}");
}

#[test]
fn joining_a_user_namespace_makes_the_new_namespaces_its_own() {
    let _s = serial();
    // The joiner's init is cloned by a helper that exits: it comes back to us, as to a shim.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // The holder: a new user namespace (and network namespace) that stays up.
    let mut a = TestBundle::new(&["sleep", "30"]);
    a.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    a.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    a.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    a.write();
    let sa = a.rt.run(&a.id, &a.bundle, CreateOptions { stdio: Some([devnull(), devnull(), devnull()]), ..Default::default() }).unwrap();
    // The joiner: its user and network namespaces are the holder's, the others its own
    // (proc, sysfs, devpts, mqueue mounted inside them), its cgroup the host's.
    let mut b = TestBundle::new(&["sh", "-c", "id -u; cat /proc/self/uid_map; echo pid=$$; ls /sys/class/net; echo x > /dev/null && echo DEV-OK; sleep 2"]);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "network");
    ns.push(json!({"type": "user", "path": format!("/proc/{}/ns/user", sa.pid)}));
    ns.push(json!({"type": "network", "path": format!("/proc/{}/ns/net", sa.pid)}));
    b.write();
    // And one that joins the holder's pid namespace too (a pod's PID=POD container).
    let mut c = TestBundle::new(&["sh", "-c", "echo pid=$$; sleep 2"]);
    let ns = c.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "network" && n["type"] != "pid");
    ns.push(json!({"type": "user", "path": format!("/proc/{}/ns/user", sa.pid)}));
    ns.push(json!({"type": "pid", "path": format!("/proc/{}/ns/pid", sa.pid)}));
    c.write();
    let (cr, cw) = pipe();
    let cw2 = cw.try_clone().unwrap();
    let sc = c.rt.run(&c.id, &c.bundle, CreateOptions { stdio: Some([devnull(), cw, cw2]), ..Default::default() }).unwrap();
    // Ours to reap (not the holder's, whose pid namespace it is in).
    let c_parent = std::fs::read_to_string(format!("/proc/{}/stat", sc.pid)).unwrap();
    let c_parent: i32 = c_parent[c_parent.rfind(')').unwrap() + 2..].split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(c_parent, std::process::id() as i32);
    assert_eq!(wait(sc.pid), 0);
    assert!(read_all(cr).starts_with("pid=2"));
    let (r, w) = pipe();
    let w2 = w.try_clone().unwrap();
    let sb = b.rt.run(&b.id, &b.bundle, CreateOptions { stdio: Some([devnull(), w, w2]), ..Default::default() }).unwrap();
    let host_uid = std::fs::read_to_string(format!("/proc/{}/status", sb.pid)).unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", sb.pid)).unwrap();
    let same_userns = std::fs::read_link(format!("/proc/{}/ns/user", sb.pid)).unwrap() == std::fs::read_link(format!("/proc/{}/ns/user", sa.pid)).unwrap();
    let code = wait(sb.pid);
    let out = read_all(r);
    a.rt.kill(&a.id, libc::SIGKILL, false).unwrap();
    wait(sa.pid);
    assert_eq!(code, 0, "{out}");
    assert!(same_userns);
    assert!(host_uid.lines().any(|l| l.starts_with("Uid:") && l.contains("300000")), "{host_uid}");
    assert!(cgroup.lines().any(|l| l.contains(":pids:") && l.ends_with(&b.id)), "not in its cgroup: {cgroup}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    assert!(lines[1].split_whitespace().collect::<Vec<_>>() == ["0", "300000", "65536"], "{out}");
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("lo"), "{out}");
    assert!(out.contains("DEV-OK"), "{out}");
}

/// Two cases of the OCI runtime-tools validation suite that runc 1.1 fails: a profile
/// that refuses getcwd (the working-directory check runs before the filter is loaded),
/// and `rootfsPropagation: unbindable` (the rootfs cannot be bound from an unbindable
/// "/": the new root is made unbindable once entered).
#[test]
fn a_profile_refusing_getcwd_and_an_unbindable_root_still_start() {
    let _s = serial();
    let mut b = TestBundle::new(&["sh", "-c", "echo ran"]);
    // Without no_new_privileges the filter is loaded before the identity change.
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ran\n"), "{out}");

    for (mode, field) in [("unbindable", "unbindable"), ("private", ""), ("shared", "shared:")] {
        let mut b = TestBundle::new(&["awk", "$5 == \"/\"", "/proc/self/mountinfo"]);
        b.config["linux"]["rootfsPropagation"] = json!(mode);
        let (code, out) = b.run();
        assert!(code == 0 && out.lines().count() == 1, "{mode}: {out}");
        // The optional fields sit between the mount options and the " - " separator.
        let optional = out.split(" - ").next().unwrap_or("").split_whitespace().skip(6).collect::<Vec<_>>().join(" ");
        if field.is_empty() {
            assert!(optional.is_empty(), "{mode}: {out}");
        } else {
            assert!(optional.contains(field), "{mode}: {out}");
        }
    }
}

#[test]
fn no_pivot_moves_the_root_instead() {
    let _s = serial();
    let b = TestBundle::new(&["sh", "-c", "ls /bin/busybox && cat /proc/self/mountinfo | wc -l"]);
    b.write();
    let (r, w) = pipe();
    let w2 = w.try_clone().unwrap();
    let opts = CreateOptions { stdio: Some([devnull(), w, w2]), no_pivot: true, ..Default::default() };
    let st = b.rt.run(&b.id, &b.bundle, opts).unwrap();
    let out = read_all(r);
    assert_eq!(wait(st.pid), 0, "{out}");
    assert!(out.starts_with("/bin/busybox\n"), "{out}");
}

#[test]
fn exit_codes_and_signals_propagate() {
    let _s = serial();
    let b = TestBundle::new(&["sh", "-c", "exit 42"]);
    assert_eq!(b.run().0, 42);
    let b = TestBundle::new(&["sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.05; done"]);
    b.write();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions { stdio: Some([devnull(), devnull(), devnull()]), ..Default::default() }).unwrap();
    // PID 1 ignores SIGTERM until its trap is installed: repeat until it takes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let code = loop {
        let _ = b.rt.kill(&b.id, libc::SIGTERM, false);
        std::thread::sleep(std::time::Duration::from_millis(50));
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(st.pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG)).unwrap() {
            nix::sys::wait::WaitStatus::Exited(_, c) => break c,
            _ if std::time::Instant::now() > deadline => {
                let _ = b.rt.kill(&b.id, libc::SIGKILL, false);
                panic!("SIGTERM never reached the trap");
            }
            _ => {}
        }
    };
    assert_eq!(code, 7);
    let b = TestBundle::new(&["sleep", "30"]);
    b.write();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions::default()).unwrap();
    b.rt.kill(&b.id, libc::SIGKILL, false).unwrap();
    assert_eq!(wait(st.pid), 137);
    assert_eq!(b.rt.state(&b.id).unwrap().status, Status::Stopped);
    assert!(matches!(b.rt.kill(&b.id, libc::SIGKILL, false), Err(Error::WrongState { .. })));
}

#[test]
fn lifecycle_create_start_pause_resume_kill_delete_leaves_nothing() {
    let _s = serial();
    let b = TestBundle::new(&["sleep", "60"]);
    b.write();
    let pid_file = b.tmp.path().join("pid");
    let st = b
        .rt
        .create(&b.id, &b.bundle, CreateOptions { pid_file: Some(pid_file.clone()), ..Default::default() })
        .unwrap();
    assert_eq!(st.status, Status::Created);
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), st.pid.to_string());
    // The init waits: it has not exec'd sleep yet.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", st.pid)).unwrap();
    assert_ne!(comm.trim(), "sleep");
    assert_eq!(b.rt.list().unwrap().len(), 1);
    b.rt.start(&b.id).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(b.rt.state(&b.id).unwrap().status, Status::Running);
    assert!(matches!(b.rt.start(&b.id), Err(Error::WrongState { .. })));
    assert!(b.rt.processes(&b.id).unwrap().contains(&st.pid));
    let stats = b.rt.stats(&b.id).unwrap();
    assert!(stats.memory.usage.usage > 0);
    assert_eq!(stats.pids.current, 1);
    b.rt.pause(&b.id).unwrap();
    assert_eq!(b.rt.state(&b.id).unwrap().status, Status::Paused);
    assert!(matches!(b.rt.delete(&b.id, false), Err(Error::WrongState { .. })));
    b.rt.resume(&b.id).unwrap();
    assert_eq!(b.rt.state(&b.id).unwrap().status, Status::Running);
    let r: oci_spec::runtime::LinuxResources = serde_json::from_value(json!({"pids": {"limit": 33}})).unwrap();
    b.rt.update(&b.id, &r).unwrap();
    assert_eq!(std::fs::read_to_string(b.cgroup_dir("pids").join("pids.max")).unwrap().trim(), "33");
    b.rt.kill(&b.id, libc::SIGKILL, true).unwrap();
    assert_eq!(wait(st.pid), 137);
    b.rt.delete(&b.id, false).unwrap();
    for c in ["memory", "pids", "freezer", "cpu", "devices"] {
        assert!(!b.cgroup_dir(c).exists(), "{c} cgroup left behind");
    }
    assert!(!b.tmp.path().join("state").join(&b.id).exists());
    assert!(!alive(st.pid));
    assert!(matches!(b.rt.state(&b.id), Err(Error::NotFound(_))));
    // Every mount lived in the container's mount namespace: none is left on the host.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(b.bundle.to_str().unwrap()), "a mount of the bundle leaked to the host");
}

#[test]
fn delete_force_kills_a_running_container() {
    let _s = serial();
    let b = TestBundle::new(&["sh", "-c", "sleep 60 & sleep 60"]);
    b.write();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions::default()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let pids = b.rt.processes(&b.id).unwrap();
    assert!(pids.len() >= 2, "{pids:?}");
    b.rt.delete(&b.id, true).unwrap();
    wait(st.pid);
    for p in pids {
        assert!(!alive(p), "process {p} survived delete");
    }
    assert!(!b.cgroup_dir("pids").exists());
}

#[test]
fn exec_joins_namespaces_cgroup_and_keeps_restrictions() {
    let _s = serial();
    let b = TestBundle::new(&["sleep", "60"]);
    b.write();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions::default()).unwrap();
    let mut p = b.rt.spec(&b.id).unwrap().process().clone().unwrap();
    p.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "echo host=$(hostname); cat /proc/1/comm; grep CapEff /proc/self/status; mknod /tmp/x c 1 3 || echo NOMKNOD; read x; exit 5".into(),
    ]));
    let (r, w) = pipe();
    let w2 = w.try_clone().unwrap();
    // It waits on stdin, so it is still there (an exited process leaves cgroup.procs).
    let (stdin_r, stdin_w) = pipe();
    let pid = b.rt.exec(&b.id, &p, ExecOptions { stdio: Some([stdin_r, w, w2]), ..Default::default() }).unwrap();
    let in_cgroup = std::fs::read_to_string(b.cgroup_dir("pids").join("cgroup.procs")).unwrap();
    drop(stdin_w);
    let out = read_all(r);
    assert_eq!(wait(pid), 5, "{out}");
    assert!(out.contains("host=berth-test"), "{out}");
    assert!(out.contains("sleep"), "{out}");
    assert!(out.contains("0000000020000420"), "{out}");
    assert!(out.contains("NOMKNOD"), "{out}");
    assert!(in_cgroup.lines().any(|l| l.trim() == pid.to_string()), "exec'd process not in the cgroup");
    // A command that does not exist is an error of exec itself.
    p.set_args(Some(vec!["/no/such/binary".into()]));
    let e = b.rt.exec(&b.id, &p, ExecOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no such"), "{e}");
    b.rt.kill(&b.id, libc::SIGKILL, false).unwrap();
    wait(st.pid);
}

fn console_listener(dir: &Path) -> (std::path::PathBuf, UnixListener) {
    let path = dir.join("console.sock");
    let l = UnixListener::bind(&path).unwrap();
    (path, l)
}

#[test]
fn terminal_through_console_socket_for_init_and_exec() {
    let _s = serial();
    let mut b = TestBundle::new(&["sh", "-c", "tty; echo hello-tty; sleep 60"]);
    b.config["process"]["terminal"] = json!(true);
    b.write();
    let (sock, listener) = console_listener(b.tmp.path());
    let st = b
        .rt
        .run(&b.id, &b.bundle, CreateOptions { console_socket: Some(sock.clone()), ..Default::default() })
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let master = berth_runtime::ipc::recv_fd(conn.as_raw_fd()).unwrap();
    let mut out = String::new();
    let mut buf = [0u8; 256];
    while !out.contains("hello-tty") {
        let n = nix::unistd::read(&master, &mut buf).unwrap();
        assert!(n > 0);
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(out.contains("/dev/pts/0") || out.contains("/dev/console"), "{out}");
    // exec with its own terminal
    let mut p = b.rt.spec(&b.id).unwrap().process().clone().unwrap();
    p.set_args(Some(vec!["sh".into(), "-c".into(), "tty; echo exec-tty".into()]));
    let epid = b.rt.exec(&b.id, &p, ExecOptions { console_socket: Some(sock), ..Default::default() }).unwrap();
    let (conn, _) = listener.accept().unwrap();
    let m2 = berth_runtime::ipc::recv_fd(conn.as_raw_fd()).unwrap();
    let mut out = String::new();
    while !out.contains("exec-tty") {
        match nix::unistd::read(&m2, &mut buf) {
            Ok(n) if n > 0 => out.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    assert!(out.contains("/dev/pts/1"), "{out}");
    assert_eq!(wait(epid), 0);
    b.rt.kill(&b.id, libc::SIGKILL, false).unwrap();
    wait(st.pid);
}

#[test]
fn joins_another_containers_network_and_uts_namespaces_by_path() {
    let _s = serial();
    let a = TestBundle::new(&["sleep", "60"]);
    a.write();
    let sa = a.rt.run(&a.id, &a.bundle, CreateOptions::default()).unwrap();
    let ns_path = format!("/proc/{}/ns/net", sa.pid);
    let uts_path = format!("/proc/{}/ns/uts", sa.pid);
    // The uts namespace too: the spec's hostname is then set in the joined one (as runc).
    let mut b = TestBundle::new(&["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname"]);
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(ns_path);
        }
        if ns["type"] == "uts" {
            ns["path"] = json!(uts_path);
        }
    }
    b.config["hostname"] = json!("joined-uts");
    let (code, out) = b.run();
    let want = [std::fs::read_link(&ns_path).unwrap(), std::fs::read_link(&uts_path).unwrap()];
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap();
    a.rt.kill(&a.id, libc::SIGKILL, false).unwrap();
    wait(sa.pid);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, [&*want[0].to_string_lossy(), &*want[1].to_string_lossy(), "joined-uts"], "{out}");
    assert_ne!(want[1], host_uts);
}

#[test]
fn sysctl_domainname_env_cwd_user_umask_rlimits() {
    let _s = serial();
    let mut b = TestBundle::new(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward; cat /proc/sys/kernel/domainname; echo $FOO; pwd; id; umask; ulimit -Hn; ulimit -Sn",
    ]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.config["domainname"] = json!("example.test");
    b.config["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FOO=bar"]);
    b.config["process"]["cwd"] = json!("/home/user/made/by/runtime");
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [65534], "umask": 63});
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 4096, "hard": 1u64 << 40}]);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], "example.test");
    assert_eq!(lines[2], "bar");
    assert_eq!(lines[3], "/home/user/made/by/runtime");
    assert!(lines[4].starts_with("uid=1000(user) gid=1000(user) groups=65534(nogroup)"), "{out}");
    assert_eq!(lines[5], "0077");
    // The host's hard limit could not be raised: clamped, never above it.
    let host_hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap().1;
    assert!(lines[6].parse::<u64>().unwrap() <= host_hard.max(4096), "{out}");
    assert_eq!(lines[7], "4096");
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let _s = serial();
    let check_clean = |b: &TestBundle| {
        assert!(!b.tmp.path().join("state").join(&b.id).exists(), "state left behind");
        for c in ["memory", "pids", "cpu", "cpuset", "freezer"] {
            assert!(!b.cgroup_dir(c).exists(), "{c} cgroup left behind");
        }
    };
    // malformed config.json
    let b = TestBundle::new(&["true"]);
    std::fs::write(b.bundle.join("config.json"), "{\"ociVersion\": ").unwrap();
    let e = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap_err();
    assert!(matches!(e, Error::LoadSpec { .. }), "{e}");
    check_clean(&b);
    // missing rootfs
    let mut b = TestBundle::new(&["true"]);
    b.config["root"]["path"] = json!("nope");
    b.write();
    let e = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap_err();
    assert!(e.to_string().contains("rootfs"), "{e}");
    check_clean(&b);
    // unknown namespace type
    let mut b = TestBundle::new(&["true"]);
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "bogus"}));
    b.write();
    let e = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap_err();
    assert!(e.to_string().contains("bogus") || e.to_string().contains("variant"), "{e}");
    check_clean(&b);
    // invalid cgroup value caught by validation
    let mut b = TestBundle::new(&["true"]);
    b.config["linux"]["resources"]["cpu"] = json!({"shares": 1});
    b.write();
    let e = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap_err();
    assert!(e.to_string().contains("cpu.shares"), "{e}");
    check_clean(&b);
    // invalid cgroup value the kernel refuses
    let mut b = TestBundle::new(&["true"]);
    b.config["linux"]["resources"]["cpu"] = json!({"cpus": "0-4095"});
    b.write();
    let e = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap_err();
    assert!(e.to_string().contains("cpuset.cpus"), "{e}");
    check_clean(&b);
    // a command that does not exist fails at create, not silently after start
    let b = TestBundle::new(&["/bin/does-not-exist"]);
    b.write();
    let e = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap_err();
    assert!(e.to_string().contains("does-not-exist"), "{e}");
    check_clean(&b);
    // an id already in use
    let b = TestBundle::new(&["sleep", "60"]);
    b.write();
    let st = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap();
    let e = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
    assert_eq!(b.rt.state(&b.id).unwrap().status, Status::Created, "the first container was disturbed");
    b.rt.delete(&b.id, false).unwrap();
    wait(st.pid);
    check_clean(&b);
    // an invalid id
    assert!(matches!(b.rt.create("../x", &b.bundle, CreateOptions::default()), Err(Error::InvalidId(_))));
}

#[test]
fn hooks_get_the_state_and_a_failing_hook_undoes_create() {
    let _s = serial();
    let mut b = TestBundle::new(&["sleep", "60"]);
    let out = b.tmp.path().join("hooks");
    std::fs::create_dir(&out).unwrap();
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}/{name}", out.display())], "timeout": 5});
    b.config["hooks"] = json!({
        "createRuntime": [hook("create")],
        "poststart": [hook("poststart")],
        // A failing poststop hook is a warning: the ones after it still run.
        "poststop": [{"path": "/bin/false"}, hook("poststop")]
    });
    b.write();
    let st = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap();
    let created: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("create")).unwrap()).unwrap();
    assert_eq!(created["pid"], st.pid);
    assert_eq!(created["id"], b.id.as_str());
    assert_eq!(created["status"], "creating");
    assert!(!out.join("poststart").exists());
    b.rt.start(&b.id).unwrap();
    let started: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("poststart")).unwrap()).unwrap();
    assert_eq!(started["status"], "running");
    b.rt.delete(&b.id, true).unwrap();
    wait(st.pid);
    let stopped: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("poststop")).unwrap()).unwrap();
    assert_eq!(stopped["status"], "stopped");

    let mut b = TestBundle::new(&["sleep", "60"]);
    b.config["hooks"] = json!({"prestart": [{"path": "/bin/false"}]});
    b.write();
    let e = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap_err();
    assert!(e.to_string().contains("prestart hook /bin/false"), "{e}");
    assert!(!b.tmp.path().join("state").join(&b.id).exists());
    assert!(!b.cgroup_dir("pids").exists());
    b.config["hooks"] = json!({"createContainer": [{"path": "/bin/true"}]});
    b.write();
    assert!(matches!(b.rt.create(&b.id, &b.bundle, CreateOptions::default()), Err(Error::Unsupported(_))));
}

#[test]
fn bind_mounts_honour_ro_and_rbind() {
    let _s = serial();
    let mut b = TestBundle::new(&[
        "sh",
        "-c",
        "cat /ro/hello; echo x > /ro/new || echo RO-REFUSED; echo from-container > /rw/out; ls /rec/sub; grep ' /ro ' /proc/mounts",
    ]);
    let host = b.tmp.path().join("host");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    std::fs::write(host.join("hello"), "hi\n").unwrap();
    let sub = b.tmp.path().join("subsrc");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("inner"), "").unwrap();
    // A mount below the source: rbind carries it along, bind would not.
    nix::mount::mount(Some(&sub), &host.join("sub"), None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _u = Unmount(host.join("sub"));
    let h = host.to_str().unwrap();
    b.config["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/ro", "type": "bind", "source": h, "options": ["bind", "ro", "nosuid", "nodev", "noexec", "rprivate"]}),
        json!({"destination": "/rw", "type": "bind", "source": h, "options": ["bind"]}),
        json!({"destination": "/rec", "source": h, "options": ["rbind", "ro"]}),
    ]);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("hi\n"), "{out}");
    assert!(out.contains("RO-REFUSED"), "{out}");
    assert!(out.contains("inner"), "rbind lost the submount: {out}");
    let ro_line = out.lines().find(|l| l.contains(" /ro ")).unwrap();
    for f in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(ro_line.split(' ').nth(3).unwrap().split(',').any(|o| o == f), "{ro_line}");
    }
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "from-container\n");
    assert!(!host.join("new").exists());
}

#[test]
fn cgroup_v1_values_are_written() {
    let _s = serial();
    let mut b = TestBundle::new(&["sleep", "60"]);
    b.config["linux"]["resources"] = json!({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 64},
        "devices": [{"allow": false, "access": "rwm"}]
    });
    b.write();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions::default()).unwrap();
    let rd = |c: &str, f: &str| std::fs::read_to_string(b.cgroup_dir(c).join(f)).unwrap().trim().to_string();
    assert_eq!(rd("memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
    assert_eq!(rd("memory", "memory.soft_limit_in_bytes"), (32u64 << 20).to_string());
    assert_eq!(rd("memory", "memory.memsw.limit_in_bytes"), (96u64 << 20).to_string());
    assert_eq!(rd("cpu", "cpu.shares"), "512");
    assert_eq!(rd("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(rd("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(rd("cpuset", "cpuset.cpus"), "0");
    assert_eq!(rd("pids", "pids.max"), "64");
    assert!(rd("devices", "devices.list").contains("c 1:3 rwm"));
    assert!(!rd("devices", "devices.list").contains("a *:* rwm"));
    // A blkio weight this host's scheduler cannot take is refused by name.
    let r: oci_spec::runtime::LinuxResources = serde_json::from_value(json!({"blockIO": {"weight": 500}})).unwrap();
    match b.rt.update(&b.id, &r) {
        Ok(()) => assert!(b.cgroup_dir("blkio").join("blkio.weight").exists() || b.cgroup_dir("blkio").join("blkio.bfq.weight").exists()),
        Err(e) => assert!(e.to_string().contains("blkio weight"), "{e}"),
    }
    b.rt.kill(&b.id, libc::SIGKILL, false).unwrap();
    wait(st.pid);
}

#[test]
fn oom_score_adj_is_set_or_refused_by_name() {
    let _s = serial();
    let mut b = TestBundle::new(&["cat", "/proc/self/oom_score_adj"]);
    b.config["process"]["oomScoreAdj"] = json!(500);
    let (code, out) = b.run();
    assert_eq!((code, out.trim()), (0, "500"));
    let mut b = TestBundle::new(&["true"]);
    b.config["process"]["oomScoreAdj"] = json!(-500);
    b.write();
    let can = caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_RESOURCE).unwrap();
    match b.rt.run(&b.id, &b.bundle, CreateOptions::default()) {
        Ok(st) => {
            assert!(can, "lowering oom_score_adj worked without CAP_SYS_RESOURCE");
            wait(st.pid);
        }
        Err(e) => {
            assert!(!can, "{e}");
            assert!(e.to_string().contains("CAP_SYS_RESOURCE"), "{e}");
            assert!(!b.cgroup_dir("pids").exists());
        }
    }
}

/// A container with CAP_MKNOD can make a node for /dev/mem, but the device cgroup must
/// still refuse to open it (cgroup v1 devices controller here; the v2 eBPF filter in
/// cgroup_v2.rs).
pub fn device_rules_spec(b: &mut TestBundle) {
    b.config["root"]["readonly"] = json!(false);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_MKNOD"));
    }
}

#[test]
fn device_cgroup_refuses_unlisted_devices() {
    let _s = serial();
    let mut b = TestBundle::new(&[
        "sh",
        "-c",
        "mknod /tmp/mem c 1 1 && echo MADE; head -c 1 /tmp/mem >/dev/null && echo READ-MEM; head -c 3 /dev/zero | wc -c",
    ]);
    device_rules_spec(&mut b);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("MADE"), "{out}");
    assert!(!out.contains("READ-MEM"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.trim_end().ends_with('3'), "allowed /dev/zero unreadable: {out}");
}

#[test]
fn personality_io_priority_and_scheduler() {
    let _s = serial();
    let mut b = TestBundle::new(&["sh", "-c", "uname -m; ionice -p $$; cut -d' ' -f19 /proc/self/stat; grep '^policy' /proc/self/sched"]);
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("i686"), "{out}");
    assert!(lines.next().unwrap_or("").contains("idle"), "{out}");
    assert_eq!(lines.next(), Some("7"), "{out}");
    assert!(lines.next().unwrap_or("").trim_end().ends_with('3'), "not SCHED_BATCH: {out}");
}

#[test]
fn each_container_gets_its_own_session_keyring() {
    let _s = serial();
    let b = TestBundle::new(&["sleep", "60"]);
    b.write();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions::default()).unwrap();
    let keys = std::fs::read_to_string("/proc/keys").unwrap();
    b.rt.kill(&b.id, libc::SIGKILL, false).unwrap();
    wait(st.pid);
    assert!(keys.contains(&format!("_ses.{}", b.id)), "no session keyring for the container:\n{keys}");

    let b = TestBundle::new(&["sleep", "60"]);
    b.write();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions { no_new_keyring: true, ..Default::default() }).unwrap();
    let keys = std::fs::read_to_string("/proc/keys").unwrap();
    b.rt.kill(&b.id, libc::SIGKILL, false).unwrap();
    wait(st.pid);
    assert!(!keys.contains(&format!("_ses.{}", b.id)), "{keys}");
}

#[test]
fn a_cached_seccomp_program_is_enforced_like_a_fresh_one() {
    let _s = serial();
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let mut first = TestBundle::new(&["sh", "-c", "mkdir /tmp/a && echo MADE; touch /tmp/b && echo TOUCHED"]);
    first.config["root"]["readonly"] = json!(false);
    first.config["linux"]["seccomp"] = profile.clone();
    let (_, out) = first.run();
    assert!(!out.contains("MADE") && out.contains("TOUCHED"), "{out}");
    let cache = first.tmp.path().join("state/.seccomp");
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "the program was not cached");
    // A second container of the same runtime root loads the cached program, and so does exec.
    let mut second = TestBundle::new(&["sh", "-c", "mkdir /tmp/a && echo MADE; touch /tmp/b && echo TOUCHED; sleep 30"]);
    second.rt = berth_runtime::Runtime::new(first.tmp.path().join("state"));
    second.config["root"]["readonly"] = json!(false);
    second.config["linux"]["seccomp"] = profile;
    second.write();
    let (r, w) = pipe();
    let w2 = w.try_clone().unwrap();
    let st = second.rt.run(&second.id, &second.bundle, CreateOptions { stdio: Some([devnull(), w, w2]), ..Default::default() }).unwrap();
    let mut p = second.rt.spec(&second.id).unwrap().process().clone().unwrap();
    p.set_args(Some(vec!["mkdir".into(), "/tmp/c".into()]));
    let epid = second.rt.exec(&second.id, &p, ExecOptions { stdio: Some([devnull(), devnull(), devnull()]), ..Default::default() }).unwrap();
    assert_eq!(wait(epid), 1, "mkdir in exec was not refused");
    // The container's own commands run before it is killed (its output is read to
    // the end only after the kill, so wait for the mark its script leaves).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !second.bundle.join("rootfs/tmp/b").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    second.rt.kill(&second.id, libc::SIGKILL, false).unwrap();
    wait(st.pid);
    let out = read_all(r);
    assert!(!out.contains("MADE") && out.contains("TOUCHED"), "{out}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
}

#[test]
fn the_daemons_default_profile_allows_the_ordinary_and_blocks_the_dangerous() {
    let _s = serial();
    // The seccomp profile and capabilities berth's daemon writes for `docker run busybox`.
    let daemon: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/runtime/daemon-config.json")).unwrap(),
    )
    .unwrap();
    let mut b = TestBundle::new(&[
        "sh",
        "-c",
        "mkdir /tmp/d && echo MKDIR-OK; (sleep 0; echo FORK-OK); linux32 true && echo PERSONALITY-OK; \
         unshare -U true 2>/dev/null || echo UNSHARE-BLOCKED; unshare -n true 2>/dev/null || echo NETNS-BLOCKED; \
         nsenter -t 1 -m true 2>/dev/null || echo SETNS-BLOCKED",
    ]);
    b.config["root"]["readonly"] = json!(false);
    b.config["process"]["capabilities"] = daemon["process"]["capabilities"].clone();
    b.config["linux"]["seccomp"] = daemon["linux"]["seccomp"].clone();
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    for want in ["MKDIR-OK", "FORK-OK", "PERSONALITY-OK", "UNSHARE-BLOCKED", "NETNS-BLOCKED", "SETNS-BLOCKED"] {
        assert!(out.contains(want), "{want} missing: {out}");
    }
}
