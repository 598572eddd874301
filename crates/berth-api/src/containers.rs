//! /containers handlers: parse, call the engine, encode.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_engine::{Engine, Error, ListOptions, LogOptions, WaitCondition};
use berth_types::container::{CreateRequest, UpdateConfig};
use berth_types::stdcopy::{self, Stream};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::hijack::{self, AttachSpec};
use crate::util::{ApiError, ApiResult, ChannelWriter, Params, body_reader, from_value, invalid, json, no_content, ok_json, ok_json_with, parse_body, parse_value, stream_response};
use crate::{ApiVersion, compat};

fn version(req: &Request) -> ApiVersion {
    req.extensions().get::<ApiVersion>().copied().unwrap_or_default()
}

type St = State<Arc<Engine>>;

async fn body_bytes(req: Request) -> Result<Bytes, ApiError> {
    crate::util::read_body(req, crate::util::MAX_CONTAINER_BODY).await
}

pub async fn list(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let opts = ListOptions {
        all: p.bool("all")?,
        limit: p.int("limit")?.filter(|l| *l > 0).map(|l| l as usize),
        size: p.bool("size")?,
        filters: p.filters()?,
    };
    // Serialised as they are: no version needs a field of the summaries removed (they
    // carry neither 1.46's HostConfig.Annotations nor 1.48's ImageManifestDescriptor).
    ok_json(&e.list_containers(&opts)?)
}

pub async fn create(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let name = p.get("name").map(str::to_string);
    let v = version(&req);
    let platform = compat::platform_param(v, 41, &p).to_string();
    let bytes = body_bytes(req).await?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(invalid("Config cannot be empty in order to create a container"));
    }
    let mut value = parse_value(&bytes)?;
    let warnings = compat::container_create(v, &mut value)?;
    let body: CreateRequest = from_value(value)?;
    let mut r = e.create_container_for(name.as_deref(), body, &platform).await?;
    r.warnings.extend(warnings);
    Ok(json(StatusCode::CREATED, &r))
}

pub async fn inspect(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let v = version(&req);
    ok_json_with(&e.inspect_container(&id, p.bool("size")?)?, |c| compat::container_inspect(v, c))
}

pub async fn top(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    ok_json(&e.top(&id, p.str("ps_args")).await?)
}

pub async fn changes(State(e): St, Path(id): Path<String>) -> ApiResult {
    let ch = e.container_changes(&id).await?;
    ok_json(&ch)
}

pub async fn start(State(e): St, Path(id): Path<String>) -> ApiResult {
    e.start_container(&id).await?;
    no_content()
}

pub async fn stop(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let signal = compat::stop_signal(version(&req), &p);
    e.stop_container(&id, signal.as_deref(), p.int("t")?).await?;
    no_content()
}

pub async fn restart(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let signal = compat::stop_signal(version(&req), &p);
    e.restart_container(&id, signal.as_deref(), p.int("t")?).await?;
    no_content()
}

pub async fn kill(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    e.kill_container(&id, p.get("signal")).await?;
    no_content()
}

pub async fn pause(State(e): St, Path(id): Path<String>) -> ApiResult {
    e.pause_container(&id).await?;
    no_content()
}

pub async fn unpause(State(e): St, Path(id): Path<String>) -> ApiResult {
    e.unpause_container(&id).await?;
    no_content()
}

pub async fn rename(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    e.rename_container(&id, p.str("name")).await?;
    no_content()
}

pub async fn update(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let v = version(&req);
    let mut value = parse_value(&body_bytes(req).await?)?;
    compat::container_update(v, &mut value);
    let body: UpdateConfig = from_value(value)?;
    ok_json(&e.update_container(&id, body).await?)
}

pub async fn remove(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    if p.bool("link")? {
        e.remove_link(&id).await?;
        return no_content();
    }
    e.remove_container(&id, p.bool("force")?, p.bool("v")?).await?;
    no_content()
}

/// `DELETE /containers/{parent}/{alias}`: a link's name has a slash; only `link=1`
/// gives it a meaning (otherwise no container has that name).
pub async fn remove_named_link(State(e): St, Path((parent, alias)): Path<(String, String)>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let name = format!("{parent}/{alias}");
    if !p.bool("link")? {
        return Err(ApiError(Error::no_such_container(&name)));
    }
    e.remove_link(&name).await?;
    no_content()
}

pub async fn resize(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let h = p.int("h")?.unwrap_or(0);
    let w = p.int("w")?.unwrap_or(0);
    if !(0..=u16::MAX as i64).contains(&h) || !(0..=u16::MAX as i64).contains(&w) {
        return Err(invalid("invalid terminal size"));
    }
    e.resize_container(&id, h as u16, w as u16).await?;
    Ok(StatusCode::OK.into_response())
}

/// `wait`: headers go out at once, the body when the condition holds.
pub async fn wait(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let v = version(&req);
    let cond = WaitCondition::parse(&compat::wait_condition(v, &p))?;
    let c = e.container(&id)?;
    let (whole, empty_on_error) = compat::wait_legacy(v);
    if whole {
        // Before 1.30: nothing is sent until the container has stopped.
        let w = e.wait_container(&c.id, cond).await?;
        return ok_json(&w);
    }
    let removed = matches!(p.str("condition"), "removed");
    let (tx, rx) = mpsc::channel(1);
    let engine = e.clone();
    let cid = c.id.clone();
    tokio::spawn(async move {
        let r = engine.wait_container(&cid, cond).await;
        let body = match r {
            Ok(w) => crate::util::line(&w),
            // Before 1.34 a failed removal gave no body at all.
            Err(_) if empty_on_error && removed => Bytes::new(),
            Err(err) => crate::util::line(&berth_types::container::WaitResponse {
                status_code: -1,
                error: Some(berth_types::container::WaitExitError { message: err.message }),
            }),
        };
        let _ = tx.send(Ok(body)).await;
    });
    Ok(stream_response("application/json", rx))
}

pub async fn attach(State(e): St, Path(id): Path<String>, mut req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let (c, rx) = e.attach_output(&id)?;
    let rec = c.snapshot();
    let spec = AttachSpec {
        id: rec.id.clone(),
        tty: rec.config.tty,
        stdin: p.bool("stdin")?,
        stdout: p.bool("stdout")?,
        stderr: p.bool("stderr")?,
        logs: p.bool("logs")?,
        stream: p.bool("stream")?,
        // moby closes the container's stdin at the client's EOF only without a TTY.
        stdin_once: rec.config.stdin_once && !rec.config.tty,
        detach_keys: hijack::parse_detach_keys(p.str("detachKeys"))?,
    };
    let content_type = if spec.tty || !compat::multiplexed_content_type(version(&req)) { hijack::RAW_STREAM } else { hijack::MULTIPLEXED_STREAM };
    if !hijack::wants_upgrade(&req) {
        // A client that does not hijack: output only, as a plain streamed body.
        return Ok(plain_attach(e, spec, rx, content_type));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let place = req.extensions().get::<crate::server::ConnPlace>().cloned();
    tokio::spawn(async move {
        let _place = place; // the client's connection count holds until the stream ends
        if let Ok(up) = on_upgrade.await {
            hijack::run_attach(e, spec, rx, hyper_util::rt::TokioIo::new(up)).await;
        }
    });
    Ok(hijack::switching(content_type))
}

fn plain_attach(e: Arc<Engine>, spec: AttachSpec, mut rx: tokio::sync::broadcast::Receiver<berth_engine::Output>, ct: &str) -> Response {
    let (tx, out) = mpsc::channel(64);
    tokio::spawn(async move {
        if spec.logs
            && let Ok((_, mut lines)) = e.logs(&spec.id, LogOptions { stdout: spec.stdout, stderr: spec.stderr, stdcopy: true, ..Default::default() }) {
                while let Some(l) = lines.recv().await {
                    if tx.send(Ok(l.data)).await.is_err() {
                        return;
                    }
                }
            }
        if !spec.stream {
            return;
        }
        loop {
            match rx.recv().await {
                Ok(berth_engine::Output::Stdout(d)) if spec.stdout => {
                    let b = if spec.tty { d } else { Bytes::from(stdcopy::encode(Stream::Stdout, &d)) };
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
                Ok(berth_engine::Output::Stderr(d)) if spec.stderr => {
                    let b = if spec.tty { d } else { Bytes::from(stdcopy::encode(Stream::Stderr, &d)) };
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
                Ok(berth_engine::Output::End) | Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            }
        }
    });
    stream_response(ct, out)
}

pub async fn logs(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let now = chrono::Utc::now();
    let ts = |k: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        match p.get(k).filter(|s| !s.is_empty() && *s != "0") {
            None => Ok(None),
            Some(v) => berth_engine::util::parse_timestamp(v, now).map(Some).ok_or_else(|| invalid(format!("invalid value for \"{k}\": {v}"))),
        }
    };
    let opts = LogOptions {
        stdout: p.bool("stdout")?,
        stderr: p.bool("stderr")?,
        follow: p.bool("follow")?,
        since: ts("since")?,
        until: ts("until")?,
        tail: match p.str("tail") {
            "" | "all" => None,
            t => Some(t.parse::<usize>().map_err(|_| invalid(format!("invalid value for \"tail\": {t}")))?),
        },
        timestamps: p.bool("timestamps")?,
        stdcopy: true,
        // The docker CLI copies each frame out with a write of its own: records merged
        // into fewer frames make `docker logs` of a large log several times faster, with
        // the same bytes out (berth's CLI reads frames as bytes too). Other clients get a
        // frame per record, as from dockerd.
        merge_frames: req
            .headers()
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ua| ua.starts_with("Docker-Client/") || ua.starts_with("berth-cli/")),
    };
    if !opts.stdout && !opts.stderr {
        return Err(invalid("Bad parameters: you must choose at least one stream"));
    }
    let multiplexed = compat::multiplexed_content_type(version(&req));
    let (tty, mut lines) = e.logs(&id, opts)?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(l) = lines.recv().await {
            // Framed already (unless the container has a TTY).
            if tx.send(Ok(l.data)).await.is_err() {
                return;
            }
        }
    });
    let ct = if tty || !multiplexed { hijack::RAW_STREAM } else { hijack::MULTIPLEXED_STREAM };
    Ok(stream_response(ct, rx))
}

pub async fn stats(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let stream = p.bool_or("stream", true)?;
    let one_shot = compat::stats_one_shot(version(&req), &p)?;
    let c = e.container(&id)?;
    let id = c.id.clone();
    if !stream {
        let first = e.stats_sample(&id, None).await?;
        let s = if one_shot {
            first
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            e.stats_sample(&id, Some(&first)).await?
        };
        return ok_json(&s);
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut prev: Option<berth_types::container::StatsResponse> = None;
        loop {
            let s = match e.stats_sample(&id, prev.as_ref()).await {
                Ok(s) => s,
                Err(_) => return,
            };
            if tx.send(Ok(crate::util::line(&s))).await.is_err() {
                return;
            }
            let running = e.container(&id).map(|c| c.status().is_alive()).unwrap_or(false);
            if !running {
                return;
            }
            prev = Some(s);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(stream_response("application/json", rx))
}

pub async fn export(State(e): St, Path(id): Path<String>) -> ApiResult {
    e.container(&id)?;
    let (tx, rx) = mpsc::channel(16);
    let w = ChannelWriter::new(tx.clone());
    tokio::spawn(async move {
        if let Err(err) = e.export_container(&id, w).await {
            let _ = tx.send(Err(std::io::Error::other(err.message))).await;
        }
    });
    Ok(stream_response("application/x-tar", rx))
}

fn stat_header(stat: &berth_types::container::PathStat) -> HeaderValue {
    use base64::Engine as _;
    let json = serde_json::to_vec(stat).unwrap_or_default();
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json)).unwrap_or(HeaderValue::from_static(""))
}

pub async fn archive_head(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let path = p.get("path").filter(|s| !s.is_empty()).ok_or_else(|| invalid("bad parameter: path cannot be empty"))?;
    let stat = e.archive_stat(&id, path).await?;
    let mut r = StatusCode::OK.into_response();
    r.headers_mut().insert("X-Docker-Container-Path-Stat", stat_header(&stat));
    Ok(r)
}

pub async fn archive_get(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let path = p.get("path").filter(|s| !s.is_empty()).ok_or_else(|| invalid("bad parameter: path cannot be empty"))?.to_string();
    let stat = e.archive_stat(&id, &path).await?;
    let (tx, rx) = mpsc::channel(16);
    let w = ChannelWriter::new(tx.clone());
    tokio::spawn(async move {
        if let Err(err) = e.archive_get(&id, &path, w).await {
            let _ = tx.send(Err(std::io::Error::other(err.message))).await;
        }
    });
    let mut r = stream_response("application/x-tar", rx);
    r.headers_mut().insert("X-Docker-Container-Path-Stat", stat_header(&stat));
    Ok(r)
}

pub async fn archive_put(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let path = p.get("path").filter(|s| !s.is_empty()).ok_or_else(|| invalid("bad parameter: path cannot be empty"))?.to_string();
    let no_overwrite = p.bool("noOverwriteDirNonDir")?;
    let copy_uid = p.bool("copyUIDGID")?;
    let reader = body_reader(req.into_body());
    e.archive_put(&id, &path, reader, no_overwrite, copy_uid).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn prune(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    ok_json(&e.prune_containers(&p.filters()?).await?)
}

pub async fn commit(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let container = p.str("container").to_string();
    if container.is_empty() {
        return Err(ApiError(Error::invalid("a container is required")));
    }
    let repo = p.str("repo");
    let tag = p.str("tag");
    let repo_tag = if repo.is_empty() { None } else if tag.is_empty() { Some(repo.to_string()) } else { Some(format!("{repo}:{tag}")) };
    let changes = p.values("changes").into_iter().flat_map(|c| c.lines().map(String::from).collect::<Vec<_>>()).filter(|c| !c.trim().is_empty()).collect();
    let author = p.str("author").to_string();
    let comment = p.str("comment").to_string();
    let pause = p.bool_or("pause", true)?;
    let bytes = body_bytes(req).await?;
    let cfg: Option<berth_types::container::Config> = if bytes.iter().all(|b| b.is_ascii_whitespace()) || &bytes[..] == b"null" { None } else { Some(parse_body(&bytes)?) };
    let id = e.commit_container(&container, repo_tag, author, comment, changes, cfg, pause).await?;
    Ok(json(StatusCode::CREATED, &berth_types::IdResponse { id }))
}

/// `GET /containers/{id}/attach/ws`: attach over a WebSocket. Output goes out raw
/// (stdout and stderr unframed, as dockerd), in binary messages from API 1.28 and text
/// ones before; messages from the client are the container's stdin, watched for the
/// detach keys. Before API 1.42 the stdin/stdout/stderr parameters are ignored and all
/// three are attached, as dockerd does.
pub async fn attach_ws(State(e): St, Path(id): Path<String>, ws: Result<axum::extract::ws::WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let version = req.extensions().get::<ApiVersion>().copied().unwrap_or_default();
    let keys = hijack::parse_detach_keys(p.str("detachKeys"))?;
    let c = e.container(&id)?;
    let ws = ws.map_err(|r| invalid(format!("not a WebSocket request: {r}")))?;
    let rec = c.snapshot();
    let all = version.0 < 142;
    let spec = AttachSpec {
        id: rec.id.clone(),
        tty: rec.config.tty,
        stdin: all || p.bool("stdin")?,
        stdout: all || p.bool("stdout")?,
        stderr: all || p.bool("stderr")?,
        logs: p.bool("logs")?,
        stream: p.bool("stream")?,
        stdin_once: rec.config.stdin_once && !rec.config.tty,
        detach_keys: keys,
    };
    let binary = version.0 >= 128;
    let (_, rx) = e.attach_output(&id)?;
    Ok(ws.on_upgrade(move |socket| crate::wsattach::run(e, spec, rx, socket, binary)))
}
