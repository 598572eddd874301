//! Container escapes, attempted from inside a running container through the real docker
//! CLI, on the real kernel: each test is one known attack (or one class of them) and
//! proves berth's defence holds. See docs/security.md for the threat model.

use std::path::Path;
use std::process::Command;

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon_with(extra: &[&str]) -> TestDaemon {
    let d = TestDaemon::start_with(Path::new(env!("CARGO_BIN_EXE_berth")), extra);
    d.busybox_image("busybox:latest");
    d
}

fn daemon() -> TestDaemon {
    daemon_with(&[])
}

/// (exit code, stdout, stderr) of a command.
fn out(cmd: &mut Command) -> (i32, String, String) {
    let o = cmd.output().expect("run command");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn sha256_of(p: &Path) -> String {
    run_ok(Command::new("sha256sum").arg(p)).split_whitespace().next().unwrap_or_default().to_string()
}

/// The descriptors a process holds, as numbers.
fn fds(listing: &str) -> Vec<u32> {
    let mut v: Vec<u32> = listing.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    v.sort();
    v
}

/// CVE-2019-5736: a container process reaching the runtime's binary through
/// /proc/<pid>/exe (of the init, or of a process being `docker exec`'d before it execs)
/// and overwriting it. berth's processes that run the host binary inside the container's
/// PID namespace are non-dumpable, so the container cannot even resolve their exe; and the
/// binary itself is busy (ETXTBSY) while any berth process runs.
#[test]
fn cve_2019_5736_runtime_binary_is_unreachable_and_unchanged() {
    let d = daemon();
    let bin = Path::new(env!("CARGO_BIN_EXE_berth"));
    let before = sha256_of(bin);
    // --init: PID 1 is berth's own init (the host binary), the child is the command.
    let attacker = r#"
        : > /tmp/hits
        while :; do
          for p in /proc/[0-9]*; do
            [ "$p" = /proc/$$ ] && continue
            l=$(readlink $p/exe 2>/dev/null) || continue
            case "$l" in */bin/busybox|/bin/busybox) ;; *) echo "$p $l" >> /tmp/hits ;; esac
            if echo x 2>/dev/null >> $p/exe; then echo "WROTE $p" >> /tmp/hits; fi
          done
        done"#;
    run_ok(d.docker().args(["run", "-d", "--init", "--name", "victim", "busybox", "sh", "-c", attacker]));
    // PID 1 (berth's init) is out of reach: no readlink, no read, no write.
    let (code, so, se) = out(d.docker().args(["exec", "victim", "sh", "-c", "readlink /proc/1/exe; head -c4 /proc/1/exe; echo x >> /proc/1/exe"]));
    assert_ne!(code, 0, "{so}{se}");
    assert!(!so.contains("berth") && !so.contains("ELF"), "the container reached its init's binary: {so}{se}");
    // Many execs while the attacker scans /proc: a process entering the container must
    // never show it the host binary.
    for i in 0..25 {
        let (code, so, se) = out(d.docker().args(["exec", "victim", "true"]));
        assert_eq!(code, 0, "exec {i}: {so}{se}\n{}", d.log());
    }
    // What exec runs is the container's binary, not the runtime's.
    let exe = run_ok(d.docker().args(["exec", "victim", "readlink", "/proc/self/exe"]));
    assert_eq!(exe.trim(), "/bin/busybox");
    let hits = run_ok(d.docker().args(["exec", "victim", "cat", "/tmp/hits"]));
    assert_eq!(hits.trim(), "", "the container saw or wrote a runtime binary");
    run_ok(d.docker().args(["rm", "-f", "victim"]));
    assert_eq!(sha256_of(bin), before, "the host berth binary changed");
}

/// CVE-2024-21626: a host descriptor leaked into the container (runc leaked a cgroup
/// directory), reachable as /proc/self/fd/N, e.g. as the working directory. Neither the
/// container's first process nor an exec'd one holds anything but its stdio, and a
/// working directory under /proc/self/fd never lands outside the container's root.
#[test]
fn cve_2024_21626_no_host_fd_reaches_the_container() {
    let d = daemon();
    // The first process (sh, PID 1) and the one exec'd into the container.
    let init = run_ok(d.docker().args(["run", "--rm", "busybox", "sh", "-c", "ls /proc/1/fd; true"]));
    assert_eq!(fds(&init), vec![0, 1, 2], "{init}");
    run_ok(d.docker().args(["run", "-d", "--name", "cc", "busybox", "sleep", "300"]));
    let pid1 = run_ok(d.docker().args(["exec", "cc", "ls", "/proc/1/fd"]));
    assert_eq!(fds(&pid1), vec![0, 1, 2], "{pid1}");
    let exec = run_ok(d.docker().args(["exec", "cc", "sh", "-c", "ls /proc/$$/fd; true"]));
    assert_eq!(fds(&exec), vec![0, 1, 2], "{exec}");
    let tty = run_ok(d.docker().args(["exec", "-t", "cc", "sh", "-c", "ls /proc/$$/fd; true"]));
    assert_eq!(fds(&tty), vec![0, 1, 2], "{tty}");
    // -w /proc/self/fd/N: either refused, or a directory inside the container.
    for n in 3..12 {
        let w = format!("/proc/self/fd/{n}");
        for how in ["run", "exec"] {
            let mut cmd = d.docker();
            match how {
                "run" => cmd.args(["run", "--rm", "-w", &w, "busybox"]),
                _ => cmd.args(["exec", "-w", &w, "cc"]),
            };
            let (code, so, se) = out(cmd.args(["sh", "-c", "readlink /proc/self/cwd; ls ../../../../etc/ 2>&1 | head -50"]));
            if code == 0 {
                let cwd = so.lines().next().unwrap_or_default();
                assert!(cwd.starts_with('/') && !cwd.contains("unreachable"), "{how} -w {w}: cwd {cwd:?}\n{so}{se}");
                assert!(!so.contains("berth") && !so.contains("cgroup"), "{how} -w {w} saw the host: {so}");
            }
        }
    }
    run_ok(d.docker().args(["rm", "-f", "cc"]));
}

/// Docker's default MaskedPaths and ReadonlyPaths.
#[test]
fn proc_and_sys_are_masked_and_read_only() {
    let d = daemon();
    let script = r#"
        for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats /proc/timer_stats; do
          [ -e $f ] || { echo "$f absent"; continue; }
          n=$(head -c 4096 $f 2>/dev/null | wc -c); echo "$f $n"
        done
        echo "firmware $(ls /sys/firmware 2>/dev/null | wc -l)"
        for f in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
          [ -e $f ] || { echo "$f absent"; continue; }
          if awk -v f=$f '$5==f && $6 ~ /^ro/ {x=1} END {exit !x}' /proc/self/mountinfo; then echo "$f ro"; else echo "$f rw"; fi
        done
        echo h > /proc/sysrq-trigger 2>/dev/null && echo "sysrq written"
        echo x > /proc/sys/kernel/domainname 2>/dev/null && echo "sysctl written"
        true"#;
    let o = run_ok(d.docker().args(["run", "--rm", "busybox", "sh", "-c", script]));
    for line in o.lines() {
        let mut w = line.split_whitespace();
        let (f, v) = (w.next().unwrap_or_default(), w.next().unwrap_or_default());
        match v {
            "absent" | "ro" | "0" => {}
            _ => panic!("{f} is not masked/read-only ({v}):\n{o}"),
        }
    }
    assert!(o.contains("firmware 0") && o.contains("/proc/sys ro"), "{o}");
    assert!(!o.contains("written"), "{o}");
    // --privileged lifts them, as with docker.
    let p = run_ok(d.docker().args(["run", "--rm", "--privileged", "busybox", "sh", "-c", "ls /sys/firmware | wc -l"]));
    assert_ne!(p.trim(), "0", "--privileged keeps /sys/firmware masked");
}

/// `docker cp` through a symlink in the container that points at /etc: into the
/// container and out of it, paths resolve inside its root, never the host's.
#[test]
fn docker_cp_symlinks_stay_inside_the_rootfs() {
    let d = daemon();
    run_ok(d.docker().args(["run", "-d", "--name", "cc", "busybox", "sh", "-c", "echo inside > /etc/os-release; ln -s /etc /escape; ln -s /etc/os-release /hn; ln -s ../../../../../etc /rel; sleep 300"]));
    for _ in 0..50 {
        if out(d.docker().args(["exec", "cc", "test", "-L", "/rel"])).0 == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("berth-escape-{}", std::process::id());
    let src = tmp.path().join(&name);
    std::fs::write(&src, "from the host\n").unwrap();
    // Into the container through each symlink.
    for via in ["cc:/escape/", "cc:/rel/"] {
        run_ok(d.docker().arg("cp").arg(&src).arg(via));
        assert!(!Path::new("/etc").join(&name).exists(), "docker cp {via} wrote to the host's /etc");
    }
    let inside = run_ok(d.docker().args(["exec", "cc", "cat", &format!("/etc/{name}")]));
    assert_eq!(inside, "from the host\n");
    // Out of the container through the symlinks: the container's /etc/os-release (the
    // host has its own, different one).
    for from in ["cc:/escape/os-release", "cc:/rel/os-release"] {
        let dst = tmp.path().join("out");
        let _ = std::fs::remove_dir_all(&dst);
        let _ = std::fs::remove_file(&dst);
        let (code, so, se) = out(d.docker().arg("cp").arg(from).arg(&dst));
        if code != 0 {
            // Refusing is a defence too; reading the host's file is not.
            assert!(!se.contains("Debian") && !so.contains("Debian"), "{so}{se}");
            continue;
        }
        let got = std::fs::read_to_string(&dst).unwrap_or_else(|e| format!("{e}: {:?}", std::fs::metadata(&dst)));
        assert_eq!(got, "inside\n", "docker cp {from} did not read the container's file");
    }
    // A symlink copied out is a symlink, not what it points to on the host.
    let dst = tmp.path().join("hn");
    run_ok(d.docker().arg("cp").arg("cc:/hn").arg(&dst));
    assert_eq!(std::fs::read_link(&dst).unwrap(), Path::new("/etc/os-release"));
    run_ok(d.docker().args(["rm", "-f", "cc"]));
}

/// A bind mount whose target is a symlink in the image pointing outside: the mount
/// lands inside the container's root (where the link resolves in the container), never
/// on the host path it names.
#[test]
fn bind_target_symlink_resolves_inside_the_rootfs() {
    let d = daemon();
    let outside = format!("/tmp/berth-bind-escape-{}", std::process::id());
    let _ = std::fs::remove_dir_all(&outside);
    // (A relative link climbing out of the root is refused by commit already: berth's
    // layer writer does not store links pointing outside the layer.)
    run_ok(d.docker().args(["run", "--name", "mk", "busybox", "sh", "-c", &format!("ln -s {outside} /link; mkdir -p /a/b; ln -s ../..{outside}-rel /a/b/rel")]));
    run_ok(d.docker().args(["commit", "mk", "linked:1"]));
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("marker"), "bound\n").unwrap();
    let vol = format!("{}:/link", src.path().display());
    let vol2 = format!("{}:/a/b/rel", src.path().display());
    let o = run_ok(d.docker().args(["run", "--rm", "-v", &vol, "-v", &vol2, "linked:1", "sh", "-c", &format!("cat {outside}/marker {outside}-rel/marker")]));
    assert_eq!(o, "bound\nbound\n");
    assert!(!Path::new(&outside).exists() && !Path::new(&format!("{outside}-rel")).exists(), "a bind mount target left the container's root");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&outside), "{mounts}");
}

/// no-new-privileges: `--security-opt no-new-privileges` and the daemon's
/// `--no-new-privileges` set NoNewPrivs, so a setuid binary does not raise privileges.
#[test]
fn no_new_privileges_is_honoured() {
    let d = daemon();
    let status = "grep NoNewPrivs /proc/self/status";
    let off = run_ok(d.docker().args(["run", "--rm", "busybox", "sh", "-c", status]));
    assert!(off.contains("NoNewPrivs:\t0"), "{off}");
    let on = run_ok(d.docker().args(["run", "--rm", "--security-opt", "no-new-privileges", "busybox", "sh", "-c", status]));
    assert!(on.contains("NoNewPrivs:\t1"), "{on}");
    // A setuid-root program run by uid 1000: euid 0 without the flag, 1000 with it
    // (busybox itself drops setuid, so a small C program, when a compiler is here).
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("suid.c");
    let prog = tmp.path().join("suid");
    std::fs::write(&c, "#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"euid=%d\\n\", (int)geteuid());return 0;}\n").unwrap();
    if Command::new("cc").args(["-static", "-o"]).arg(&prog).arg(&c).status().is_ok_and(|s| s.success()) {
        run_ok(d.docker().args(["create", "--name", "mk", "busybox", "chmod", "4755", "/suid"]));
        run_ok(d.docker().arg("cp").arg(&prog).arg("mk:/suid"));
        run_ok(d.docker().args(["start", "-a", "mk"]));
        run_ok(d.docker().args(["commit", "mk", "suid:1"]));
        let raised = run_ok(d.docker().args(["run", "--rm", "-u", "1000", "suid:1", "/suid"]));
        assert_eq!(raised.trim(), "euid=0", "the setuid probe does not work here");
        let kept = run_ok(d.docker().args(["run", "--rm", "-u", "1000", "--security-opt", "no-new-privileges:true", "suid:1", "/suid"]));
        assert_eq!(kept.trim(), "euid=1000", "setuid raised privileges under no-new-privileges");
    } else {
        eprintln!("no static C compiler: the setuid probe is skipped");
    }
    // The exec'd process too.
    run_ok(d.docker().args(["run", "-d", "--name", "nn", "--security-opt", "no-new-privileges", "busybox", "sleep", "300"]));
    let ex = run_ok(d.docker().args(["exec", "nn", "sh", "-c", status]));
    assert!(ex.contains("NoNewPrivs:\t1"), "{ex}");
    run_ok(d.docker().args(["rm", "-f", "nn"]));
}

/// The daemon's `--no-new-privileges` makes it every container's default;
/// `--security-opt no-new-privileges=false` still turns it off for one.
#[test]
fn daemon_no_new_privileges_is_the_default() {
    let d = daemon_with(&["--no-new-privileges"]);
    let status = "grep NoNewPrivs /proc/self/status";
    let on = run_ok(d.docker().args(["run", "--rm", "busybox", "sh", "-c", status]));
    assert!(on.contains("NoNewPrivs:\t1"), "{on}");
    run_ok(d.docker().args(["run", "-d", "--name", "nn", "busybox", "sleep", "300"]));
    let ex = run_ok(d.docker().args(["exec", "nn", "sh", "-c", status]));
    assert!(ex.contains("NoNewPrivs:\t1"), "{ex}");
    let off = run_ok(d.docker().args(["run", "--rm", "--security-opt", "no-new-privileges=false", "busybox", "sh", "-c", status]));
    assert!(off.contains("NoNewPrivs:\t0"), "{off}");
    let info = run_ok(d.docker().args(["info", "--format", "{{json .SecurityOptions}}"]));
    assert!(info.contains("name=no-new-privileges"), "{info}");
    run_ok(d.docker().args(["rm", "-f", "nn"]));
    // daemon.json `no-new-privileges` does the same.
    let mut d = d;
    d.stop();
    let args: Vec<String> = d.args().iter().filter(|a| *a != "--no-new-privileges").cloned().collect();
    d.set_args(args);
    std::fs::write(d.dir.join("daemon.json"), r#"{"no-new-privileges": true}"#).unwrap();
    d.start_again();
    let on = run_ok(d.docker().args(["run", "--rm", "busybox", "sh", "-c", status]));
    assert!(on.contains("NoNewPrivs:\t1"), "{on}");
}

/// The default seccomp profile refuses what Docker's refuses, with EPERM.
#[test]
fn default_seccomp_profile_blocks_dangerous_syscalls() {
    let d = daemon();
    let st = run_ok(d.docker().args(["run", "--rm", "busybox", "grep", "^Seccomp:", "/proc/self/status"]));
    assert!(st.contains("Seccomp:\t2"), "{st}");
    // unshare(CLONE_NEWUSER) needs no capability: only seccomp stands in the way.
    let (code, so, se) = out(d.docker().args(["run", "--rm", "busybox", "unshare", "-U", "true"]));
    assert_ne!(code, 0, "unshare -U worked in a default container: {so}{se}");
    assert!(se.contains("Operation not permitted"), "{se}");
    let (code, _, se) = out(d.docker().args(["run", "--rm", "busybox", "mount", "-t", "tmpfs", "none", "/mnt"]));
    assert_ne!(code, 0);
    assert!(se.contains("Operation not permitted") || se.contains("permission denied"), "{se}");
    // keyctl / add_key / unshare / mount / ptrace / kexec / bpf / ... called directly, when a
    // C compiler is here to build the probe.
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe");
    let c = tmp.path().join("probe.c");
    std::fs::write(&c, PROBE_C).unwrap();
    let built = Command::new("cc").args(["-static", "-O1", "-o"]).arg(&probe).arg(&c).status().is_ok_and(|s| s.success());
    if !built {
        eprintln!("no static C compiler: the direct syscall probe is skipped");
        return;
    }
    run_ok(d.docker().args(["create", "--name", "pp", "busybox", "/probe"]));
    run_ok(d.docker().arg("cp").arg(&probe).arg("pp:/probe"));
    let (code, so, se) = out(d.docker().args(["start", "-a", "pp"]));
    assert_eq!(code, 0, "{so}{se}");
    for line in so.lines() {
        assert!(line.ends_with(" EPERM"), "not refused by the default profile: {line}\n{so}");
    }
    assert!(so.lines().count() >= 8, "{so}");
    // --security-opt seccomp=unconfined lifts the filter (keyctl works then).
    let (_, so2, _) = out(d.docker().args(["run", "--rm", "--security-opt", "seccomp=unconfined", "-v", &format!("{}:/probe", probe.display()), "busybox", "/probe"]));
    assert!(so2.contains("keyctl ") && !so2.contains("keyctl EPERM"), "{so2}");
}

/// Calls syscalls Docker's default profile refuses and prints `name EPERM` or
/// `name <other result>` for each.
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
static void show(const char *name, long r) {
    if (r == -1 && errno == EPERM) printf("%s EPERM\n", name);
    else printf("%s %ld %s\n", name, r, r == -1 ? strerror(errno) : "ok");
}
int main(void) {
    show("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
    show("add_key", syscall(SYS_add_key, "user", "berth", "x", 1, -3));
    show("request_key", syscall(SYS_request_key, "user", "berth", 0, 0));
    show("unshare", syscall(SYS_unshare, CLONE_NEWUSER));
    show("mount", syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, 0));
    show("umount2", syscall(SYS_umount2, "/proc", 0));
    show("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
    show("init_module", syscall(SYS_init_module, 0, 0, ""));
    show("bpf", syscall(SYS_bpf, 0, 0, 0));
    show("ptrace", syscall(SYS_ptrace, 16 /* ATTACH */, 1, 0, 0));
    show("perf_event_open", syscall(SYS_perf_event_open, 0, 0, -1, -1, 0));
    show("open_by_handle_at", syscall(SYS_open_by_handle_at, 0, 0, 0));
    show("setns", syscall(SYS_setns, 0, 0));
    show("swapon", syscall(SYS_swapon, "/x", 0));
    show("reboot", syscall(SYS_reboot, 0, 0, 0, 0));
    show("userfaultfd", syscall(SYS_userfaultfd, 0));
    return 0;
}
"#;

/// CVE-2024-21626 at the runtime itself: a host directory descriptor that does reach the
/// container process (here on purpose, with `--preserve-fds 1`) used as its working
/// directory. The runtime refuses to start it rather than leave it outside its root.
#[test]
fn cve_2024_21626_runtime_refuses_a_cwd_outside_the_root() {
    berth_testutil::require_root();
    let bin = env!("CARGO_BIN_EXE_berth");
    let tmp = berth_testutil::short_tempdir("besc");
    let bundle = tmp.path().join("b");
    berth_testutil::busybox_rootfs(&bundle.join("rootfs")).unwrap();
    let hostdir = tmp.path().join("host-secret");
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::write(hostdir.join("secret"), "host data\n").unwrap();
    let root = tmp.path().join("state");
    run_ok(Command::new(bin).args(["runtime", "spec", "--bundle"]).arg(&bundle));
    let cfg_path = bundle.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    let id = format!("esc-{}", std::process::id());
    let cgroup_parent = format!("/berth-test-esc-{}", std::process::id());
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(["sh", "-c", "cat secret || ls; readlink /proc/self/cwd"]);
    c["linux"]["cgroupsPath"] = format!("{cgroup_parent}/{id}").into();
    let mut run = |cwd: &str| {
        c["process"]["cwd"] = cwd.into();
        std::fs::write(&cfg_path, serde_json::to_vec(&c).unwrap()).unwrap();
        let script = format!(
            "exec 3< {}; exec {bin} runtime --root {} run --preserve-fds 1 --bundle {} {id}",
            hostdir.display(),
            root.display(),
            bundle.display()
        );
        out(Command::new("sh").args(["-c", &script]).stdin(std::process::Stdio::null()))
    };
    let (code, so, se) = run("/proc/self/fd/3");
    assert_ne!(code, 0, "the process started in a host directory: {so}{se}");
    assert!(!so.contains("host data") && !so.contains("secret"), "{so}{se}");
    assert!(se.contains("outside of the container's root"), "{se}");
    // The same container with an ordinary cwd runs.
    let (code, so, se) = run("/tmp");
    assert_eq!(code, 0, "{so}{se}");
    assert!(so.ends_with("/tmp\n"), "{so}{se}");
    for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let p = h.path().join(cgroup_parent.trim_start_matches('/'));
        let _ = std::fs::remove_dir(p.join(&id));
        let _ = std::fs::remove_dir(p);
    }
}
