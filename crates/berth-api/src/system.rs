//! System handlers: ping, version, info, events, df, and the swarm-family endpoints
//! berth answers as dockerd does outside swarm mode.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_engine::{Engine, Error};
use tokio::sync::mpsc;

use crate::util::{ApiError, ApiResult, Params, invalid, ok_json, stream_response};

type St = State<Arc<Engine>>;

pub async fn ping() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
            (header::HeaderName::from_static("swarm"), "inactive"),
            // The builder berth serves is the classic one (BuildKit would be "2").
            (header::HeaderName::from_static("builder-version"), "1"),
        ],
        "OK",
    )
        .into_response()
}

pub async fn ping_head() -> Response {
    let mut r = ping().await;
    *r.body_mut() = axum::body::Body::empty();
    r.headers_mut().insert(header::CONTENT_LENGTH, header::HeaderValue::from_static("0"));
    r
}

pub async fn version(State(e): St) -> ApiResult {
    ok_json(&e.version())
}

pub async fn info(State(e): St, req: Request) -> ApiResult {
    let v = req.extensions().get::<crate::ApiVersion>().copied().unwrap_or_default();
    crate::util::ok_json_with(&e.info(), |i| crate::compat::info(v, i))
}

pub async fn df(State(e): St, req: Request) -> ApiResult {
    let v = req.extensions().get::<crate::ApiVersion>().copied().unwrap_or_default();
    let p = Params::parse(req.uri().query());
    let types = crate::compat::disk_usage_types(v, &p)?;
    crate::util::ok_json_with(&e.disk_usage().await?, |du| {
        crate::compat::disk_usage(v, du);
        // Only the object types asked for (1.42's `type`); the others are null.
        if !types.is_empty() {
            for (t, key) in [("container", "Containers"), ("image", "Images"), ("volume", "Volumes"), ("build-cache", "BuildCache")] {
                if !types.iter().any(|x| x == t) {
                    du[key] = serde_json::Value::Null;
                }
            }
            if !types.iter().any(|x| x == "image") {
                du["LayersSize"] = serde_json::Value::from(0);
            }
        }
    })
}

pub async fn events(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let filters = p.filters()?;
    filters
        .validate(&["config", "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope", "secret", "service", "type", "volume"])
        .map_err(|x| invalid(x.to_string()))?;
    let now = chrono::Utc::now();
    let parse = |k: &str| -> Result<Option<i64>, ApiError> {
        match p.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(v) => berth_engine::util::parse_timestamp(v, now)
                .map(|t| Some(t.timestamp_nanos_opt().unwrap_or(0)))
                .ok_or_else(|| invalid(format!("invalid value for \"{k}\": {v}"))),
        }
    };
    let since = parse("since")?;
    let until = parse("until")?;
    if let (Some(s), Some(u)) = (since, until)
        && s > u {
            return Err(invalid("`since` time can't be after `until` time"));
        }
    let (past, mut live) = e.events.subscribe();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        if since.is_some() {
            for ev in past {
                if since.is_some_and(|s| ev.time_nano < s) || until.is_some_and(|u| ev.time_nano > u) {
                    continue;
                }
                if berth_engine::events::matches(&filters, &ev) && tx.send(Ok(crate::util::line(&ev))).await.is_err() {
                    return;
                }
            }
        }
        loop {
            let deadline = until.map(|u| {
                let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
                std::time::Duration::from_nanos((u - now).max(0) as u64)
            });
            let next = match deadline {
                Some(d) => match tokio::time::timeout(d, live.recv()).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
                None => tokio::select! {
                    r = live.recv() => r,
                    _ = tx.closed() => return,
                },
            };
            match next {
                Ok(ev) => {
                    if until.is_some_and(|u| ev.time_nano > u) {
                        return;
                    }
                    if berth_engine::events::matches(&filters, &ev) && tx.send(Ok(crate::util::line(&ev))).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    });
    Ok(stream_response("application/json", rx))
}

/// Swarm, node, service, task, secret and config endpoints.
pub async fn not_swarm_manager() -> ApiResult {
    Err(ApiError(Error::unavailable(
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
    )))
}

pub async fn plugins_list() -> ApiResult {
    ok_json(&Vec::<serde_json::Value>::new())
}

pub async fn plugins_unsupported() -> ApiResult {
    Err(ApiError(Error::not_implemented("plugins are not supported by berth")))
}

pub async fn session_unsupported() -> ApiResult {
    Err(ApiError(Error::not_implemented("berth does not support BuildKit sessions")))
}
