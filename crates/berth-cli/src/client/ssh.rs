//! A daemon over ssh, as the docker CLI reaches one: `ssh [-l user] [-p port] -- host
//! <dial-stdio>` and HTTP over the child's stdin and stdout. On the remote host berth
//! runs `berth system dial-stdio` when it is there, else `docker system dial-stdio`
//! (which berth also answers to, as `docker`), so either kind of host works.

use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// What the remote shell runs.
pub const REMOTE_COMMAND: &str = "if command -v berth >/dev/null 2>&1; then exec berth system dial-stdio; else exec docker system dial-stdio; fi";

pub struct SshStream {
    // Kept so that the ssh process lives as long as the stream (and is killed with it).
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl SshStream {
    pub fn spawn(user: Option<&str>, host: &str, port: Option<u16>) -> std::io::Result<SshStream> {
        let mut cmd = Command::new("ssh");
        cmd.args(["-o", "ConnectTimeout=30", "-T"]);
        if let Some(u) = user {
            cmd.args(["-l", u]);
        }
        if let Some(p) = port {
            cmd.args(["-p", &p.to_string()]);
        }
        cmd.args(["--", host, REMOTE_COMMAND]);
        // ssh's own messages (host key, password prompts) go to the user's terminal.
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| std::io::Error::new(e.kind(), format!("running ssh: {e}")))?;
        let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("ssh: no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("ssh: no stdout"))?;
        Ok(SshStream { _child: child, stdin, stdout })
    }
}

impl AsyncRead for SshStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}
