//! `docker build` (the docker CLI's classic builder protocol) against a berth daemon,
//! with contexts the tests make: multi-stage builds, ARG/ENV scoping, COPY and ADD
//! with their flags, heredocs, `.dockerignore`, the cache (hits, a changed file, cache
//! mounts), failures and what they leave behind, `-q`/`--iidfile`, `builder prune`,
//! docker-compose and docker-py builds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

/// A context directory under the daemon's test dir.
fn context(d: &TestDaemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.dir.join(name);
    fs::create_dir_all(&dir).unwrap();
    for (path, content) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }
    dir
}

fn build(d: &TestDaemon, dir: &Path, args: &[&str]) -> Output {
    d.docker().arg("build").args(args).arg(dir).output().unwrap()
}

fn build_ok(d: &TestDaemon, dir: &Path, args: &[&str]) -> String {
    let out = build(d, dir, args);
    assert!(
        out.status.success(),
        "docker build {args:?} failed ({}):\n{}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh(d: &TestDaemon, image: &str, script: &str) -> String {
    run_ok(d.docker().args(["run", "--rm", image, "sh", "-c", script]))
}

/// Nothing a build runs or mounts may outlive it.
fn assert_no_leftovers(d: &TestDaemon) {
    let ps = run_ok(d.docker().args(["ps", "-a", "--format", "{{.ID}} {{.Status}} {{.Command}}"]));
    assert_eq!(ps.trim(), "", "intermediate containers left behind\n{}", d.log());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours: Vec<&str> = mounts.lines().filter(|l| l.contains(&*d.data_root.to_string_lossy())).collect();
    assert!(ours.is_empty(), "mounts left behind: {ours:#?}");
    let ws = d.data_root.join("builder/ws");
    let left: Vec<_> = fs::read_dir(&ws).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "build workspaces left behind: {left:?}");
    let tmp = d.data_root.join("builder/tmp");
    let left: Vec<_> = fs::read_dir(&tmp).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "build scratch left behind: {left:?}");
}

const MULTI_STAGE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS base
ARG GREETING=hello
ENV STAGE=base \
    PATH=/usr/local/bin:/bin
RUN echo "$GREETING from $STAGE" > /greeting

FROM base AS builder
ARG GREETING
ARG VERSION=1.0
RUN mkdir -p /out && echo "v$VERSION $GREETING" > /out/version && echo "app:x:1234:1234::/home/app:/bin/sh" >> /etc/passwd
COPY --chmod=0750 tool.sh /out/tool.sh
RUN <<EOF
set -e
echo heredoc-ran > /out/heredoc
echo "args: $VERSION" >> /out/heredoc
EOF

FROM busybox AS unused
RUN exit 99

FROM builder AS final
ADD bundle.tar.gz /opt/
COPY --from=builder --chown=1234:1234 /out /app
ARG GREETING
COPY <<EOT /app/inline.txt
inline $GREETING
EOT
COPY src/ /src/
WORKDIR /app
USER 1234
LABEL org.example.stage=final
EXPOSE 8080
CMD ["cat", "/app/version"]

FROM final AS extra
RUN echo never > /never
"#;

#[test]
fn multi_stage_target_args_copy_add_heredoc_dockerignore() {
    let d = daemon();
    let dir = context(
        &d,
        "ctx",
        &[
            ("Dockerfile", MULTI_STAGE),
            ("tool.sh", "#!/bin/sh\necho tool\n"),
            ("src/keep.txt", "keep"),
            ("src/debug.log", "noise"),
            ("src/logs/important.log", "kept by an exception"),
            (".dockerignore", "**/*.log\n!src/logs/important.log\nsecret.txt\n"),
            ("secret.txt", "do not send"),
        ],
    );
    // A gzip tarball for ADD to unpack.
    let bundle = d.dir.join("bundle");
    fs::create_dir_all(bundle.join("pkg")).unwrap();
    fs::write(bundle.join("pkg/data.txt"), "from the tarball").unwrap();
    let st = Command::new("tar").arg("-czf").arg(dir.join("bundle.tar.gz")).arg("-C").arg(&bundle).arg("pkg").status().unwrap();
    assert!(st.success());

    let out = build_ok(&d, &dir, &["-t", "app:1", "--target", "final", "--build-arg", "GREETING=hi", "--build-arg", "UNUSED=1"]);
    // Only the stages the target needs run (`unused` would fail; `extra` comes after).
    assert!(!out.contains("exit 99") && !out.contains("never"), "{out}");
    assert!(out.contains("Successfully tagged app:1"), "{out}");
    assert!(out.contains("[Warning] One or more build-args [UNUSED] were not consumed"), "{out}");

    let script = "cat /greeting /app/version /app/heredoc /app/inline.txt /opt/pkg/data.txt; \
                  stat -c '%a %u:%g' /app/tool.sh /app/version; id -u; pwd; \
                  ls /src; ls /src/logs; test ! -e /src/debug.log && test ! -e /secret.txt && echo ignored";
    let got = sh(&d, "app:1", script);
    // --build-arg GREETING=hi overrides the default in the first stage too.
    let want = "hi from base\nv1.0 hi\nheredoc-ran\nargs: 1.0\ninline hi\nfrom the tarball750 1234:1234\n644 1234:1234\n1234\n/app\nkeep.txt\nlogs\nimportant.log\nignored\n";
    assert_eq!(got, want);
    // ARG values are not in the image's environment; ENV values are.
    let env = run_ok(d.docker().args(["inspect", "-f", "{{json .Config.Env}} {{.Config.User}} {{json .Config.ExposedPorts}} {{index .Config.Labels \"org.example.stage\"}}", "app:1"]));
    assert_eq!(env.trim(), r#"["PATH=/usr/local/bin:/bin","STAGE=base"] 1234 {"8080/tcp":{}} final"#);
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "app:1"])), "v1.0 hi\n");
    // History as the classic builder writes it.
    let history = run_ok(d.docker().args(["history", "--no-trunc", "--format", "{{.CreatedBy}}", "app:1"]));
    assert!(history.contains("/bin/sh -c #(nop)  CMD [\"cat\" \"/app/version\"]"), "{history}");
    assert!(history.contains("/bin/sh -c #(nop) WORKDIR /app"), "{history}");
    assert!(history.contains("|2 GREETING=hi VERSION=1.0 /bin/sh -c mkdir -p /out"), "{history}");
    assert!(history.contains("/bin/sh -c #(nop) ADD file:"), "{history}");
    // The unnamed intermediate images are hidden from `images`, shown by `images -a`.
    let images = run_ok(d.docker().args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert_eq!(images.lines().filter(|l| l.starts_with("<none>")).count(), 0, "{images}");
    let all = run_ok(d.docker().args(["images", "-a", "-q"]));
    assert!(all.lines().count() > 5, "{all}");
    assert_no_leftovers(&d);
}

const CACHED: &str = r#"FROM busybox
ENV A=1
LABEL x=y
WORKDIR /w
COPY a.txt /w/
RUN cat a.txt > copy-a
COPY b.txt /w/
RUN cat b.txt > copy-b
ARG N=1
RUN echo $N > n
"#;

fn count(s: &str, needle: &str) -> usize {
    s.matches(needle).count()
}

#[test]
fn cache_hits_then_rebuilds_from_the_changed_step() {
    let d = daemon();
    let dir = context(&d, "ctx", &[("Dockerfile", CACHED), ("a.txt", "a1"), ("b.txt", "b1")]);
    let first = build_ok(&d, &dir, &["-t", "cached"]);
    assert_eq!(count(&first, "Using cache"), 0, "{first}");
    let id1 = run_ok(d.docker().args(["images", "-q", "--no-trunc", "cached"]));

    // Same context, new mtimes: every step is a cache hit and the image is the same.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(dir.join("a.txt"), "a1").unwrap();
    let second = build_ok(&d, &dir, &["-t", "cached"]);
    assert_eq!(count(&second, "Using cache"), 9, "{second}");
    assert!(!second.contains("Running in"), "{second}");
    assert_eq!(run_ok(d.docker().args(["images", "-q", "--no-trunc", "cached"])), id1);

    // b.txt changes: the steps before its COPY hit the cache, the rest run again.
    fs::write(dir.join("b.txt"), "b2").unwrap();
    let third = build_ok(&d, &dir, &["-t", "cached"]);
    assert_eq!(count(&third, "Using cache"), 5, "{third}");
    assert_eq!(count(&third, "Running in"), 2, "{third}");
    assert_eq!(sh(&d, "cached", "cat copy-a copy-b n"), "a1b21\n");
    // A build arg in effect for a RUN is part of its cache key.
    let fourth = build_ok(&d, &dir, &["-t", "cached", "--build-arg", "N=2"]);
    assert_eq!(count(&fourth, "Using cache"), 8, "{fourth}");
    assert_eq!(sh(&d, "cached", "cat n"), "2\n");
    // --no-cache runs everything.
    let fifth = build_ok(&d, &dir, &["-t", "cached", "--no-cache"]);
    assert_eq!(count(&fifth, "Using cache"), 0, "{fifth}");

    // The cache survives a daemon restart; the image the tag left is dangling and
    // `image prune` removes it.
    let mut d = d;
    d.restart();
    let again = build_ok(&d, &dir, &["-t", "cached"]);
    assert_eq!(count(&again, "Using cache"), 9, "{again}");
    let dangling = run_ok(d.docker().args(["images", "-q", "--filter", "dangling=true"]));
    assert!(!dangling.trim().is_empty());
    run_ok(d.docker().args(["image", "prune", "-f"]));
    assert_eq!(run_ok(d.docker().args(["images", "-q", "--filter", "dangling=true"])).trim(), "");
    assert_eq!(sh(&d, "cached", "cat copy-a copy-b n"), "a1b21\n");
    assert_no_leftovers(&d);
}

#[test]
fn cache_mount_keeps_files_between_builds_and_builder_prune_clears_it() {
    let d = daemon();
    let df = "FROM busybox\nARG RUNID\nRUN --mount=type=cache,target=/cache echo $RUNID >> /cache/runs && cat /cache/runs > /seen && test ! -e /cache/lost\n";
    let dir = context(&d, "ctx", &[("Dockerfile", df)]);
    build_ok(&d, &dir, &["-t", "cm", "--build-arg", "RUNID=one"]);
    build_ok(&d, &dir, &["-t", "cm", "--build-arg", "RUNID=two"]);
    assert_eq!(sh(&d, "cm", "cat /seen; test -e /cache/runs || echo not-in-image"), "one\ntwo\nnot-in-image\n");
    let df_usage = run_ok(d.docker().args(["system", "df", "-v"]));
    assert!(df_usage.contains("Build cache usage"), "{df_usage}");

    let pruned = run_ok(d.docker().args(["builder", "prune", "-af"]));
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    let out = build_ok(&d, &dir, &["-t", "cm", "--build-arg", "RUNID=three"]);
    assert_eq!(count(&out, "Using cache"), 0, "{out}");
    assert_eq!(sh(&d, "cm", "cat /seen"), "three\n");
    assert_no_leftovers(&d);
}

#[test]
fn failing_run_reports_the_exit_code_and_leaves_nothing() {
    let d = daemon();
    let dir = context(&d, "ctx", &[("Dockerfile", "FROM busybox\nRUN echo before\nRUN echo partial > /p && exit 3\nRUN echo after\n")]);
    let out = build(&d, &dir, &["-t", "broken"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("Step 3/4 : RUN echo partial > /p && exit 3"), "{stdout}");
    assert!(stderr.contains("The command '/bin/sh -c echo partial > /p && exit 3' returned a non-zero code: 3"), "{stderr}");
    assert!(!stdout.contains("after"), "{stdout}");
    assert_eq!(run_ok(d.docker().args(["images", "-q", "broken"])).trim(), "");
    assert_no_leftovers(&d);

    // `RUN false` is the docker CLI's exit status 1.
    let dir = context(&d, "ctx2", &[("Dockerfile", "FROM busybox\nRUN false\n")]);
    assert_eq!(build(&d, &dir, &[]).status.code(), Some(1));
    assert_no_leftovers(&d);
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let d = daemon();
    let images_before = run_ok(d.docker().args(["images", "-aq"]));
    let cases: &[(&str, &[(&str, &str)], &[&str], &str)] = &[
        ("syntax", &[("Dockerfile", "FROM busybox\nRUN true\nFROBNICATE x\n")], &[], "dockerfile parse error on line 3: unknown instruction: FROBNICATE"),
        ("missing", &[("Dockerfile", "FROM busybox\nCOPY nothere.txt /x\n")], &[], "nothere.txt"),
        ("outside", &[("Dockerfile", "FROM busybox\nCOPY ../../etc/passwd /x\n")], &[], "outside the build context"),
        ("target", &[("Dockerfile", "FROM busybox AS a\nRUN true\n")], &["--target", "nope"], "failed to reach build target nope in Dockerfile"),
        // Not a stage: an image, looked for on a registry that is not there (loopback only).
        ("from", &[("Dockerfile", "FROM busybox\nCOPY --from=127.0.0.1:9/nosuchstage /x /y\n")], &[], "nosuchstage"),
        ("empty", &[("Dockerfile", "")], &[], "the Dockerfile cannot be empty"),
        ("scratch", &[("Dockerfile", "FROM scratch\n")], &[], "No image was generated"),
    ];
    for (name, files, args, want) in cases {
        let dir = context(&d, name, files);
        let out = build(&d, &dir, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: built anyway");
        assert!(stderr.contains(want), "{name}: {stderr}");
    }
    assert_eq!(run_ok(d.docker().args(["images", "-aq"])), images_before);
    assert_no_leftovers(&d);

    // A body that is neither a tar nor a Dockerfile.
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket)
        .args(["-X", "POST", "--data-binary", "@/bin/busybox", "-H", "Content-Type: application/x-tar", "http://x/v1.51/build"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("400") || text.contains("\"error\""), "{text}");
    assert_no_leftovers(&d);
}

#[test]
fn quiet_iidfile_stdin_and_file_outside_context() {
    let d = daemon();
    let dir = context(&d, "ctx", &[("Dockerfile", "FROM busybox\nRUN echo quiet > /q\n")]);
    let iid = d.dir.join("iid");
    let out = build_ok(&d, &dir, &["-q", "--iidfile", iid.to_str().unwrap(), "-t", "quiet"]);
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    // The docker CLI writes what -q printed, newline included, as with dockerd.
    assert_eq!(fs::read_to_string(&iid).unwrap().trim(), id);
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "quiet"])).trim(), id);

    // A Dockerfile on stdin (`-`, no context).
    let mut child = d.docker().args(["build", "-t", "fromstdin", "-"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"FROM busybox\nRUN echo stdin > /s\n").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(sh(&d, "fromstdin", "cat /s"), "stdin\n");

    // `-f` naming a Dockerfile outside the context directory.
    let outside = d.dir.join("Dockerfile.outside");
    fs::write(&outside, "FROM busybox\nCOPY data /data\n").unwrap();
    let ctx = context(&d, "ctx3", &[("data", "ctx3-data")]);
    let out = d.docker().args(["build", "-t", "outside", "-f"]).arg(&outside).arg(&ctx).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sh(&d, "outside", "cat /data"), "ctx3-data");

    // berth's own CLI builds too.
    let out = run_ok(d.berth().args(["build", "-t", "byberth", "-q"]).arg(&dir));
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert_eq!(sh(&d, "byberth", "cat /q"), "quiet\n");
    assert_no_leftovers(&d);
}

#[test]
fn a_client_that_goes_away_stops_the_build() {
    let d = daemon();
    let dir = context(&d, "ctx", &[("Dockerfile", "FROM busybox\nRUN echo started; sleep 300\n")]);
    let mut child = d.docker().args(["build", "-t", "slow"]).arg(&dir).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // Wait for the RUN to start.
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    use std::io::Read;
    // The RUN's own output (the step header also names `echo started`).
    while !seen.lines().any(|l| l == "started") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "build ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let ps = run_ok(d.docker().args(["ps", "-aq"]));
        if ps.trim().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the RUN container still exists:\n{}", d.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_no_leftovers(&d);
    assert_eq!(run_ok(d.docker().args(["images", "-q", "slow"])).trim(), "");
}

const COMPOSE: &str = r#"version: "3.8"
services:
  api:
    build:
      context: ./api
      args:
        FLAVOR: spicy
      target: run
    image: demo-api:latest
  web:
    build:
      context: ./web
      dockerfile: web.Dockerfile
"#;

#[test]
fn docker_compose_builds_two_services() {
    let d = daemon();
    let dir = context(
        &d,
        "proj",
        &[
            ("docker-compose.yml", COMPOSE),
            ("api/Dockerfile", "FROM busybox AS base\nARG FLAVOR=plain\nRUN echo $FLAVOR > /flavor\nFROM base AS run\nCMD [\"cat\", \"/flavor\"]\nFROM run AS later\nRUN exit 1\n"),
            ("web/web.Dockerfile", "FROM busybox\nCOPY index.html /www/\n"),
            ("web/index.html", "hello web"),
        ],
    );
    let out = Command::new("/usr/bin/docker-compose").args(["-p", "demo", "build"]).current_dir(&dir).env("DOCKER_HOST", d.host()).output().expect("docker-compose");
    assert!(out.status.success(), "{}\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr), d.log());
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "demo-api"])), "spicy\n");
    assert_eq!(sh(&d, "demo_web", "cat /www/index.html"), "hello web");
    assert_no_leftovers(&d);
}

#[test]
fn docker_py_builds_with_a_stream() {
    let d = daemon();
    let dir = context(&d, "py", &[("Dockerfile", "FROM busybox\nARG WHO=nobody\nLABEL built.by=py\nRUN echo hello $WHO > /hello\n")]);
    let script = format!(
        r#"
import io, sys, docker
client = docker.DockerClient(base_url={host:?}, version="auto", timeout=60)
image, logs = client.images.build(path={path:?}, tag="pyimg:1", buildargs={{"WHO": "py"}}, labels={{"extra": "yes"}}, rm=True)
# docker-py's default is rm=False: intermediate containers stay, as with dockerd.
client.images.build(path={path:?}, tag="pyimg:keep", buildargs={{"WHO": "keep"}}, nocache=True)
kept = client.containers.list(all=True)
assert len(kept) == 1, kept
kept[0].remove()
lines = [l.get("stream", "") for l in logs]
assert any("Step 4/5" in l for l in lines), lines
assert "pyimg:1" in image.tags, image.tags
assert image.labels == {{"built.by": "py", "extra": "yes"}}, image.labels
out = client.containers.run("pyimg:1", ["cat", "/hello"], remove=True)
assert out == b"hello py\n", out
# The low-level API with a file object (no context) and decoded streaming.
api = client.api
chunks = list(api.build(fileobj=io.BytesIO(b"FROM busybox\nRUN echo fileobj > /f\n"), tag="pyimg:2", decode=True, rm=True))
assert any("aux" in c for c in chunks), chunks
# A failing build raises BuildError with the daemon's message.
try:
    client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 5\n"), forcerm=True)
    raise AssertionError("no BuildError")
except docker.errors.BuildError as e:
    assert "returned a non-zero code: 5" in str(e), str(e)
print("ok")
"#,
        host = d.host(),
        path = dir.to_str().unwrap()
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().expect("python3");
    assert!(out.status.success(), "{}\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr), d.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    assert_eq!(sh(&d, "pyimg:2", "cat /f"), "fileobj\n");
    assert_no_leftovers(&d);
}

const METADATA: &str = r#"FROM busybox AS parent
ONBUILD RUN echo triggered > /onbuild
ONBUILD ENV FROM_TRIGGER=yes

FROM parent AS child
MAINTAINER someone@example.com
SHELL ["/bin/sh", "-ec"]
RUN echo "shell: $0" > /shell
VOLUME /data /logs
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD test -e /onbuild
ENTRYPOINT ["/bin/echo"]
CMD ["from", "cmd"]
"#;

#[test]
fn onbuild_shell_healthcheck_volume_entrypoint() {
    let d = daemon();
    let dir = context(&d, "ctx", &[("Dockerfile", METADATA)]);
    build_ok(&d, &dir, &["-t", "parent", "--target", "parent"]);
    let triggers = run_ok(d.docker().args(["inspect", "-f", "{{json .Config.OnBuild}}", "parent"]));
    assert_eq!(triggers.trim(), r#"["RUN echo triggered > /onbuild","ENV FROM_TRIGGER=yes"]"#);
    // A child of the tagged parent runs its triggers (and does not pass them on).
    let child = context(&d, "child", &[("Dockerfile", "FROM parent\nRUN cat /onbuild\n")]);
    let out = build_ok(&d, &child, &["-t", "child2"]);
    assert!(out.contains("# Executing 2 build triggers"), "{out}");
    assert_eq!(sh(&d, "child2", "cat /onbuild; echo $FROM_TRIGGER"), "triggered\nyes\n");
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{json .Config.OnBuild}}", "child2"])).trim(), "null");

    build_ok(&d, &dir, &["-t", "child"]);
    let f = "{{.Author}}|{{json .Config.Volumes}}|{{.Config.StopSignal}}|{{json .Config.Healthcheck}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Shell}}";
    let got = run_ok(d.docker().args(["inspect", "-f", f, "child"]));
    assert_eq!(
        got.trim(),
        r#"someone@example.com|{"/data":{},"/logs":{}}|SIGUSR1|{"Test":["CMD-SHELL","test -e /onbuild"],"Interval":5000000000,"Timeout":2000000000,"Retries":4}|["/bin/echo"]|["from","cmd"]|["/bin/sh","-ec"]"#
    );
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "child"])), "from cmd\n");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "--entrypoint", "cat", "child", "/shell"])), "shell: /bin/sh\n");
    // ENTRYPOINT in a stage that sets no CMD drops the inherited one.
    let ep = context(&d, "ep", &[("Dockerfile", "FROM child\nENTRYPOINT [\"/bin/echo\", \"only\"]\n")]);
    build_ok(&d, &ep, &["-t", "ep"]);
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{json .Config.Cmd}}", "ep"])).trim(), "null");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "ep"])), "only\n");
    assert_no_leftovers(&d);
}

/// A loopback HTTP server for ADD and remote contexts, serving `dir`.
struct Http {
    child: std::process::Child,
    port: u16,
}

impl Http {
    fn serve(dir: &Path) -> Http {
        use std::io::BufRead;
        // Port 0: the server picks a free port and says which (a port picked here and
        // bound later could be taken by another test meanwhile).
        let mut child = Command::new("/usr/bin/python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        // "Serving HTTP on 127.0.0.1 port 41231 (http://127.0.0.1:41231/) ..."
        let port = line.split_whitespace().skip_while(|w| *w != "port").nth(1).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {line:?}"));
        Http { child, port }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn add_url_remote_context_run_mounts_network_and_parallel_stages() {
    let d = daemon();
    let www = d.dir.join("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("file.txt"), "over http\n").unwrap();
    let http = Http::serve(&www);
    let url = format!("http://127.0.0.1:{}/file.txt", http.port);
    let sum = {
        use std::io::Read;
        let mut f = fs::File::open(www.join("file.txt")).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        let out = Command::new("sha256sum").arg(www.join("file.txt")).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
    };
    // Two stages that can only finish if they run at the same time: each waits for
    // the other's mark in a shared cache mount.
    let df = format!(
        r#"FROM busybox AS left
RUN --mount=type=cache,id=sync,target=/s touch /s/left; for i in $(seq 200); do [ -e /s/right ] && exit 0; sleep 0.05; done; exit 1
FROM busybox AS right
RUN --mount=type=cache,id=sync,target=/s touch /s/right; for i in $(seq 200); do [ -e /s/left ] && exit 0; sleep 0.05; done; exit 1
RUN echo right > /right
FROM busybox
COPY --from=left /bin/busybox /tmp/bb
ADD {url} /fetched/
ADD --checksum=sha256:{sum} {url} /checked.txt
RUN --mount=type=bind,source=ctxfile,target=/mnt/ctxfile cat /mnt/ctxfile > /from-bind
RUN --mount=type=bind,from=right,source=/right,target=/mnt/right cp /mnt/right /from-stage
RUN --network=none ip link show | grep -c ': ' > /links || true
RUN --mount=type=tmpfs,target=/scratch echo temp > /scratch/t && test -e /scratch/t
RUN cat /etc/hosts | grep -c buildhost > /hosts
"#
    );
    let dir = context(&d, "ctx", &[("Dockerfile", &df), ("ctxfile", "bound from the context\n")]);
    build_ok(&d, &dir, &["-t", "mixed", "--add-host", "buildhost:10.1.2.3", "-m", "256m"]);
    assert_eq!(
        sh(&d, "mixed", "cat /fetched/file.txt /checked.txt /from-bind /from-stage /links /hosts; stat -c %a /checked.txt; test -e /scratch/t || echo tmpfs-gone"),
        "over http\nover http\nbound from the context\nright\n1\n1\n600\ntmpfs-gone\n"
    );
    // A wrong --checksum fails the step.
    let bad = context(&d, "bad", &[("Dockerfile", &format!("FROM busybox\nADD --checksum=sha256:{} {url} /x\n", "0".repeat(64)))]);
    let out = build(&d, &bad, &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("digest mismatch"), "{}", String::from_utf8_lossy(&out.stderr));

    // A remote context: a tarball over http.
    let remote = d.dir.join("remote");
    fs::create_dir_all(&remote).unwrap();
    fs::write(remote.join("Dockerfile"), "FROM busybox\nCOPY hello /hello\n").unwrap();
    fs::write(remote.join("hello"), "from a remote context\n").unwrap();
    let st = Command::new("tar").arg("-czf").arg(www.join("ctx.tar.gz")).arg("-C").arg(&remote).arg(".").status().unwrap();
    assert!(st.success());
    let out = d.docker().args(["build", "-t", "remote"]).arg(format!("http://127.0.0.1:{}/ctx.tar.gz", http.port)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sh(&d, "remote", "cat /hello"), "from a remote context\n");
    assert_no_leftovers(&d);
}

#[test]
fn cache_from_another_image_history() {
    let d = daemon();
    let dir = context(&d, "ctx", &[("Dockerfile", "FROM busybox\nENV V=1\nCOPY f /f\nRUN cat /f > /g\nCMD [\"cat\", \"/g\"]\n"), ("f", "content\n")]);
    build_ok(&d, &dir, &["-t", "source:1"]);
    // Forget the cache index (the image and its layers stay).
    run_ok(d.docker().args(["builder", "prune", "-af"]));
    let out = build_ok(&d, &dir, &["-t", "reuse", "--cache-from", "source:1"]);
    assert_eq!(count(&out, "Using cache"), 4, "{out}");
    assert!(!out.contains("Running in"), "{out}");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "reuse"])), "content\n");
    let layers = |i: &str| run_ok(d.docker().args(["inspect", "-f", "{{json .RootFS.Layers}}", i]));
    assert_eq!(layers("reuse"), layers("source:1"));
    assert_no_leftovers(&d);
}

#[test]
fn a_daemon_killed_mid_build_cleans_up_on_restart() {
    let mut d = daemon();
    let dir = context(&d, "ctx", &[("Dockerfile", "FROM busybox\nCOPY . /ctx\nRUN echo started; sleep 300\n"), ("f", "x")]);
    let mut child = d.docker().args(["build", "-t", "killed"]).arg(&dir).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    use std::io::Read;
    while !seen.lines().any(|l| l == "started") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "build ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    d.kill9();
    let _ = child.kill();
    let _ = child.wait();
    d.restart();
    // The RUN container (still running under its shim) and the build's mounts and
    // workspaces are gone; the cache of the finished COPY step still works.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !run_ok(d.docker().args(["ps", "-aq"])).trim().is_empty() {
        assert!(std::time::Instant::now() < deadline, "build container left after restart:\n{}", d.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_no_leftovers(&d);
    let again = context(&d, "ctx", &[("Dockerfile", "FROM busybox\nCOPY . /ctx\nRUN echo done\n")]);
    let out = build_ok(&d, &again, &["-t", "after"]);
    assert_eq!(count(&out, "Using cache"), 0, "the Dockerfile changed, so COPY's context differs: {out}");
    assert_no_leftovers(&d);
}
