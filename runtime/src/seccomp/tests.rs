//! Profile resolution and filter building, without loading anything.

use super::*;

fn amd64() -> Host {
    Host {
        arch: "amd64",
        scmp_arch: "SCMP_ARCH_X86_64",
        kernel: (6, 1),
    }
}

fn docker_caps() -> Vec<String> {
    crate::spec::DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .collect()
}

fn allowed_names(f: &Filter) -> Vec<&str> {
    f.rules
        .iter()
        .filter(|r| r.action == Action::Allow && r.args.is_empty())
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect()
}

#[test]
fn default_profile_denies_namespaces_without_sys_admin() {
    let f = default::profile()
        .resolve(&amd64(), &docker_caps())
        .unwrap();
    assert_eq!(f.default, Action::Errno(libc::EPERM as u32));
    assert_eq!(
        f.arches,
        ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    );
    let allowed = allowed_names(&f);
    for n in ["read", "mkdir", "execve", "chroot", "arch_prctl", "ptrace"] {
        assert!(allowed.contains(&n), "{n}");
    }
    for n in [
        "unshare",
        "mount",
        "setns",
        "reboot",
        "bpf",
        "clone",
        "open_by_handle_at",
    ] {
        assert!(!allowed.contains(&n), "{n}");
    }
    assert!(!allowed.contains(&"s390_runtime_instr") && !allowed.contains(&"set_tls"));
    // clone only without namespace flags; clone3 → ENOSYS.
    let clone = f.rules.iter().find(|r| r.names == ["clone"]).unwrap();
    assert_eq!(clone.args[0].op, "SCMP_CMP_MASKED_EQ");
    assert_eq!((clone.args[0].index, clone.args[0].value_two), (0, 0));
    assert_eq!(
        clone.args[0].value & libc::CLONE_NEWUSER as u64,
        0x1000_0000
    );
    let clone3 = f.rules.iter().find(|r| r.names == ["clone3"]).unwrap();
    assert_eq!(clone3.action, Action::Errno(libc::ENOSYS as u32));
}

#[test]
fn sys_admin_allows_unshare_and_unfiltered_clone() {
    let mut caps = docker_caps();
    caps.push("CAP_SYS_ADMIN".into());
    let f = default::profile().resolve(&amd64(), &caps).unwrap();
    let allowed = allowed_names(&f);
    assert!(allowed.contains(&"unshare") && allowed.contains(&"clone"));
    assert!(!f.rules.iter().any(|r| r.action != Action::Allow));
}

#[test]
fn min_kernel_and_arches_decide() {
    let old = Host {
        kernel: (4, 4),
        ..amd64()
    };
    let f = default::profile().resolve(&old, &docker_caps()).unwrap();
    assert!(!allowed_names(&f).contains(&"ptrace"));
    let arm = Host {
        arch: "arm64",
        scmp_arch: "SCMP_ARCH_AARCH64",
        kernel: (6, 1),
    };
    let f = default::profile().resolve(&arm, &docker_caps()).unwrap();
    assert!(allowed_names(&f).contains(&"set_tls"));
    assert!(!allowed_names(&f).contains(&"arch_prctl"));
    assert_eq!(f.arches, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
}

#[test]
fn docker_json_profiles_parse() {
    let json = r#"{
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "args": null},
            {"name": "chmod", "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
             "includes": {"caps": null}, "excludes": {}}
        ]
    }"#;
    let p: Profile = serde_json::from_str(json).unwrap();
    let f = p.resolve(&amd64(), &[]).unwrap();
    assert_eq!(f.default, Action::Allow);
    assert_eq!(f.rules[0].action, Action::Errno(1));
    assert_eq!(f.rules[1].names, ["chmod"]);
    assert_eq!(f.rules[1].action, Action::Errno(13));
    load::build(&f).unwrap();
    let oci = f.to_oci();
    assert_eq!(oci["defaultAction"], "SCMP_ACT_ALLOW");
    assert_eq!(oci["syscalls"][0]["errnoRet"], 1);
}

#[test]
fn bad_profiles_are_refused() {
    let bad_action: Profile =
        serde_json::from_str(r#"{"defaultAction": "SCMP_ACT_NOPE", "syscalls": []}"#).unwrap();
    assert!(matches!(
        bad_action.resolve(&amd64(), &[]),
        Err(SeccompError::UnknownAction(_))
    ));
    let bad_op: Profile = serde_json::from_str(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
            "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "LIKE"}]}]}"#,
    )
    .unwrap();
    assert!(matches!(
        bad_op.resolve(&amd64(), &[]),
        Err(SeccompError::UnknownOp(_))
    ));
    assert!(serde_json::from_str::<Profile>("{").is_err());
}

#[test]
fn the_default_profile_builds_with_libseccomp() {
    let f = default::profile()
        .resolve(&Host::current(), &docker_caps())
        .unwrap();
    load::build(&f).unwrap();
    let oci = f.to_oci();
    assert_eq!(oci["defaultErrnoRet"], 1);
    assert!(oci["syscalls"].as_array().unwrap().len() > 10);
}

#[test]
fn kernel_versions_parse() {
    assert_eq!(parse_kernel("6.18.44-fc-v1147"), Some((6, 18)));
    assert_eq!(parse_kernel("4.8"), Some((4, 8)));
    assert_eq!(parse_kernel("5"), Some((5, 0)));
    assert_eq!(parse_kernel("x"), None);
}
