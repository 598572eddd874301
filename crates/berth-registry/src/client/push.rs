//! Push: every blob of the image (skipped when the registry has it, mounted from
//! another repository of the same registry when the store knows one, else uploaded in
//! one request or in chunks), then the manifest.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};

use super::credentials::AuthConfig;
use super::error::RegistryError;
use super::progress::{Progress, ProgressSink};
use super::{RegistryClient, Session, check, pull_scope, push_scope};
use crate::digest::{Digest, Hasher};
use crate::manifest::{self, Descriptor, ImageManifest, MAX_MANIFEST_SIZE, Manifest};
use crate::reference::Reference;
use crate::store::{BlobSource, ContentStore, StoreError};

/// Options of one push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub auth: AuthConfig,
}

/// What a push did: the manifest digest the registry now serves (the RepoDigest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    pub reference: Reference,
    pub digest: Digest,
    pub size: u64,
}

impl PushedImage {
    pub fn repo_digest(&self) -> String {
        self.reference.repository_only().with_digest(self.digest.clone()).familiar_string()
    }
}

/// How a blob got to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Existed,
    Mounted(String),
    Uploaded,
}

/// Mount attempts per blob, as Docker limits them.
const MAX_MOUNT_ATTEMPTS: usize = 3;
const READ_CHUNK: usize = 1 << 20;

impl RegistryClient {
    /// Pushes the image whose manifest (or index) is `manifest` in `store` to `target`
    /// (a tag, or a digest).
    pub async fn push(
        &self,
        target: &Reference,
        manifest: &Descriptor,
        store: Arc<dyn ContentStore>,
        opts: &PushOptions,
        progress: &dyn ProgressSink,
    ) -> Result<PushedImage, RegistryError> {
        progress.emit(Progress::PushRefersTo {
            repository: target.full_name(),
        });
        let bytes = read_blob(&store, &manifest.digest, MAX_MANIFEST_SIZE).await?;
        let what = format!("manifest {}", manifest.digest);
        let (media_type, parsed) = manifest::parse(Some(&manifest.media_type), &bytes)
            .map_err(|source| RegistryError::Manifest { what: what.clone(), source })?;

        // Ask for pull on every repository we may mount from, with push on the target.
        let mut scopes = vec![push_scope(target.repository())];
        for src in self.mount_sources(target, &store, &parsed).await? {
            let sc = pull_scope(&src);
            if !scopes.contains(&sc) {
                scopes.push(sc);
            }
        }
        let ep = self.endpoint(target.registry()).await?;
        let s = self.session(ep, scopes, &opts.auth);

        match &parsed {
            Manifest::Image(m) => self.push_image_blobs(&s, target, m, &store, progress).await?,
            Manifest::Index(index) => {
                for child in &index.manifests {
                    let child_bytes = read_blob(&store, &child.digest, MAX_MANIFEST_SIZE).await?;
                    let cwhat = format!("manifest {}", child.digest);
                    let (ctype, cparsed) = manifest::parse(Some(&child.media_type), &child_bytes)
                        .map_err(|source| RegistryError::Manifest { what: cwhat, source })?;
                    match &cparsed {
                        Manifest::Image(m) => self.push_image_blobs(&s, target, m, &store, progress).await?,
                        Manifest::Index(_) => {
                            return Err(RegistryError::UnsupportedMediaType {
                                what: format!("nested index {} in {}", child.digest, manifest.digest),
                                media_type: ctype,
                            });
                        }
                    }
                    put_manifest(&s, target, &child.digest.to_string(), &ctype, child_bytes).await?;
                }
            }
        }
        let digest = put_manifest(&s, target, &target.tag_or_digest(), &media_type, bytes.clone()).await?;
        if digest != manifest.digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("pushed manifest for {}", target.familiar_string()),
                expected: manifest.digest.clone(),
                actual: digest.to_string(),
            });
        }
        progress.emit(Progress::PushDigest {
            tag: target.tag_or_digest(),
            digest: digest.to_string(),
            size: bytes.len() as u64,
        });
        Ok(PushedImage {
            reference: target.clone(),
            digest,
            size: bytes.len() as u64,
        })
    }

    /// Repositories of the target's registry that hold some blob of the image.
    async fn mount_sources(&self, target: &Reference, store: &Arc<dyn ContentStore>, parsed: &Manifest) -> Result<Vec<String>, RegistryError> {
        let mut digests: Vec<Digest> = Vec::new();
        match parsed {
            Manifest::Image(m) => digests.extend(m.layers.iter().map(|l| l.digest.clone())),
            Manifest::Index(i) => {
                for c in &i.manifests {
                    if let Ok(b) = read_blob(store, &c.digest, MAX_MANIFEST_SIZE).await
                        && let Ok((_, Manifest::Image(m))) = manifest::parse(Some(&c.media_type), &b)
                    {
                        digests.extend(m.layers.iter().map(|l| l.digest.clone()));
                    }
                }
            }
        }
        let st = store.clone();
        let (registry, repo) = (target.registry().to_string(), target.repository().to_string());
        let repos = tokio::task::spawn_blocking(move || {
            let mut out: Vec<String> = Vec::new();
            for d in digests {
                for s in st.sources(&d) {
                    if s.registry == registry && s.repository != repo && !out.contains(&s.repository) {
                        out.push(s.repository);
                    }
                }
            }
            out
        })
        .await
        .map_err(|e| RegistryError::Store(StoreError::Other(e.to_string())))?;
        Ok(repos)
    }

    async fn push_image_blobs(
        &self,
        s: &Session<'_>,
        target: &Reference,
        m: &ImageManifest,
        store: &Arc<dyn ContentStore>,
        progress: &dyn ProgressSink,
    ) -> Result<(), RegistryError> {
        // Docker names pushed layers by their DiffID; fall back to the blob digest.
        let config = read_blob(store, &m.config.digest, 64 << 20).await?;
        let diff_ids: Vec<Digest> = serde_json::from_slice::<serde_json::Value>(&config)
            .ok()
            .and_then(|v| v["rootfs"]["diff_ids"].as_array().cloned())
            .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        let ids: Vec<String> = m
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                diff_ids
                    .get(i)
                    .filter(|_| diff_ids.len() == m.layers.len())
                    .unwrap_or(&l.digest)
                    .short_id()
                    .to_string()
            })
            .collect();
        let limit = self.config().max_concurrent_uploads.max(1);
        for id in &ids {
            progress.emit(Progress::Preparing { id: id.clone() });
        }
        for id in ids.iter().skip(limit) {
            progress.emit(Progress::PushWaiting { id: id.clone() });
        }
        let jobs: Vec<(Descriptor, String)> = m.layers.iter().cloned().zip(ids).collect();
        futures_util::stream::iter(jobs)
            .map(|(l, id)| async move {
                let sent = self.push_blob(s, target, &l, store, Some((progress, id.as_str()))).await?;
                match sent {
                    Sent::Existed => progress.emit(Progress::LayerAlreadyExists { id }),
                    Sent::Mounted(repository) => progress.emit(Progress::MountedFrom { id, repository }),
                    Sent::Uploaded => progress.emit(Progress::Pushed { id }),
                }
                Ok::<(), RegistryError>(())
            })
            .buffer_unordered(limit)
            .try_collect::<Vec<()>>()
            .await?;
        self.push_blob(s, target, &m.config, store, None).await?;
        Ok(())
    }

    /// Gets one blob into the target repository: HEAD, mount, or upload.
    async fn push_blob(
        &self,
        s: &Session<'_>,
        target: &Reference,
        desc: &Descriptor,
        store: &Arc<dyn ContentStore>,
        progress: Option<(&dyn ProgressSink, &str)>,
    ) -> Result<Sent, RegistryError> {
        let repo = target.repository();
        let what = format!("blob {} in {}", desc.digest, target.familiar_name());
        let blob_url = s.ep.url(&format!("v2/{repo}/blobs/{}", desc.digest))?;
        let head = s.send_raw(|http| Ok(http.head(blob_url.clone()))).await?;
        let source = BlobSource {
            registry: target.registry().to_string(),
            repository: repo.to_string(),
        };
        match head.status() {
            st if st.is_success() => {
                record_source(store, &desc.digest, &source).await;
                return Ok(Sent::Existed);
            }
            StatusCode::NOT_FOUND => {}
            _ => {
                check(head, &s.ep.registry, &what).await?;
            }
        }

        let uploads = s.ep.url(&format!("v2/{repo}/blobs/uploads/"))?;
        let mut location = None;
        let st = store.clone();
        let d = desc.digest.clone();
        let sources = tokio::task::spawn_blocking(move || st.sources(&d))
            .await
            .map_err(|e| RegistryError::Store(StoreError::Other(e.to_string())))?;
        for src in sources
            .iter()
            .filter(|x| x.registry == target.registry() && x.repository != repo)
            .take(MAX_MOUNT_ATTEMPTS)
        {
            let mut url = uploads.clone();
            url.query_pairs_mut()
                .append_pair("mount", &desc.digest.to_string())
                .append_pair("from", &src.repository);
            let resp = s.send(&what, |http| Ok(http.post(url.clone()).header(CONTENT_LENGTH, 0))).await?;
            if resp.status() == StatusCode::CREATED {
                record_source(store, &desc.digest, &source).await;
                return Ok(Sent::Mounted(src.repository.clone()));
            }
            // 202: the registry started an ordinary upload instead. Keep the first such
            // session for the upload; cancel the ones later attempts open.
            let session = upload_location(s, &resp)?;
            match location {
                None => location = Some(session),
                Some(_) => {
                    let _ = s.send_raw(|http| Ok(http.delete(session.clone()))).await;
                }
            }
        }
        let location = match location {
            Some(l) => l,
            None => {
                let resp = s.send(&what, |http| Ok(http.post(uploads.clone()).header(CONTENT_LENGTH, 0))).await?;
                upload_location(s, &resp)?
            }
        };

        let counter = Arc::new(AtomicU64::new(0));
        let upload = async {
            match self.config().upload_chunk_size {
                None => {
                    let mut url = location.clone();
                    url.query_pairs_mut().append_pair("digest", &desc.digest.to_string());
                    s.send(&what, |http| {
                        Ok(http
                            .put(url.clone())
                            .header(CONTENT_TYPE, "application/octet-stream")
                            .header(CONTENT_LENGTH, desc.size)
                            .body(blob_body(store, &desc.digest, 0, desc.size, counter.clone())?))
                    })
                    .await?;
                }
                Some(chunk) => {
                    let chunk = chunk.max(1);
                    let mut loc = location.clone();
                    let mut offset = 0u64;
                    while offset < desc.size {
                        let n = chunk.min(desc.size - offset);
                        let resp = s
                            .send(&what, |http| {
                                Ok(http
                                    .patch(loc.clone())
                                    .header(CONTENT_TYPE, "application/octet-stream")
                                    .header(CONTENT_LENGTH, n)
                                    .header("content-range", format!("{offset}-{}", offset + n - 1))
                                    .body(blob_body(store, &desc.digest, offset, n, counter.clone())?))
                            })
                            .await?;
                        loc = upload_location(s, &resp)?;
                        offset += n;
                    }
                    let mut url = loc;
                    url.query_pairs_mut().append_pair("digest", &desc.digest.to_string());
                    s.send(&what, |http| Ok(http.put(url.clone()).header(CONTENT_LENGTH, 0))).await?;
                }
            }
            Ok::<(), RegistryError>(())
        };
        match progress {
            None => upload.await?,
            Some((sink, id)) => {
                let total = desc.size;
                let report = |c: u64| {
                    sink.emit(Progress::Pushing {
                        id: id.to_string(),
                        current: c,
                        total,
                    })
                };
                tokio::pin!(upload);
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                let mut last = u64::MAX;
                loop {
                    tokio::select! {
                        r = &mut upload => {
                            r?;
                            break;
                        }
                        _ = tick.tick() => {
                            let c = counter.load(Ordering::Relaxed);
                            if c != last {
                                last = c;
                                report(c);
                            }
                        }
                    }
                }
                if last != total {
                    report(total);
                }
            }
        }
        record_source(store, &desc.digest, &source).await;
        Ok(Sent::Uploaded)
    }
}

/// The upload URL a POST/PATCH answered with (relative or absolute).
fn upload_location(s: &Session<'_>, resp: &reqwest::Response) -> Result<reqwest::Url, RegistryError> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol {
            registry: s.ep.registry.clone(),
            message: format!("upload answer {} without a Location", resp.status()),
        })?;
    // Relative locations are relative to the request, which is on the endpoint's base.
    resp.url().join(loc).map_err(|e| RegistryError::Protocol {
        registry: s.ep.registry.clone(),
        message: format!("bad upload Location {loc:?}: {e}"),
    })
}

/// A request body streaming `len` bytes of a stored blob from `offset`, read on a
/// blocking thread; `counter` counts bytes handed to the connection.
fn blob_body(store: &Arc<dyn ContentStore>, digest: &Digest, offset: u64, len: u64, counter: Arc<AtomicU64>) -> Result<reqwest::Body, RegistryError> {
    let mut reader = store.reader(digest)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let result = (|| -> std::io::Result<()> {
            if offset > 0 {
                reader.seek(SeekFrom::Start(offset))?;
            }
            let mut left = len;
            while left > 0 {
                let mut buf = vec![0u8; READ_CHUNK.min(left as usize)];
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("blob ended {left} bytes early"),
                    ));
                }
                buf.truncate(n);
                left -= n as u64;
                if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                    return Ok(()); // the request was dropped
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
        .inspect(move |item| {
            if let Ok(b) = item {
                counter.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
        });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// PUTs a manifest; returns the digest the registry reports (or the one computed).
async fn put_manifest(s: &Session<'_>, target: &Reference, reference: &str, media_type: &str, bytes: Vec<u8>) -> Result<Digest, RegistryError> {
    let url = s.ep.url(&format!("v2/{}/manifests/{reference}", target.repository()))?;
    let what = format!("manifest {reference} of {}", target.familiar_name());
    let resp = s
        .send(&what, |http| {
            Ok(http
                .put(url.clone())
                .header(CONTENT_TYPE, media_type)
                .body(bytes.clone()))
        })
        .await?;
    let mut h = Hasher::new(crate::digest::Algorithm::Sha256);
    h.update(&bytes);
    let computed = h.finish();
    let reported: Option<Digest> = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    match reported {
        Some(r) if r.algorithm() == computed.algorithm() && r != computed => Err(RegistryError::DigestMismatch {
            what,
            expected: computed,
            actual: r.to_string(),
        }),
        _ => Ok(computed),
    }
}

async fn read_blob(store: &Arc<dyn ContentStore>, digest: &Digest, limit: usize) -> Result<Vec<u8>, RegistryError> {
    let st = store.clone();
    let d = digest.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<u8>, StoreError> {
        let r = st.reader(&d)?;
        let mut out = Vec::new();
        r.take(limit as u64 + 1).read_to_end(&mut out)?;
        if out.len() > limit {
            return Err(StoreError::Other(format!("blob {d} is larger than {limit} bytes")));
        }
        Ok(out)
    })
    .await
    .map_err(|e| RegistryError::Store(StoreError::Other(e.to_string())))?
    .map_err(RegistryError::Store)
}

async fn record_source(store: &Arc<dyn ContentStore>, digest: &Digest, source: &BlobSource) {
    let (st, d, s) = (store.clone(), digest.clone(), source.clone());
    let r = tokio::task::spawn_blocking(move || st.record_source(&d, &s)).await;
    if let Ok(Err(e)) = r {
        tracing::warn!("recording where {digest} lives: {e}");
    }
}
