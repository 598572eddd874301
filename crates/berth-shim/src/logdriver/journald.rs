//! The `journald` driver: each message as a journal entry over journald's native
//! protocol (one datagram to `/run/systemd/journal/socket`), with the fields Docker's
//! driver writes: MESSAGE, CONTAINER_ID, CONTAINER_ID_FULL, CONTAINER_NAME,
//! CONTAINER_TAG, IMAGE_NAME, SYSLOG_IDENTIFIER, PRIORITY (6 stdout, 3 stderr),
//! CONTAINER_PARTIAL_MESSAGE for pieces of long lines, and the `labels`/`env` extras.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use super::{LogInfo, Message, Sink};

pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";

/// One field: `KEY=value\n`, or with a newline in the value, `KEY\n`, the value's
/// length as 64-bit little-endian, the value, `\n`.
pub fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Journal field names: upper case letters, digits and underscores, not starting with
/// an underscore (Docker's driver maps label and env names the same way).
pub fn field_name(k: &str) -> String {
    let s: String = k.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    s.trim_start_matches('_').to_string()
}

pub struct Journald {
    sock: UnixDatagram,
    path: PathBuf,
    /// The fields every entry carries.
    common: Vec<u8>,
}

impl Journald {
    pub fn open(socket: Option<&Path>, info: &LogInfo) -> Result<Journald, String> {
        let path = socket.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        if !path.exists() {
            return Err("journald is not enabled on this host".into());
        }
        let sock = UnixDatagram::unbound().map_err(|e| e.to_string())?;
        let mut common = Vec::new();
        field(&mut common, "CONTAINER_ID", info.id.get(..12).unwrap_or(&info.id).as_bytes());
        field(&mut common, "CONTAINER_ID_FULL", info.id.as_bytes());
        field(&mut common, "CONTAINER_NAME", info.name.as_bytes());
        field(&mut common, "CONTAINER_TAG", info.tag.as_bytes());
        field(&mut common, "IMAGE_NAME", info.image_name.as_bytes());
        field(&mut common, "SYSLOG_IDENTIFIER", info.tag.as_bytes());
        for (k, v) in &info.extra {
            let name = field_name(k);
            if !name.is_empty() {
                field(&mut common, &name, v.as_bytes());
            }
        }
        Ok(Journald { sock, path, common })
    }
}

impl Sink for Journald {
    fn log(&mut self, m: &Message) -> io::Result<()> {
        let mut entry = Vec::with_capacity(self.common.len() + m.line.len() + 64);
        field(&mut entry, "MESSAGE", m.line);
        entry.extend_from_slice(&self.common);
        field(&mut entry, "PRIORITY", if m.stream == 2 { b"3" } else { b"6" });
        if m.partial {
            field(&mut entry, "CONTAINER_PARTIAL_MESSAGE", b"true");
        }
        self.sock.send_to(&entry, &self.path).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_protocol_fields() {
        let mut b = Vec::new();
        field(&mut b, "MESSAGE", b"hi");
        field(&mut b, "MESSAGE", b"a\nb");
        let mut want = b"MESSAGE=hi\nMESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(b, want);
        assert_eq!(field_name("com.example.team"), "COM_EXAMPLE_TEAM");
        assert_eq!(field_name("_x"), "X");
    }
}
