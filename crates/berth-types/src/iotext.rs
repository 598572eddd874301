//! An I/O error as Docker words it where its text differs from Rust's: dockerd prints
//! Go's `syscall.Errno` strings ("no space left on device"), which clients and scripts
//! match on; Rust says "No space left on device (os error 28)".

/// `e`'s text, in Go's words for the errors users match on (a full disk, a quota).
pub fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull => "no space left on device".to_string(),
        std::io::ErrorKind::QuotaExceeded => "disk quota exceeded".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_full_disk_and_a_quota_read_as_dockerd_says_them() {
        assert_eq!(super::io_text(&std::io::Error::from_raw_os_error(28)), "no space left on device");
        assert_eq!(super::io_text(&std::io::Error::from_raw_os_error(122)), "disk quota exceeded");
        assert_eq!(super::io_text(&std::io::Error::from_raw_os_error(2)), std::io::Error::from_raw_os_error(2).to_string());
    }
}
