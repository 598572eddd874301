//! Device rules on cgroup v2: v2 has no devices.allow/deny files; the kernel instead runs a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup for every open/mknod of a
//! device node. We compile the OCI rules into such a program (like runc's devicefilter),
//! load it with bpf(2) and attach it to the container's cgroup directory.
//!
//! Semantics follow cgroup v1's sequential writes: the last rule that matches a request
//! decides; with no match the request is allowed (an empty rule list restricts nothing).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// One eBPF instruction (struct bpf_insn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const AND32_K: u8 = 0x54;
const RSH32_K: u8 = 0x74;
const MOV32_X: u8 = 0xbc;
const MOV64_K: u8 = 0xb7;
const JNE_K: u8 = 0x55;
const EXIT: u8 = 0x95;

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// access_type = (access << 16) | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, dst, src, off, imm }
}

fn access_bits(access: &str) -> i32 {
    let mut bits = 0;
    for c in access.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        };
    }
    bits
}

/// Compiles rules into a device program.
pub fn compile(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0), // r2 = access_type
        insn(AND32_K, 2, 0, 0, 0xffff), // r2 = device type
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16), // r3 = requested access
        insn(LDX_W, 4, 1, 4, 0), // r4 = major
        insn(LDX_W, 5, 1, 8, 0), // r5 = minor
    ];
    // Last match wins: test the rules from the end.
    for rule in rules.iter().rev() {
        let mut checks: Vec<(u8, i32, bool)> = Vec::new(); // (register, immediate, is the access check)
        match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => {}
            LinuxDeviceType::B => checks.push((2, DEV_BLOCK, false)),
            // 'u' and 'p' are not device nodes the kernel asks about; 'c' covers 'u'.
            LinuxDeviceType::C | LinuxDeviceType::U => checks.push((2, DEV_CHAR, false)),
            LinuxDeviceType::P => continue,
        }
        let acc = access_bits(rule.access().as_deref().unwrap_or("rwm"));
        let acc = if acc == 0 { ACC_READ | ACC_WRITE | ACC_MKNOD } else { acc };
        if acc != ACC_READ | ACC_WRITE | ACC_MKNOD {
            checks.push((3, !acc, true));
        }
        if let Some(m) = rule.major().filter(|m| *m >= 0) {
            checks.push((4, m as i32, false));
        }
        if let Some(m) = rule.minor().filter(|m| *m >= 0) {
            checks.push((5, m as i32, false));
        }
        // Each check jumps past the rest of this rule's block when it fails.
        let block_len: usize = checks.iter().map(|c| if c.2 { 3 } else { 1 }).sum::<usize>() + 2;
        let mut emitted = 0usize;
        for (reg, imm, is_access) in checks {
            if is_access {
                // r1 = r3 & ~allowed; the request matches only if nothing else is asked.
                p.push(insn(MOV32_X, 1, 3, 0, 0));
                p.push(insn(AND32_K, 1, 0, 0, imm));
                emitted += 2;
                let skip = block_len - emitted - 1;
                p.push(insn(JNE_K, 1, 0, skip as i16, 0));
                emitted += 1;
            } else {
                let skip = block_len - emitted - 1;
                p.push(insn(JNE_K, reg, 0, skip as i16, imm));
                emitted += 1;
            }
        }
        let unconditional = block_len == 2;
        p.push(insn(MOV64_K, 0, 0, 0, rule.allow() as i32));
        p.push(insn(EXIT, 0, 0, 0, 0));
        // A rule matching everything decides every request: the verifier refuses
        // unreachable code after it.
        if unconditional {
            return p;
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 1));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

fn encode(p: &[Insn]) -> Vec<u64> {
    p.iter()
        .map(|i| {
            let regs = (i.dst & 0x0f) | ((i.src & 0x0f) << 4);
            u64::from_le_bytes([
                i.code,
                regs,
                i.off.to_le_bytes()[0],
                i.off.to_le_bytes()[1],
                i.imm.to_le_bytes()[0],
                i.imm.to_le_bytes()[1],
                i.imm.to_le_bytes()[2],
                i.imm.to_le_bytes()[3],
            ])
        })
        .collect()
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<i64> {
    // SAFETY: attr is a zero-initialised buffer laid out as the union bpf_attr member
    // for `cmd`, with every pointer in it valid for the duration of the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// Loads the rules' program and attaches it to the cgroup at `dir`.
pub fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = encode(&compile(rules));
    let license = b"Apache-2.0\0";
    // The verifier's log makes a refused program diagnosable.
    let mut log = vec![0u8; 16 * 1024];
    let mut attr = [0u8; 72];
    attr[24..28].copy_from_slice(&1u32.to_ne_bytes());
    attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
    attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[68..72].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    let fd = bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| {
        if e.raw_os_error() == Some(libc::EPERM) {
            Error::Unsupported(format!("device rules on cgroup v2 need CAP_BPF or CAP_SYS_ADMIN to load an eBPF program: {e}"))
        } else {
            let text = String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)]).into_owned();
            let last: Vec<&str> = text.lines().rev().take(3).collect();
            Error::Cgroup { file: dir.to_path_buf(), reason: format!("load device eBPF program: {e} ({})", last.join(" / ")) }
        }
    })?;
    // SAFETY: bpf(BPF_PROG_LOAD) returned a new fd that nothing else owns.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir).map_err(|e| Error::Cgroup { file: dir.to_path_buf(), reason: format!("open: {e}") })?;
    let mut attr = [0u8; 20];
    attr[0..4].copy_from_slice(&(cg.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog_fd.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    attr[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_ne_bytes());
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map_err(|e| Error::Cgroup { file: dir.to_path_buf(), reason: format!("attach device eBPF program: {e}") })?;
    // The attachment keeps the program alive with the cgroup; our fd can go.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// Runs a program the way the kernel would for one request (the subset we emit).
    fn eval(p: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access << 16) | typ) as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            pc += 1;
            let (d, s) = (i.dst as usize, i.src as usize);
            match i.code {
                LDX_W => r[d] = ctx[(i.off / 4) as usize] as u64,
                AND32_K => r[d] = (r[d] as u32 & i.imm as u32) as u64,
                RSH32_K => r[d] = ((r[d] as u32) >> i.imm) as u64,
                MOV32_X => r[d] = r[s] as u32 as u64,
                MOV64_K => r[d] = i.imm as i64 as u64,
                JNE_K => {
                    if r[d] as u32 != i.imm as u32 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn rule(allow: bool, t: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).typ(t).access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    #[test]
    fn docker_style_rules_allow_the_listed_devices_only() {
        let rules = vec![
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, None, None, "m"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            rule(true, LinuxDeviceType::C, Some(136), None, "rw"),
        ];
        let p = compile(&rules);
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(eval(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 1), 0, "/dev/mem");
        assert_eq!(eval(&p, DEV_CHAR, ACC_MKNOD, 1, 1), 1, "mknod of any char device");
        assert_eq!(eval(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 0, "mknod of a block device");
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 136, 4), 1, "a pty");
        assert_eq!(eval(&p, DEV_CHAR, ACC_MKNOD | ACC_READ, 136, 4), 0, "pty rule has no m");
        assert_eq!(eval(&p, DEV_BLOCK, rw, 1, 3), 0, "block 1:3 is not char 1:3");
    }

    #[test]
    fn later_rules_override_earlier_and_empty_allows_all() {
        assert_eq!(eval(&compile(&[]), DEV_BLOCK, ACC_READ, 8, 0), 1);
        let rules = vec![
            rule(true, LinuxDeviceType::A, None, None, "rwm"),
            rule(false, LinuxDeviceType::B, Some(8), None, "w"),
        ];
        let p = compile(&rules);
        assert_eq!(eval(&p, DEV_BLOCK, ACC_WRITE, 8, 1), 0);
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 8, 1), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 8, 1), 1);
    }

    #[test]
    fn encoding_matches_struct_bpf_insn() {
        let e = encode(&[insn(JNE_K, 4, 0, 3, 136), insn(MOV32_X, 1, 3, 0, 0)]);
        assert_eq!(e[0].to_le_bytes(), [0x55, 0x04, 3, 0, 136, 0, 0, 0]);
        assert_eq!(e[1].to_le_bytes(), [0xbc, 0x31, 0, 0, 0, 0, 0, 0]);
    }
}
