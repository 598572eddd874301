//! The daemon's container-start path, timed phase by phase: what `berth shim` does per
//! container through the library — `create` (stdin /dev/null, stdout/stderr on pipes, a
//! pid file), `start`, wait for the process, `delete`. Used by bench/runtime/daemon-path.sh;
//! run it as root, single-threaded (create clones from the calling thread).
//!
//! ```text
//! daemon_path BUNDLE STATE_ROOT RUNS [WARMUP]
//! ```
//!
//! Prints one JSON object: per phase (create, start, wait, delete, total) the median,
//! mean, p10 and p90 in milliseconds over RUNS, after WARMUP unmeasured runs, and under
//! "samples" every measurement (so runs of two builds can be pooled and compared).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use berth_runtime::{CreateOptions, Runtime};

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe")
}

fn one(rt: &Runtime, bundle: &std::path::Path, state: &std::path::Path, id: &str) -> [f64; 4] {
    let devnull: OwnedFd = std::fs::File::open("/dev/null").expect("/dev/null").into();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let opts = CreateOptions {
        stdio: Some([devnull, out_w, err_w]),
        pid_file: Some(state.join(format!("{id}.pid"))),
        ..Default::default()
    };
    let t0 = Instant::now();
    let st = rt.create(id, bundle, opts).unwrap_or_else(|e| panic!("create: {e}"));
    let t1 = Instant::now();
    rt.start(id).unwrap_or_else(|e| panic!("start: {e}"));
    let t2 = Instant::now();
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(st.pid), None).expect("waitpid");
    let t3 = Instant::now();
    rt.delete(id, true).unwrap_or_else(|e| panic!("delete: {e}"));
    let t4 = Instant::now();
    drop((out_r, err_r));
    let _ = std::fs::remove_file(state.join(format!("{id}.pid")));
    assert!(
        matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
        "the container's process ended with {status:?}"
    );
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
    [ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4)]
}

fn summary(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    serde_json::json!({"median": at(0.5), "mean": mean, "p10": at(0.1), "p90": at(0.9)})
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: daemon_path BUNDLE STATE_ROOT RUNS [WARMUP]");
        std::process::exit(2);
    }
    let bundle = PathBuf::from(&args[1]);
    let state = PathBuf::from(&args[2]);
    let runs: usize = args[3].parse().expect("RUNS");
    let warmup: usize = args.get(4).map(|w| w.parse().expect("WARMUP")).unwrap_or(5);
    std::fs::create_dir_all(&state).expect("state root");
    let rt = Runtime::new(state.join("root"));
    let mut phases: [Vec<f64>; 5] = Default::default();
    for i in 0..warmup + runs {
        let t = one(&rt, &bundle, &state, &format!("bench-{i}"));
        if i >= warmup {
            for (p, v) in phases.iter_mut().zip(t) {
                p.push(v);
            }
            phases[4].push(t.iter().sum());
        }
    }
    let names = ["create", "start", "wait", "delete", "total"];
    let mut out: serde_json::Map<String, serde_json::Value> =
        names.iter().zip(phases.iter()).map(|(n, v)| (n.to_string(), summary(v.clone()))).collect();
    let samples: serde_json::Map<String, serde_json::Value> =
        names.iter().zip(phases).map(|(n, v)| (n.to_string(), serde_json::json!(v))).collect();
    out.insert("samples".into(), serde_json::Value::Object(samples));
    println!("{}", serde_json::Value::Object(out));
}
