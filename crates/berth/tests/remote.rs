//! Remote daemons over ssh, with Debian's openssh-server on 127.0.0.1 (a port, keys and
//! configuration of the test's own): the docker CLI with `-H ssh://root@127.0.0.1:PORT`
//! and through a context reaches berth (which answers `docker system dial-stdio` on the
//! "remote" side); berth itself does the same with `-H ssh://`, with contexts the docker
//! CLI made, and `berth context use`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use berth_testutil::daemon::{TestDaemon, run_ok};
use berth_testutil::sshd::{Sshd, berth_as_docker};

struct Remote {
    d: TestDaemon,
    sshd: Sshd,
    _bin: tempfile::TempDir,
    config: tempfile::TempDir,
}

fn remote() -> Remote {
    let bin = Path::new(env!("CARGO_BIN_EXE_berth"));
    let d = TestDaemon::start(bin);
    d.busybox_image("busybox:latest");
    let remote_bin = berth_as_docker(bin);
    let path = format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", remote_bin.path().display());
    let sshd = Sshd::start(&[("PATH", &path), ("DOCKER_HOST", &d.host())]);
    let config = tempfile::tempdir().unwrap();
    Remote { d, sshd, _bin: remote_bin, config }
}

impl Remote {
    /// A client command on the "local" side: the ssh wrapper on PATH, no DOCKER_HOST.
    fn client(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("PATH", self.sshd.client_path()).env("DOCKER_CONFIG", self.config.path()).env_remove("DOCKER_HOST").env_remove("BERTH_HOST").env_remove("DOCKER_CONTEXT");
        c
    }

    fn docker(&self) -> Command {
        self.client(&berth_testutil::daemon::docker_cli())
    }

    fn berth(&self) -> Command {
        self.client(Path::new(env!("CARGO_BIN_EXE_berth")))
    }
}

fn ok(c: &mut Command, r: &Remote) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?}: {}\n{}\nsshd log:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr), r.sshd.log());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn docker_cli_over_ssh_to_berth() {
    let r = remote();
    run_ok(r.d.docker().args(["run", "-d", "--name", "far", "busybox", "sleep", "300"]));
    let url = r.sshd.url();
    // docker -H ssh://root@127.0.0.1:PORT ps
    let ps = ok(r.docker().args(["-H", &url, "ps", "--format", "{{.Names}}"]), &r);
    assert_eq!(ps.trim(), "far");
    // A hijacked stream (attach) through ssh and dial-stdio.
    let out = ok(r.docker().args(["-H", &url, "run", "--rm", "busybox", "echo", "hello over ssh"]), &r);
    assert_eq!(out, "hello over ssh\n");
    // DOCKER_HOST=ssh://..., and a context.
    assert!(ok(r.docker().env("DOCKER_HOST", &url).args(["version", "--format", "{{.Server.Version}}"]), &r).trim().len() > 2);
    ok(r.docker().args(["context", "create", "far", "--docker", &format!("host={url}")]), &r);
    assert_eq!(ok(r.docker().args(["--context", "far", "ps", "-q"]), &r).lines().count(), 1);
}

#[test]
fn berth_over_ssh_and_contexts() {
    let r = remote();
    run_ok(r.d.docker().args(["run", "-d", "--name", "far", "busybox", "sleep", "300"]));
    let url = r.sshd.url();
    assert_eq!(ok(r.berth().args(["-H", &url, "ps", "--format", "{{.Names}}"]), &r).trim(), "far");
    assert_eq!(ok(r.berth().args(["-H", &url, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2"]), &r), "out\n");
    assert_eq!(ok(r.berth().args(["-H", &url, "logs", "far"]), &r), "");
    // A context the docker CLI made is berth's too, and the other way round.
    ok(r.docker().args(["context", "create", "bydocker", "--docker", &format!("host={url}")]), &r);
    assert_eq!(ok(r.berth().args(["--context", "bydocker", "ps", "-q"]), &r).lines().count(), 1);
    ok(r.berth().args(["context", "create", "byberth", "--description", "over ssh", "--docker", &format!("host={url}")]), &r);
    let ls = ok(r.docker().args(["context", "ls", "--format", "{{.Name}}|{{.Description}}|{{.DockerEndpoint}}"]), &r);
    assert!(ls.contains(&format!("byberth|over ssh|{url}")), "{ls}");
    assert_eq!(ok(r.docker().args(["--context", "byberth", "ps", "-q"]), &r).lines().count(), 1);
    // context use: berth with nothing else said goes there.
    ok(r.berth().args(["context", "use", "byberth"]), &r);
    assert_eq!(ok(r.berth().args(["context", "show"]), &r).trim(), "byberth");
    assert_eq!(ok(r.berth().args(["ps", "--format", "{{.Names}}"]), &r).trim(), "far");
    assert_eq!(ok(r.docker().args(["context", "show"]), &r).trim(), "byberth");
    let inspect = ok(r.berth().args(["context", "inspect", "--format", "{{.Endpoints.docker.Host}}"]), &r);
    assert_eq!(inspect.trim(), url);
    // -H and --context together are refused, as docker does.
    let out = r.berth().args(["-H", &url, "--context", "byberth", "ps"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("either specify --host or --context"));
    ok(r.berth().args(["context", "use", "default"]), &r);
    ok(r.berth().args(["context", "rm", "byberth", "bydocker"]), &r);
    assert_eq!(ok(r.docker().args(["context", "ls", "-q"]), &r).trim(), "default");
}

#[test]
fn dial_stdio_proxies_to_the_daemon() {
    let bin = Path::new(env!("CARGO_BIN_EXE_berth"));
    let d = TestDaemon::start(bin);
    let mut child = d.berth().args(["system", "dial-stdio"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    drop(stdin);
    assert!(out.starts_with("HTTP/1.1 200") && out.ends_with("OK"), "{out:?}");
    assert!(child.wait().unwrap().success());
}
