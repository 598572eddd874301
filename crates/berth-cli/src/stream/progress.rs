//! Pull/push/load/build progress as docker shows it (moby's `jsonmessage`): on a
//! terminal, one line per layer updated in place with a progress bar; otherwise
//! plain lines and no bars.

use std::io::Write;

use berth_types::progress::JsonMessage;

use crate::format::units;

/// Renders a stream of JSON messages. Returns the error a message carried, if any.
pub struct ProgressDisplay<W: Write> {
    out: W,
    terminal: bool,
    width: u16,
    /// Layer IDs in the order they got a line (their line index).
    ids: Vec<String>,
}

impl<W: Write> ProgressDisplay<W> {
    pub fn new(out: W, terminal: bool, width: Option<u16>) -> Self {
        ProgressDisplay { out, terminal, width: width.unwrap_or(200), ids: Vec::new() }
    }

    /// Displays one message; `Err` is the message's error (the operation failed).
    pub fn message(&mut self, jm: &JsonMessage) -> Result<(), String> {
        if jm.aux.is_some() {
            return Ok(());
        }
        let has_progress = jm.progress_detail.is_some();
        let mut diff = 0;
        if !jm.id.is_empty() && (has_progress || !jm.progress.is_empty()) {
            let line = match self.ids.iter().position(|i| *i == jm.id) {
                Some(l) => l,
                None => {
                    self.ids.push(jm.id.clone());
                    if self.terminal {
                        let _ = self.out.write_all(b"\n");
                    }
                    self.ids.len() - 1
                }
            };
            diff = self.ids.len() - line;
            if self.terminal {
                let _ = write!(self.out, "\x1b[{diff}A");
            }
        } else {
            // Output that is not per-layer progress starts a new block of lines.
            self.ids.clear();
        }
        let r = self.display(jm);
        if !jm.id.is_empty() && self.terminal && diff > 0 {
            let _ = write!(self.out, "\x1b[{diff}B");
        }
        let _ = self.out.flush();
        r
    }

    fn display(&mut self, jm: &JsonMessage) -> Result<(), String> {
        if let Some(e) = &jm.error_detail {
            if e.code == Some(401) {
                return Err("authentication is required".into());
            }
            return Err(if e.message.is_empty() { jm.error.clone() } else { e.message.clone() });
        }
        if !jm.error.is_empty() {
            return Err(jm.error.clone());
        }
        let bar = jm.progress_detail.as_ref().map(|p| self.bar(p.current.unwrap_or(0), p.total.unwrap_or(0)));
        let mut endl = "";
        if self.terminal && jm.stream.is_empty() && jm.progress_detail.is_some() {
            let _ = self.out.write_all(b"\x1b[2K\r");
            endl = "\r";
        } else if bar.as_deref().is_some_and(|b| !b.is_empty()) {
            // No progress bars off a terminal.
            return Ok(());
        }
        let mut s = String::new();
        if !jm.id.is_empty() {
            s.push_str(&jm.id);
            s.push_str(": ");
        }
        match (&bar, self.terminal) {
            (Some(b), true) => s.push_str(&format!("{} {b}{endl}", jm.status)),
            _ if !jm.progress.is_empty() => s.push_str(&format!("{} {}{endl}", jm.status, jm.progress)),
            _ if !jm.stream.is_empty() => s.push_str(&format!("{}{endl}", jm.stream)),
            _ => s.push_str(&format!("{}{endl}\n", jm.status)),
        }
        let _ = self.out.write_all(s.as_bytes());
        Ok(())
    }

    /// docker's `JSONProgress.String()`: `[=====>     ]  1.2MB/3.4MB`.
    fn bar(&self, current: i64, total: i64) -> String {
        if current <= 0 && total <= 0 {
            return String::new();
        }
        if total <= 0 {
            return format!("{:>8}", units::human_size(current as f64));
        }
        let pct = (((current as f64 / total as f64) * 100.0) as i64 / 2).clamp(0, 50) as usize;
        let mut s = String::new();
        if self.width > 110 {
            s.push_str(&format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct)));
        }
        if current <= total {
            s.push_str(&format!("{:>8}/{}", units::human_size(current as f64), units::human_size(total as f64)));
        }
        s
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_types::progress::ProgressDetail;

    fn msgs(lines: &[&str]) -> Vec<JsonMessage> {
        lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn plain_output_matches_the_push_trace() {
        let m = msgs(&[
            r#"{"status":"The push refers to repository [127.0.0.1:5000/trace/bb]"}"#,
            r#"{"status":"Preparing","progressDetail":{},"id":"6a4ccf71b64f"}"#,
            r#"{"status":"Pushing","progressDetail":{"current":100,"total":1000},"id":"6a4ccf71b64f"}"#,
            r#"{"status":"Mounted from acceptance/acc120269903","progressDetail":{},"id":"6a4ccf71b64f"}"#,
            r#"{"status":"1: digest: sha256:cd18 size: 527"}"#,
            r#"{"progressDetail":{},"aux":{"Tag":"1","Digest":"sha256:cd18","Size":527}}"#,
        ]);
        let mut d = ProgressDisplay::new(Vec::new(), false, None);
        for x in &m {
            d.message(x).unwrap();
        }
        assert_eq!(
            String::from_utf8(d.into_inner()).unwrap(),
            "The push refers to repository [127.0.0.1:5000/trace/bb]\n6a4ccf71b64f: Preparing\n6a4ccf71b64f: Mounted from acceptance/acc120269903\n1: digest: sha256:cd18 size: 527\n"
        );
    }

    #[test]
    fn terminal_output_moves_the_cursor_and_draws_bars() {
        let mut d = ProgressDisplay::new(Vec::new(), true, Some(200));
        let mut m = JsonMessage::layer("abc", "Downloading", Some(500), Some(1000));
        d.message(&m).unwrap();
        m.progress_detail = Some(ProgressDetail { current: Some(1000), total: Some(1000) });
        d.message(&m).unwrap();
        let out = String::from_utf8(d.into_inner()).unwrap();
        let half = format!("\n\x1b[1A\x1b[2K\rabc: Downloading [{}>{}]     500B/1kB\r\x1b[1B", "=".repeat(25), " ".repeat(25));
        assert!(out.starts_with(&half), "{out:?}");
        assert!(out.contains("[==================================================>]      1kB/1kB"), "{out:?}");
    }

    #[test]
    fn errors_stop_the_display() {
        let mut d = ProgressDisplay::new(Vec::new(), false, None);
        let e = d.message(&JsonMessage::error("manifest unknown")).unwrap_err();
        assert_eq!(e, "manifest unknown");
    }

    #[test]
    fn build_stream_lines_pass_through() {
        let mut d = ProgressDisplay::new(Vec::new(), false, None);
        d.message(&JsonMessage::stream("Step 1/4 : FROM busybox:latest\n")).unwrap();
        d.message(&JsonMessage::stream(" ---> bb3e12e5c477\n")).unwrap();
        assert_eq!(String::from_utf8(d.into_inner()).unwrap(), "Step 1/4 : FROM busybox:latest\n ---> bb3e12e5c477\n");
    }
}
