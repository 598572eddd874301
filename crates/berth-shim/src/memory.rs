//! Memory hygiene for long-lived, mostly idle processes (shims, the daemon).

/// Gives back what past work left resident: freed heap to the kernel, and clean
/// read-only file pages (code, constants) out of this process's page tables. Those stay
/// in the page cache, shared by the daemon and every shim (one binary), and are faulted
/// back in when next run. A shim calls it when it goes quiet (3 s without activity: the
/// runtime's create and seccomp compilation never run again), the zygote 1 s after its
/// last spawn, the daemon when no request came for a while — never on a start's path,
/// where reading smaps (~1 ms) would be waited for. Safe with other threads running:
/// their code just faults in.
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
    drop_unused_stack(&smaps);
}

/// Zeroes the main thread's stack below what is in use, when called on the main thread:
/// the runtime's create runs deep once and leaves a few hundred KiB of dirty stack no
/// later call needs. Other threads' stacks are not `[stack]`, and nothing lives below
/// the running frame of the only thread that uses it.
fn drop_unused_stack(smaps: &str) {
    const PAGE: usize = 4096;
    // Room for the frames below this one while madvise runs (libc's wrapper, the return
    // addresses it pops): dropping those would lose them.
    const SLACK: usize = 16 * PAGE;
    let marker = 0u8;
    let sp = std::hint::black_box(&marker) as *const u8 as usize;
    let Some(line) = smaps.lines().find(|l| l.ends_with("[stack]")) else { return };
    let Some((a, b)) = line.split_whitespace().next().and_then(|r| r.split_once('-')) else { return };
    let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { return };
    if !(start..end).contains(&sp) {
        return;
    }
    let top = (sp & !(PAGE - 1)).saturating_sub(SLACK);
    if top > start {
        // SAFETY: [start, top) is the part of this thread's own stack below its running
        // frames and the slack; MADV_DONTNEED makes it read back as zeroes, which is what
        // a stack below the stack pointer may hold.
        unsafe { libc::madvise(start as *mut libc::c_void, top - start, libc::MADV_DONTNEED) };
    }
}
