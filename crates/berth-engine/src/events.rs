//! The event stream (`GET /events`): a broadcast of new events plus a bounded history
//! for `since`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use berth_types::filters::Filters;
use berth_types::system::{EventActor, EventMessage};
use tokio::sync::broadcast;

const HISTORY: usize = 1024;

pub struct EventBus {
    tx: broadcast::Sender<EventMessage>,
    history: Mutex<VecDeque<EventMessage>>,
    /// Events emitted since start (for `/metrics`).
    total: std::sync::atomic::AtomicU64,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus { tx: broadcast::channel(1024).0, history: Mutex::new(VecDeque::with_capacity(HISTORY)), total: Default::default() }
    }
}

impl EventBus {
    /// Records and broadcasts an event. `kind` is container | image | network | volume | daemon.
    pub fn emit(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let from = if kind == "container" { attributes.get("image").cloned().unwrap_or_default() } else { String::new() };
        // The deprecated status/id/from fields are only set for containers and images.
        let legacy = kind == "container" || kind == "image";
        let ev = EventMessage {
            status: if legacy { action.to_string() } else { String::new() },
            id: if legacy { id.to_string() } else { String::new() },
            from,
            kind: kind.to_string(),
            action: action.to_string(),
            actor: EventActor { id: id.to_string(), attributes },
            scope: "local".into(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        };
        {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        self.total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.tx.send(ev);
    }

    pub fn emitted(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Past events (oldest first) and a receiver for the ones to come, taken together
    /// so none falls between them.
    pub fn subscribe(&self) -> (Vec<EventMessage>, broadcast::Receiver<EventMessage>) {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        (h.iter().cloned().collect(), self.tx.subscribe())
    }

    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Docker's event filters: type, event/action, container, image, network, volume,
/// label, daemon, scope.
pub fn matches(f: &Filters, ev: &EventMessage) -> bool {
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
        let vals = f.get(key);
        vals.is_empty() || vals.iter().any(|v| pred(v))
    };
    let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str).unwrap_or("");
    let id_or_name = |v: &str| ev.actor.id == v || ev.actor.id.starts_with(v) || attr("name") == v;
    any("type", &|v| v == ev.kind)
        && any("event", &|v| v == ev.action || ev.action.starts_with(&format!("{v}:")))
        && (f.get("container").is_empty() || (ev.kind == "container" && any("container", &id_or_name)))
        && (f.get("image").is_empty() || any("image", &|v| (ev.kind == "image" && id_or_name(v)) || attr("image") == v || ev.from == v))
        && (f.get("network").is_empty() || (ev.kind == "network" && any("network", &id_or_name)))
        && (f.get("volume").is_empty() || (ev.kind == "volume" && any("volume", &id_or_name)))
        && any("scope", &|v| v == ev.scope)
        && f.matches_labels("label", &ev.actor.attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_filter_and_history() {
        let bus = EventBus::default();
        let (_, mut rx) = bus.subscribe();
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), "web".to_string());
        attrs.insert("image".to_string(), "busybox".to_string());
        bus.emit("container", "start", "abc", attrs);
        let ev = rx.try_recv().unwrap();
        assert_eq!(ev.status, "start");
        assert_eq!(ev.from, "busybox");
        let f = Filters::parse(r#"{"type":{"container":true},"container":["web"]}"#).unwrap();
        assert!(matches(&f, &ev));
        let f = Filters::parse(r#"{"type":["image"]}"#).unwrap();
        assert!(!matches(&f, &ev));
        let f = Filters::parse(r#"{"event":["die"]}"#).unwrap();
        assert!(!matches(&f, &ev));
        assert_eq!(bus.subscribe().0.len(), 1);
    }
}
