//! A small command-line front end to the image store, for benchmarks and manual checks
//! (the daemon is the real user of the library):
//!
//! ```text
//! image_tool load ROOT ARCHIVE        docker-archive or OCI layout tar ("-" = stdin)
//! image_tool save ROOT OUT NAME...    docker-archive of NAMEs ("-" = stdout)
//! image_tool list ROOT
//! image_tool import ROOT TAR TAG      a rootfs tar as a one-layer image
//! image_tool manifest ROOT NAME...    make (or show) each image's push manifest
//! image_tool idle ROOT [SECONDS [ARCHIVE]]  open the store, print VmRSS before/after
//!                                     (and after loading ARCHIVE), wait
//! ```

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use berth_image::{ImageStore, StoreOptions};

fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: image_tool load ROOT ARCHIVE | save ROOT OUT NAME... | list ROOT | import ROOT TAR TAG | manifest ROOT NAME... | idle ROOT [SECONDS [ARCHIVE]]";
    let cmd = args.first().ok_or(usage)?;
    let root = Path::new(args.get(1).ok_or(usage)?);
    let opts = StoreOptions {
        // BERTH_IMAGE_DURABLE=1: one syncfs before the image is recorded.
        durable_layers: std::env::var("BERTH_IMAGE_DURABLE").is_ok_and(|v| v == "1"),
        // BERTH_IMAGE_THREADS=N: unpack worker threads (default: one per CPU).
        unpack_threads: std::env::var("BERTH_IMAGE_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0),
        ..StoreOptions::default()
    };
    let before = rss_kb();
    let store = ImageStore::open(root, opts).map_err(|e| e.to_string())?;
    match cmd.as_str() {
        "idle" => {
            // What an open store costs a process that does nothing else (the daemon
            // holds one for its whole life).
            println!("VmRSS before open: {} kB", before);
            println!("VmRSS after open: {} kB ({} images)", rss_kb(), store.list().map_err(|e| e.to_string())?.len());
            let secs = args.get(2).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            // With an archive: load it, then see what is left once the workers idle out.
            if let Some(archive) = args.get(3) {
                let f = File::open(archive).map_err(|e| format!("{archive}: {e}"))?;
                store.load(BufReader::with_capacity(1 << 20, f), &mut |_| {}).map_err(|e| e.to_string())?;
                println!("VmRSS after loading {archive}: {} kB", rss_kb());
            }
            std::thread::sleep(std::time::Duration::from_secs(secs));
            if args.get(3).is_some() {
                println!("VmRSS {secs} s later: {} kB", rss_kb());
            }
        }
        "import" => {
            let (tar, tag) = (args.get(2).ok_or(usage)?, args.get(3).ok_or(usage)?);
            let f = File::open(tar).map_err(|e| format!("{tar}: {e}"))?;
            let opts = berth_image::ImportOptions {
                tag: Some(tag.clone()),
                ..Default::default()
            };
            let id = store.import(BufReader::new(f), &opts).map_err(|e| e.to_string())?;
            println!("{id}");
        }
        "manifest" => {
            for name in &args[2..] {
                let id = store.resolve(name).map_err(|e| e.to_string())?;
                let m = store.ensure_manifest(&id).map_err(|e| e.to_string())?;
                println!("{name} {} {}", m.digest, m.size);
            }
        }
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

/// This process's resident set, from /proc/self/status.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
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
