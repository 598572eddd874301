//! WebSocket transport for the streaming server (filled in below).

use std::sync::Arc;

use berth_engine::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::Session;

pub fn accept(_engine: Arc<Engine>, _session: Session, _req: Request<Incoming>) -> Response<Full<Bytes>> {
    super::plain(StatusCode::NOT_IMPLEMENTED, "WebSocket streaming is not implemented yet")
}
