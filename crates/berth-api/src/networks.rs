//! /networks handlers.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_engine::Engine;
use berth_types::network::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};

use crate::util::{ApiResult, Params, json, no_content, ok_json, parse_body};

type St = State<Arc<Engine>>;

async fn body<T: serde::de::DeserializeOwned + Default>(req: Request) -> Result<T, crate::util::ApiError> {
    let bytes = crate::util::read_body(req, crate::util::MAX_SMALL_BODY).await?;
    parse_body(&bytes)
}

pub async fn list(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let v = req.extensions().get::<crate::ApiVersion>().copied().unwrap_or_default();
    let mut list = e.network_list(&p.filters()?).await?;
    if crate::compat::network_list_detailed(v) {
        // Before 1.28 each network lists its containers, as inspect does.
        for n in list.iter_mut() {
            if let Ok(full) = e.network_inspect(&n.id).await {
                *n = full;
            }
        }
    }
    ok_json(&list)
}

pub async fn create(State(e): St, req: Request) -> ApiResult {
    let b: NetworkCreateRequest = body(req).await?;
    Ok(json(StatusCode::CREATED, &e.network_create(b).await?))
}

pub async fn inspect(State(e): St, Path(id): Path<String>) -> ApiResult {
    ok_json(&e.network_inspect(&id).await?)
}

pub async fn remove(State(e): St, Path(id): Path<String>) -> ApiResult {
    e.network_remove(&id).await?;
    no_content()
}

pub async fn connect(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let v = req.extensions().get::<crate::ApiVersion>().copied().unwrap_or_default();
    let bytes = crate::util::read_body(req, crate::util::MAX_SMALL_BODY).await?;
    let mut value = crate::util::parse_value(&bytes)?;
    crate::compat::network_connect(v, &mut value);
    let b: NetworkConnectRequest = crate::util::from_value(value)?;
    e.net_connect(&b.container, &id, b.endpoint_config.unwrap_or_default()).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn disconnect(State(e): St, Path(id): Path<String>, req: Request) -> ApiResult {
    let b: NetworkDisconnectRequest = body(req).await?;
    e.net_disconnect(&b.container, &id, b.force).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn prune(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    ok_json(&e.network_prune(&p.filters()?).await?)
}
