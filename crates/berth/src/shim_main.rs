//! `berth-shim`: the per-container supervisor and its zygote, as a binary of their own.
//!
//! `berth shim` and `berth shim-zygote` do the same, but every shim forked from a zygote
//! of the whole `berth` binary carries that binary's relocated read-only data (~1 MB of
//! vtables and tables for the daemon and the CLI) in its resident set. This binary links
//! only the shim and the runtime, so each shim's resident set is about half. The daemon
//! uses it when it lies beside the `berth` binary (`berth_shim::spawn::shim_binary`).

use std::ffi::OsString;
use std::process::exit;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let code = match args.get(1).and_then(|a| a.to_str()).unwrap_or("") {
        "shim" => berth_shim::main(&args[2..]),
        "shim-zygote" => berth_shim::zygote::main(&args[2..]),
        _ => {
            eprintln!("usage: berth-shim shim STATE_DIR | berth-shim shim-zygote SOCKET\n(started by the berth daemon; not a command for users)");
            2
        }
    };
    exit(code);
}
