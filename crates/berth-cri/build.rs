//! Compiles the vendored CRI v1 protocol (proto/api.proto) into Rust with protox, a
//! protobuf compiler written in Rust, so the build needs no `protoc`.

fn main() {
    let proto = "proto/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"]).expect("compiling proto/api.proto");
    tonic_prost_build::configure()
        // The configs the kubelet sends are kept with the engine's records as JSON.
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .message_attribute(".", "#[serde(default)]")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)
        .expect("generating the CRI bindings");
}
