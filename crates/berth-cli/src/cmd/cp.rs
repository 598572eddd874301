//! `cp`: files between a container and the local filesystem, as tar streams through
//! the archive endpoints, renaming the top-level entry the way `docker cp` does.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use clap::{ArgAction, Args};

use crate::client::{BodyStream, Call, reader_body};
use crate::stream::bridge;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::format::units;

#[derive(Debug, Clone, Args)]
#[command(about = "Copy files/folders between a container and the local filesystem")]
pub struct CpArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Archive mode (copy all uid/gid information)")]
    pub archive: bool,
    #[arg(short = 'L', long = "follow-link", action = ArgAction::SetTrue, help = "Always follow symbol link in SRC_PATH")]
    pub follow_link: bool,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached")]
    pub quiet: bool,
    #[arg(value_name = "SRC")]
    pub src: String,
    #[arg(value_name = "DEST")]
    pub dest: String,
}

/// `CONTAINER:PATH` → (container, path); a local path → (None, path). A colon after
/// a slash is part of a local path, as docker decides.
pub fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.contains('/') && !c.is_empty() => (Some(c), p),
        _ => (None, arg),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PathStat {
    name: String,
    mode: u32,
    link_target: String,
}

const MODE_DIR: u32 = 1 << 31;

fn path_stat(res: &hyper::Response<hyper::body::Incoming>) -> Option<PathStat> {
    let h = res.headers().get("X-Docker-Container-Path-Stat")?.to_str().ok()?;
    let json = base64::engine::general_purpose::STANDARD.decode(h).ok()?;
    serde_json::from_slice(&json).ok()
}

fn clean_rel(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Unpacks a tar stream into `dir`, renaming a leading `from` component to `to`.
fn extract(tar_stream: impl std::io::Read, dir: &Path, rebase: Option<(&str, &str)>, keep_owner: bool) -> Result<()> {
    let mut ar = tar::Archive::new(tar_stream);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(keep_owner);
    ar.set_overwrite(true);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let rel = clean_rel(&path).ok_or_else(|| Error::msg(format!("refusing to extract {:?}: it leaves the destination", path)))?;
        let rel = match rebase {
            Some((from, to)) => match rel.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => PathBuf::from(to),
                Ok(rest) => Path::new(to).join(rest),
                Err(_) => rel,
            },
            None => rel,
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dir.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        entry.unpack(&target)?;
    }
    Ok(())
}

/// Writes a tar of local `src` to `out`, its top-level entry named `name`.
fn archive<W: std::io::Write>(out: W, src: &Path, name: &str, follow: bool) -> Result<W> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(follow);
    let meta = if follow { std::fs::metadata(src) } else { std::fs::symlink_metadata(src) }
        .map_err(|e| Error::msg(format!("lstat {}: {}", src.display(), crate::opts::parse::io_msg(&e))))?;
    if meta.is_dir() {
        b.append_dir_all(name, src)?;
    } else {
        b.append_path_with_name(src, name)?;
    }
    Ok(b.into_inner()?)
}

pub async fn cp(ctx: &Ctx, a: CpArgs) -> Result<()> {
    let (src_ctr, src_path) = split_cp_arg(&a.src);
    let (dst_ctr, dst_path) = split_cp_arg(&a.dest);
    match (src_ctr, dst_ctr) {
        (Some(_), Some(_)) => Err(Error::msg("copying between containers is not supported")),
        (None, None) => Err(Error::msg("must specify at least one container source")),
        (Some(c), None) => copy_from(ctx, &a, c, src_path, dst_path).await,
        (None, Some(c)) => copy_to(ctx, &a, src_path, c, dst_path).await,
    }
}

async fn copy_from(ctx: &Ctx, a: &CpArgs, ctr: &str, src: &str, dest: &str) -> Result<()> {
    if src.is_empty() {
        return Err(Error::msg("source path cannot be empty"));
    }
    let c = ctx.client().await?;
    let res = c.send(Call::get(format!("/containers/{ctr}/archive")).query("path", src)).await?;
    let stat = path_stat(&res).unwrap_or_default();
    let mut body = BodyStream::new(res);
    if dest == "-" {
        let mut out = ctx.io.out.clone();
        while let Some(chunk) = body.chunk().await? {
            out.write_all(&chunk)?;
        }
        return Ok(out.flush()?);
    }
    let dest_path = ctx.cwd.join(dest);
    let src_is_dir = stat.mode & MODE_DIR != 0;
    let src_base = if stat.name.is_empty() {
        Path::new(src).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    } else {
        stat.name.clone()
    };
    // Where the archive goes, decided before any data is read (as docker does).
    let (dir, rebase) = match std::fs::metadata(&dest_path) {
        Ok(m) if m.is_dir() => (dest_path.clone(), None),
        Ok(_) if src_is_dir => return Err(Error::msg(format!("cannot copy a directory to a file: {dest}"))),
        _ => {
            if dest.ends_with('/') {
                return Err(Error::msg(format!("destination directory {dest} does not exist")));
            }
            let parent = dest_path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
            if !parent.is_dir() {
                return Err(Error::msg(format!("destination directory {} does not exist", parent.display())));
            }
            let to = dest_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (parent, Some((src_base, to)))
        }
    };
    // The archive streams from the daemon into the extractor through a bounded channel.
    let keep_owner = a.archive;
    let (tx, rx) = tokio::sync::mpsc::channel(bridge::DEPTH);
    let extractor = tokio::task::spawn_blocking(move || {
        let rebase = rebase.as_ref().map(|(f, t)| (f.as_str(), t.as_str()));
        extract(bridge::ChunkReader::new(rx), &dir, rebase, keep_owner)
    });
    let mut size = 0usize;
    while let Some(chunk) = body.chunk().await? {
        size += chunk.len();
        if tx.send(Ok(chunk)).await.is_err() {
            break; // the extractor stopped; its error says why
        }
    }
    drop(tx);
    extractor.await.map_err(|e| Error::msg(e.to_string()))??;
    if !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ctx.io.eprintln(&format!("Successfully copied {} to {}", units::human_size_precision(size as f64, 3), dest_path.display()));
    }
    Ok(())
}

async fn copy_to(ctx: &Ctx, a: &CpArgs, src: &str, ctr: &str, dest: &str) -> Result<()> {
    if dest.is_empty() {
        return Err(Error::msg("destination path cannot be empty"));
    }
    let c = ctx.client().await?;
    // Where the copy lands depends on whether DEST exists in the container and is a directory.
    let dest_stat = match c.send(Call::head(format!("/containers/{ctr}/archive")).query("path", dest)).await {
        Ok(res) => path_stat(&res),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let (body, target_dir, builder) = if src == "-" {
        match &dest_stat {
            Some(s) if s.mode & MODE_DIR != 0 => {}
            _ => return Err(Error::msg(format!("destination \"{ctr}:{dest}\" must be a directory"))),
        }
        (reader_body(tokio::io::stdin()), dest.to_string(), None)
    } else {
        let src_path = ctx.cwd.join(src);
        let meta = if a.follow_link { std::fs::metadata(&src_path) } else { std::fs::symlink_metadata(&src_path) }
            .map_err(|e| Error::msg(format!("lstat {}: {}", src_path.display(), crate::opts::parse::io_msg(&e))))?;
        let src_name = src_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into());
        let (name, dir) = match &dest_stat {
            Some(s) if s.mode & MODE_DIR != 0 => (src_name, dest.to_string()),
            Some(_) if meta.is_dir() => return Err(Error::msg(format!("cannot copy a directory to a file: {dest}"))),
            _ => {
                if dest.ends_with('/') && dest_stat.is_none() {
                    return Err(Error::msg(format!("destination directory {ctr}:{dest} does not exist")));
                }
                let p = Path::new(dest);
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let dir = p.parent().map(|d| d.to_string_lossy().into_owned()).filter(|d| !d.is_empty()).unwrap_or_else(|| "/".into());
                (name, dir)
            }
        };
        // The archive is built on a blocking thread and streamed as the request body.
        let follow = a.follow_link;
        let (tx, rx) = tokio::sync::mpsc::channel(bridge::DEPTH);
        let builder = tokio::task::spawn_blocking(move || {
            let abort = tx.clone();
            let out = std::io::BufWriter::with_capacity(64 * 1024, bridge::ChunkWriter::new(tx));
            let r = archive(out, &src_path, &name, follow).and_then(|w| w.into_inner().map(|_| ()).map_err(|e| Error::Io(e.into_error())));
            if let Err(e) = &r {
                // Abort the upload rather than send a truncated archive.
                let _ = abort.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
            r
        });
        (bridge::channel_body(rx), dir, Some(builder))
    };
    let call = Call::put(format!("/containers/{ctr}/archive"))
        .query("path", target_dir)
        .query("noOverwriteDirNonDir", "true")
        .flag("copyUIDGID", a.archive)
        .body(body, "application/x-tar");
    let sent = c.bytes(call).await;
    if let Some(b) = builder {
        // A local failure explains a failed upload better than the daemon's view of it.
        b.await.map_err(|e| Error::msg(e.to_string()))??;
    }
    sent?;
    if !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ctx.io.eprintln(&format!("Successfully copied to {ctr}:{dest}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_container_paths() {
        assert_eq!(split_cp_arg("web:/etc/passwd"), (Some("web"), "/etc/passwd"));
        assert_eq!(split_cp_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_cp_arg("/tmp/x"), (None, "/tmp/x"));
        assert_eq!(split_cp_arg("dir/a:b"), (None, "dir/a:b"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
    }

    #[test]
    fn extracts_the_trace_archive_with_renaming() {
        // The bytes dockerd sent for `docker cp trace-web:/etc/passwd ./passwd.copy`.
        let mut b = tar::Builder::new(Vec::new());
        let data = b"root:x:0:0:root:/root:/bin/sh\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "passwd", &data[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        extract(bytes.as_slice(), dir.path(), Some(("passwd", "passwd.copy")), false).unwrap();
        assert_eq!(std::fs::read(dir.path().join("passwd.copy")).unwrap(), data);
        extract(bytes.as_slice(), dir.path(), None, false).unwrap();
        assert!(dir.path().join("passwd").is_file());
    }

    #[test]
    fn refuses_paths_that_escape() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../evil");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(extract(bytes.as_slice(), &sub, None, false).is_err());
        assert!(!dir.path().join("evil").exists());
    }

    #[test]
    fn archives_with_a_new_top_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), "1").unwrap();
        let t = archive(Vec::new(), &dir.path().join("d"), "renamed", false).unwrap();
        let mut ar = tar::Archive::new(t.as_slice());
        let names: Vec<String> = ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert!(names.contains(&"renamed/f".to_string()), "{names:?}");
    }
}
