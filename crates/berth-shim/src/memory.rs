//! Memory hygiene for long-lived, mostly idle processes (shims, the daemon).

/// Gives back what past work left resident: freed heap to the kernel, and clean
/// read-only file pages (code, constants) out of this process's page tables. Those stay
/// in the page cache, shared by the daemon and every shim (one binary), and are faulted
/// back in when next run. A shim calls it once the container is created (the runtime
/// and seccomp compilation never run again) and when it goes quiet; the daemon when no
/// request came for a while. Safe with other threads running: their code just faults in.
pub fn give_back() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut current: Option<(usize, usize, bool)> = None;
    let flush = |m: Option<(usize, usize, bool)>, anon_kb: u64| {
        // Read-only file mappings none of whose pages was ever written (no private
        // anonymous copies, as RELRO and relocated pages have): dropping them loses
        // nothing.
        if let Some((start, end, true)) = m
            && anon_kb == 0 {
                // SAFETY: a whole read-only private file mapping of this process without
                // modified pages; MADV_DONTNEED only drops page-table entries, and the
                // pages are read back from the file when next touched.
                unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
            }
    };
    let mut anon_kb = 0u64;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-').filter(|(a, _)| a.bytes().all(|c| c.is_ascii_hexdigit())) {
            flush(current.take(), anon_kb);
            anon_kb = 0;
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            if let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                let candidate = (perms == "r-xp" || perms == "r--p") && path.starts_with('/');
                current = Some((start, end, candidate));
            }
        } else if first == "Anonymous:" {
            anon_kb = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    flush(current.take(), anon_kb);
}
