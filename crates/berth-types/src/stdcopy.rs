//! The stdcopy framing of non-TTY attach, exec and logs streams: an 8-byte header
//! `[stream, 0, 0, 0, len as u32 big-endian]` before each chunk of payload.

/// Which stream a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Stream {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    /// Used by newer daemons to report an exec/attach error in-band.
    System = 3,
}

impl Stream {
    pub fn from_byte(b: u8) -> Option<Stream> {
        match b {
            0 => Some(Stream::Stdin),
            1 => Some(Stream::Stdout),
            2 => Some(Stream::Stderr),
            3 => Some(Stream::System),
            _ => None,
        }
    }
}

pub const HEADER_LEN: usize = 8;

pub fn header(stream: Stream, len: usize) -> [u8; HEADER_LEN] {
    let n = (len as u32).to_be_bytes();
    [stream as u8, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Appends one frame to `out`.
pub fn encode_into(out: &mut Vec<u8>, stream: Stream, payload: &[u8]) {
    out.extend_from_slice(&header(stream, payload.len()));
    out.extend_from_slice(payload);
}

pub fn encode(stream: Stream, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_into(&mut v, stream, payload);
    v
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unrecognized stdcopy stream id {0}")]
    BadStream(u8),
}

/// Incremental decoder: feed bytes as they arrive, take out whole frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`: taken frames are dropped from the front
    /// at the next push, once per chunk rather than once per frame.
    start: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<(Stream, Vec<u8>)>, DecodeError> {
        let b = &self.buf[self.start..];
        if b.len() < HEADER_LEN {
            return Ok(None);
        }
        let stream = Stream::from_byte(b[0]).ok_or(DecodeError::BadStream(b[0]))?;
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        if b.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = b[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.start += HEADER_LEN + len;
        Ok(Some((stream, payload)))
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces() {
        let mut wire = encode(Stream::Stdout, b"hello\n");
        encode_into(&mut wire, Stream::Stderr, b"oops");
        let mut d = Decoder::new();
        let mut got = vec![];
        for b in wire.chunks(3) {
            d.push(b);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![(Stream::Stdout, b"hello\n".to_vec()), (Stream::Stderr, b"oops".to_vec())]);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn header_matches_docker_trace() {
        // From api-traces/run-foreground.txt: \x01\x00\x00\x00\x00\x00\x00\x06hello\n
        assert_eq!(header(Stream::Stdout, 6), [1, 0, 0, 0, 0, 0, 0, 6]);
    }

    #[test]
    fn bad_stream_is_an_error() {
        let mut d = Decoder::new();
        d.push(&[9, 0, 0, 0, 0, 0, 0, 1, b'x']);
        assert_eq!(d.next_frame(), Err(DecodeError::BadStream(9)));
    }
}
