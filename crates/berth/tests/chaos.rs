//! Chaos: concurrent clients doing everything at once (run, exec, rm -f, import, tag,
//! rmi, networks, volumes, builds, loads, pulls from a registry on loopback) while the daemon is SIGKILLed at a random moment, again and
//! again; after each restart the daemon's state must be consistent with the machine's.
//! Seeded (CHAOS_SEED, CHAOS_ITERATIONS) and bounded. Plus: a SIGKILLed shim, and a
//! container whose init dies while an exec runs in it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, bridge_name, cgroup_parent, ping, run_ok};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// xorshift64*: a reproducible stream from the seed, no dependency.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A docker CLI command pointed at the daemon, that gives up after `secs`.
fn docker(d: &TestDaemon, secs: u32) -> Command {
    let probe = d.docker();
    let mut c = Command::new("timeout");
    c.arg("-k").arg("2").arg(secs.to_string()).arg(probe.get_program());
    for (k, v) in probe.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// One client's random operations until `stop`: names are unique per worker so that
/// collisions come only from the daemon.
/// What the workers share: a small tar to import, a build context, and an image in a
/// registry (berth's own, on loopback) to pull.
struct Inputs {
    tar: PathBuf,
    context: PathBuf,
    pullable: String,
    /// `docker save` of an image with layers of its own, and its name.
    saved: (PathBuf, String),
}

/// The workers' operations by kind, for the tally: (tried, succeeded) per kind.
const KINDS: [&str; 13] = ["run -d", "run --rm", "exec", "rm -f", "import", "tag", "rmi", "network", "volume run", "volume rm", "build", "load", "pull"];

/// The kind of `op` (0..15, as `worker` draws it: two draws run -d, two pull).
fn kind_of(op: u64) -> usize {
    (op.max(1) as usize - 1).min(KINDS.len() - 1)
}

/// What one client made (kept across iterations), so that exec, rm, connect, rmi and
/// volume rm mostly reach something that exists (and sometimes, after a kill, something
/// that no longer does).
#[derive(Default)]
struct Made {
    containers: Vec<String>,
    volumes: Vec<(String, String)>,
    imported: Vec<String>,
}

fn worker(d: &TestDaemon, w: usize, iter: usize, mut rng: Rng, stop: &AtomicBool, inputs: &Inputs, made: &mut Made) -> Vec<(usize, bool)> {
    let Made { containers, volumes, imported } = made;
    let pick = |rng: &mut Rng, v: &Vec<String>| if v.is_empty() { format!("none{w}") } else { v[rng.below(v.len() as u64) as usize].clone() };
    let mut done = Vec::new();
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let name = format!("c{iter}-{w}-{k}");
        let op = rng.below(15);
        let st = match op {
            0 | 1 => {
                containers.push(name.clone());
                docker(d, 20).args(["run", "-d", "--name", &name, "busybox", "sh", "-c", "echo hello; sleep 300"]).status()
            }
            2 => docker(d, 20).args(["run", "--rm", "busybox", "true"]).status(),
            3 => docker(d, 20).args(["exec", &pick(&mut rng, containers), "sh", "-c", "echo hi"]).status(),
            4 => {
                let victim = pick(&mut rng, containers);
                containers.retain(|c| *c != victim);
                docker(d, 20).args(["rm", "-f", &victim]).status()
            }
            5 => {
                let tag = format!("imp{w}:{k}");
                imported.push(tag.clone());
                docker(d, 20).args(["import", &inputs.tar.display().to_string(), &tag]).status()
            }
            6 => docker(d, 20).args(["tag", "busybox", &format!("tagged{w}:{k}")]).status(),
            7 => {
                let tag = pick(&mut rng, imported);
                imported.retain(|t| *t != tag);
                docker(d, 20).args(["rmi", &tag]).status()
            }
            8 => {
                let net = format!("n{iter}-{w}-{k}");
                let _ = docker(d, 20).args(["network", "create", &net]).status();
                let _ = docker(d, 20).args(["network", "connect", &net, &pick(&mut rng, containers)]).status();
                if rng.below(2) == 0 { docker(d, 20).args(["network", "rm", &net]).status() } else { Ok(Default::default()) }
            }
            9 => {
                let vol = format!("v{iter}-{w}-{k}");
                volumes.push((vol.clone(), name.clone()));
                let _ = docker(d, 20).args(["volume", "create", &vol]).status();
                docker(d, 20).args(["run", "-d", "--name", &name, "-v", &format!("{vol}:/data"), "busybox", "sleep", "300"]).status()
            }
            // A volume and the container using it.
            10 => match volumes.pop() {
                Some((vol, user)) => {
                    let _ = docker(d, 20).args(["rm", "-f", &user]).status();
                    docker(d, 20).args(["volume", "rm", &vol]).status()
                }
                None => docker(d, 20).args(["volume", "rm", &format!("none{w}")]).status(),
            },
            // A build with a RUN step (a container of the builder's own) and a layer.
            11 => docker(d, 30).args(["build", "-q", "-t", &format!("built{w}:{k}"), "--build-arg", &format!("N={k}")]).arg(&inputs.context).status(),
            // A load, after dropping the image so that its layers are unpacked again.
            12 => {
                let _ = docker(d, 20).args(["rmi", "-f", &inputs.saved.1]).status();
                docker(d, 30).args(["load", "-q", "-i"]).arg(&inputs.saved.0).status()
            }
            // A pull, after dropping the image so that its layers come again.
            _ => {
                let _ = docker(d, 20).args(["rmi", "-f", &inputs.pullable]).status();
                docker(d, 30).args(["pull", "-q", &inputs.pullable]).status()
            }
        };
        done.push((kind_of(op), st.is_ok_and(|s| s.success())));
    }
    done
}

fn json(d: &TestDaemon, args: &[&str]) -> Value {
    let out = run_ok(d.docker().args(args));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn alive(pid: i64) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

/// Overlay mount points under `dir`.
fn overlay_mounts(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            (f.get(sep + 1) == Some(&"overlay") && f[4].starts_with(&prefix)).then(|| f[4].to_string())
        })
        .collect()
}

/// Container cgroup directories (64-hex names) under the daemon's cgroup parent.
fn cgroup_dirs(parent: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ctrl in ["pids", "memory", "cpu", "freezer", "unified"] {
        let base = PathBuf::from("/sys/fs/cgroup").join(ctrl).join(parent.trim_start_matches('/'));
        if let Ok(rd) = std::fs::read_dir(base) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()) {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// Host-side veths enslaved to `bridge` (`ip` retried: a link dump that races with
/// other links changing is cut short with an error).
fn veths_on(bridge: &str) -> Vec<String> {
    for _ in 0..5 {
        let out = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
        if !out.status.success() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let needle = format!(" master {bridge} ");
        return String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
            .collect();
    }
    panic!("ip -o link show keeps failing");
}

/// The invariants; Err(why) when one does not hold (yet).
fn check(d: &TestDaemon) -> Result<(), String> {
    if !ping(&d.socket) {
        return Err("no answer to _ping".into());
    }
    let ids = run_ok(d.docker().args(["ps", "-aq", "--no-trunc"]));
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let all: Vec<Value> = if ids.is_empty() {
        Vec::new()
    } else {
        let mut args = vec!["inspect"];
        args.extend(&ids);
        // A container removed between ps and inspect makes inspect fail: try again later.
        let out = d.docker().args(&args).output().unwrap();
        if !out.status.success() {
            return Err(format!("inspect: {}", String::from_utf8_lossy(&out.stderr)));
        }
        serde_json::from_slice::<Vec<Value>>(&out.stdout).map_err(|e| e.to_string())?
    };
    let mut names = BTreeSet::new();
    let mut ips = BTreeSet::new();
    let mut known = BTreeSet::new();
    let mut running = BTreeSet::new();
    let mut on_bridge = 0;
    for c in &all {
        let id = c["Id"].as_str().unwrap_or_default().to_string();
        let name = c["Name"].as_str().unwrap_or_default().to_string();
        if !names.insert(name.clone()) {
            return Err(format!("name {name} given twice"));
        }
        known.insert(id.clone());
        let st = &c["State"];
        if st["Running"].as_bool() == Some(true) {
            let pid = st["Pid"].as_i64().unwrap_or(0);
            if !alive(pid) {
                return Err(format!("{name} is running with pid {pid}, which is gone"));
            }
            let shim = std::fs::read_to_string(d.exec_root.join("containers").join(&id).join("shim.pid")).unwrap_or_default();
            let shim: i64 = shim.trim().parse().unwrap_or(0);
            if !alive(shim) {
                return Err(format!("{name} is running without a shim (shim.pid {shim})"));
            }
            running.insert(id.clone());
            if let Some(nets) = c["NetworkSettings"]["Networks"].as_object() {
                for (net, ep) in nets {
                    let ip = ep["IPAddress"].as_str().unwrap_or_default();
                    if !ip.is_empty() && !ips.insert(ip.to_string()) {
                        return Err(format!("IP {ip} given twice (last to {name} on {net})"));
                    }
                    if net == "bridge" {
                        on_bridge += 1;
                    }
                }
            }
        }
    }
    for m in overlay_mounts(&d.data_root) {
        let owner = m.split('/').rev().nth(1).unwrap_or_default().to_string();
        if !running.contains(&owner) {
            return Err(format!("overlay mounted at {m} without a running container"));
        }
    }
    for cg in cgroup_dirs(&cgroup_parent(d.slot)) {
        if !running.contains(&cg) {
            return Err(format!("cgroup {cg} without a running container"));
        }
    }
    let veths = veths_on(&bridge_name(d.slot));
    if veths.len() != on_bridge {
        let claimed: BTreeSet<String> = std::fs::read_dir(d.data_root.join("network/endpoints"))
            .map(|r| r.flatten().filter_map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.path()).ok()?).ok()).filter_map(|v| v["host_veth"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        let extra: Vec<String> = veths
            .iter()
            .filter(|v| !claimed.contains(*v))
            .map(|v| String::from_utf8_lossy(&Command::new("ip").args(["-d", "link", "show", "dev", v]).output().unwrap().stdout).into_owned())
            .collect();
        return Err(format!("{} veths on the bridge for {on_bridge} running containers on it; not an endpoint's: {extra:?}", veths.len()));
    }
    // Every image listed is whole: inspect works, and so does save.
    let images = run_ok(d.docker().args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    let refs: Vec<&str> = images.split_whitespace().filter(|r| !r.contains("<none>")).collect();
    for r in &refs {
        let out = d.docker().args(["image", "inspect", r]).output().unwrap();
        if !out.status.success() {
            return Err(format!("image {r} listed but inspect fails: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    if !refs.is_empty() {
        let mut args = vec!["save"];
        args.extend(&refs);
        let out = d.docker().args(&args).stdout(Stdio::null()).output().unwrap();
        if !out.status.success() {
            return Err(format!("save {refs:?}: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    Ok(())
}

fn check_settled(d: &TestDaemon, iter: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match check(d) {
            Ok(()) => return,
            Err(why) if Instant::now() > deadline => panic!("iteration {iter}: {why}\n--- daemon log ---\n{}", tail(&d.log(), 80)),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn sigkill_under_concurrent_load_keeps_state_consistent() {
    let seed: u64 = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_b3e7);
    let iterations: usize = std::env::var("CHAOS_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    eprintln!("chaos: seed {seed}, {iterations} iterations");
    let mut rng = Rng(seed | 1);
    let mut d = TestDaemon::start(bin());
    d.busybox_image("busybox:latest");
    // A small image to import again and again.
    let tar = d.dir.join("tiny.tar");
    let src = d.dir.join("tiny");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello"), "hello\n").unwrap();
    run_ok(Command::new("tar").arg("-C").arg(&src).arg("-cf").arg(&tar).arg("."));
    let context = d.dir.join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM busybox\nARG N\nRUN echo $N > /n && sleep 0.2\n").unwrap();
    // An image with a few layers of its own in a registry, to be pulled again and again.
    let registry = berth_testutil::registry::Registry::berth(bin());
    let pullable = format!("{}/chaos/pulled:latest", registry.addr);
    std::fs::write(context.join("Dockerfile.pulled"), "FROM busybox\nRUN head -c 3000000 /dev/urandom > /a\nRUN head -c 3000000 /dev/urandom > /b\n").unwrap();
    run_ok(d.docker().args(["build", "-q", "-t", &pullable, "-f"]).arg(context.join("Dockerfile.pulled")).arg(&context));
    run_ok(d.docker().args(["push", "-q", &pullable]));
    let saved_name = "chaos/loaded:latest".to_string();
    std::fs::write(context.join("Dockerfile.loaded"), "FROM busybox\nRUN head -c 4000000 /dev/urandom > /c\n").unwrap();
    run_ok(d.docker().args(["build", "-q", "-t", &saved_name, "-f"]).arg(context.join("Dockerfile.loaded")).arg(&context));
    let saved = d.dir.join("loaded.tar");
    run_ok(d.docker().args(["save", "-o"]).arg(&saved).arg(&saved_name));
    let inputs = Inputs { tar: tar.clone(), context, pullable, saved: (saved, saved_name) };
    // The keeper runs through everything, its log uninterrupted.
    run_ok(d.docker().args(["run", "-d", "--name", "keeper", "busybox", "sh", "-c", "echo start; i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"]));
    let keeper_pid = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}}", "keeper"])).trim().to_string();

    let started = Instant::now();
    let mut tally = [(0usize, 0usize); KINDS.len()];
    let mut made: Vec<Made> = (0..3).map(|_| Made::default()).collect();
    for iter in 0..iterations {
        let stop = Arc::new(AtomicBool::new(false));
        let kill_after = Duration::from_millis(300 + rng.below(2200));
        std::thread::scope(|s| {
            let workers: Vec<_> = made
                .iter_mut()
                .enumerate()
                .map(|(w, made)| {
                    let r = Rng(rng.next() | 1);
                    let (d, stop, inputs) = (&d, &stop, &inputs);
                    s.spawn(move || worker(d, w, iter, r, stop, inputs, made))
                })
                .collect();
            std::thread::sleep(kill_after);
            // SIGKILL in the middle of whatever the clients are doing.
            // SAFETY: SIGKILL to the daemon this test started.
            unsafe { libc::kill(d.pid().expect("daemon pid") as i32, libc::SIGKILL) };
            std::thread::sleep(Duration::from_millis(rng.below(300)));
            stop.store(true, Ordering::Relaxed);
            for (kind, ok) in workers.into_iter().flat_map(|w| w.join().unwrap()) {
                tally[kind].0 += 1;
                tally[kind].1 += ok as usize;
            }
        });
        d.restart();
        check_settled(&d, iter);
        let now = run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "keeper"]));
        assert_eq!(now.trim(), format!("running {keeper_pid}"), "iteration {iter}: the keeper did not keep running");
        eprintln!("chaos: iteration {iter} (killed after {kill_after:?}) consistent at {:?}", started.elapsed());
    }
    let counts: Vec<String> = KINDS.iter().zip(tally).map(|(k, (n, ok))| format!("{k} {ok}/{n}")).collect();
    eprintln!("chaos: operations that succeeded / were tried: {}", counts.join(", "));
    // The slow operations did run for real, not only fail (as a bad command line would).
    // Many of each fail, cut by a kill; all of them failing is not chance.
    let slow: usize = ["build", "load", "pull"].iter().map(|kind| tally[KINDS.iter().position(|k| k == kind).unwrap()].1).sum();
    assert!(slow > 0, "no build, load or pull succeeded in {iterations} iterations: {counts:?}");
    // The keeper's log is whole: it starts with its first line and counts up without a gap.
    std::thread::sleep(Duration::from_millis(300));
    let logs = run_ok(d.docker().args(["logs", "keeper"]));
    let mut lines = logs.lines();
    assert_eq!(lines.next(), Some("start"));
    let nums: Vec<u64> = lines.map(|l| l.parse().unwrap_or_else(|_| panic!("keeper log line {l:?}"))).collect();
    assert!(nums.len() > 10, "{logs}");
    for (i, n) in nums.iter().enumerate() {
        assert_eq!(*n, i as u64 + 1, "the keeper's log has a gap or a repeat at line {}", i + 2);
    }
    // The daemon still does everything after all that.
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "busybox", "echo", "ok"])), "ok\n");
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigkilled_shim_leaves_an_exited_container_and_a_healthy_daemon() {
    let d = TestDaemon::start(bin());
    d.busybox_image("busybox:latest");
    let id = run_ok(d.docker().args(["run", "-d", "--name", "victim", "busybox", "sleep", "300"])).trim().to_string();
    let shim: i32 = std::fs::read_to_string(d.exec_root.join("containers").join(&id).join("shim.pid")).unwrap().trim().parse().unwrap();
    // SAFETY: SIGKILL to the shim this test's daemon started.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    wait_for("the container to be recorded as exited", 30, || {
        run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}}", "victim"])).trim() == "exited"
    });
    check_settled(&d, 0);
    // The daemon is fine: the container can be started again and removed, others run.
    run_ok(d.docker().args(["start", "victim"]));
    assert_eq!(run_ok(d.docker().args(["exec", "victim", "echo", "back"])), "back\n");
    run_ok(d.docker().args(["rm", "-f", "victim"]));
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "busybox", "echo", "ok"])), "ok\n");
    check_settled(&d, 1);
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

#[test]
fn init_dying_during_an_exec() {
    let d = TestDaemon::start(bin());
    d.busybox_image("busybox:latest");
    run_ok(d.docker().args(["run", "-d", "--name", "host", "busybox", "sleep", "300"]));
    let pid: i32 = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}}", "host"])).trim().parse().unwrap();
    let exec = d.docker().args(["exec", "host", "sh", "-c", "echo in; sleep 60"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: SIGKILL to the container's init (this test's container).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let started = Instant::now();
    let out = exec.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20), "the exec outlived its container by {:?}", started.elapsed());
    assert!(!out.status.success(), "the exec succeeded though its container died");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in\n");
    wait_for("the container to be exited", 20, || {
        run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "host"])).trim() == "exited 137"
    });
    let execs: Vec<Value> = json(&d, &["inspect", "host"]).as_array().unwrap().clone();
    let exec_ids = execs[0]["ExecIDs"].clone();
    assert!(exec_ids.is_null() || exec_ids.as_array().is_some_and(|a| a.is_empty()), "exec ids left: {exec_ids}");
    check_settled(&d, 0);
    run_ok(d.docker().args(["start", "host"]));
    assert_eq!(run_ok(d.docker().args(["exec", "host", "echo", "again"])), "again\n");
    assert!(!d.log().contains("panicked"), "{}", d.log());
}
