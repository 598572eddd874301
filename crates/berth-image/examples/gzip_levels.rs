//! gzip speed and ratio per level with the workspace's flate2 backend (zlib-rs), on a
//! sample file: what chose `push::PUSH_GZIP_LEVEL`.
//!
//! ```text
//! gzip_levels FILE
//! ```

use std::io::{Read, Write};
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: gzip_levels FILE");
        std::process::exit(2);
    };
    let mut data = Vec::new();
    std::fs::File::open(&path).unwrap().read_to_end(&mut data).unwrap();
    for level in [1u32, 2, 3, 4, 5, 6] {
        let t = std::time::Instant::now();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(&data).unwrap();
        let out = e.finish().unwrap();
        let s = t.elapsed().as_secs_f64();
        println!("level {level}: {:.0} MB/s, ratio {:.3}", data.len() as f64 / s / 1e6, data.len() as f64 / out.len() as f64);
    }
}
