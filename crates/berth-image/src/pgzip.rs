//! Parallel gzip with pigz's scheme, so one big layer (an `import` is one layer) is
//! compressed on every core: the input is cut into 1 MiB chunks, each chunk is deflated
//! on its own thread with the previous 32 KiB as a preset dictionary and ends with a
//! sync flush (the last one with the stream's end), and the pieces, written in order
//! after a gzip header, form one ordinary gzip stream; the CRC-32 is combined from the
//! chunks'. The output depends only on the input and the level (not on timing), so the
//! same layer always gives the same blob. Memory: at most two chunks per thread in
//! flight.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Input per job.
pub(crate) const CHUNK: usize = 1 << 20;
/// Deflate's window: what a chunk may refer back to in the one before.
const DICT: usize = 32 << 10;

struct Job {
    seq: u64,
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
}

type Done = (u64, io::Result<(Vec<u8>, Crc)>);

/// A `Write` that gzips what it is given on `threads` threads into `out`; call
/// [`ParGzWriter::finish`] to end the stream.
pub(crate) struct ParGzWriter<W: Write> {
    /// `None` once finished.
    out: Option<W>,
    buf: Vec<u8>,
    dict: Vec<u8>,
    next_seq: u64,
    write_seq: u64,
    done: BTreeMap<u64, (Vec<u8>, Crc)>,
    crc: Crc,
    in_flight: usize,
    max_in_flight: usize,
    jobs: Option<Sender<Job>>,
    results: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
}

fn deflate_chunk(level: u32, job: &Job) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !job.dict.is_empty() {
        c.set_dictionary(&job.dict).map_err(io::Error::other)?;
    }
    let flush = if job.last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 4096);
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 << 10));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&job.data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == job.data.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete once all input is taken and the output had room
            // to spare (zlib's rule for Z_SYNC_FLUSH).
            _ if !job.last && all_in && out.len() < out.capacity() => return Ok(out),
            _ => {}
        }
    }
}

impl<W: Write> ParGzWriter<W> {
    pub fn new(out: W, level: u32, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        let (jtx, jrx) = mpsc::channel::<Job>();
        let (rtx, rrx) = mpsc::channel::<Done>();
        let jrx = Arc::new(Mutex::new(jrx));
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let jrx = Arc::clone(&jrx);
            let rtx = rtx.clone();
            let h = std::thread::Builder::new().name("berth-gzip".into()).spawn(move || {
                loop {
                    let job = {
                        let Ok(rx) = jrx.lock() else { return };
                        rx.recv()
                    };
                    let Ok(job) = job else { return };
                    let r = deflate_chunk(level, &job).map(|bytes| {
                        let mut crc = Crc::new();
                        crc.update(&job.data);
                        (bytes, crc)
                    });
                    if rtx.send((job.seq, r)).is_err() {
                        return;
                    }
                }
            })?;
            workers.push(h);
        }
        let mut w = ParGzWriter {
            out: Some(out),
            buf: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            next_seq: 0,
            write_seq: 0,
            done: BTreeMap::new(),
            crc: Crc::new(),
            in_flight: 0,
            max_in_flight: 2 * threads,
            jobs: Some(jtx),
            results: rrx,
            workers,
        };
        // mtime 0, no name, "unknown" OS: the same header for the same input, always.
        w.sink()?.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        Ok(w)
    }

    fn sink(&mut self) -> io::Result<&mut W> {
        self.out.as_mut().ok_or_else(|| io::Error::other("gzip writer finished"))
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, if last { Vec::new() } else { Vec::with_capacity(CHUNK) });
        // Only the last chunk is short, so the tail of one chunk is a full window.
        let dict = std::mem::replace(&mut self.dict, data[data.len().saturating_sub(DICT)..].to_vec());
        let job = Job {
            seq: self.next_seq,
            data,
            dict,
            last,
        };
        self.next_seq += 1;
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip writer finished"))?
            .send(job)
            .map_err(|_| io::Error::other("gzip workers are gone"))?;
        self.in_flight += 1;
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        Ok(())
    }

    /// Waits for one finished chunk and writes whatever is now in order.
    fn collect_one(&mut self) -> io::Result<()> {
        let (seq, r) = self
            .results
            .recv()
            .map_err(|_| io::Error::other("gzip workers are gone"))?;
        self.in_flight -= 1;
        self.done.insert(seq, r?);
        while let Some((bytes, crc)) = self.done.remove(&self.write_seq) {
            self.sink()?.write_all(&bytes)?;
            self.crc.combine(&crc);
            self.write_seq += 1;
        }
        Ok(())
    }

    /// Ends the stream (the last chunk, then CRC-32 and length) and hands back `out`.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        let (sum, amount) = (self.crc.sum(), self.crc.amount());
        let mut out = self.out.take().ok_or_else(|| io::Error::other("gzip writer finished"))?;
        out.write_all(&sum.to_le_bytes())?;
        out.write_all(&amount.to_le_bytes())?;
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParGzWriter<W> {
    fn drop(&mut self) {
        // Abandoned: stop the workers (jobs already queued finish and are discarded).
        self.jobs.take();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b).read_to_end(&mut out).unwrap();
        out
    }

    fn gz(data: &[u8], threads: usize, piece: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), 3, threads).unwrap();
        for p in data.chunks(piece.max(1)) {
            w.write_all(p).unwrap();
        }
        w.finish().unwrap()
    }

    /// Compressible data with long-range repeats that cross chunk boundaries.
    fn sample(n: usize) -> Vec<u8> {
        let mut x: u32 = 12345;
        let words: Vec<Vec<u8>> = (0..500)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                format!("word{}-{} ", x % 9973, x >> 20).into_bytes()
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            out.extend_from_slice(&words[(x % 500) as usize]);
        }
        out.truncate(n);
        out
    }

    #[test]
    fn round_trips_at_every_size_around_the_chunk_boundaries() {
        for n in [0, 1, 100, DICT - 1, DICT, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let data = sample(n);
            let z = gz(&data, 3, 70_000);
            assert_eq!(gunzip(&z), data, "size {n}");
            // One gzip member with the right trailer: a strict single-member decoder
            // (GzDecoder, not MultiGzDecoder) read it all and checked the CRC.
            assert_eq!(&z[..3], &[0x1f, 0x8b, 8]);
        }
    }

    #[test]
    fn output_is_the_same_whatever_the_threads_and_writes() {
        let data = sample(5 * CHUNK + 777);
        let a = gz(&data, 1, 1 << 16);
        let b = gz(&data, 4, 12_345);
        let c = gz(&data, 2, 5 * CHUNK + 777);
        assert_eq!(a, b);
        assert_eq!(a, c);
        // About as small as one single-threaded stream.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::new(3));
        e.write_all(&data).unwrap();
        let single = e.finish().unwrap();
        assert!(a.len() < single.len() + single.len() / 50, "{} vs {}", a.len(), single.len());
    }

    #[test]
    fn random_data_round_trips() {
        let mut x: u64 = 7;
        let data: Vec<u8> = (0..(2 * CHUNK + 99))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(gunzip(&gz(&data, 2, 4096)), data);
    }
}
