//! Pod start and teardown timed at the gRPC client, against any CRI v1 socket (berth's,
//! containerd's): RunPodSandbox + CreateContainer + StartContainer, then StopPodSandbox +
//! RemovePodSandbox, over one connection — the runtime's own latency, without the start-up
//! of a crictl process per call. Used by bench/cri/run.sh.
//!
//!   podbench SOCKET IMAGE COUNT CGROUP_PARENT NAME_PREFIX LOG_DIR
//!
//! Prints one line per pod: `<runp> <create> <start> <stopp> <rmp>` in microseconds.

use std::time::Instant;

use berth_cri::api;
use berth_cri::api::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, image, count, cgroup_parent, prefix, log_dir] = args.as_slice() else {
        return Err("usage: podbench SOCKET IMAGE COUNT CGROUP_PARENT NAME_PREFIX LOG_DIR".into());
    };
    let count: usize = count.parse()?;
    let socket = socket.clone();
    // The URI is not used: every connection goes to the unix socket.
    let channel = Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { tokio::net::UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await?;
    let mut rt = RuntimeServiceClient::new(channel);
    for i in 0..count {
        let name = format!("{prefix}{i}");
        let config = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata { name: name.clone(), uid: format!("{name}-uid"), namespace: "bench".into(), attempt: 0 }),
            log_directory: format!("{log_dir}/{name}"),
            linux: Some(api::LinuxPodSandboxConfig { cgroup_parent: cgroup_parent.clone(), ..Default::default() }),
            ..Default::default()
        };
        let t0 = Instant::now();
        let pod = rt.run_pod_sandbox(api::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() }).await?.into_inner().pod_sandbox_id;
        let t1 = Instant::now();
        let ctr = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata { name: "app".into(), attempt: 0 }),
            image: Some(api::ImageSpec { image: image.clone(), ..Default::default() }),
            command: vec!["sleep".into(), "3600".into()],
            log_path: "app.log".into(),
            ..Default::default()
        };
        let id = rt
            .create_container(api::CreateContainerRequest { pod_sandbox_id: pod.clone(), config: Some(ctr), sandbox_config: Some(config) })
            .await?
            .into_inner()
            .container_id;
        let t2 = Instant::now();
        rt.start_container(api::StartContainerRequest { container_id: id }).await?;
        let t3 = Instant::now();
        rt.stop_pod_sandbox(api::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await?;
        let t4 = Instant::now();
        rt.remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: pod }).await?;
        let t5 = Instant::now();
        let us = |a: Instant, b: Instant| (b - a).as_micros();
        println!("{} {} {} {} {}", us(t0, t1), us(t1, t2), us(t2, t3), us(t3, t4), us(t4, t5));
    }
    Ok(())
}
