//! The gRPC services: each method takes the request apart, calls [`Cri`], and wraps the
//! answer. Served on a unix socket with the kubelet's message size limit.

use std::path::Path;
use std::sync::Arc;

use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use crate::api::image_service_server::{ImageService, ImageServiceServer};
use crate::api::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use crate::api::*;
use crate::error::CriError;
use crate::{Cri, events};

/// The kubelet sends and accepts messages up to 16 MiB.
const MAX_MESSAGE: usize = 16 << 20;

/// The CRI's version and the runtime's name.
const CRI_VERSION: &str = "0.1.0";
const RUNTIME_API_VERSION: &str = "v1";

pub(crate) struct Service(pub Arc<Cri>);

type R<T> = Result<Response<T>, Status>;

fn ok<T>(t: T) -> R<T> {
    Ok(Response::new(t))
}

/// Runs a change on a task of its own, so that it finishes even when its call does not
/// (a deadline passed, the kubelet or crictl gone): a call's future is dropped then, and
/// a pod or container start dropped between two steps would leave mounts, namespaces
/// and processes of a sandbox that is not recorded as running. The caller gets its
/// error; the next call sees the finished change.
async fn to_the_end<T: Send + 'static>(change: impl std::future::Future<Output = Result<T, Status>> + Send + 'static) -> Result<T, Status> {
    match tokio::spawn(change).await {
        Ok(r) => r,
        Err(e) => Err(Status::internal(format!("the change's task failed: {e}"))),
    }
}

pub(crate) async fn serve(cri: Arc<Cri>, socket: &Path) -> Result<(), CriError> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CriError::Io(format!("{}: {e}", dir.display())))?;
    }
    // A socket left by a daemon that was killed is in the way; nothing else may be.
    if let Ok(m) = std::fs::symlink_metadata(socket) {
        use std::os::unix::fs::FileTypeExt;
        if !m.file_type().is_socket() {
            return Err(CriError::Io(format!("{} exists and is not a socket", socket.display())));
        }
        let _ = std::fs::remove_file(socket);
    }
    let listener = tokio::net::UnixListener::bind(socket).map_err(|e| CriError::Io(format!("binding {}: {e}", socket.display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660));
    }
    tracing::info!("CRI serving on {} (streaming on {})", socket.display(), cri.streams.base_url());
    let runtime = RuntimeServiceServer::new(Service(cri.clone())).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
    let image = ImageServiceServer::new(Service(cri)).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
    tonic::transport::Server::builder()
        .layer(tower::layer::layer_fn(crate::deadline::Deadline))
        .add_service(runtime)
        .add_service(image)
        .serve_with_incoming(UnixListenerStream::new(listener))
        .await
        .map_err(|e| CriError::Io(format!("CRI server: {e}")))
}

#[tonic::async_trait]
impl RuntimeService for Service {
    async fn version(&self, _r: Request<VersionRequest>) -> R<VersionResponse> {
        ok(VersionResponse {
            version: CRI_VERSION.into(),
            runtime_name: "berth".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: RUNTIME_API_VERSION.into(),
        })
    }

    async fn run_pod_sandbox(&self, r: Request<RunPodSandboxRequest>) -> R<RunPodSandboxResponse> {
        let cri = self.0.clone();
        let id = to_the_end(async move { cri.run_pod_sandbox(r.into_inner()).await }).await?;
        ok(RunPodSandboxResponse { pod_sandbox_id: id })
    }

    async fn stop_pod_sandbox(&self, r: Request<StopPodSandboxRequest>) -> R<StopPodSandboxResponse> {
        let cri = self.0.clone();
        to_the_end(async move { cri.stop_pod_sandbox(&r.into_inner().pod_sandbox_id).await }).await?;
        ok(StopPodSandboxResponse {})
    }

    async fn remove_pod_sandbox(&self, r: Request<RemovePodSandboxRequest>) -> R<RemovePodSandboxResponse> {
        let cri = self.0.clone();
        to_the_end(async move { cri.remove_pod_sandbox(&r.into_inner().pod_sandbox_id).await }).await?;
        ok(RemovePodSandboxResponse {})
    }

    async fn pod_sandbox_status(&self, r: Request<PodSandboxStatusRequest>) -> R<PodSandboxStatusResponse> {
        let r = r.into_inner();
        ok(self.0.pod_sandbox_status(&r.pod_sandbox_id, r.verbose)?)
    }

    async fn list_pod_sandbox(&self, r: Request<ListPodSandboxRequest>) -> R<ListPodSandboxResponse> {
        ok(ListPodSandboxResponse { items: self.0.list_pod_sandbox(r.into_inner().filter) })
    }

    async fn create_container(&self, r: Request<CreateContainerRequest>) -> R<CreateContainerResponse> {
        let cri = self.0.clone();
        ok(CreateContainerResponse { container_id: to_the_end(async move { cri.create_container(r.into_inner()).await }).await? })
    }

    async fn start_container(&self, r: Request<StartContainerRequest>) -> R<StartContainerResponse> {
        let cri = self.0.clone();
        to_the_end(async move { cri.start_container(&r.into_inner().container_id).await }).await?;
        ok(StartContainerResponse {})
    }

    async fn stop_container(&self, r: Request<StopContainerRequest>) -> R<StopContainerResponse> {
        let (r, cri) = (r.into_inner(), self.0.clone());
        to_the_end(async move { cri.stop_container(&r.container_id, r.timeout).await }).await?;
        ok(StopContainerResponse {})
    }

    async fn remove_container(&self, r: Request<RemoveContainerRequest>) -> R<RemoveContainerResponse> {
        let cri = self.0.clone();
        to_the_end(async move { cri.remove_container(&r.into_inner().container_id).await }).await?;
        ok(RemoveContainerResponse {})
    }

    async fn list_containers(&self, r: Request<ListContainersRequest>) -> R<ListContainersResponse> {
        ok(ListContainersResponse { containers: self.0.list_containers(r.into_inner().filter) })
    }

    async fn container_status(&self, r: Request<ContainerStatusRequest>) -> R<ContainerStatusResponse> {
        let r = r.into_inner();
        ok(self.0.container_status(&r.container_id, r.verbose)?)
    }

    async fn update_container_resources(&self, r: Request<UpdateContainerResourcesRequest>) -> R<UpdateContainerResourcesResponse> {
        let cri = self.0.clone();
        to_the_end(async move { cri.update_container_resources(r.into_inner()).await }).await?;
        ok(UpdateContainerResourcesResponse {})
    }

    async fn reopen_container_log(&self, r: Request<ReopenContainerLogRequest>) -> R<ReopenContainerLogResponse> {
        self.0.reopen_container_log(&r.into_inner().container_id).await?;
        ok(ReopenContainerLogResponse {})
    }

    async fn exec_sync(&self, r: Request<ExecSyncRequest>) -> R<ExecSyncResponse> {
        ok(self.0.exec_sync(r.into_inner()).await?)
    }

    async fn exec(&self, r: Request<ExecRequest>) -> R<ExecResponse> {
        ok(ExecResponse { url: self.0.exec_url(r.into_inner())? })
    }

    async fn attach(&self, r: Request<AttachRequest>) -> R<AttachResponse> {
        ok(AttachResponse { url: self.0.attach_url(r.into_inner())? })
    }

    async fn port_forward(&self, r: Request<PortForwardRequest>) -> R<PortForwardResponse> {
        ok(PortForwardResponse { url: self.0.port_forward_url(r.into_inner())? })
    }

    async fn container_stats(&self, r: Request<ContainerStatsRequest>) -> R<ContainerStatsResponse> {
        ok(ContainerStatsResponse { stats: Some(self.0.container_stats(&r.into_inner().container_id).await?) })
    }

    async fn list_container_stats(&self, r: Request<ListContainerStatsRequest>) -> R<ListContainerStatsResponse> {
        ok(ListContainerStatsResponse { stats: self.0.list_container_stats(r.into_inner().filter).await? })
    }

    async fn pod_sandbox_stats(&self, r: Request<PodSandboxStatsRequest>) -> R<PodSandboxStatsResponse> {
        ok(PodSandboxStatsResponse { stats: Some(self.0.pod_sandbox_stats(&r.into_inner().pod_sandbox_id).await?) })
    }

    async fn list_pod_sandbox_stats(&self, r: Request<ListPodSandboxStatsRequest>) -> R<ListPodSandboxStatsResponse> {
        ok(ListPodSandboxStatsResponse { stats: self.0.list_pod_sandbox_stats(r.into_inner().filter).await? })
    }

    async fn update_runtime_config(&self, r: Request<UpdateRuntimeConfigRequest>) -> R<UpdateRuntimeConfigResponse> {
        let cidr = r.into_inner().runtime_config.and_then(|c| c.network_config).map(|n| n.pod_cidr).unwrap_or_default();
        *self.0.pod_cidr.lock().unwrap_or_else(|p| p.into_inner()) = cidr;
        ok(UpdateRuntimeConfigResponse {})
    }

    async fn status(&self, r: Request<StatusRequest>) -> R<StatusResponse> {
        ok(self.0.status(r.into_inner().verbose))
    }

    async fn checkpoint_container(&self, _r: Request<CheckpointContainerRequest>) -> R<CheckpointContainerResponse> {
        Err(Status::unimplemented("checkpointing containers (CRIU) is not supported by berth"))
    }

    type GetContainerEventsStream = events::EventStream;

    async fn get_container_events(&self, _r: Request<GetEventsRequest>) -> R<Self::GetContainerEventsStream> {
        ok(self.0.container_events())
    }

    async fn list_metric_descriptors(&self, _r: Request<ListMetricDescriptorsRequest>) -> R<ListMetricDescriptorsResponse> {
        ok(ListMetricDescriptorsResponse { descriptors: Vec::new() })
    }

    async fn list_pod_sandbox_metrics(&self, _r: Request<ListPodSandboxMetricsRequest>) -> R<ListPodSandboxMetricsResponse> {
        ok(ListPodSandboxMetricsResponse { pod_metrics: Vec::new() })
    }

    async fn runtime_config(&self, _r: Request<RuntimeConfigRequest>) -> R<RuntimeConfigResponse> {
        ok(RuntimeConfigResponse { linux: Some(LinuxRuntimeConfiguration { cgroup_driver: CgroupDriver::Cgroupfs as i32 }) })
    }
}

#[tonic::async_trait]
impl ImageService for Service {
    async fn list_images(&self, r: Request<ListImagesRequest>) -> R<ListImagesResponse> {
        ok(ListImagesResponse { images: self.0.list_images(r.into_inner().filter).await? })
    }

    async fn image_status(&self, r: Request<ImageStatusRequest>) -> R<ImageStatusResponse> {
        let r = r.into_inner();
        ok(self.0.image_status(r.image, r.verbose).await?)
    }

    async fn pull_image(&self, r: Request<PullImageRequest>) -> R<PullImageResponse> {
        ok(PullImageResponse { image_ref: self.0.pull_image(r.into_inner()).await? })
    }

    async fn remove_image(&self, r: Request<RemoveImageRequest>) -> R<RemoveImageResponse> {
        self.0.remove_image(r.into_inner().image).await?;
        ok(RemoveImageResponse {})
    }

    async fn image_fs_info(&self, _r: Request<ImageFsInfoRequest>) -> R<ImageFsInfoResponse> {
        ok(self.0.image_fs_info())
    }
}

impl Cri {
    /// RuntimeReady always (the engine is up); NetworkReady unless CNI is configured and
    /// has no usable network config yet.
    fn status(&self, verbose: bool) -> StatusResponse {
        let runtime = RuntimeCondition { r#type: "RuntimeReady".into(), status: true, reason: String::new(), message: String::new() };
        let network = match &self.cni {
            None => RuntimeCondition { r#type: "NetworkReady".into(), status: true, reason: String::new(), message: String::new() },
            Some(cni) => match cni.network() {
                Ok(_) => RuntimeCondition { r#type: "NetworkReady".into(), status: true, reason: String::new(), message: String::new() },
                Err(e) => RuntimeCondition { r#type: "NetworkReady".into(), status: false, reason: "NetworkPluginNotReady".into(), message: e },
            },
        };
        let mut info = std::collections::HashMap::new();
        if verbose {
            let net = match &self.cni {
                None => serde_json::json!({"plugin": "berth-bridge", "bridge": self.engine.cfg.bridge, "subnet": self.engine.cfg.bip}),
                Some(cni) => serde_json::json!({"plugin": "cni", "network": cni.network().ok().map(|n| n.name)}),
            };
            let v = serde_json::json!({
                "runtime": "berth",
                "dataRoot": self.engine.cfg.data_root,
                // As containerd names it: critest checks that its filesystem can id-map.
                "stateDir": self.engine.cfg.data_root.join("containers"),
                "cgroupDriver": "cgroupfs",
                "cgroupParent": self.engine.cfg.cgroup_parent,
                "streamServer": self.streams.base_url(),
                "network": net,
                "podCIDR": *self.pod_cidr.lock().unwrap_or_else(|p| p.into_inner()),
                "registryMirrors": self.engine.cfg.registry_mirrors,
            });
            info.insert("config".to_string(), v.to_string());
        }
        // Every handler (the default, "", and the engine's runtimes) mounts recursively
        // read-only and runs pods in user namespaces (hostUsers: false).
        let features = Some(RuntimeHandlerFeatures { recursive_read_only_mounts: true, user_namespaces: true });
        let mut names = vec![String::new(), "berth".to_string()];
        names.extend(self.engine.cfg.runtimes.keys().cloned());
        names.dedup();
        let runtime_handlers = names.into_iter().map(|name| RuntimeHandler { name, features }).collect();
        StatusResponse {
            status: Some(RuntimeStatus { conditions: vec![runtime, network] }),
            info,
            runtime_handlers,
            features: Some(RuntimeFeatures { supplemental_groups_policy: true }),
        }
    }
}
