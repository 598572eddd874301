//! The build context: what the client sent (a tar, plain or compressed, or a bare
//! Dockerfile) unpacked into a directory of the build, with `.dockerignore` applied
//! on the daemon's side too (clients that tar a directory themselves, such as
//! docker-py's `custom_context`, may not have), and the Dockerfile read from it.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use berth_image::UnpackLimit;

use crate::error::BuildError;
use crate::ignore::{Matcher, parse_dockerignore};

/// A received context. The directory is removed when this is dropped.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    dockerfile: String,
    dockerfile_name: String,
}

impl Drop for Context {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Compressed-stream and tar magic at the start of a context.
fn looks_like_archive(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.len() >= 262 && &head[257..262] == b"ustar")
        // An empty archive is two zero blocks.
        || (head.len() >= 512 && head.iter().all(|b| *b == 0))
}

impl Context {
    /// Unpacks `input` into `root` (created; must not exist) and reads the Dockerfile
    /// `dockerfile` (a path in the context) from it.
    pub fn receive<R: Read>(mut input: R, root: &Path, dockerfile: &str, limit: &UnpackLimit) -> Result<Context, BuildError> {
        std::fs::create_dir(root)?;
        let mut ctx = Context { root: root.to_path_buf(), dockerfile: String::new(), dockerfile_name: String::new() };
        let mut head = Vec::with_capacity(512);
        (&mut input).take(512).read_to_end(&mut head)?;
        let name = if dockerfile.is_empty() { "Dockerfile" } else { dockerfile };
        if head.is_empty() {
            return Err(BuildError::invalid("the build context is empty: send a tar of the context (or a Dockerfile)"));
        }
        if looks_like_archive(&head) {
            let plain = berth_image::Compression::detect(&head).is_ok_and(|c| c == berth_image::Compression::None);
            let stream = io::Cursor::new(head).chain(input);
            let r = if plain {
                berth_image::layer::unpack::extract_archive(PadToBlocks { inner: stream, count: 0, pad: None }, root, limit)
            } else {
                berth_image::layer::unpack::extract_archive(stream, root, limit)
            };
            r.map_err(|e| BuildError::invalid(format!("failed to read the build context: {e}")))?;
        } else {
            // A bare Dockerfile (`docker build - < Dockerfile` through clients that
            // do not wrap it in a tar, or a remote text file).
            let mut text = head;
            input.take(16 << 20).read_to_end(&mut text)?;
            if text.contains(&0) {
                return Err(BuildError::invalid("the build context is neither a tar archive nor a Dockerfile"));
            }
            std::fs::write(root.join(name), &text)?;
        }
        ctx.dockerfile_name = ctx.find_dockerfile(name)?;
        ctx.dockerfile = std::fs::read_to_string(root.join(&ctx.dockerfile_name))
            .map_err(|e| BuildError::invalid(format!("failed to read dockerfile: {e}")))?;
        ctx.apply_dockerignore()?;
        Ok(ctx)
    }

    /// The Dockerfile's path in the context: as given, else (the default name only)
    /// its lowercase spelling, as dockerd accepts.
    fn find_dockerfile(&self, name: &str) -> Result<String, BuildError> {
        let clean = berth_types::paths::clean_abs(name).trim_start_matches('/').to_string();
        let missing = || BuildError::invalid(format!("Cannot locate specified Dockerfile: {name}"));
        if name.split('/').any(|c| c == "..") {
            return Err(BuildError::invalid(format!("Forbidden path outside the build context: {name}")));
        }
        let is_file = |rel: &str| -> bool {
            crate::scoped::resolve(&self.root, rel, true).map(|p| p.is_file()).unwrap_or(false)
        };
        if is_file(&clean) {
            return Ok(clean);
        }
        if name == "Dockerfile" && is_file("dockerfile") {
            return Ok("dockerfile".into());
        }
        Err(missing())
    }

    /// Removes what `.dockerignore` (or `<Dockerfile>.dockerignore`) excludes. The
    /// Dockerfile and the ignore file stay readable by the build only as the
    /// Dockerfile already read; they are removed like any other file when excluded.
    fn apply_dockerignore(&self) -> Result<(), BuildError> {
        let specific = self.root.join(format!("{}.dockerignore", self.dockerfile_name));
        let general = self.root.join(".dockerignore");
        let text = match std::fs::read_to_string(&specific) {
            Ok(t) => t,
            Err(_) => match std::fs::read_to_string(&general) {
                Ok(t) => t,
                Err(_) => return Ok(()),
            },
        };
        let patterns = parse_dockerignore(&text);
        if patterns.is_empty() {
            return Ok(());
        }
        let m = Matcher::from_patterns(&patterns).map_err(|e| BuildError::invalid(format!("failed to parse .dockerignore: {e}")))?;
        prune(&self.root, "", &m)?;
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dockerfile(&self) -> &str {
        &self.dockerfile
    }

    pub fn dockerfile_name(&self) -> &str {
        &self.dockerfile_name
    }
}

/// Ends a tar stream the way tar requires: the docker CLI sends a context whose
/// Dockerfile lives outside it (`-f ../Dockerfile`) without the last entry's padding
/// and the end-of-archive blocks, which dockerd's reader tolerates. At the input's
/// end this adds zeros up to the next 512-byte block and two empty blocks; a
/// complete archive never reads them.
struct PadToBlocks<R> {
    inner: R,
    count: u64,
    /// Zeros still to give once the input has ended.
    pad: Option<u64>,
}

impl<R: Read> Read for PadToBlocks<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pad.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.count += n as u64;
                return Ok(n);
            }
            // Compressed streams end on their own terms; this pads what they yield too.
            self.pad = Some((512 - self.count % 512) % 512 + 1024);
        }
        let left = self.pad.unwrap_or(0);
        let n = (left as usize).min(buf.len());
        buf[..n].fill(0);
        self.pad = Some(left - n as u64);
        Ok(n)
    }
}

/// Removes excluded entries below `dir` (context path `rel`).
fn prune(dir: &Path, rel: &str, m: &Matcher) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let is_dir = entry.file_type()?.is_dir();
        if m.excluded(&path) {
            if is_dir && m.may_include_under(&path) {
                prune(&entry.path(), &path, m)?;
            } else if is_dir {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        } else if is_dir {
            prune(&entry.path(), &path, m)?;
        }
    }
    Ok(())
}
