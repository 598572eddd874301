//! /volumes handlers.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use berth_engine::Engine;
use berth_types::volume::{VolumeCreateRequest, VolumeListResponse};

use crate::util::{ApiResult, Params, json, no_content, ok_json, parse_body};

type St = State<Arc<Engine>>;

pub async fn list(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let vols = e.volume_list(&p.filters()?)?;
    ok_json(&VolumeListResponse { volumes: vols, warnings: None })
}

pub async fn create(State(e): St, req: Request) -> ApiResult {
    let bytes = crate::util::read_body(req, crate::util::MAX_SMALL_BODY).await?;
    let body: VolumeCreateRequest = parse_body(&bytes)?;
    Ok(json(StatusCode::CREATED, &e.volume_create(body)?))
}

pub async fn inspect(State(e): St, Path(name): Path<String>) -> ApiResult {
    ok_json(&e.volume_inspect(&name)?)
}

pub async fn remove(State(e): St, Path(name): Path<String>, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    e.volume_remove(&name, p.bool("force")?)?;
    no_content()
}

pub async fn prune(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let mut filters = p.filters()?;
    let v = req.extensions().get::<crate::ApiVersion>().copied().unwrap_or_default();
    crate::compat::volume_prune(v, &mut filters);
    ok_json(&e.volume_prune(&filters)?)
}
