//! Log drivers through the real docker CLI: each written to a listener the test runs
//! on loopback (syslog over udp, tcp and a unix datagram socket; fluentd; gelf over
//! udp with gzip and chunks, and tcp; journald on a fake journal socket), and read back
//! through `docker logs` where it can be: `local` (Docker's format, rotated and gzipped)
//! directly, the others through their dual-logging cache — refused when the cache is
//! disabled. Bad options are refused at create with Docker's messages.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon_with(extra: &[&str], envs: &[(&str, &str)]) -> TestDaemon {
    let d = TestDaemon::start_with_env(Path::new(env!("CARGO_BIN_EXE_berth")), extra, envs);
    d.busybox_image("busybox:latest");
    d
}

fn docker(d: &TestDaemon, args: &[&str]) -> Output {
    d.docker().args(args).output().unwrap()
}

/// Runs a container that prints `lines` and waits for it to exit.
fn run_printing(d: &TestDaemon, name: &str, log_args: &[&str], script: &str) {
    let mut args = vec!["run", "--name", name];
    args.extend_from_slice(log_args);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    run_ok(d.docker().args(&args));
}

fn logs(d: &TestDaemon, name: &str) -> (String, String) {
    let o = docker(d, &["logs", name]);
    assert!(o.status.success(), "docker logs {name}: {}", String::from_utf8_lossy(&o.stderr));
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn local_driver_rotates_compresses_and_reads_back() {
    let d = daemon_with(&[], &[]);
    run_printing(&d, "loc", &["--log-driver", "local", "--log-opt", "max-size=2k", "--log-opt", "max-file=3"], "for i in $(seq 1 300); do echo line $i; done; echo oops >&2");
    let id = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "loc"])).trim().to_string();
    let dir = d.data_root.join("containers").join(&id).join("local-logs");
    let files: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(files.contains(&"container.log".to_string()) && files.contains(&"container.log.1.gz".to_string()) && files.contains(&"container.log.2.gz".to_string()), "{files:?}");
    assert!(!files.iter().any(|f| f.contains(".3")), "max-file=3 keeps three files: {files:?}");
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.LogPath}}", "loc"])).trim(), dir.join("container.log").display().to_string());
    let (out, err) = logs(&d, "loc");
    assert_eq!(err, "oops\n");
    let nums: Vec<u32> = out.lines().map(|l| l.strip_prefix("line ").unwrap().parse().unwrap()).collect();
    assert_eq!(*nums.last().unwrap(), 300);
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "contiguous: {nums:?}");
    assert!(nums[0] > 1, "old lines were rotated away");
    // (The last entry is the stderr line.)
    assert_eq!(run_ok(d.docker().args(["logs", "--tail", "3", "loc"])), "line 299\nline 300\n");
    let ts = run_ok(d.docker().args(["logs", "-t", "--tail", "2", "loc"]));
    assert!(ts.len() > 31 && ts.as_bytes()[4] == b'-' && ts.ends_with(" line 300\n"), "{ts:?}");

    // Follow while it runs.
    run_ok(d.docker().args(["run", "-d", "--name", "tick", "--log-driver", "local", "busybox", "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.1; done"]));
    let mut f = d.docker().args(["logs", "-f", "tick"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut out = f.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.contains("tick-15\n") && Instant::now() < deadline {
        let n = out.read(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = f.kill();
    assert!(seen.contains("tick-15\n"), "{seen:?}");
}

fn recv_all(sock: &UdpSocket, want: usize) -> Vec<Vec<u8>> {
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while out.len() < want {
        let n = sock.recv(&mut buf).expect("a datagram");
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn syslog_over_udp_tcp_and_unixgram_with_dual_logging() {
    let d = daemon_with(&[], &[]);
    // UDP, Docker's default format, a tag from a template.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = format!("udp://{}", udp.local_addr().unwrap());
    run_printing(&d, "sys", &["--log-driver", "syslog", "--log-opt", &format!("syslog-address={addr}"), "--log-opt", "tag=app-{{.Name}}"], "echo hello; echo bad >&2");
    let got: Vec<String> = recv_all(&udp, 2).into_iter().map(|b| String::from_utf8(b).unwrap()).collect();
    let hello = got.iter().find(|m| m.contains("hello")).unwrap();
    assert!(hello.starts_with("<30>") && hello.contains(" app-sys[") && hello.ends_with("]: hello\n"), "{hello:?}");
    let bad = got.iter().find(|m| m.contains("bad")).unwrap();
    assert!(bad.starts_with("<27>"), "stderr is err: {bad:?}");
    // Read back through the cache.
    assert_eq!(logs(&d, "sys"), ("hello\n".into(), "bad\n".into()));

    // TCP, RFC 5424, another facility: newline-framed.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let taddr = format!("tcp://{}", tcp.local_addr().unwrap());
    let reader = std::thread::spawn(move || {
        let (mut s, _) = tcp.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        while !all.contains("two\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        all
    });
    run_printing(&d, "sys5424", &["--log-driver", "syslog", "--log-opt", &format!("syslog-address={taddr}"), "--log-opt", "syslog-format=rfc5424", "--log-opt", "syslog-facility=local0"], "echo one; echo two");
    let all = reader.join().unwrap();
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 2, "{all:?}");
    let id = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "sys5424"])).trim().to_string();
    assert!(lines[0].starts_with("<134>1 ") && lines[0].contains(&format!(" {} ", &id[..12])) && lines[0].ends_with(" - one"), "{all:?}");

    // A unix datagram socket, and no cache: logs refuses as Docker does.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let ug = UnixDatagram::bind(&path).unwrap();
    ug.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    run_printing(&d, "sysunix", &["--log-driver", "syslog", "--log-opt", &format!("syslog-address=unixgram://{}", path.display()), "--log-opt", "syslog-format=rfc3164", "--log-opt", "cache-disabled=true"], "echo via-unix");
    let mut buf = [0u8; 4096];
    let n = ug.recv(&mut buf).unwrap();
    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(m.starts_with("<30>") && m.ends_with(": via-unix\n"), "{m:?}");
    let o = docker(&d, &["logs", "sysunix"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("configured logging driver does not support reading"), "{}", String::from_utf8_lossy(&o.stderr));

    // An unreachable TCP server fails the start, with Docker's wording.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = format!("tcp://{}", dead.local_addr().unwrap());
    drop(dead);
    let o = docker(&d, &["run", "--log-driver", "syslog", "--log-opt", &format!("syslog-address={dead_addr}"), "busybox", "true"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("failed to initialize logging driver"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Journal fields of one native-protocol datagram.
fn journal_fields(b: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < b.len() {
        let end = b[i..].iter().position(|&c| c == b'\n' || c == b'=').map(|p| p + i).unwrap();
        let key = String::from_utf8_lossy(&b[i..end]).into_owned();
        if b[end] == b'=' {
            let nl = b[end..].iter().position(|&c| c == b'\n').unwrap() + end;
            out.insert(key, String::from_utf8_lossy(&b[end + 1..nl]).into_owned());
            i = nl + 1;
        } else {
            let len = u64::from_le_bytes(b[end + 1..end + 9].try_into().unwrap()) as usize;
            out.insert(key, String::from_utf8_lossy(&b[end + 9..end + 9 + len]).into_owned());
            i = end + 9 + len + 1;
        }
    }
    out
}

#[test]
fn journald_on_a_fake_journal_socket_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let d = daemon_with(&[], &[("BERTH_JOURNAL_SOCKET", path.to_str().unwrap())]);
    run_printing(&d, "jd", &["--log-driver", "journald", "--label", "team=core", "--log-opt", "labels=team"], "echo to-journal; echo err-journal >&2");
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 65536];
    while entries.len() < 2 {
        let n = sock.recv(&mut buf).unwrap();
        entries.push(journal_fields(&buf[..n]));
    }
    let id = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "jd"])).trim().to_string();
    let out = entries.iter().find(|e| e["MESSAGE"] == "to-journal").expect("the stdout entry");
    assert_eq!(out["PRIORITY"], "6");
    assert_eq!(out["CONTAINER_NAME"], "jd");
    assert_eq!(out["CONTAINER_ID_FULL"], id);
    assert_eq!(out["CONTAINER_ID"], id[..12]);
    assert_eq!(out["IMAGE_NAME"], "busybox");
    assert_eq!(out["SYSLOG_IDENTIFIER"], id[..12]);
    assert_eq!(out["TEAM"], "core");
    assert_eq!(entries.iter().find(|e| e["MESSAGE"] == "err-journal").unwrap()["PRIORITY"], "3");
    assert_eq!(logs(&d, "jd"), ("to-journal\n".into(), "err-journal\n".into()));
    // Where there is no journal, the start says so.
    drop(sock);
    std::fs::remove_file(&path).unwrap();
    let o = docker(&d, &["run", "--log-driver", "journald", "busybox", "true"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("journald is not enabled on this host"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Just enough MessagePack to read forward-protocol messages.
fn mp(b: &[u8], i: &mut usize) -> serde_json::Value {
    let t = b[*i];
    *i += 1;
    let mut take = |n: usize| {
        let s = &b[*i..*i + n];
        *i += n;
        s.to_vec()
    };
    let be = |s: &[u8]| s.iter().fold(0u64, |a, x| a << 8 | *x as u64);
    match t {
        0x00..=0x7f => (t as u64).into(),
        0x80..=0x8f | 0xde => {
            let n = if t == 0xde { be(&take(2)) as usize } else { (t & 0x0f) as usize };
            let mut m = serde_json::Map::new();
            for _ in 0..n {
                let k = mp(b, i);
                let v = mp(b, i);
                m.insert(k.as_str().unwrap().to_string(), v);
            }
            m.into()
        }
        0x90..=0x9f => (0..(t & 0x0f)).map(|_| mp(b, i)).collect::<Vec<_>>().into(),
        0xa0..=0xbf | 0xd9 | 0xda | 0xdb => {
            let n = match t {
                0xd9 => be(&take(1)),
                0xda => be(&take(2)),
                0xdb => be(&take(4)),
                _ => (t & 0x1f) as u64,
            } as usize;
            String::from_utf8(take(n)).unwrap().into()
        }
        0xce => be(&take(4)).into(),
        0xcf => be(&take(8)).into(),
        0xd7 => {
            let d = take(9);
            serde_json::json!({"ext": d[0], "secs": be(&d[1..5]), "nanos": be(&d[5..9])})
        }
        other => panic!("unexpected msgpack type {other:#x}"),
    }
}

#[test]
fn fluentd_forward_protocol_and_gelf_over_udp_and_tcp() {
    let d = daemon_with(&[], &[]);
    // fluentd
    let fl = TcpListener::bind("127.0.0.1:0").unwrap();
    let faddr = fl.local_addr().unwrap().to_string();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = fl.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        all
    });
    run_printing(&d, "fl", &["--log-driver", "fluentd", "--log-opt", &format!("fluentd-address={faddr}"), "--log-opt", "tag=docker.{{.Name}}", "--log-opt", "fluentd-sub-second-precision=true", "-e", "STAGE=test", "--log-opt", "env=STAGE"], "echo fluent-one; echo fluent-two >&2");
    let bytes = reader.join().unwrap();
    let mut i = 0;
    let mut msgs = Vec::new();
    while i < bytes.len() {
        msgs.push(mp(&bytes, &mut i));
    }
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let id = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "fl"])).trim().to_string();
    let one = msgs.iter().find(|m| m[2]["log"] == "fluent-one").expect("first message");
    assert_eq!(one[0], "docker.fl");
    assert_eq!(one[1]["ext"], 0, "EventTime with sub-second precision");
    assert_eq!(one[2]["container_id"], id.as_str());
    assert_eq!(one[2]["container_name"], "/fl");
    assert_eq!(one[2]["source"], "stdout");
    assert_eq!(one[2]["STAGE"], "test");
    assert_eq!(msgs.iter().find(|m| m[2]["log"] == "fluent-two").unwrap()[2]["source"], "stderr");
    assert_eq!(logs(&d, "fl"), ("fluent-one\n".into(), "fluent-two\n".into()));
    let o = docker(&d, &["run", "--log-driver", "fluentd", "--log-opt", "fluentd-address=127.0.0.1:1", "busybox", "true"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("failed to initialize logging driver"), "{}", String::from_utf8_lossy(&o.stderr));

    // gelf over udp: gzip, and a long line in chunks.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let gaddr = format!("udp://{}", udp.local_addr().unwrap());
    // A 12 kB line of digits that gzip can't shrink below a datagram.
    run_printing(&d, "gl", &["--log-driver", "gelf", "--log-opt", &format!("gelf-address={gaddr}")], "echo short; head -c 9000 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo");
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut docs = Vec::new();
    let mut chunks: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut count = 0;
    let mut buf = vec![0u8; 65536];
    while docs.len() < 2 {
        let n = udp.recv(&mut buf).unwrap();
        let dgram = &buf[..n];
        let payload = if dgram[..2] == [0x1e, 0x0f] {
            assert!(n <= 1420, "chunks fit a datagram");
            count = dgram[11];
            chunks.insert(dgram[10], dgram[12..].to_vec());
            if chunks.len() < count as usize {
                continue;
            }
            std::mem::take(&mut chunks).into_values().flatten().collect()
        } else {
            dgram.to_vec()
        };
        assert_eq!(payload[..2], [0x1f, 0x8b], "gzip");
        let mut json = String::new();
        flate2::read::GzDecoder::new(&payload[..]).read_to_string(&mut json).unwrap();
        docs.push(serde_json::from_str::<serde_json::Value>(&json).unwrap());
    }
    assert!(count > 1, "the long line came in chunks");
    let short = docs.iter().find(|x| x["short_message"] == "short").unwrap();
    assert_eq!((short["version"].as_str(), short["level"].as_i64(), short["_container_name"].as_str(), short["_image_name"].as_str()), (Some("1.1"), Some(6), Some("gl"), Some("busybox")));
    assert!(short["timestamp"].as_f64().unwrap() > 1.6e9);
    let long = docs.iter().find(|x| x["short_message"] != "short").unwrap();
    assert!(long["short_message"].as_str().unwrap().len() >= 16 * 1024 || long["_partial_message"] == true, "a 16 kB piece of the line");

    // gelf over tcp: JSON ended by NUL.
    let tl = TcpListener::bind("127.0.0.1:0").unwrap();
    let taddr = format!("tcp://{}", tl.local_addr().unwrap());
    let reader = std::thread::spawn(move || {
        let (mut s, _) = tl.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        all
    });
    run_printing(&d, "gltcp", &["--log-driver", "gelf", "--log-opt", &format!("gelf-address={taddr}")], "echo over-tcp");
    let all = reader.join().unwrap();
    assert_eq!(all.last(), Some(&0u8));
    let v: serde_json::Value = serde_json::from_slice(&all[..all.len() - 1]).unwrap();
    assert_eq!(v["short_message"], "over-tcp");
}

#[test]
fn options_are_checked_at_create_and_daemon_defaults_apply() {
    let d = daemon_with(&["--log-driver", "local", "--log-opt", "max-size=3k", "--log-opt", "cache-max-file=2"], &[]);
    // The daemon's driver and options are the container's.
    run_printing(&d, "dflt", &[], "echo via-default");
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}}", "dflt"])).trim(), "local 3k");
    assert_eq!(logs(&d, "dflt").0, "via-default\n");
    // Another driver keeps only the cache options from the daemon.
    run_ok(d.docker().args(["create", "--name", "other", "--log-driver", "json-file", "busybox", "true"]));
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{json .HostConfig.LogConfig.Config}}", "other"])).trim(), "{}");
    for (args, msg) in [
        (vec!["--log-opt", "bogus=1"], "unknown log opt 'bogus' for local log driver"),
        (vec!["--log-driver", "nosuch"], "no log driver named 'nosuch' is registered"),
        (vec!["--log-driver", "syslog", "--log-opt", "syslog-format=xml"], "Invalid syslog format"),
        (vec!["--log-driver", "gelf"], "gelf-address is a required parameter"),
        (vec!["--log-driver", "json-file", "--log-opt", "max-file=0"], "max-file"),
        (vec!["--log-driver", "syslog", "--log-opt", "tag={{.Nope}}"], "can't evaluate"),
    ] {
        let mut a = vec!["run"];
        a.extend(args);
        a.extend(["busybox", "true"]);
        let o = docker(&d, &a);
        assert_eq!(o.status.code(), Some(125), "{a:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(msg), "{a:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(run_ok(d.docker().args(["ps", "-aq"])).lines().count(), 2, "refused creates left nothing");
}

#[test]
fn a_bad_daemon_wide_log_configuration_stops_the_daemon() {
    berth_testutil::require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["daemon", "--data-root"])
        .arg(dir.path().join("d"))
        .arg("--exec-root")
        .arg(dir.path().join("r"))
        .args(["--log-driver", "syslog", "--log-opt", "syslog-format=xml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid syslog format"), "{}", String::from_utf8_lossy(&out.stderr));
}
