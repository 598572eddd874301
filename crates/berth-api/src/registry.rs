//! Registry endpoints: pull (`POST /images/create?fromImage=`), push, `/auth`. The
//! transfer is the engine's; this streams Docker's JSON progress lines. An error
//! before any progress is an ordinary HTTP error, as dockerd answers it.

use std::sync::Arc;

use axum::response::Response;
use berth_engine::Engine;
use berth_engine::registry::auth_from_header;
use berth_registry::client::Progress;
use berth_types::progress::JsonMessage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::util::{ApiError, ApiResult, line, ok_json, stream_response};

/// Streams a transfer's progress; `op` runs it, sending events on the channel it gets.
/// A client that hangs up cancels the transfer, as with dockerd: the future is dropped
/// (a pull keeps what it downloaded for the next attempt, nothing is recorded).
async fn progress_stream<F, Fut>(op: F) -> ApiResult
where
    F: FnOnce(mpsc::UnboundedSender<Progress>) -> Fut,
    Fut: std::future::Future<Output = berth_engine::Result<()>> + Send + 'static,
{
    let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let fut = op(ptx);
    let cancel = CancellationToken::new();
    let cancelled = cancel.clone();
    tokio::spawn(async move {
        let r = tokio::select! {
            r = fut => r,
            _ = cancelled.cancelled() => {
                tracing::info!("transfer cancelled: the client went away");
                return;
            }
        };
        let _ = done_tx.send(r);
    });
    // Until the first event, a failure is still an HTTP error.
    let first = tokio::select! {
        ev = prx.recv() => ev,
        r = &mut done_rx => {
            match r {
                Ok(Err(e)) => return Err(ApiError(e)),
                _ => prx.recv().await,
            }
        }
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        // Cancels the transfer however this task ends before it does.
        let _cancel_on_exit = cancel.drop_guard();
        let mut pending = first;
        while let Some(ev) = pending {
            for m in ev.to_json_messages() {
                if tx.send(Ok(line(&m))).await.is_err() {
                    return;
                }
            }
            pending = tokio::select! {
                ev = prx.recv() => ev,
                // A quiet spell (a big layer unpacking) still notices a hang-up.
                _ = tx.closed() => return,
            };
        }
        if let Ok(Err(e)) = done_rx.await {
            let _ = tx.send(Ok(line(&JsonMessage::error(e.message)))).await;
        }
    });
    Ok(stream_response("application/json", rx))
}

pub async fn pull(e: Arc<Engine>, image: &str, tag: &str, platform: &str, auth: Option<String>, all_tags: bool) -> ApiResult {
    let auth = auth_from_header(auth.as_deref())?;
    let (image, tag, platform) = (image.to_string(), tag.to_string(), platform.to_string());
    progress_stream(move |ptx| async move { e.image_pull(&image, &tag, &platform, auth, all_tags, ptx).await.map(|_| ()) }).await
}

pub async fn push(e: Arc<Engine>, name: &str, tag: &str, auth: Option<String>) -> Result<Response, ApiError> {
    let auth = auth_from_header(auth.as_deref())?;
    let (name, tag) = (name.to_string(), tag.to_string());
    progress_stream(move |ptx| async move { e.image_push(&name, &tag, auth, ptx).await }).await
}

pub async fn auth(e: Arc<Engine>, body: &[u8]) -> ApiResult {
    let a: berth_registry::client::AuthConfig = serde_json::from_slice(body).map_err(|x| crate::util::invalid(format!("invalid auth body: {x}")))?;
    let a = a.with_decoded_auth().map_err(|x| crate::util::invalid(x.to_string()))?;
    ok_json(&e.registry_login(a).await?)
}
