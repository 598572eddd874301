//! `berth`: one multi-call binary. The first argument picks the part:
//! `daemon`, `shim` and `runtime` are the server side and internal re-execs; anything
//! else is the docker-compatible client.

mod daemon;
mod logging;
mod notify;
mod rootless;

use std::ffi::OsString;
use std::process::exit;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let sub = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let code = match sub {
        "daemon" => daemon::main(&args[2..]),
        "shim" => berth_shim::main(&args[2..]),
        "shim-zygote" => berth_shim::zygote::main(&args[2..]),
        "registry" => berth_registry::cli::main(&args[2..]),
        "runtime" => berth_runtime::cli::main(&args[2..]),
        _ => berth_cli::main(args),
    };
    exit(code);
}
