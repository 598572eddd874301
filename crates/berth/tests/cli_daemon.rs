//! The same scenarios through the real docker CLI and through `berth` against one berth
//! test daemon: equal exit codes and equal output once names, IDs and times are
//! normalised. Then `berth run -it`/`exec -it`/`attach` through a pty with real
//! containers: typed input, `stty size` seeing resizes, ctrl-p ctrl-q detaching.

use berth_testutil::pty::Pty;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

#[derive(Debug, Clone, PartialEq)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn output(mut cmd: Command, stdin: Option<&[u8]>) -> Out {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    // A hung client must fail the test, not the suite.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Replaces what legitimately differs between two runs: the per-tool object names,
/// IDs, times, sizes that depend on timing.
fn normalize(s: &str, tool: &str) -> String {
    let mut t = s.replace(&format!("-{tool}"), "-X").replace("docker:", "CLI:").replace("berth:", "CLI:");
    for (from, to) in [("'docker ", "'CLI "), ("'berth ", "'CLI "), ("Usage:  docker ", "Usage:  CLI "), ("Usage:  berth ", "Usage:  CLI "), ("command: docker ", "command: CLI "), ("command: berth ", "command: CLI ")] {
        t = t.replace(from, to);
    }
    let words: Vec<String> = t
        .split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == ':' || c == '/' || c == '(' || c == ')')
        .map(|w| {
            let core = w.trim_end_matches(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == ':' || c == '/' || c == '(' || c == ')');
            let tail = &w[core.len()..];
            let hex = !core.is_empty() && core.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
            if hex && (core.len() == 64 || core.len() == 12) {
                format!("<id>{tail}")
            } else {
                w.to_string()
            }
        })
        .collect();
    let t = words.concat();
    // Relative times and durations.
    let mut out = String::new();
    for line in t.lines() {
        let mut l = line.to_string();
        for pat in ["Less than a second", "About a minute", "About an hour"] {
            l = l.replace(pat, "<t>");
        }
        for unit in ["seconds", "second", "minutes", "hours"] {
            while let Some(i) = l.find(&format!(" {unit}")) {
                let start = l[..i].rfind(|c: char| !c.is_ascii_digit()).map(|p| p + 1).unwrap_or(0);
                if start == i {
                    break;
                }
                l.replace_range(start..i + unit.len() + 1, "<t>");
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    if !t.ends_with('\n') {
        out.pop();
    }
    out
}

struct Both<'a> {
    d: &'a TestDaemon,
}

impl Both<'_> {
    fn cmd(&self, tool: &str) -> Command {
        if tool == "dk" { self.d.docker() } else { self.d.berth() }
    }

    /// Runs `args` (with `{}` → the tool's suffix) through both clients and checks they
    /// agree. Returns berth's output.
    fn same(&self, args: &[&str]) -> Out {
        self.same_with(args, None)
    }

    fn same_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Out {
        let mut outs = Vec::new();
        for tool in ["dk", "bt"] {
            let mut c = self.cmd(tool);
            c.args(args.iter().map(|a| a.replace("{}", tool)));
            outs.push((tool, output(c, stdin)));
        }
        let (dk, bt) = (&outs[0].1, &outs[1].1);
        assert_eq!(dk.code, bt.code, "exit codes differ for {args:?}\ndocker: {dk:?}\nberth: {bt:?}");
        assert_eq!(normalize(&dk.stdout, "dk"), normalize(&bt.stdout, "bt"), "stdout differs for {args:?}\nstderr docker: {}\nstderr berth: {}", dk.stderr, bt.stderr);
        assert_eq!(normalize(&dk.stderr, "dk"), normalize(&bt.stderr, "bt"), "stderr differs for {args:?}");
        outs.pop().unwrap().1
    }

    /// Both clients, exit codes only (outputs legitimately differ in detail).
    fn same_code(&self, args: &[&str]) -> (Out, Out) {
        let mut outs = Vec::new();
        for tool in ["dk", "bt"] {
            let mut c = self.cmd(tool);
            c.args(args.iter().map(|a| a.replace("{}", tool)));
            outs.push(output(c, None));
        }
        assert_eq!(outs[0].code, outs[1].code, "exit codes differ for {args:?}: {:?} vs {:?}", outs[0], outs[1]);
        let b = outs.pop().unwrap();
        (outs.pop().unwrap(), b)
    }
}

#[test]
fn containers_through_both_clients() {
    berth_testutil::require_root();
    let d = daemon();
    let b = Both { d: &d };
    assert_eq!(b.same(&["run", "--rm", "busybox", "echo", "hello"]).stdout, "hello\n");
    assert_eq!(b.same(&["run", "--rm", "busybox", "sh", "-c", "exit 7"]).code, 7);
    let o = b.same(&["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("out\n", "err\n"));
    assert_eq!(b.same_with(&["run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z"], Some(b"piped in\n")).stdout, "PIPED IN\n");
    assert_eq!(b.same(&["run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "1000", "busybox", "sh", "-c", "echo $A $(pwd) $(id -u)"]).stdout, "1 /tmp 1000\n");
    let o = b.same(&["run", "-d", "--name", "c-{}", "-p", "127.0.0.1::80", "--label", "k=v", "busybox", "sleep", "300"]);
    assert_eq!(o.stdout.trim().len(), 64);
    b.same(&["ps", "--filter", "name=c-{}", "--format", "table {{.Names}}\t{{.Image}}\t{{.Command}}\t{{.Status}}\t{{.Label \"k\"}}"]);
    b.same(&["ps", "-a", "--filter", "name=c-{}", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}"]);
    b.same(&["ps", "-q", "--filter", "name=c-{}"]);
    b.same(&["inspect", "-f", "{{.State.Status}} {{.Name}} {{.Config.Labels}} {{json .Config.Cmd}}", "c-{}"]);
    b.same(&["container", "inspect", "--format", "{{range .Mounts}}{{.Destination}}{{end}}|{{.HostConfig.RestartPolicy.Name}}", "c-{}"]);
    b.same(&["logs", "c-{}"]);
    assert_eq!(b.same(&["exec", "c-{}", "sh", "-c", "echo in-exec; exit 3"]).code, 3);
    assert_eq!(b.same_with(&["exec", "-i", "c-{}", "cat"], Some(b"to exec\n")).stdout, "to exec\n");
    assert_eq!(b.same(&["exec", "-e", "X=5", "-w", "/etc", "c-{}", "sh", "-c", "echo $X $(pwd)"]).stdout, "5 /etc\n");
    b.same_code(&["exec", "c-{}", "no-such-command"]);
    let (_, top) = b.same_code(&["top", "c-{}"]);
    assert!(top.stdout.starts_with("UID") && top.stdout.contains("sleep 300"), "{top:?}");
    let port = b.same_code(&["port", "c-{}"]).1;
    assert!(port.stdout.starts_with("80/tcp -> 127.0.0.1:"), "{port:?}");
    b.same(&["exec", "c-{}", "sh", "-c", "mkdir /made && touch /made/f"]);
    b.same(&["diff", "c-{}"]);
    b.same(&["pause", "c-{}"]);
    b.same(&["inspect", "-f", "{{.State.Status}}", "c-{}"]);
    b.same(&["pause", "c-{}"]);
    b.same(&["unpause", "c-{}"]);
    b.same(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "c-{}"]);
    b.same(&["update", "--memory", "64m", "--memory-swap", "128m", "c-{}"]);
    b.same(&["inspect", "-f", "{{.HostConfig.Memory}}", "c-{}"]);
    b.same(&["rename", "c-{}", "r-{}"]);
    b.same(&["restart", "-t", "1", "r-{}"]);
    b.same(&["kill", "r-{}"]);
    b.same(&["wait", "r-{}"]);
    b.same(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "r-{}"]);
    b.same(&["start", "r-{}"]);
    b.same(&["stop", "-t", "1", "r-{}"]);
    b.same(&["rm", "r-{}"]);
    // Errors: same codes and messages.
    b.same(&["rm", "nosuch-{}"]);
    b.same(&["stop", "nosuch-{}", "nosuch2-{}"]);
    b.same(&["logs", "nosuch-{}"]);
    b.same(&["inspect", "nosuch-{}"]);
    b.same(&["exec", "nosuch-{}", "true"]);
    b.same(&["run", "--bogus", "busybox"]);
    b.same(&["run", "--memory", "lots", "busybox"]);
    b.same(&["stop"]);
    b.same(&["nosuchcommand"]);
    b.same(&["run", "--pull", "never", "nosuchimage-{}"]);
    assert_eq!(b.same_code(&["run", "busybox", "nosuch-binary"]).1.code, 127);
    b.same(&["container", "prune", "-f", "--filter", "label=none"]);
}

#[test]
fn images_volumes_networks_through_both_clients() {
    berth_testutil::require_root();
    let d = daemon();
    let b = Both { d: &d };
    b.same(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"]);
    b.same(&["image", "ls", "-q"]);
    b.same(&["tag", "busybox", "mine-{}:1"]);
    b.same(&["image", "inspect", "-f", "{{.Config.Cmd}} {{.Os}}", "mine-{}:1"]);
    b.same(&["history", "--format", "{{.CreatedBy}} {{.Size}}", "mine-{}:1"]);
    b.same(&["rmi", "mine-{}:1"]);
    b.same(&["rmi", "mine-{}:1"]);
    b.same(&["volume", "create", "--label", "a=b", "vol-{}"]);
    b.same(&["volume", "ls", "--filter", "name=vol-{}"]);
    b.same(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels}}", "vol-{}"]);
    assert_eq!(b.same(&["run", "--rm", "-v", "vol-{}:/v", "busybox", "sh", "-c", "echo data > /v/f; cat /v/f"]).stdout, "data\n");
    b.same(&["volume", "rm", "vol-{}"]);
    b.same(&["volume", "rm", "vol-{}"]);
    b.same_code(&["network", "create", "net-{}"]);
    b.same(&["network", "ls", "--filter", "name=net-{}", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"]);
    b.same(&["network", "inspect", "-f", "{{.Name}} {{.Driver}}", "net-{}"]);
    b.same(&["run", "-d", "--name", "nc-{}", "--network", "net-{}", "busybox", "sleep", "300"]);
    b.same(&["inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "nc-{}"]);
    b.same(&["network", "connect", "bridge", "nc-{}"]);
    b.same(&["network", "disconnect", "bridge", "nc-{}"]);
    b.same(&["rm", "-f", "nc-{}"]);
    b.same(&["network", "rm", "net-{}"]);
    b.same(&["system", "df", "--format", "{{.Type}}"]);
    b.same(&["info", "--format", "{{.Driver}} {{.OSType}}"]);
    b.same(&["version", "--format", "{{.Server.Version}}"]);
}

#[test]
fn cp_commit_save_load_export() {
    berth_testutil::require_root();
    let d = daemon();
    let tmp = berth_testutil::short_tempdir("bcp");
    let file = tmp.path().join("in.txt");
    std::fs::write(&file, "copied in\n").unwrap();
    run_ok(d.berth().args(["run", "-d", "--name", "cp1", "busybox", "sleep", "300"]));
    run_ok(d.berth().args(["cp", file.to_str().unwrap(), "cp1:/tmp/"]));
    assert_eq!(run_ok(d.berth().args(["exec", "cp1", "cat", "/tmp/in.txt"])), "copied in\n");
    run_ok(d.berth().args(["cp", file.to_str().unwrap(), "cp1:/tmp/renamed.txt"]));
    assert_eq!(run_ok(d.berth().args(["exec", "cp1", "cat", "/tmp/renamed.txt"])), "copied in\n");
    let back = tmp.path().join("back.txt");
    run_ok(d.berth().args(["cp", "cp1:/tmp/in.txt", back.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied in\n");
    run_ok(d.berth().args(["cp", "cp1:/etc", tmp.path().to_str().unwrap()]));
    assert!(tmp.path().join("etc/passwd").is_file());
    // A file larger than the client's memory budget goes both ways in constant memory.
    let big = tmp.path().join("big.bin");
    {
        let mut f = std::fs::File::create(&big).unwrap();
        let block: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        for _ in 0..96 {
            f.write_all(&block).unwrap();
        }
    }
    let mut c = d.berth();
    c.args(["cp", big.to_str().unwrap(), "cp1:/tmp/big.bin"]);
    let (code, rss_in) = run_measured(c);
    assert_eq!(code, 0);
    let back_big = tmp.path().join("big.back");
    let mut c = d.berth();
    c.args(["cp", "cp1:/tmp/big.bin", back_big.to_str().unwrap()]);
    let (code, rss_out) = run_measured(c);
    assert_eq!(code, 0);
    assert_eq!(std::fs::metadata(&back_big).unwrap().len(), 96 * 1024 * 1024);
    assert!(std::fs::read(&back_big).unwrap() == std::fs::read(&big).unwrap(), "copied bytes differ");
    assert!(rss_in < 48 * 1024 && rss_out < 48 * 1024, "the client used {rss_in} / {rss_out} KiB copying 96 MiB");
    // commit, then run the new image.
    run_ok(d.berth().args(["exec", "cp1", "sh", "-c", "echo committed > /marker"]));
    let id = run_ok(d.berth().args(["commit", "-c", "CMD [\"cat\",\"/marker\"]", "cp1", "committed:1"]));
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(run_ok(d.berth().args(["run", "--rm", "committed:1"])), "committed\n");
    // export writes a tar of the filesystem.
    let tar = tmp.path().join("fs.tar");
    run_ok(d.berth().args(["export", "-o", tar.to_str().unwrap(), "cp1"]));
    let list = run_ok(Command::new("tar").args(["-tf", tar.to_str().unwrap()]));
    assert!(list.lines().any(|l| l.trim_start_matches("./") == "marker"), "{list}");
    // save, remove, load back.
    let saved = tmp.path().join("img.tar");
    run_ok(d.berth().args(["save", "-o", saved.to_str().unwrap(), "committed:1"]));
    run_ok(d.berth().args(["rmi", "committed:1"]));
    let out = run_ok(d.berth().args(["load", "-i", saved.to_str().unwrap()]));
    assert!(out.contains("committed:1"), "{out}");
    assert_eq!(run_ok(d.berth().args(["run", "--rm", "committed:1"])), "committed\n");
    // saving to a terminal is refused; to a pipe it streams.
    let piped = d.berth().args(["save", "committed:1"]).output().unwrap();
    assert!(piped.status.success() && piped.stdout.len() > 1024);
    run_ok(d.berth().args(["rm", "-f", "cp1"]));
}

/// Runs a command to completion; returns its exit code and peak resident size (KiB).
fn run_measured(mut cmd: Command) -> (i32, i64) {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: we own this child and have not waited for it; wait4 writes into our locals.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert_eq!(r, child.id() as i32);
    (libc::WEXITSTATUS(status), ru.ru_maxrss)
}

#[test]
fn events_are_streamed_in_a_window() {
    berth_testutil::require_root();
    let d = daemon();
    let since = format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    run_ok(d.berth().args(["run", "--rm", "--name", "ev1", "busybox", "true"]));
    let until = format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1);
    let b = Both { d: &d };
    let out = b.same(&["events", "--since", &since, "--until", &until, "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}"]);
    assert!(out.stdout.contains("start ev1") && out.stdout.contains("die ev1"), "{out:?}");
}

// ---- through a pty, with real containers --------------------------------------

#[test]
fn run_it_in_a_pty_sizes_the_tty_and_follows_resizes() {
    berth_testutil::require_root();
    let d = daemon();
    let mut c = d.berth();
    c.args(["run", "-it", "--rm", "busybox", "sh"]);
    let mut pty = Pty::spawn(c, 33, 111);
    pty.type_keys(b"stty size\r");
    assert!(pty.wait_output("33 111"), "output: {:?}\n{}", pty.text(), d.log());
    pty.resize(40, 120);
    // The resize travels CLI -> daemon -> shim; on a loaded machine that can take a while,
    // so ask again until it shows (a lost SIGWINCH never does).
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pty.text().contains("40 120") && Instant::now() < deadline {
        pty.type_keys(b"stty size\r");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(pty.text().contains("40 120"), "output: {:?}", pty.text());
    pty.type_keys(b"echo typed-$((6*7))\r");
    assert!(pty.wait_output("typed-42"), "output: {:?}", pty.text());
    pty.type_keys(b"exit 5\r");
    assert_eq!(pty.wait_exit(), 5);
}

#[test]
fn detach_with_ctrl_p_ctrl_q_then_exec_it() {
    berth_testutil::require_root();
    let d = daemon();
    let mut c = d.berth();
    c.args(["run", "-it", "--name", "det", "busybox", "sh"]);
    let mut pty = Pty::spawn(c, 24, 80);
    // Quotes keep the typed line (echoed) from matching what the shell prints.
    pty.type_keys(b"echo be''fore\r");
    assert!(pty.wait_output("before"), "{:?}", pty.text());
    pty.type_keys(&[16, 17]);
    assert_eq!(pty.wait_exit(), 0);
    // (Whether the container then keeps running is the daemon's part: with a TTY it must
    // not close the container's stdin when the attach connection goes.)
    run_ok(d.berth().args(["rm", "-f", "det"]));

    // exec -it into a running container, with its own size.
    run_ok(d.berth().args(["run", "-d", "--name", "det", "busybox", "sleep", "300"]));
    let mut c = d.berth();
    // The size arrives by the resize right after start (the daemon does not apply the
    // exec's ConsoleSize yet), so the script waits for a sized terminal.
    c.args(["exec", "-it", "det", "sh", "-c", "i=0; until stty size 2>/dev/null | grep -q '[1-9]'; do i=$((i+1)); [ $i -gt 50 ] && break; sleep 0.1; done; stty size; exit 9"]);
    let mut pty = Pty::spawn(c, 21, 77);
    assert_eq!(pty.wait_exit(), 9, "{:?}", pty.text());
    assert!(pty.text().contains("21 77"), "{:?}", pty.text());
    run_ok(d.berth().args(["rm", "-f", "det"]));
}

#[test]
fn attach_to_a_detached_tty_container() {
    berth_testutil::require_root();
    let d = daemon();
    run_ok(d.berth().args(["run", "-dit", "--name", "att", "busybox", "sh"]));
    let mut c = d.berth();
    c.args(["attach", "att"]);
    let mut pty = Pty::spawn(c, 24, 80);
    std::thread::sleep(Duration::from_millis(300));
    pty.type_keys(b"echo x-$((2+3))\r");
    assert!(pty.wait_output("x-5"), "{:?}\n{}", pty.text(), d.log());
    pty.type_keys(b"exit 4\r");
    assert_eq!(pty.wait_exit(), 4);
    assert_eq!(run_ok(d.berth().args(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "att"])).trim(), "exited 4");
    // Attaching to a stopped container is refused, as docker does.
    let out = output(
        {
            let mut c = d.berth();
            c.args(["attach", "att"]);
            c
        },
        None,
    );
    assert_eq!((out.code, out.stderr.as_str()), (1, "You cannot attach to a stopped container, start it first\n"));
}

#[test]
fn logs_follow_and_stats_stream() {
    berth_testutil::require_root();
    let d = daemon();
    run_ok(d.berth().args(["run", "-d", "--name", "tick", "busybox", "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done"]));
    let mut follow = d.berth().args(["logs", "-f", "tick"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = follow.stdout.take().unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 256];
    while !seen.contains("tick-8") && Instant::now() < deadline {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen.starts_with("tick-1\n") && seen.contains("tick-8"), "{seen:?}");

    // Streaming stats redraw the table (clear screen, home) until interrupted.
    let mut stats = d.berth().args(["stats", "tick"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = stats.stdout.take().unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while text.matches("\x1b[2J\x1b[H").count() < 3 && Instant::now() < deadline {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = stats.kill();
    let _ = stats.wait();
    let last = text.rsplit("\x1b[2J\x1b[H").next().unwrap_or("");
    assert!(text.matches("\x1b[2J\x1b[H").count() >= 3, "{text:?}");
    assert!(text.contains("CONTAINER ID   NAME"), "{text:?}");
    assert!(text.contains("tick"), "a row for the container: {text:?} (last frame {last:?})");
    run_ok(d.berth().args(["rm", "-f", "tick"]));
}
