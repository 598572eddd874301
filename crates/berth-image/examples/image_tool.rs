//! A small command-line front end to the image store, for benchmarks and manual checks
//! (the daemon is the real user of the library):
//!
//! ```text
//! image_tool load ROOT ARCHIVE        docker-archive or OCI layout tar ("-" = stdin)
//! image_tool save ROOT OUT NAME...    docker-archive of NAMEs ("-" = stdout)
//! image_tool list ROOT
//! ```

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use berth_image::{ImageStore, StoreOptions};

fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: image_tool load ROOT ARCHIVE | save ROOT OUT NAME... | list ROOT";
    let cmd = args.first().ok_or(usage)?;
    let root = Path::new(args.get(1).ok_or(usage)?);
    let opts = StoreOptions {
        // BERTH_IMAGE_DURABLE=1: one syncfs before the image is recorded.
        durable_layers: std::env::var("BERTH_IMAGE_DURABLE").is_ok_and(|v| v == "1"),
        // BERTH_IMAGE_THREADS=N: unpack worker threads (default: one per CPU).
        unpack_threads: std::env::var("BERTH_IMAGE_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0),
        ..StoreOptions::default()
    };
    let store = ImageStore::open(root, opts).map_err(|e| e.to_string())?;
    match cmd.as_str() {
        "load" => {
            let src = args.get(2).ok_or(usage)?;
            let mut print = |e: &berth_image::LoadEvent| println!("{e}");
            if src == "-" {
                store.load(io::stdin().lock(), &mut print)
            } else {
                let f = File::open(src).map_err(|e| format!("{src}: {e}"))?;
                store.load(BufReader::with_capacity(1 << 20, f), &mut print)
            }
            .map_err(|e| e.to_string())?;
        }
        "save" => {
            let out = args.get(2).ok_or(usage)?;
            let names: Vec<&str> = args[3..].iter().map(String::as_str).collect();
            if out == "-" {
                let w = BufWriter::with_capacity(1 << 20, io::stdout().lock());
                let mut w = store.save(&names, w).map_err(|e| e.to_string())?;
                w.flush().map_err(|e| e.to_string())?;
            } else {
                let f = File::create(out).map_err(|e| format!("{out}: {e}"))?;
                let mut w = store
                    .save(&names, BufWriter::with_capacity(1 << 20, f))
                    .map_err(|e| e.to_string())?;
                w.flush().map_err(|e| e.to_string())?;
            }
        }
        "list" => {
            for i in store.list().map_err(|e| e.to_string())? {
                println!("{} {} {:?}", i.id, i.size, i.repo_tags);
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("image_tool: {e}");
            ExitCode::FAILURE
        }
    }
}
