//! /images handlers (and /commit in containers.rs).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_engine::{Engine, Error};
use berth_types::progress::JsonMessage;
use tokio::sync::mpsc;

use crate::util::{ApiError, ApiResult, ChannelWriter, Params, body_reader, line, ok_json, ok_json_with, stream_response};
use crate::{ApiVersion, compat};

fn version(req: &Request) -> ApiVersion {
    req.extensions().get::<ApiVersion>().copied().unwrap_or_default()
}

type St = State<Arc<Engine>>;

pub async fn list(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let mut filters = p.filters()?;
    let v = version(&req);
    // The old `filter=name` parameter (before 1.41); `shared-size` (1.42) is computed
    // only by `system df`, so the list answers -1 as dockerd does when not asked.
    let _shared_size = compat::image_list_params(v, &p, &mut filters)?;
    ok_json_with(&e.image_list(&filters, p.bool("all")?).await?, |l| compat::image_list(v, l))
}

/// `POST /images/create`: import (`fromSrc`) or pull (`fromImage`).
pub async fn create(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    if let Some(src) = p.get("fromSrc") {
        let repo = p.str("repo");
        let tag = p.str("tag");
        let target = if repo.is_empty() { None } else if tag.is_empty() { Some(repo.to_string()) } else { Some(format!("{repo}:{tag}")) };
        let changes: Vec<String> = p.values("changes");
        let message = p.get("message").filter(|m| !m.is_empty()).map(str::to_string);
        if src != "-" {
            return Err(ApiError(Error::invalid("importing from a URL is not supported by berth; pass the archive in the request body (fromSrc=-)")));
        }
        let platform = compat::platform_param(version(&req), 32, &p).to_string();
        let reader = body_reader(req.into_body());
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let msg = match e.image_import_for(reader, target, changes, message, "-".into(), &platform).await {
                Ok(id) => JsonMessage::status(id),
                Err(err) => JsonMessage::error(err.message),
            };
            let _ = tx.send(Ok(line(&msg))).await;
        });
        return Ok(stream_response("application/json", rx));
    }
    if let Some(image) = p.get("fromImage") {
        let auth = req.headers().get("X-Registry-Auth").and_then(|v| v.to_str().ok()).map(str::to_string);
        let all_tags = p.bool("all-tags")? || (p.str("tag").is_empty() && !image.contains(':') && !image.contains('@') && p.get("tag").is_some());
        let platform = compat::platform_param(version(&req), 32, &p).to_string();
        return crate::registry::pull(e, image, p.str("tag"), &platform, auth, all_tags).await;
    }
    Err(ApiError(Error::invalid("either fromImage or fromSrc is required")))
}

/// Image names contain slashes: `/images/{name...}/json` etc. are routed here.
pub async fn by_name(State(e): St, Path(rest): Path<String>, req: Request) -> ApiResult {
    let method = req.method().clone();
    let p = Params::parse(req.uri().query());
    let (name, verb) = match rest.rsplit_once('/') {
        Some((n, v)) if ["json", "history", "tag", "push", "get"].contains(&v) => (n.to_string(), v),
        _ => (rest.clone(), ""),
    };
    match (method.as_str(), verb) {
        ("GET", "json") => {
            let v = version(&req);
            let platform = compat::platform_json(v, 49, &p)?;
            if platform.is_some() && v.since(48) && p.bool("manifests")? {
                return Err(ApiError(Error::invalid("conflicting options: manifests and platform options cannot both be set")));
            }
            let target = match &platform {
                Some(pl) => e.image_for_platform(&name, pl).await?,
                None => name.clone(),
            };
            ok_json_with(&e.images_inspect(&target).await?, |i| compat::image_inspect(v, i))
        }
        ("GET", "history") => {
            let target = match compat::platform_json(version(&req), 48, &p)? {
                Some(pl) => e.image_for_platform(&name, &pl).await?,
                None => name.clone(),
            };
            ok_json(&e.images_history(&target).await?)
        }
        ("POST", "tag") => {
            e.image_tag(&name, p.str("repo"), p.str("tag")).await?;
            Ok(StatusCode::CREATED.into_response())
        }
        ("POST", "push") => {
            let auth = req.headers().get("X-Registry-Auth").and_then(|v| v.to_str().ok()).map(str::to_string);
            crate::registry::push(e, &name, p.str("tag"), auth).await
        }
        ("GET", "get") => {
            let platform = compat::platform_json(version(&req), 48, &p)?;
            save(e, vec![name], platform).await
        }
        ("DELETE", "") => ok_json(&e.image_remove(&name, p.bool("force")?, p.bool("noprune")?).await?),
        _ => Err(ApiError(Error::not_found(format!("page not found: {} /images/{rest}", method)))),
    }
}

pub async fn get_many(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let names = p.values("names");
    if names.is_empty() {
        return Err(ApiError(Error::invalid("no images named")));
    }
    let platform = compat::platform_json(version(&req), 48, &p)?;
    save(e, names, platform).await
}

async fn save(e: Arc<Engine>, names: Vec<String>, platform: Option<berth_registry::manifest::Platform>) -> ApiResult {
    for n in &names {
        match &platform {
            Some(pl) => {
                e.image_for_platform(n, pl).await?;
            }
            None => {
                e.images_inspect(n).await?;
            }
        }
    }
    let (tx, rx) = mpsc::channel(16);
    let w = ChannelWriter::new(tx.clone());
    tokio::spawn(async move {
        if let Err(err) = e.images_save_for(names, platform.as_ref(), w).await {
            let _ = tx.send(Err(std::io::Error::other(err.message))).await;
        }
    });
    Ok(stream_response("application/x-tar", rx))
}

pub async fn load(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    let quiet = p.bool("quiet")?;
    let platform = compat::platform_json(version(&req), 48, &p)?;
    let reader = body_reader(req.into_body());
    let (tx, rx) = mpsc::channel(16);
    let progress_tx = tx.clone();
    tokio::spawn(async move {
        let r = e
            .images_load_for(reader, platform.as_ref(), move |msg| {
                let _ = progress_tx.blocking_send(Ok(line(&JsonMessage::stream(format!("{msg}\n")))));
            })
            .await;
        if let Err(err) = r {
            let _ = tx.send(Ok(line(&JsonMessage::error(err.message)))).await;
        }
    });
    let _ = quiet;
    Ok(stream_response("application/json", rx))
}

pub async fn prune(State(e): St, req: Request) -> ApiResult {
    let p = Params::parse(req.uri().query());
    ok_json(&e.image_prune(&p.filters()?).await?)
}

/// `GET /distribution/{name}/json`: the registry's descriptor and platforms of `name`.
pub async fn distribution(State(e): St, Path(rest): Path<String>, req: Request) -> ApiResult {
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(ApiError(Error::not_found(format!("page not found: GET /distribution/{rest}"))));
    };
    let auth = req.headers().get("X-Registry-Auth").and_then(|v| v.to_str().ok()).map(str::to_string);
    let auth = berth_engine::registry::auth_from_header(auth.as_deref())?;
    ok_json(&e.distribution_inspect(name, auth).await?)
}

pub async fn search() -> ApiResult {
    Err(ApiError(Error::not_implemented("image search is not supported by berth: search your registry's web interface or use its catalog API")))
}
