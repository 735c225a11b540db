//! The device policy on cgroup v2: a `BPF_PROG_TYPE_CGROUP_DEVICE` program, assembled here
//! from a handful of instructions (as runc and crun do), loaded with `bpf(BPF_PROG_LOAD)` and
//! attached to the container's cgroup with `bpf(BPF_PROG_ATTACH)`.
//!
//! The kernel calls the program with a `struct bpf_cgroup_dev_ctx { u32 access_type; u32
//! major; u32 minor; }` where `access_type = access << 16 | type` (type 1 block, 2 char;
//! access 1 mknod, 2 read, 4 write) and allows the operation when it returns 1. The program
//! loads the four fields into r2..r5, then tests the rules from the last to the first (the
//! last matching rule decides, as in the v1 controller); a block per rule jumps to the next
//! block on the first field that does not match, else returns the rule's verdict. No match
//! returns 0 (deny).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{Kind, Rule};

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_AND_K: u8 = 0x57; // dst &= imm
const ALU64_RSH_K: u8 = 0x77; // dst >>= imm
const ALU64_MOV_K: u8 = 0xb7; // dst = imm
const ALU64_MOV_X: u8 = 0xbf; // dst = src
const JMP_JNE_K: u8 = 0x55; // if dst != imm goto pc + 1 + off
const JMP_EXIT: u8 = 0x95; // return r0

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

const TYPE_BLOCK: i32 = 1;
const TYPE_CHAR: i32 = 2;

/// Loads type (r2), access (r3), major (r4), minor (r5) from the context in r1.
const PROLOGUE: [Insn; 6] = [
    insn(LDX_MEM_W, 2, 1, 0, 0),
    insn(ALU64_AND_K, 2, 0, 0, 0xffff),
    insn(LDX_MEM_W, 3, 1, 0, 0),
    insn(ALU64_RSH_K, 3, 0, 0, 16),
    insn(LDX_MEM_W, 4, 1, 4, 0),
    insn(LDX_MEM_W, 5, 1, 8, 0),
];

/// The block of one rule: its tests (each jumping past the block on a mismatch), then the
/// verdict; the flag says whether the block has no test (it always returns).
fn rule_block(r: &Rule) -> (Vec<Insn>, bool) {
    // Tests as (instructions before the jump, jump register, immediate).
    let mut tests: Vec<(Vec<Insn>, u8, i32)> = Vec::new();
    match r.kind {
        Kind::All => {}
        Kind::Block => tests.push((vec![], 2, TYPE_BLOCK)),
        Kind::Char => tests.push((vec![], 2, TYPE_CHAR)),
    }
    if r.access & super::RWM != super::RWM {
        // r1 = access & ~allowed; mismatch when non-zero.
        let mask = i32::from(!r.access & super::RWM);
        let pre = vec![
            insn(ALU64_MOV_X, 1, 3, 0, 0),
            insn(ALU64_AND_K, 1, 0, 0, mask),
        ];
        tests.push((pre, 1, 0));
    }
    if let Some(m) = r.major {
        tests.push((vec![], 4, m as i32));
    }
    if let Some(m) = r.minor {
        tests.push((vec![], 5, m as i32));
    }
    let verdict = [
        insn(ALU64_MOV_K, 0, 0, 0, i32::from(r.allow)),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ];
    let mut out = Vec::new();
    for (i, (pre, reg, imm)) in tests.iter().enumerate() {
        out.extend_from_slice(pre);
        // Instructions after this jump up to the end of the block.
        let rest: usize = tests[i + 1..]
            .iter()
            .map(|(p, _, _)| p.len() + 1)
            .sum::<usize>()
            + verdict.len();
        out.push(insn(JMP_JNE_K, *reg, 0, rest as i16, *imm));
    }
    out.extend_from_slice(&verdict);
    (out, tests.is_empty())
}

/// The whole program for a policy. A rule matching everything ends it (the kernel refuses
/// unreachable instructions).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = PROLOGUE.to_vec();
    for r in rules.iter().rev() {
        let (block, always) = rule_block(r);
        p.extend(block);
        if always {
            return p;
        }
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// Errors of loading or attaching the program.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("loading the device cgroup program: {0} ({1})")]
    Load(#[source] std::io::Error, String),
    #[error("opening cgroup {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("attaching the device program to cgroup {}: {source}", path.display())]
    Attach {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The leading fields of `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a live, initialised #[repr(C)] prefix of union bpf_attr whose size
    // is passed along; the kernel reads (and for some commands writes) only that many bytes,
    // and the pointers inside it point to memory that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the program; returns its fd.
pub fn load(insns: &[Insn]) -> Result<OwnedFd, BpfError> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"cairn_devcg");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let fd = match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => fd,
        Err(e) => {
            let mut log = vec![0u8; 65536];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let log = String::from_utf8_lossy(&log);
            let verifier = log.trim_end_matches('\0').lines().next().unwrap_or("");
            return Err(BpfError::Load(e, verifier.to_string()));
        }
    };
    // SAFETY: a successful BPF_PROG_LOAD returns a new file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Loads the policy's program and attaches it to the cgroup v2 directory `dir` (the
/// attachment lives as long as the cgroup).
pub fn attach(dir: &Path, rules: &[Rule]) -> Result<(), BpfError> {
    let prog = load(&program(rules))?;
    let cg = std::fs::File::open(dir).map_err(|source| BpfError::Open {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut attr = ProgAttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|source| BpfError::Attach {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{MKNOD, READ, RWM, WRITE, allowed, policy};
    use super::*;

    /// Runs the program on a context the way the kernel would (the subset of eBPF emitted).
    fn interpret(p: &[Insn], kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        let ty = match kind {
            Kind::Block => 1u64,
            _ => 2,
        };
        let ctx = [
            (u64::from(access) << 16) | ty,
            u64::from(major),
            u64::from(minor),
        ];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1);
                    r[dst] = ctx[i.off as usize / 4] & 0xffff_ffff;
                }
                ALU64_AND_K => r[dst] &= i.imm as u64,
                ALU64_RSH_K => r[dst] >>= i.imm,
                ALU64_MOV_K => r[dst] = i.imm as u64,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K => {
                    if r[dst] != i.imm as u64 {
                        pc += i.off as usize;
                    }
                }
                JMP_EXIT => return r[0] == 1,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn the_program_decides_as_the_policy() {
        let rules = policy(&[], false);
        let p = program(&rules);
        for kind in [Kind::Char, Kind::Block] {
            for (major, minor) in [(1, 3), (1, 9), (5, 1), (136, 7), (7, 0), (8, 1), (1, 1)] {
                for access in [READ, WRITE, MKNOD, READ | WRITE, RWM] {
                    assert_eq!(
                        interpret(&p, kind, major, minor, access),
                        allowed(&rules, kind, major, minor, access),
                        "{kind:?} {major}:{minor} {access}"
                    );
                }
            }
        }
        assert!(interpret(&p, Kind::Char, 1, 3, READ | WRITE));
        assert!(!interpret(&p, Kind::Block, 7, 0, WRITE));
        assert!(interpret(&p, Kind::Block, 7, 0, MKNOD));
    }

    #[test]
    fn jumps_stay_inside_the_program() {
        let p = program(&policy(&[], false));
        assert_eq!(program(&policy(&[], true)).len(), PROLOGUE.len() + 2);
        for (pc, i) in p.iter().enumerate() {
            if i.code == JMP_JNE_K {
                assert!(pc + 1 + (i.off as usize) < p.len());
            }
        }
        assert_eq!(p.last().unwrap().code, JMP_EXIT);
    }

    /// The kernel's verifier accepts the program and the kernel enforces it: a process in a
    /// cgroup v2 directory with the program cannot open a block device node but can use
    /// /dev/null. Needs root and a cgroup2 mount (`/sys/fs/cgroup` or the hybrid `unified`).
    #[test]
    fn the_kernel_enforces_the_program() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let base = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(Path::new)
            .find(|p| p.join("cgroup.procs").exists() && !p.join("devices.allow").exists());
        let Some(base) = base else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let node = tmp.path().join("loop");
        let made = rustix::fs::mknodat(
            rustix::fs::CWD,
            &node,
            rustix::fs::FileType::BlockDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(7, 0),
        );
        if made.is_err() {
            eprintln!("skipped: cannot mknod in the temp dir");
            return;
        }
        let dir = base.join(format!("cairn-bpf-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let r = attach(&dir, &policy(&[], false));
        let out = r.as_ref().ok().map(|_| {
            let script = format!(
                "echo $$ > {}/cgroup.procs && echo x > /dev/null && echo ok-null; \
                 exec cat {} 2>&1",
                dir.display(),
                node.display()
            );
            std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .unwrap()
        });
        let _ = std::fs::remove_dir(&dir);
        r.unwrap();
        let out = String::from_utf8_lossy(&out.unwrap().stdout).to_string();
        assert!(out.contains("ok-null"), "{out}");
        assert!(out.contains("Operation not permitted"), "{out}");
    }
}
