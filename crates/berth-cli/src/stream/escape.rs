//! Detach keys (ctrl-p ctrl-q by default): watches typed input for the sequence,
//! holding back a partial match and releasing it if the sequence breaks, like
//! moby's `term.EscapeProxy`.

pub const DEFAULT_DETACH_KEYS: [u8; 2] = [16, 17];

pub struct EscapeProxy {
    keys: Vec<u8>,
    matched: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// Bytes to forward to the container.
    Data(Vec<u8>),
    /// The sequence was typed: forward these bytes (what came before it), then detach.
    Detach(Vec<u8>),
}

impl EscapeProxy {
    pub fn new(keys: Vec<u8>) -> EscapeProxy {
        EscapeProxy { keys, matched: 0 }
    }

    pub fn feed(&mut self, input: &[u8]) -> Fed {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return Fed::Data(out);
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return Fed::Detach(out);
                }
                continue;
            }
            // A broken partial match: release what was held back, then re-check this
            // byte as a possible start of the sequence.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return Fed::Detach(out);
                }
            } else {
                out.push(b);
            }
        }
        Fed::Data(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_sequence_across_reads() {
        let mut p = EscapeProxy::new(DEFAULT_DETACH_KEYS.to_vec());
        assert_eq!(p.feed(b"ls\r"), Fed::Data(b"ls\r".to_vec()));
        assert_eq!(p.feed(&[16]), Fed::Data(vec![]));
        assert_eq!(p.feed(&[17, b'x']), Fed::Detach(vec![]));
        assert_eq!(p.feed(&[b'a', 16, 17]), Fed::Detach(vec![b'a']));
    }

    #[test]
    fn releases_a_broken_prefix() {
        let mut p = EscapeProxy::new(DEFAULT_DETACH_KEYS.to_vec());
        assert_eq!(p.feed(&[16, b'a']), Fed::Data(vec![16, b'a']));
        assert_eq!(p.feed(&[16, 16, 17]), Fed::Detach(vec![16]));
        let mut one = EscapeProxy::new(vec![b'q']);
        assert_eq!(one.feed(b"abq"), Fed::Detach(b"ab".to_vec()));
    }
}
