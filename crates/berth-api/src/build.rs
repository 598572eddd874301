//! `/build`, `/build/prune`, `/build/cancel`: the classic builder's protocol. The
//! context arrives as the request body (a tar, maybe compressed) or from `remote=`;
//! the answer is a stream of JSON messages (`{"stream": "Step 1/4 : ..."}`,
//! `{"aux": {"ID": ...}}`, `{"errorDetail": ..., "error": ...}`). An error before the
//! first message is an ordinary HTTP error, as dockerd answers it. The build stops
//! (its RUN killed, everything cleaned) when the client goes away.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use berth_build::{BuildError, BuildOptions};
use berth_engine::{Engine, Error};
use berth_types::progress::{ErrorDetail, JsonMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::util::{ApiError, ApiResult, Params, body_reader, invalid, line, ok_json, stream_response};

type St = State<Arc<Engine>>;

/// A JSON-encoded query parameter (`buildargs`, `labels`, `cachefrom`, `ulimits`).
fn json_param<T: serde::de::DeserializeOwned + Default>(p: &Params, k: &str) -> Result<T, ApiError> {
    match p.get(k).filter(|v| !v.is_empty()) {
        None => Ok(T::default()),
        Some(v) => serde_json::from_str(v).map_err(|e| invalid(format!("invalid {k} parameter: {e}"))),
    }
}

fn options(p: &Params, registry_config: Option<String>) -> Result<BuildOptions, ApiError> {
    if p.bool("squash")? {
        return Err(invalid("squash is only supported with experimental mode"));
    }
    if p.str("version") == "2" {
        return Err(invalid("BuildKit (build version 2) is not supported by berth: it speaks the classic builder protocol (the docker CLI uses it without the buildx plugin, or with DOCKER_BUILDKIT=0)"));
    }
    let mut o = BuildOptions::default();
    if let Some(d) = p.get("dockerfile").filter(|d| !d.is_empty()) {
        o.dockerfile = d.to_string();
    }
    o.tags = p.values("t").into_iter().filter(|t| !t.is_empty()).collect();
    o.target = p.get("target").filter(|t| !t.is_empty()).map(str::to_string);
    o.build_args = json_param::<BTreeMap<String, Option<String>>>(p, "buildargs")?;
    o.labels = json_param::<BTreeMap<String, String>>(p, "labels")?;
    o.no_cache = p.bool("nocache")?;
    // `pull` is a bool for the docker CLI; older clients sent the image name.
    o.pull = match p.get("pull") {
        None | Some("") => false,
        Some(v) => berth_types::parse_bool(v).unwrap_or(true),
    };
    o.cache_from = json_param::<Vec<String>>(p, "cachefrom")?;
    o.remove = p.bool_or("rm", true)?;
    o.force_remove = p.bool("forcerm")?;
    o.quiet = p.bool("q")?;
    o.network_mode = p.str("networkmode").to_string();
    o.extra_hosts = p.values("extrahosts").iter().flat_map(|v| v.split(',')).filter(|h| !h.is_empty()).map(str::to_string).collect();
    o.platform = p.get("platform").filter(|v| !v.is_empty()).map(str::to_string);
    let int = |k: &str| -> Result<i64, ApiError> { Ok(p.int(k)?.unwrap_or(0)) };
    o.resources.memory = int("memory")?;
    o.resources.memory_swap = int("memswap")?;
    o.resources.cpu_shares = int("cpushares")?;
    o.resources.cpu_period = int("cpuperiod")?;
    o.resources.cpu_quota = int("cpuquota")?;
    o.resources.shm_size = int("shmsize")?;
    o.resources.cpuset_cpus = p.str("cpusetcpus").to_string();
    o.resources.cgroup_parent = p.str("cgroupparent").to_string();
    o.resources.ulimits = json_param::<Vec<serde_json::Value>>(p, "ulimits")?;
    o.registry_config = registry_config;
    Ok(o)
}

fn error_message(e: &BuildError) -> JsonMessage {
    let mut m = JsonMessage::error(e.message.clone());
    if let Some(code) = e.code {
        m.error_detail = Some(ErrorDetail { code: Some(code), message: e.message.clone() });
    }
    m
}

/// `POST /build`.
pub async fn build(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let registry_config = req.headers().get("X-Registry-Config").and_then(|v| v.to_str().ok()).map(str::to_string);
    let opts = options(&p, registry_config)?;
    let remote = p.get("remote").filter(|r| !r.is_empty()).map(str::to_string);
    let build_id = p.get("buildid").filter(|r| !r.is_empty()).map(str::to_string);
    let cancel = CancellationToken::new();
    let registration = build_id.map(|id| e.register_build(&id, cancel.clone()));

    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel::<JsonMessage>();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<Result<String, BuildError>>();
    let engine = e.clone();
    let build_cancel = cancel.clone();
    let body = req.into_body();
    tokio::spawn(async move {
        let r = match remote {
            Some(url) => match engine.fetch_remote_context(&url).await {
                Ok(file) => engine.build(file, opts, msg_tx, build_cancel).await,
                Err(err) => Err(err),
            },
            None => engine.build(body_reader(body), opts, msg_tx, build_cancel).await,
        };
        drop(registration);
        let _ = done_tx.send(r);
    });

    // Until the first message, a failure is still an HTTP error.
    let mut finished: Option<Result<String, BuildError>> = None;
    let first = tokio::select! {
        m = msg_rx.recv() => m,
        r = &mut done_rx => match r {
            Ok(Err(err)) => {
                // Messages the build sent before failing (quiet mode) come first.
                if let Ok(m) = msg_rx.try_recv() {
                    let (tx, rx) = mpsc::channel(64);
                    let _ = tx.send(Ok(line(&m))).await;
                    while let Ok(m) = msg_rx.try_recv() {
                        let _ = tx.send(Ok(line(&m))).await;
                    }
                    let _ = tx.send(Ok(line(&error_message(&err)))).await;
                    return Ok(stream_response("application/json", rx));
                }
                return Err(ApiError(berth_engine::build::engine_err(&err)));
            }
            Ok(Ok(id)) => {
                finished = Some(Ok(id));
                msg_rx.recv().await
            }
            Err(_) => {
                finished = Some(Err(BuildError::system("the build stopped unexpectedly (see the daemon's log)")));
                msg_rx.recv().await
            }
        },
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<bytes::Bytes>>(64);
    tokio::spawn(async move {
        let mut pending = first;
        loop {
            let Some(m) = pending else { break };
            if tx.send(Ok(line(&m))).await.is_err() {
                cancel.cancel();
                break;
            }
            pending = tokio::select! {
                m = msg_rx.recv() => m,
                _ = tx.closed() => {
                    // The client hung up: stop the build.
                    cancel.cancel();
                    None
                }
            };
        }
        let result = match finished {
            Some(r) => r,
            // The build task died (a bug): say so rather than end the stream silently.
            None => done_rx.await.unwrap_or_else(|_| Err(BuildError::system("the build stopped unexpectedly (see the daemon's log)"))),
        };
        let err = result.err();
        if let Some(err) = err
            && !cancel.is_cancelled() {
                let _ = tx.send(Ok(line(&error_message(&err)))).await;
            }
    });
    Ok(stream_response("application/json", rx))
}

/// `POST /build/prune`.
pub async fn prune(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let all = p.bool("all")?;
    let v = req.extensions().get::<crate::ApiVersion>().copied().unwrap_or_default();
    let (reserved, max_used, _min_free) = crate::compat::build_prune_space(v, &p)?;
    // berth's cache keeps at most `keep` bytes: the reserved space, or the maximum
    // to use when only that is given.
    let keep = if reserved > 0 { reserved } else { max_used };
    let (deleted, reclaimed) = e.build_prune(all, keep, &p.filters()?).await?;
    ok_json(&serde_json::json!({ "CachesDeleted": deleted, "SpaceReclaimed": reclaimed }))
}

/// `POST /build/cancel?id=`.
pub async fn cancel(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let id = p.str("id");
    if id.is_empty() {
        return Err(invalid("build ID not provided"));
    }
    if !e.cancel_build(id) {
        return Err(ApiError(Error::not_found(format!("build {id} not found"))));
    }
    crate::util::ok_empty()
}
