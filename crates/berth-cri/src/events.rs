//! GetContainerEvents: the engine's one event stream, narrowed to CRI objects and told
//! in the CRI's words (created, started, stopped, deleted), each with the pod's status.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::Cri;
use crate::api::{self, ContainerEventType};
use crate::meta;

pub type EventStream = Pin<Box<dyn Stream<Item = Result<api::ContainerEventResponse, tonic::Status>> + Send>>;

/// The CRI event for an engine container action, if it has one.
fn event_type(action: &str) -> Option<ContainerEventType> {
    Some(match action {
        "create" => ContainerEventType::ContainerCreatedEvent,
        "start" => ContainerEventType::ContainerStartedEvent,
        "die" => ContainerEventType::ContainerStoppedEvent,
        "destroy" => ContainerEventType::ContainerDeletedEvent,
        _ => return None,
    })
}

impl Cri {
    /// Events from now on (the CRI has no history), until the client goes away.
    pub fn container_events(self: &Arc<Self>) -> EventStream {
        let (_, mut rx) = self.engine().events.subscribe();
        let cri = self.clone();
        let stream = async_stream(move |tx| async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                if ev.kind != "container" || !ev.actor.attributes.contains_key(meta::TYPE_LABEL) {
                    continue;
                }
                let Some(kind) = event_type(&ev.action) else { continue };
                let id = ev.actor.id.clone();
                // The pod: the sandbox itself, or the container's (by its label).
                let sandbox_id = match ev.actor.attributes.get(meta::TYPE_LABEL).map(String::as_str) {
                    Some(meta::TYPE_SANDBOX) => id.clone(),
                    _ => ev.actor.attributes.get(meta::SANDBOX_ID_LABEL).cloned().unwrap_or_default(),
                };
                let pod = cri.pod_sandbox_status(&sandbox_id, false).ok();
                let resp = api::ContainerEventResponse {
                    container_id: id,
                    container_event_type: kind as i32,
                    created_at: ev.time_nano,
                    pod_sandbox_status: pod.as_ref().and_then(|p| p.status.clone()),
                    containers_statuses: pod.map(|p| p.containers_statuses).unwrap_or_default(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Box::pin(stream)
    }
}

/// A stream fed by a task through a channel (ends when the task does or the reader goes).
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<api::ContainerEventResponse, tonic::Status>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<api::ContainerEventResponse, tonic::Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_actions_map_to_cri_events() {
        assert_eq!(event_type("create"), Some(ContainerEventType::ContainerCreatedEvent));
        assert_eq!(event_type("die"), Some(ContainerEventType::ContainerStoppedEvent));
        assert_eq!(event_type("exec_create: ls"), None);
    }
}
