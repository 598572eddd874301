//! `io.berth.init` (docker run --init) on the real kernel: PID 1 is berth's minimal init,
//! the command runs below it under the same restrictions, signals are forwarded, orphans
//! reaped, and the command's exit status becomes the container's. Run as root.

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

use berth_runtime::{CreateOptions, Error, ExecOptions};
use common::*;
use serde_json::json;

fn with_init(args: &[&str]) -> TestBundle {
    let mut b = TestBundle::new(args);
    b.config["annotations"] = json!({"io.berth.init": "true"});
    b
}

/// Starts the container with stdout+stderr on a pipe; returns the init's pid and a line
/// reader on the output.
fn start(b: &TestBundle) -> (i32, BufReader<std::fs::File>) {
    b.write();
    let (r, w) = pipe();
    let w2 = w.try_clone().unwrap();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions { stdio: Some([devnull(), w, w2]), ..Default::default() }).unwrap();
    (st.pid, BufReader::new(std::fs::File::from(r)))
}

fn read_until(r: &mut BufReader<std::fs::File>, want: &str) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            panic!("output ended before {want:?}: {all}");
        }
        all.push_str(&line);
        if line.trim_end() == want {
            return all;
        }
    }
}

#[test]
fn ps_shows_the_init_as_pid_1_and_the_command_below_it() {
    let _s = serial();
    let b = with_init(&["sh", "-c", "echo self=$$ parent=$PPID; ps -o pid,ppid,comm,args"]);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    let me: i32 = out.split("self=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(me >= 2, "the command is PID {me}: {out}");
    assert!(out.contains("parent=1\n"), "{out}");
    let init_line = out.lines().find(|l| l.split_whitespace().next() == Some("1")).unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = init_line.split_whitespace().collect();
    assert_eq!(cols[2], "berth-init", "{out}");
    assert_eq!(cols[3..6], ["berth-init", "--", "sh"], "{out}");
    let sh_line = out.lines().find(|l| l.split_whitespace().next() == Some(&me.to_string())).unwrap();
    assert_eq!(sh_line.split_whitespace().nth(1), Some("1"), "{out}");
}

#[test]
fn an_orphaned_grandchild_is_reaped() {
    let _s = serial();
    // The subshell starts a background sleep and exits: the sleep is reparented to PID 1.
    // Once it exits, only PID 1 can reap it; a zombie would stay in /proc with state Z.
    let b = with_init(&[
        "sh",
        "-c",
        "(sleep 0.3 & echo $! > /dev/shm/orphan); sleep 0.1; o=$(cat /dev/shm/orphan); \
         echo parent=$(grep PPid /proc/$o/status | cut -f2); sleep 1.5; \
         if [ -e /proc/$o ]; then echo left=$(grep State /proc/$o/status); else echo reaped; fi",
    ]);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("parent=1\n"), "the orphan was not reparented to the init: {out}");
    assert!(out.contains("reaped\n"), "{out}");
}

#[test]
fn sigterm_reaches_the_command_and_its_exit_code_propagates() {
    let _s = serial();
    let b = with_init(&["sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.05; done"]);
    let (pid, mut out) = start(&b);
    read_until(&mut out, "ready");
    // Once: PID 1 forwards it; no retry loop as for a command that is PID 1 itself.
    b.rt.kill(&b.id, libc::SIGTERM, false).unwrap();
    let code = wait(pid);
    let rest = read_until(&mut out, "got-term");
    assert_eq!(code, 7, "{rest}");
}

#[test]
fn exit_codes_and_signals_of_the_command_become_the_containers() {
    let _s = serial();
    assert_eq!(with_init(&["sh", "-c", "exit 42"]).run().0, 42);
    // Killed by a signal: 128+N, as docker-init reports it.
    assert_eq!(with_init(&["sh", "-c", "kill -USR1 $$"]).run().0, 128 + libc::SIGUSR1);
    // SIGKILL of the container kills the init and with it the whole pid namespace.
    let b = with_init(&["sh", "-c", "sleep 60 & echo ready; sleep 60"]);
    let (pid, mut out) = start(&b);
    read_until(&mut out, "ready");
    let procs = b.rt.processes(&b.id).unwrap();
    assert!(procs.len() >= 3, "init, sh and the sleeps: {procs:?}");
    b.rt.kill(&b.id, libc::SIGKILL, false).unwrap();
    assert_eq!(wait(pid), 137);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while procs.iter().any(|p| alive(*p)) {
        assert!(std::time::Instant::now() < deadline, "processes survived their init");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn init_and_command_run_under_the_same_restrictions() {
    let _s = serial();
    let mut b = with_init(&[
        "sh",
        "-c",
        "for f in /proc/1 /proc/self; do grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' $f/status; \
         grep 'Max open files' $f/limits; echo --; done; mkdir /tmp/x 2>&1",
    ]);
    b.config["root"]["readonly"] = json!(false);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [65534]});
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 500, "hard": 600}]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let (code, out) = b.run();
    assert_ne!(code, 0, "mkdir should have been refused: {out}");
    let blocks: Vec<&str> = out.split("--\n").collect();
    assert!(blocks.len() >= 3, "{out}");
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(norm(blocks[0]), norm(blocks[1]), "PID 1 and the command differ:\n{out}");
    let init = norm(blocks[0]);
    for want in ["Uid: 1000 1000 1000 1000", "Groups: 65534", "NoNewPrivs: 1", "Seccomp: 2", "Max open files 500 600 files"] {
        assert!(init.contains(want), "{want:?} missing: {out}");
    }
    assert!(blocks[2].contains("Operation not permitted"), "{out}");
}

#[test]
fn a_terminal_belongs_to_the_command_and_ctrl_c_reaches_it() {
    let _s = serial();
    let mut b = with_init(&[
        "sh",
        "-c",
        "trap 'echo got-int; exit 3' INT; echo pgrp-tpgid=$(cut -d' ' -f5,8 /proc/self/stat); echo ready; \
         while true; do sleep 0.05; done",
    ]);
    b.config["process"]["terminal"] = json!(true);
    b.write();
    let sock = b.tmp.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions { console_socket: Some(sock), ..Default::default() }).unwrap();
    let (conn, _) = listener.accept().unwrap();
    let master = berth_runtime::ipc::recv_fd(conn.as_raw_fd()).unwrap();
    let mut out = String::new();
    let mut buf = [0u8; 512];
    while !out.contains("ready") {
        let n = nix::unistd::read(&master, &mut buf).unwrap();
        assert!(n > 0, "{out}");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // The command's process group is the terminal's foreground group.
    let ids: Vec<&str> = out.split("pgrp-tpgid=").nth(1).unwrap().lines().next().unwrap().split_whitespace().collect();
    assert_eq!(ids.len(), 2, "{out}");
    assert_eq!(ids[0], ids[1], "the command is not in the foreground: {out}");
    assert_ne!(ids[0], "1", "{out}");
    nix::unistd::write(&master, b"\x03").unwrap();
    assert_eq!(wait(st.pid), 3, "{out}");
    while let Ok(n) = nix::unistd::read(&master, &mut buf) {
        if n == 0 {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(out.contains("got-int"), "{out}");
}

#[test]
fn exec_is_not_run_under_the_init() {
    let _s = serial();
    let b = with_init(&["sleep", "60"]);
    b.write();
    let st = b.rt.run(&b.id, &b.bundle, CreateOptions::default()).unwrap();
    let mut p = b.rt.spec(&b.id).unwrap().process().clone().unwrap();
    p.set_args(Some(vec!["sh".into(), "-c".into(), "echo parent=$PPID; cat /proc/1/comm; exit 5".into()]));
    let (r, w) = pipe();
    let w2 = w.try_clone().unwrap();
    let pid = b.rt.exec(&b.id, &p, ExecOptions { stdio: Some([devnull(), w, w2]), ..Default::default() }).unwrap();
    let out = read_all(r);
    assert_eq!(wait(pid), 5, "{out}");
    // The exec'd process is the runtime caller's child (outside the pid namespace: ppid 0).
    assert_eq!(out, "parent=0\nberth-init\n");
    b.rt.kill(&b.id, libc::SIGKILL, false).unwrap();
    wait(st.pid);
}

#[test]
fn a_bad_annotation_value_is_refused_and_leaves_nothing() {
    let _s = serial();
    let mut b = TestBundle::new(&["true"]);
    b.config["annotations"] = json!({"io.berth.init": "yes"});
    b.write();
    let e = b.rt.create(&b.id, &b.bundle, CreateOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidSpec(_)), "{e}");
    assert!(e.to_string().contains("io.berth.init"), "{e}");
    assert!(!b.tmp.path().join("state").join(&b.id).exists());
    assert!(!b.cgroup_dir("pids").exists());
}

#[test]
fn without_a_pid_namespace_the_init_still_reaps_as_a_subreaper() {
    let _s = serial();
    let mut b = with_init(&[
        "sh",
        "-c",
        "(sleep 0.3 & echo $! > /dev/shm/orphan); sleep 0.1; o=$(cat /dev/shm/orphan); \
         echo parent=$(grep PPid /proc/$o/status | cut -f2) init=$PPID; sleep 1.5; \
         if [ -e /proc/$o ]; then echo left=$(grep State /proc/$o/status); else echo reaped; fi",
    ]);
    b.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "pid");
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.starts_with("parent=")).unwrap_or_else(|| panic!("{out}"));
    let (parent, init) = line.trim_start_matches("parent=").split_once(" init=").unwrap();
    assert_eq!(parent, init, "the orphan went to {parent}, not to the init {init}: {out}");
    assert_ne!(init, "1", "{out}");
    assert!(out.contains("reaped\n"), "{out}");
}
