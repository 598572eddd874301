//! What a build is asked to do: the parameters of `POST /build`, parsed by the API
//! layer into plain values.

use std::collections::BTreeMap;

use crate::backend::Resources;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The Dockerfile's path in the context (`dockerfile=`), "Dockerfile" by default.
    pub dockerfile: String,
    /// `t=`, each a reference to tag the result with.
    pub tags: Vec<String>,
    /// `target=`: the stage to stop at (the last one when `None`).
    pub target: Option<String>,
    /// `buildargs=`; a `None` value declares the argument without a value.
    pub build_args: BTreeMap<String, Option<String>>,
    /// `labels=`: added to the result as a last LABEL step, as dockerd does.
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// Always look for a newer base image in its registry.
    pub pull: bool,
    /// Images whose history serves as cache (`--cache-from`).
    pub cache_from: Vec<String>,
    /// Remove intermediate containers after a successful step (`rm`, default true).
    pub remove: bool,
    /// Remove them whatever happens (`forcerm`).
    pub force_remove: bool,
    /// Print only the image ID (`q`).
    pub quiet: bool,
    /// `networkmode=`: the network RUN steps use ("default" when empty).
    pub network_mode: String,
    /// `extrahosts=`: `host:ip` entries for RUN steps' /etc/hosts.
    pub extra_hosts: Vec<String>,
    /// `platform=`: the platform base images are chosen for.
    pub platform: Option<String>,
    pub resources: Resources,
    /// The `X-Registry-Config` header (base64 JSON: registry → credentials).
    pub registry_config: Option<String>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            dockerfile: "Dockerfile".into(),
            tags: Vec::new(),
            target: None,
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
            no_cache: false,
            pull: false,
            cache_from: Vec::new(),
            remove: true,
            force_remove: false,
            quiet: false,
            network_mode: String::new(),
            extra_hosts: Vec::new(),
            platform: None,
            resources: Resources::default(),
            registry_config: None,
        }
    }
}
