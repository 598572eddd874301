//! OCI hooks that run in the runtime's namespaces: prestart/createRuntime (after the
//! container's namespaces exist, before its process starts), poststart, poststop. Each
//! gets the container's state JSON on stdin; a timeout kills it.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks, Spec};

use crate::error::{Error, Result};
use crate::state::State;

/// Refuses hooks that must run inside the container (we do not run them), before anything
/// is created, instead of silently skipping them.
pub(crate) fn check(spec: &Spec) -> Result<()> {
    let Some(h) = spec.hooks() else { return Ok(()) };
    for (name, list) in [("createContainer", h.create_container()), ("startContainer", h.start_container())] {
        if list.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(Error::Unsupported(format!(
                "{name} hooks (run inside the container) are not supported by berth's runtime"
            )));
        }
    }
    for hook in all(h) {
        if !hook.path().is_absolute() {
            return Err(Error::InvalidSpec(format!("hook path {} is not absolute", hook.path().display())));
        }
    }
    Ok(())
}

fn all(h: &Hooks) -> impl Iterator<Item = &Hook> {
    [h.prestart(), h.create_runtime(), h.poststart(), h.poststop()]
        .into_iter()
        .flat_map(|l| l.iter().flatten())
}

#[derive(Clone, Copy)]
pub(crate) enum Stage {
    /// prestart (deprecated) then createRuntime.
    Create,
    Poststart,
    Poststop,
}

pub(crate) fn run(spec: &Spec, stage: Stage, state: &State) -> Result<()> {
    let Some(h) = spec.hooks() else { return Ok(()) };
    let lists: Vec<(&str, &Option<Vec<Hook>>)> = match stage {
        Stage::Create => vec![("prestart", h.prestart()), ("createRuntime", h.create_runtime())],
        Stage::Poststart => vec![("poststart", h.poststart())],
        Stage::Poststop => vec![("poststop", h.poststop())],
    };
    let input = serde_json::to_vec(state).map_err(|e| Error::io("encode state", std::io::Error::other(e)))?;
    // A failing poststop hook is a warning and the next ones still run (the container
    // is already gone): poststop never fails. Any other failing hook stops the
    // lifecycle (runtime-spec 1.1+).
    for (name, list) in lists {
        for hook in list.iter().flatten() {
            match run_one(name, hook, &input) {
                Ok(()) => {}
                Err(e) if matches!(stage, Stage::Poststop) => eprintln!("berth runtime: warning: {e}"),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn run_one(stage: &str, hook: &Hook, input: &[u8]) -> Result<()> {
    let fail = |why: String| Error::Init(format!("{stage} hook {}: {why}", hook.path().display()));
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1)).env_clear().stdin(Stdio::piped()).stdout(Stdio::null());
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its state is not an error (EPIPE is ignored).
        let _ = stdin.write_all(input);
    }
    let deadline = hook.timeout().filter(|t| *t > 0).map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait().map_err(|e| fail(e.to_string()))? {
            Some(st) if st.success() => return Ok(()),
            Some(st) => return Err(fail(format!("exited with {st}"))),
            None => {}
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("timed out".into()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
