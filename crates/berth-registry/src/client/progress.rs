//! What a pull or push reports while it runs, as a typed enum, and its translation into
//! the JSON progress lines dockerd writes (so the docker CLI draws its bars from them).

use berth_types::progress::{JsonMessage, ProgressDetail};

/// One progress event. `id` is the 12-hex short ID Docker shows for a layer: the
/// compressed blob digest when pulling, the layer's DiffID when pushing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    // ----- pull -----
    /// `1: Pulling from trace/bb` (id: the tag, or the digest for a pull by digest).
    PullingFrom { id: String, repository: String },
    PullingFsLayer { id: String },
    Waiting { id: String },
    Downloading { id: String, current: u64, total: u64 },
    /// A download broke and will resume (with Range) after a pause.
    Retrying { id: String, seconds: u64 },
    VerifyingChecksum { id: String },
    DownloadComplete { id: String },
    Extracting { id: String, current: u64, total: u64 },
    PullComplete { id: String },
    AlreadyExists { id: String },
    /// `Digest: sha256:...`
    Digest { digest: String },
    /// `Status: Downloaded newer image for ...` / `Status: Image is up to date for ...`
    Status { message: String },

    // ----- push -----
    /// `The push refers to repository [127.0.0.1:5000/trace/bb]`
    PushRefersTo { repository: String },
    Preparing { id: String },
    PushWaiting { id: String },
    Pushing { id: String, current: u64, total: u64 },
    Pushed { id: String },
    LayerAlreadyExists { id: String },
    MountedFrom { id: String, repository: String },
    /// `1: digest: sha256:... size: 527`, followed by the aux message.
    PushDigest { tag: String, digest: String, size: u64 },
}

impl Progress {
    /// The JSON lines dockerd writes for this event (one, or two for `PushDigest`).
    pub fn to_json_messages(&self) -> Vec<JsonMessage> {
        use Progress::*;
        let layer = |id: &str, status: &str| JsonMessage::layer(id, status, None, None);
        let bar = |id: &str, status: &str, current: u64, total: u64| {
            let mut m = JsonMessage::layer(id, status, None, None);
            m.progress_detail = Some(ProgressDetail {
                current: (current > 0).then_some(current as i64),
                total: (total > 0).then_some(total as i64),
            });
            m.progress = progress_bar(current, total);
            m
        };
        let status_with_id = |id: &str, status: String| JsonMessage {
            id: id.to_string(),
            ..JsonMessage::status(status)
        };
        match self {
            PullingFrom { id, repository } => vec![status_with_id(id, format!("Pulling from {repository}"))],
            PullingFsLayer { id } => vec![layer(id, "Pulling fs layer")],
            Waiting { id } | PushWaiting { id } => vec![layer(id, "Waiting")],
            Downloading { id, current, total } => vec![bar(id, "Downloading", *current, *total)],
            Retrying { id, seconds } => {
                let unit = if *seconds == 1 { "second" } else { "seconds" };
                vec![layer(id, &format!("Retrying in {seconds} {unit}"))]
            }
            VerifyingChecksum { id } => vec![layer(id, "Verifying Checksum")],
            DownloadComplete { id } => vec![layer(id, "Download complete")],
            Extracting { id, current, total } => vec![bar(id, "Extracting", *current, *total)],
            PullComplete { id } => vec![layer(id, "Pull complete")],
            AlreadyExists { id } => vec![layer(id, "Already exists")],
            Digest { digest } => vec![JsonMessage::status(format!("Digest: {digest}"))],
            Status { message } => vec![JsonMessage::status(format!("Status: {message}"))],
            PushRefersTo { repository } => vec![JsonMessage::status(format!(
                "The push refers to repository [{repository}]"
            ))],
            Preparing { id } => vec![layer(id, "Preparing")],
            Pushing { id, current, total } => vec![bar(id, "Pushing", *current, *total)],
            Pushed { id } => vec![layer(id, "Pushed")],
            LayerAlreadyExists { id } => vec![layer(id, "Layer already exists")],
            MountedFrom { id, repository } => vec![layer(id, &format!("Mounted from {repository}"))],
            PushDigest { tag, digest, size } => vec![
                JsonMessage::status(format!("{tag}: digest: {digest} size: {size}")),
                JsonMessage {
                    progress_detail: Some(ProgressDetail::default()),
                    aux: Some(serde_json::json!({ "Tag": tag, "Digest": digest, "Size": size })),
                    ..Default::default()
                },
            ],
        }
    }
}

/// Receives progress events. Called from the pull/push tasks: keep it quick.
pub trait ProgressSink: Send + Sync {
    fn emit(&self, event: Progress);
}

impl<F: Fn(Progress) + Send + Sync> ProgressSink for F {
    fn emit(&self, event: Progress) {
        self(event)
    }
}

/// Discards every event.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn emit(&self, _event: Progress) {}
}

impl ProgressSink for tokio::sync::mpsc::UnboundedSender<Progress> {
    fn emit(&self, event: Progress) {
        let _ = self.send(event);
    }
}

/// Docker's `JSONProgress.String()` for a 200-column terminal (what dockerd sends):
/// `[=====>      ]  1.2MB/3.4MB`.
pub fn progress_bar(current: u64, total: u64) -> String {
    if current == 0 && total == 0 {
        return String::new();
    }
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let pct = (((current as f64 / total as f64) * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let bar = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
    let numbers = if current > total {
        format!("{:>8}", human_size(current))
    } else {
        format!("{:>8}/{}", human_size(current), human_size(total))
    };
    bar + &numbers
}

/// go-units' `HumanSize`: decimal units, 4 significant digits (`32.77kB`, `2.129MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", significant4(v), UNITS[i])
}

/// Go's `%.4g` for 0 <= v < 1000.
fn significant4(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let magnitude = v.log10().floor() as i32;
    let decimals = (3 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(527), "527B");
        assert_eq!(human_size(32768), "32.77kB");
        assert_eq!(human_size(2129286), "2.129MB");
        assert_eq!(human_size(1_200_000), "1.2MB");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(300_000_000), "300MB");
    }

    #[test]
    fn bar_matches_dockerd() {
        // Captured from dockerd: {"current":32768,"total":2129286}
        assert_eq!(
            progress_bar(32768, 2129286),
            "[>                                                  ]  32.77kB/2.129MB"
        );
        assert_eq!(
            progress_bar(2129286, 2129286),
            format!("[{}>] {:>8}/2.129MB", "=".repeat(50), "2.129MB")
        );
        assert_eq!(progress_bar(0, 0), "");
    }

    #[test]
    fn json_lines_have_dockers_shape() {
        let line = |p: Progress| p.to_json_messages().iter().map(|m| m.to_line()).collect::<String>();
        assert_eq!(
            line(Progress::PullingFrom { id: "1".into(), repository: "trace/bb".into() }),
            "{\"status\":\"Pulling from trace/bb\",\"id\":\"1\"}\n"
        );
        assert_eq!(
            line(Progress::Preparing { id: "6a4ccf71b64f".into() }),
            "{\"status\":\"Preparing\",\"progressDetail\":{},\"id\":\"6a4ccf71b64f\"}\n"
        );
        assert_eq!(
            line(Progress::MountedFrom { id: "6a4ccf71b64f".into(), repository: "acceptance/acc120269903".into() }),
            "{\"status\":\"Mounted from acceptance/acc120269903\",\"progressDetail\":{},\"id\":\"6a4ccf71b64f\"}\n"
        );
        let d = "sha256:cd18636d605bdb67f62831322bffdc8508445640772408206bffaa5099cc6ea7";
        let msgs = Progress::PushDigest { tag: "1".into(), digest: d.into(), size: 527 }.to_json_messages();
        assert_eq!(msgs[0].to_line(), format!("{{\"status\":\"1: digest: {d} size: 527\"}}\n"));
        // Key order inside aux depends on serde_json's map; compare as JSON.
        let aux: serde_json::Value = serde_json::from_str(&msgs[1].to_line()).unwrap();
        assert_eq!(
            aux,
            serde_json::json!({"progressDetail": {}, "aux": {"Tag": "1", "Digest": d, "Size": 527}})
        );
        assert_eq!(
            line(Progress::Status { message: "Downloaded newer image for 127.0.0.1:5000/trace/bb:1".into() }),
            "{\"status\":\"Status: Downloaded newer image for 127.0.0.1:5000/trace/bb:1\"}\n"
        );
        let dl = line(Progress::Downloading { id: "abc".into(), current: 10, total: 100 });
        assert!(dl.starts_with("{\"status\":\"Downloading\",\"progressDetail\":{\"current\":10,\"total\":100},\"progress\":\"[=====>"), "{dl}");
    }
}
