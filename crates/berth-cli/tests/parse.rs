//! docker's flag syntax through berth's command tree: combined short flags, values,
//! everything after IMAGE belonging to the command, management forms, and the create
//! body the flags produce.

use std::ffi::OsString;
use std::path::Path;

use berth_cli::app::{self, Cmd, ContainerCmd};

fn args(s: &[&str]) -> Vec<OsString> {
    std::iter::once("berth").chain(s.iter().copied()).map(OsString::from).collect()
}

fn parse(s: &[&str]) -> app::Cli {
    match app::parse(&args(s)) {
        Ok((cli, _)) => cli,
        Err((o, e, c)) => panic!("parse {s:?} failed ({c}): {o}{e}"),
    }
}

fn parse_err(s: &[&str]) -> (String, i32) {
    match app::parse(&args(s)) {
        Ok(_) => panic!("{s:?} parsed"),
        Err((_, e, c)) => (e, c),
    }
}

#[test]
fn run_takes_everything_after_the_image_as_the_command() {
    let cli = parse(&["run", "-it", "--rm", "-e", "A=1", "-p", "8080:80", "busybox", "sh", "-c", "ls -la", "--rm"]);
    let Some(Cmd::Run(r)) = cli.cmd else { panic!() };
    assert!(r.opts.interactive && r.opts.tty && r.opts.rm);
    assert_eq!(r.image, "busybox");
    assert_eq!(r.command, vec!["sh", "-c", "ls -la", "--rm"]);
    assert_eq!(r.opts.env, vec!["A=1"]);
    assert_eq!(r.opts.publish, vec!["8080:80"]);
    assert!(r.sig_proxy);

    let cli = parse(&["run", "busybox", "-la"]);
    let Some(Cmd::Run(r)) = cli.cmd else { panic!() };
    assert_eq!(r.command, vec!["-la"]);
}

#[test]
fn run_flag_values_and_forms() {
    let cli = parse(&[
        "run", "-d", "--name=web", "--sig-proxy=false", "-m", "64m", "--cpus", "1.5", "--ulimit", "nofile=10:20", "--restart",
        "on-failure:3", "-h", "box", "--add-host", "db:10.0.0.2", "--tmpfs", "/run:size=1m", "-v", "/data", "--mount",
        "type=bind,src=/tmp,dst=/t", "--env-file", "/dev/null", "-e", "B", "--memory-swap", "-1", "busybox",
    ]);
    let Some(Cmd::Run(r)) = cli.cmd else { panic!() };
    assert!(r.detach && !r.sig_proxy);
    assert_eq!(r.opts.name, "web");
    assert_eq!(r.opts.memory, Some(64 << 20));
    assert_eq!(r.opts.memory_swap, Some(-1));
    assert_eq!(r.opts.cpus, Some(1_500_000_000));
    assert_eq!(r.opts.hostname, "box");
    let mut env = std::collections::HashMap::new();
    env.insert("B".to_string(), "from-env".to_string());
    let req = r.opts.to_request(&r.image, &r.command, &env, Path::new("/")).unwrap();
    let hc = req.host_config.unwrap();
    assert_eq!(hc.memory, 64 << 20);
    assert_eq!(hc.nano_cpus, 1_500_000_000);
    assert_eq!(hc.restart_policy.name, "on-failure");
    assert_eq!(hc.restart_policy.maximum_retry_count, 3);
    assert_eq!(hc.ulimits.unwrap()[0].hard, 20);
    assert_eq!(hc.extra_hosts.unwrap(), vec!["db:10.0.0.2"]);
    assert_eq!(hc.tmpfs.unwrap()["/run"], "size=1m");
    assert_eq!(hc.mounts.unwrap()[0].kind, "bind");
    assert_eq!(req.config.hostname, "box");
    assert_eq!(req.config.env.unwrap(), vec!["B=from-env"]);
    assert!(req.config.volumes.unwrap().contains_key("/data"));
}

#[test]
fn create_body_matches_the_docker_trace() {
    // `docker run --rm busybox:latest echo hello`: the body the real CLI sent.
    let trace = include_str!("../../../fixtures/api-traces/run-foreground.txt");
    let want_line = trace.lines().find(|l| l.starts_with("{\"Hostname\"")).unwrap();
    let want: serde_json::Value = serde_json::from_str(want_line).unwrap();
    let cli = parse(&["run", "--rm", "busybox:latest", "echo", "hello"]);
    let Some(Cmd::Run(r)) = cli.cmd else { panic!() };
    let req = r.opts.to_request(&r.image, &r.command, &Default::default(), Path::new("/")).unwrap();
    let got = serde_json::to_value(&req).unwrap();
    // Every field docker sent has the same value in ours (we may send a few more,
    // e.g. Runtime, which dockerd accepts).
    fn check(path: &str, want: &serde_json::Value, got: &serde_json::Value) {
        match want {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    // Endpoint details beyond what the CLI sets are zero values on both sides.
                    if path.ends_with("EndpointsConfig.default") && !matches!(k.as_str(), "IPAMConfig" | "Links" | "Aliases") {
                        continue;
                    }
                    let g = got.get(k).unwrap_or_else(|| panic!("missing {path}.{k}"));
                    check(&format!("{path}.{k}"), v, g);
                }
            }
            _ => assert_eq!(want, got, "at {path}"),
        }
    }
    check("", &want, &got);
}

#[test]
fn management_forms_and_aliases() {
    assert!(matches!(parse(&["container", "ls", "-a"]).cmd, Some(Cmd::Container { cmd: ContainerCmd::Ls(_) })));
    assert!(matches!(parse(&["container", "ps"]).cmd, Some(Cmd::Container { cmd: ContainerCmd::Ls(_) })));
    assert!(matches!(parse(&["container", "remove", "x"]).cmd, Some(Cmd::Container { cmd: ContainerCmd::Rm(_) })));
    assert!(matches!(parse(&["image", "ls"]).cmd, Some(Cmd::Image { .. })));
    assert!(matches!(parse(&["network", "list"]).cmd, Some(Cmd::Network { .. })));
    assert!(matches!(parse(&["volume", "rm", "v"]).cmd, Some(Cmd::Volume { .. })));
    assert!(matches!(parse(&["system", "df"]).cmd, Some(Cmd::System { .. })));
    let cli = parse(&["-H", "unix:///tmp/x.sock", "ps", "-q"]);
    assert_eq!(cli.host, vec!["unix:///tmp/x.sock"]);
}

#[test]
fn exec_and_ps_flags() {
    let Some(Cmd::Exec(e)) = parse(&["exec", "-it", "-e", "X=1", "-u", "1000", "-w", "/tmp", "web", "sh", "-c", "id -u"]).cmd else { panic!() };
    assert!(e.interactive && e.tty);
    assert_eq!(e.command, vec!["sh", "-c", "id -u"]);
    assert_eq!(e.user.as_deref(), Some("1000"));
    let Some(Cmd::Ps(p)) = parse(&["ps", "-aq", "--no-trunc", "-f", "status=exited", "-n", "3"]).cmd else { panic!() };
    assert!(p.all && p.quiet && p.no_trunc);
    assert_eq!(p.last, 3);
    assert_eq!(p.filter, vec!["status=exited"]);
}

#[test]
fn flag_errors_are_docker_errors() {
    let (e, c) = parse_err(&["run", "--bogus", "busybox"]);
    assert_eq!(c, 125);
    assert!(e.starts_with("unknown flag: --bogus\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]"), "{e}");
    let (e, c) = parse_err(&["run", "--memory", "lots", "busybox"]);
    assert_eq!(c, 125);
    assert!(e.starts_with("invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"), "{e}");
    let (e, c) = parse_err(&["run", "--restart", "sometimes", "busybox"]);
    assert_eq!(c, 125);
    assert!(e.contains("for \"--restart\" flag"), "{e}");
    let (e, c) = parse_err(&["run", "-p"]);
    assert_eq!(c, 125, "{e}");
    let (e, c) = parse_err(&["network", "create"]);
    assert_eq!(c, 1);
    assert!(e.starts_with("berth: 'berth network create' requires exactly 1 argument"), "{e}");
    let (e, c) = parse_err(&["port"]);
    assert_eq!(c, 1);
    assert!(e.contains("requires at least 1 and at most 2 arguments"), "{e}");
    let (e, c) = parse_err(&["nosuch"]);
    assert_eq!(c, 1);
    assert!(e.starts_with("berth: unknown command: berth nosuch"), "{e}");
    let (e, c) = parse_err(&["container", "nosuch"]);
    assert_eq!(c, 1);
    assert!(e.starts_with("berth: unknown command: berth container nosuch"), "{e}");
}

#[test]
fn help_for_every_command() {
    let root = app::command();
    let mut stack = vec![(root.clone(), vec![])];
    let mut count = 0;
    while let Some((cmd, path)) = stack.pop() {
        for sub in cmd.get_subcommands() {
            let mut p: Vec<String> = path.clone();
            p.push(sub.get_name().to_string());
            let mut argv: Vec<&str> = p.iter().map(String::as_str).collect();
            argv.push("--help");
            match app::parse(&args(&argv)) {
                Err((out, _, 0)) => {
                    assert!(out.starts_with(&format!("Usage:  berth {}", p.join(" "))), "{argv:?}: {out}");
                    count += 1;
                }
                other => panic!("{argv:?}: {:?}", other.err()),
            }
            stack.push((sub.clone(), p));
        }
    }
    assert!(count > 80, "only {count} commands have help");
}

#[test]
fn double_dash_after_the_image_is_part_of_the_command() {
    let Some(Cmd::Run(r)) = parse(&["run", "busybox", "--", "ls"]).cmd else { panic!() };
    assert_eq!(r.command, vec!["--", "ls"]);
    let Some(Cmd::Run(r)) = parse(&["run", "-p80:80", "-dit", "--name", "x", "busybox", "-v"]).cmd else { panic!() };
    assert_eq!(r.opts.publish, vec!["80:80"]);
    assert_eq!(r.opts.name, "x");
    assert_eq!(r.command, vec!["-v"]);
    let Some(Cmd::Container { cmd: ContainerCmd::Run(r) }) = parse(&["container", "run", "--rm", "busybox", "-l"]).cmd else { panic!() };
    assert_eq!(r.command, vec!["-l"]);
    let Some(Cmd::Exec(e)) = parse(&["exec", "-u", "0", "web", "ls", "-la"]).cmd else { panic!() };
    assert_eq!(e.command, vec!["ls", "-la"]);
}
