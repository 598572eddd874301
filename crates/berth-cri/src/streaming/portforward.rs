//! Port forwarding (`portforward.k8s.io`) as the kubelet serves it over SPDY: for each
//! forwarded connection the client opens two streams with the same `requestID` and
//! `port` headers, an `error` stream and a `data` stream. berth connects to the port on
//! the pod's loopback (inside its network namespace) and copies both ways; a failure is
//! written on the error stream.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy::{IncomingStream, Writer};

pub const SPDY_PROTOCOLS: &[&str] = &["portforward.k8s.io"];

/// Copies between a connection to the pod's port and the client, both ways, until both
/// sides are done. `send` writes to the client (`fin` ends its direction).
pub async fn pipe<F, Fut>(conn: tokio::net::TcpStream, mut from_client: mpsc::Receiver<Bytes>, send: F)
where
    F: Fn(Bytes, bool) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    let (mut rd, mut wr) = conn.into_split();
    let upstream = async move {
        while let Some(d) = from_client.recv().await {
            if wr.write_all(&d).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if send(Bytes::copy_from_slice(&buf[..n]), false).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = send(Bytes::new(), true).await;
    };
    tokio::join!(upstream, downstream);
}

/// Serves one port-forward connection.
pub async fn serve_spdy<W>(writer: Arc<Writer<W>>, mut incoming: mpsc::Receiver<IncomingStream>, netns: Option<PathBuf>, ports: Vec<i32>)
where
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Error streams by request ID, for the data stream of the same request.
    let mut errors: HashMap<String, u32> = HashMap::new();
    while let Some(s) = incoming.recv().await {
        if writer.reply(s.id, &Vec::new(), false).await.is_err() {
            return;
        }
        let request = s.header("requestid").unwrap_or("").to_string();
        let kind = s.header("streamtype").unwrap_or("").to_ascii_lowercase();
        let port: Option<u16> = s.header("port").and_then(|p| p.parse().ok());
        match kind.as_str() {
            "error" => {
                errors.insert(request, s.id);
            }
            "data" => {
                let err_id = errors.remove(&request);
                let w = writer.clone();
                let netns = netns.clone();
                let allowed = ports.is_empty() || port.is_some_and(|p| ports.contains(&(p as i32)));
                tokio::spawn(async move {
                    let fail = |msg: String| {
                        let w = w.clone();
                        async move {
                            if let Some(e) = err_id {
                                let _ = w.data(e, msg.as_bytes(), true).await;
                            }
                            let _ = w.data(s.id, &[], true).await;
                        }
                    };
                    let Some(port) = port.filter(|_| allowed) else {
                        fail(format!("invalid or unrequested port {:?}", s.header("port"))).await;
                        return;
                    };
                    let conn = match super::connect_in_netns(netns, port).await {
                        Ok(c) => c,
                        Err(e) => {
                            fail(format!("error forwarding port {port} to pod: {e}")).await;
                            return;
                        }
                    };
                    let id = s.id;
                    let w2 = w.clone();
                    pipe(conn, s.data, move |d, fin| {
                        let w = w2.clone();
                        async move { w.data(id, &d, fin).await }
                    })
                    .await;
                    if let Some(e) = err_id {
                        let _ = w.data(e, &[], true).await;
                    }
                });
            }
            _ => {
                let _ = writer.reset(s.id, super::spdy::RST_PROTOCOL_ERROR).await;
            }
        }
    }
}
