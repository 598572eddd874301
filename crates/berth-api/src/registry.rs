//! Registry endpoints: pull (`POST /images/create?fromImage=`), push, `/auth`,
//! `/distribution/{name}/json`. The transfer is the engine's; this streams Docker's
//! JSON progress lines.

use std::sync::Arc;

use axum::response::Response;
use berth_engine::{Engine, Error};

use crate::util::{ApiError, ApiResult};

pub async fn pull(_e: Arc<Engine>, image: &str, _tag: &str, _platform: &str, _auth: Option<String>) -> ApiResult {
    Err(ApiError(Error::not_implemented(format!("pull of {image}: registry access is being wired into berth's daemon"))))
}

pub async fn push(_e: Arc<Engine>, name: &str, _tag: &str, _auth: Option<String>) -> Result<Response, ApiError> {
    Err(ApiError(Error::not_implemented(format!("push of {name}: registry access is being wired into berth's daemon"))))
}
