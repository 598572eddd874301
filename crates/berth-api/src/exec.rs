//! /exec handlers.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_engine::Engine;
use berth_types::exec::{ExecCreateRequest, ExecStartRequest};

use crate::hijack;
use crate::util::{ApiResult, Params, from_value, json, ok_json, parse_value};
use crate::{ApiVersion, compat};

type St = State<Arc<Engine>>;

pub async fn create(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let version = req.extensions().get::<ApiVersion>().copied().unwrap_or_default();
    let bytes = crate::util::read_body(req, crate::util::MAX_SMALL_BODY).await?;
    let mut value = parse_value(&bytes)?;
    compat::exec_create(version, &mut value);
    let body: ExecCreateRequest = from_value(value)?;
    if !body.detach_keys.is_empty() {
        hijack::parse_detach_keys(&body.detach_keys)?;
    }
    let id = e.exec_create(&id, body).await?;
    Ok(json(StatusCode::CREATED, &berth_types::IdResponse { id }))
}

pub async fn start(State(e): St, Path(id): Path<String>, mut req: Request) -> ApiResult {
    let version = req.extensions().get::<ApiVersion>().copied().unwrap_or_default();
    let wants_upgrade = hijack::wants_upgrade(&req);
    let on_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
    let place = req.extensions().get::<crate::server::ConnPlace>().cloned();
    let bytes = crate::util::read_body(req, crate::util::MAX_SMALL_BODY).await?;
    let mut value = parse_value(&bytes)?;
    compat::exec_start(version, &mut value);
    let body: ExecStartRequest = from_value(value)?;
    let inst = e.exec_prepare(&id)?;
    if body.detach {
        e.exec_detached(inst).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let cfg = inst.config.clone();
    // As dockerd: the *start* request's Tty decides raw vs stdcopy-framed output;
    // the exec's own Tty (from create) decides whether the process gets a terminal.
    let tty = body.tty;
    let keys = hijack::parse_detach_keys(&cfg.detach_keys)?;
    let content_type = if tty || !compat::multiplexed_content_type(version) { hijack::RAW_STREAM } else { hijack::MULTIPLEXED_STREAM };
    let Some(on_upgrade) = on_upgrade else {
        // No hijack: run it and return its output as the body.
        let session = e.exec_run(&inst).await?;
        let (mut out, mut input) = session.split();
        let _ = input.close().await;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let engine = e.clone();
        tokio::spawn(async move {
            while let Some((kind, data)) = out.next().await {
                let s = if kind == 2 { berth_types::stdcopy::Stream::Stderr } else { berth_types::stdcopy::Stream::Stdout };
                let b = if tty { data } else { bytes::Bytes::from(berth_types::stdcopy::encode(s, &data)) };
                if tx.send(Ok(b)).await.is_err() {
                    break;
                }
            }
            engine.exec_finished(&out.instance);
        });
        return Ok(crate::util::stream_response(content_type, rx));
    };
    tokio::spawn(async move {
        let _place = place; // the client's connection count holds until the stream ends
        let Ok(up) = on_upgrade.await else { return };
        let io = hyper_util::rt::TokioIo::new(up);
        match e.exec_run(&inst).await {
            Ok(session) => {
                if let (true, Some([h, w])) = (cfg.tty, body.console_size)
                    && h > 0 && w > 0 {
                        let _ = e.exec_resize(&inst.id, h as u16, w as u16).await;
                    }
                let (out, input) = session.split();
                hijack::run_exec(e, tty, cfg.attach_stdin, keys, out, input, io).await;
            }
            Err(err) => hijack::write_error(tty, &err.message, io).await,
        }
    });
    Ok(hijack::switching(content_type))
}

pub async fn resize(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let h = p.int("h")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    let w = p.int("w")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    e.exec_resize(&id, h, w).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn inspect(State(e): St, Path(id): Path<String>) -> ApiResult {
    ok_json(&e.exec_inspect(&id)?)
}
