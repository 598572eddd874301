//! ADD's remote sources: a URL fetched into the step's scratch directory (mode 0600,
//! its time from `Last-Modified`, as dockerd does), checked against `--checksum`.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::BuildError;

/// Largest file ADD fetches.
const MAX_DOWNLOAD: u64 = 16 << 30;

/// A server that sends nothing for this long fails the step rather than hanging the
/// build (dockerd waits forever).
const STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// Downloads `url` into `dir` with `client` (the daemon's, with its TLS settings); returns the file and the name ADD gives it (the last
/// path segment, as dockerd).
pub async fn download(client: &reqwest::Client, url: &str, dir: &Path, checksum: Option<&str>) -> Result<(PathBuf, String), BuildError> {
    let fail = |e: &dyn std::fmt::Display| BuildError::invalid(format!("failed to download {url}: {e}"));
    let stalled = || fail(&format_args!("no answer for {} s", STALL.as_secs()));
    let resp = tokio::time::timeout(STALL, client.get(url).send()).await.map_err(|_| stalled())?.map_err(|e| fail(&e))?;
    if !resp.status().is_success() {
        return Err(BuildError::invalid(format!("failed to GET {url} with status {}", resp.status())));
    }
    let modified = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok());
    let name = url_file_name(url);
    let dl = dir.join("download");
    tokio::fs::create_dir_all(&dl).await?;
    let path = dl.join(&name);
    let mut f = tokio::fs::File::create(&path).await?;
    let mut h = Sha256::new();
    let mut n: u64 = 0;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(STALL, body.next()).await.map_err(|_| stalled())? {
        let chunk = chunk.map_err(|e| fail(&e))?;
        n += chunk.len() as u64;
        if n > MAX_DOWNLOAD {
            return Err(fail(&"the file is larger than 16 GiB"));
        }
        h.update(&chunk);
        f.write_all(&chunk).await?;
    }
    f.flush().await?;
    drop(f);
    let got = format!("sha256:{}", hex::encode(h.finalize()));
    if let Some(want) = checksum
        && want != got {
            return Err(BuildError::invalid(format!("digest mismatch for {url}: {got}, expected {want}")));
        }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    if let Some(t) = modified {
        let ts = rustix::fs::Timespec { tv_sec: t.timestamp(), tv_nsec: 0 };
        let _ = rustix::fs::utimensat(rustix::fs::CWD, &path, &rustix::fs::Timestamps { last_access: ts, last_modification: ts }, rustix::fs::AtFlags::empty());
    }
    Ok((path, name))
}

/// The file name ADD gives a URL's content: its last path segment, or `__unnamed__`.
pub fn url_file_name(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = no_query.splitn(4, '/').nth(3).unwrap_or("");
    let last = after_host.rsplit('/').next().unwrap_or("");
    if last.is_empty() || last == "." || last == ".." { "__unnamed__".to_string() } else { last.to_string() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_from_urls() {
        assert_eq!(super::url_file_name("http://h:8/a/b/c.tar.gz?x=1"), "c.tar.gz");
        assert_eq!(super::url_file_name("http://h/"), "__unnamed__");
        assert_eq!(super::url_file_name("http://h"), "__unnamed__");
    }
}
