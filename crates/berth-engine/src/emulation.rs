//! Images of another architecture run through the kernel's binfmt_misc handlers
//! (Debian's qemu-user-static registers `qemu-<arch>` with the F flag, so the
//! emulator works inside containers), as dockerd runs them. When no handler takes the
//! image's executables, starting it fails with a clear message instead of the
//! container's `exec format error`.

use std::path::Path;

use crate::error::{Error, Result};

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// ELF class, data encoding and e_machine of a Go architecture name.
fn elf_of(arch: &str) -> Option<(u8, u8, u16)> {
    const LE: u8 = 1;
    const BE: u8 = 2;
    Some(match arch {
        "amd64" => (2, LE, 62),
        "386" => (1, LE, 3),
        "arm64" => (2, LE, 183),
        "arm" => (1, LE, 40),
        "ppc64le" => (2, LE, 21),
        "ppc64" => (2, BE, 21),
        "s390x" => (2, BE, 22),
        "riscv64" => (2, LE, 243),
        "mips64le" => (2, LE, 8),
        "mips64" => (2, BE, 8),
        "mipsle" => (1, LE, 8),
        "mips" => (1, BE, 8),
        "loong64" => (2, LE, 258),
        _ => return None,
    })
}

/// The start of an executable ELF file of `arch`: ident, e_type (EXEC), e_machine.
fn elf_header(arch: &str) -> Option<[u8; 20]> {
    let (class, data, machine) = elf_of(arch)?;
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = class;
    h[5] = data;
    h[6] = 1;
    let (t, m) = if data == 1 { (2u16.to_le_bytes(), machine.to_le_bytes()) } else { (2u16.to_be_bytes(), machine.to_be_bytes()) };
    h[16..18].copy_from_slice(&t);
    h[18..20].copy_from_slice(&m);
    Some(h)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

/// The enabled binfmt_misc handler that runs `arch`'s executables, if any.
pub fn handler_for(arch: &str) -> Option<String> {
    handler_in(Path::new(BINFMT), arch)
}

fn handler_in(dir: &Path, arch: &str) -> Option<String> {
    let header = elf_header(arch)?;
    let entries = std::fs::read_dir(dir).ok()?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "register" || name == "status" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        if text.lines().next() != Some("enabled") {
            continue;
        }
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
        if field("offset ").unwrap_or("0") != "0" {
            continue;
        }
        let Some(magic) = field("magic ").and_then(unhex) else { continue };
        let mask = field("mask ").and_then(unhex).unwrap_or_else(|| vec![0xff; magic.len()]);
        if magic.len() > header.len() {
            continue;
        }
        if magic.iter().enumerate().all(|(i, m)| header[i] & mask.get(i).copied().unwrap_or(0xff) == m & mask.get(i).copied().unwrap_or(0xff)) {
            return Some(field("interpreter ").unwrap_or(&name).to_string());
        }
    }
    None
}

/// The host's architecture in Go's names.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Checks that an image of `platform` (`os/arch[/variant]`) can run here: the host's
/// architecture (i386 on amd64 and arm on arm64 included), or one an emulator is
/// registered for.
pub fn check(platform: &str) -> Result<()> {
    let arch = platform.split('/').nth(1).unwrap_or("");
    let host = host_arch();
    if arch.is_empty() || arch == host || (host == "amd64" && arch == "386") || (host == "arm64" && arch == "arm") {
        return Ok(());
    }
    if handler_for(arch).is_some() {
        return Ok(());
    }
    Err(Error::system(format!(
        "image platform {platform} does not match the host's (linux/{host}) and no emulator is registered for {arch} in {BINFMT}: install one (Debian: apt-get install qemu-user-static binfmt-support) or run an image of linux/{host}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_qemu_entries_by_magic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("qemu-aarch64"),
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("qemu-s390x"),
            "disabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c4602020100000000000000000000020016\nmask ffffffffffffff00fffffffffffffffffffeffff\n",
        )
        .unwrap();
        assert_eq!(handler_in(dir.path(), "arm64").as_deref(), Some("/usr/libexec/qemu-binfmt/aarch64-binfmt-P"));
        assert_eq!(handler_in(dir.path(), "s390x"), None, "a disabled entry does not count");
        assert_eq!(handler_in(dir.path(), "riscv64"), None);
        assert_eq!(handler_in(dir.path(), "wasm"), None);
    }
}
