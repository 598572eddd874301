//! Running the host's firewall tools (`nft`, `iptables-*`): one place that spawns
//! them, feeds a script on stdin and collects what they say.

use crate::error::{NetError, Result};

/// How a tool run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `prog args...` with `stdin` (if any) and waits for it. Only failing to start
/// it at all is an error; a non-zero exit is reported in the output.
pub async fn run(prog: &str, args: &[&str], stdin: Option<&str>) -> Result<ToolOutput> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(resolved(prog))
        .args(args)
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| NetError::system(format!("run {prog}"), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.map_err(|e| NetError::system(format!("write to {prog}"), e))?;
        drop(pipe);
    }
    let out = child.wait_with_output().await.map_err(|e| NetError::system(format!("wait for {prog}"), e))?;
    Ok(ToolOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `prog`'s full path, found once and remembered: a spawn then makes one execve
/// rather than one per PATH directory (the daemon's PATH may be long).
fn resolved(prog: &str) -> std::path::PathBuf {
    static CACHE: std::sync::Mutex<Option<std::collections::HashMap<String, std::path::PathBuf>>> = std::sync::Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let map = cache.get_or_insert_with(Default::default);
    if let Some(p) = map.get(prog) {
        return p.clone();
    }
    match find(prog) {
        Some(p) => {
            map.insert(prog.to_string(), p.clone());
            p
        }
        // Not found (yet): let the spawn say so, and look again next time.
        None => std::path::PathBuf::from(prog),
    }
}

/// The full path of `prog` if it is an executable in the usual system directories or
/// on PATH.
pub fn find(prog: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path.split(':').chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]);
    for d in dirs.filter(|d| !d.is_empty()) {
        let p = std::path::Path::new(d).join(prog);
        if std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return Some(p);
        }
    }
    None
}
