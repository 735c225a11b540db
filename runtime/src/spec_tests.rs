//! Table tests of the run spec against docker's documented behaviour.

use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
nobody:x:65534:65534::/:/bin/sh\n\
app:x:1000:1000:App:/home/app:/bin/sh\n";

const GROUP: &str = "root:x:0:root\n\
wheel:x:10:root,app\n\
daemon:x:1:\n\
audio:x:29:app\n\
app:x:1000:\n\
nogroup:x:65534:\n";

#[test]
fn entrypoint_and_cmd_combine_like_docker() {
    let ep = Some(s(&["/entry", "-x"]));
    let cmd = Some(s(&["serve", "--port=1"]));
    // (image entrypoint, image cmd, --entrypoint, COMMAND, expected argv)
    type Case = (
        Option<Vec<String>>,
        Option<Vec<String>>,
        Option<&'static str>,
        Vec<String>,
        Option<Vec<String>>,
    );
    let cases: Vec<Case> = vec![
        (
            None,
            cmd.clone(),
            None,
            vec![],
            Some(s(&["serve", "--port=1"])),
        ),
        (
            None,
            cmd.clone(),
            None,
            s(&["ls", "-l"]),
            Some(s(&["ls", "-l"])),
        ),
        (
            ep.clone(),
            cmd.clone(),
            None,
            vec![],
            Some(s(&["/entry", "-x", "serve", "--port=1"])),
        ),
        (
            ep.clone(),
            cmd.clone(),
            None,
            s(&["other"]),
            Some(s(&["/entry", "-x", "other"])),
        ),
        // --entrypoint resets the image's Cmd.
        (
            ep.clone(),
            cmd.clone(),
            Some("/bin/echo"),
            vec![],
            Some(s(&["/bin/echo"])),
        ),
        (
            ep.clone(),
            cmd.clone(),
            Some("/bin/echo"),
            s(&["hi"]),
            Some(s(&["/bin/echo", "hi"])),
        ),
        // --entrypoint "" clears the Entrypoint, keeps the Cmd.
        (
            ep.clone(),
            cmd.clone(),
            Some(""),
            vec![],
            Some(s(&["serve", "--port=1"])),
        ),
        (ep.clone(), None, None, vec![], Some(s(&["/entry", "-x"]))),
        (None, None, None, vec![], None),
        (ep.clone(), None, Some(""), vec![], None),
    ];
    for (i, (iep, icmd, oep, ocmd, want)) in cases.into_iter().enumerate() {
        let img = ImageSettings {
            entrypoint: iep,
            cmd: icmd,
            ..Default::default()
        };
        let opts = RunOptions {
            entrypoint: oep.map(str::to_string),
            command: ocmd,
            ..Default::default()
        };
        let got = command_line(&img, &opts);
        match want {
            Some(w) => assert_eq!(got, Ok(w), "case {i}"),
            None => assert_eq!(got, Err(SpecError::NoCommand), "case {i}"),
        }
    }
}

fn env_of(image_env: &[&str], opts_env: &[&str]) -> Result<Vec<String>, SpecError> {
    let img = ImageSettings {
        env: s(image_env),
        ..Default::default()
    };
    let opts = RunOptions {
        env: s(opts_env),
        ..Default::default()
    };
    let user = User {
        home: "/root".into(),
        ..Default::default()
    };
    let host = |k: &str| (k == "FROM_HOST").then(|| "hostval".to_string());
    environment(&img, &opts, "abc123", &user, &host)
}

#[test]
fn environment_merges_like_docker() {
    let d = format!("PATH={DEFAULT_PATH}");
    let cases: Vec<(&[&str], &[&str], Vec<String>)> = vec![
        (
            &[],
            &[],
            vec![d.clone(), "HOSTNAME=abc123".into(), "HOME=/root".into()],
        ),
        (
            &["PATH=/x", "A=1"],
            &[],
            s(&["PATH=/x", "HOSTNAME=abc123", "A=1", "HOME=/root"]),
        ),
        (
            &["A=1", "B=2"],
            &["B=3", "C=4"],
            vec![
                d.clone(),
                "HOSTNAME=abc123".into(),
                "A=1".into(),
                "B=3".into(),
                "C=4".into(),
                "HOME=/root".into(),
            ],
        ),
        // -e K takes the host's value; unset on the host → dropped.
        (
            &[],
            &["FROM_HOST", "UNSET_ON_HOST"],
            vec![
                d.clone(),
                "HOSTNAME=abc123".into(),
                "FROM_HOST=hostval".into(),
                "HOME=/root".into(),
            ],
        ),
        // Empty values, HOME and HOSTNAME overrides.
        (
            &["HOME=/img"],
            &["E=", "HOSTNAME=mine"],
            vec![
                d.clone(),
                "HOSTNAME=mine".into(),
                "HOME=/img".into(),
                "E=".into(),
            ],
        ),
        (
            &[],
            &["A=x=y"],
            vec![
                d,
                "HOSTNAME=abc123".into(),
                "A=x=y".into(),
                "HOME=/root".into(),
            ],
        ),
    ];
    for (i, (ie, oe, want)) in cases.into_iter().enumerate() {
        assert_eq!(env_of(ie, oe), Ok(want), "case {i}");
    }
    assert_eq!(
        env_of(&[], &["=x"]),
        Err(SpecError::InvalidEnv("=x".into()))
    );
}

#[test]
fn env_file_rules() {
    let text = "# comment\n\nA=1\n  B=two words\nFROM_HOST\nC=\n";
    assert_eq!(
        parse_env_file(text),
        Ok(s(&["A=1", "B=two words", "FROM_HOST", "C="]))
    );
    assert_eq!(
        parse_env_file("BAD KEY=1"),
        Err(SpecError::EnvWhitespace("BAD KEY".into()))
    );
}

#[test]
fn users_resolve_like_runc() {
    let u = |uid, gid, groups: &[u32], home: &str| User {
        uid,
        gid,
        additional_gids: groups.to_vec(),
        home: home.into(),
    };
    let cases: Vec<(&str, Result<User, SpecError>)> = vec![
        ("", Ok(u(0, 0, &[0, 10], "/root"))),
        ("root", Ok(u(0, 0, &[0, 10], "/root"))),
        ("0", Ok(u(0, 0, &[0, 10], "/root"))),
        ("app", Ok(u(1000, 1000, &[1000, 10, 29], "/home/app"))),
        ("1000", Ok(u(1000, 1000, &[1000, 10, 29], "/home/app"))),
        ("nobody", Ok(u(65534, 65534, &[65534], "/"))),
        ("app:audio", Ok(u(1000, 29, &[29], "/home/app"))),
        ("app:7", Ok(u(1000, 7, &[7], "/home/app"))),
        ("4242", Ok(u(4242, 0, &[0], "/"))),
        ("4242:4343", Ok(u(4242, 4343, &[4343], "/"))),
        ("4242:wheel", Ok(u(4242, 10, &[10], "/"))),
        ("ghost", Err(SpecError::NoSuchUser("ghost".into()))),
        ("app:ghosts", Err(SpecError::NoSuchGroup("ghosts".into()))),
    ];
    for (spec, want) in cases {
        assert_eq!(
            resolve_user(spec, Some(PASSWD), Some(GROUP)),
            want,
            "{spec}"
        );
    }
    // No passwd file: numbers work, names do not.
    assert_eq!(resolve_user("12:34", None, None), Ok(u(12, 34, &[34], "/")));
    assert_eq!(resolve_user("", None, None), Ok(u(0, 0, &[0], "/")));
    assert_eq!(
        resolve_user("app", None, None),
        Err(SpecError::NoSuchUser("app".into()))
    );
}

#[test]
fn build_uses_workdir_user_hostname_and_defaults() {
    let img = ImageSettings {
        env: s(&["A=1"]),
        cmd: Some(s(&["/bin/sh"])),
        working_dir: Some("/srv".into()),
        user: Some("app".into()),
        ..Default::default()
    };
    let host = |_: &str| None;
    let ctx = Context {
        default_hostname: "0123456789ab",
        host_env: &host,
        passwd: Some(PASSWD),
        group: Some(GROUP),
    };
    let spec = build(&img, &RunOptions::default(), &ctx).unwrap();
    assert_eq!(spec.cwd, "/srv");
    assert_eq!(spec.user.uid, 1000);
    assert_eq!(spec.hostname, "0123456789ab");
    assert!(spec.env.contains(&"HOSTNAME=0123456789ab".to_string()));
    assert!(spec.env.contains(&"HOME=/home/app".to_string()));
    assert_eq!(spec.capabilities.len(), 14);
    assert!(spec.masked_paths.contains(&"/proc/kcore".to_string()));

    let opts = RunOptions {
        workdir: Some("/tmp/x".into()),
        user: Some("0".into()),
        hostname: Some("box".into()),
        ..Default::default()
    };
    let spec = build(&img, &opts, &ctx).unwrap();
    assert_eq!((spec.cwd.as_str(), spec.user.uid), ("/tmp/x", 0));
    assert_eq!(spec.hostname, "box");

    let no_wd = ImageSettings {
        cmd: Some(s(&["x"])),
        ..Default::default()
    };
    assert_eq!(
        build(&no_wd, &RunOptions::default(), &ctx).unwrap().cwd,
        "/"
    );
    let rel = RunOptions {
        workdir: Some("rel".into()),
        ..Default::default()
    };
    assert_eq!(
        build(&img, &rel, &ctx),
        Err(SpecError::RelativeWorkdir("rel".into()))
    );
}

#[test]
fn volumes_and_sizes_parse() {
    let v: Volume = "/h:/c:ro".parse().unwrap();
    assert_eq!(
        (v.host.as_str(), v.container.as_str(), v.read_only),
        ("/h", "/c", true)
    );
    let v: Volume = "/h:/c".parse().unwrap();
    assert!(!v.read_only);
    assert!(matches!(
        "/c".parse::<Volume>(),
        Err(SpecError::NamedVolume(_))
    ));
    assert!(matches!(
        "name:/c".parse::<Volume>(),
        Err(SpecError::NamedVolume(_))
    ));
    assert!(matches!(
        "/h:c".parse::<Volume>(),
        Err(SpecError::RelativeMountPath(_))
    ));
    assert!(matches!(
        "/h:/c:bogus".parse::<Volume>(),
        Err(SpecError::InvalidVolume(_))
    ));

    for (text, want) in [
        ("16m", 16 << 20),
        ("16M", 16 << 20),
        ("16mb", 16 << 20),
        ("1g", 1 << 30),
        ("512k", 512 << 10),
        ("4096", 4096),
        ("100b", 100),
        ("1.5k", 1536),
    ] {
        assert_eq!(parse_bytes(text), Ok(want), "{text}");
    }
    assert!(parse_bytes("lots").is_err());
    assert!(parse_bytes("-1m").is_err());
    assert_eq!("none".parse::<Network>(), Ok(Network::None));
    assert!("weird".parse::<Network>().is_err());
}

#[test]
fn capabilities_tweak_like_docker() {
    let default: Vec<String> = s(DEFAULT_CAPABILITIES);
    assert_eq!(capabilities(&[], &[]).unwrap(), default);
    // Names: with or without CAP_, any case; ALL.
    let got = capabilities(&s(&["sys_admin"]), &s(&["CAP_chown", "Net_Raw"])).unwrap();
    assert!(got.contains(&"CAP_SYS_ADMIN".to_string()));
    assert!(!got.contains(&"CAP_CHOWN".to_string()));
    assert!(!got.contains(&"CAP_NET_RAW".to_string()));
    assert_eq!(got.len(), default.len() - 1);
    assert_eq!(
        capabilities(&[], &s(&["all"])).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        capabilities(&s(&["NET_ADMIN", "net_admin"]), &s(&["ALL"])).unwrap(),
        s(&["CAP_NET_ADMIN"])
    );
    let all = capabilities(&s(&["ALL"]), &s(&["MKNOD"])).unwrap();
    assert_eq!(all.len(), ALL_CAPABILITIES.len() - 1);
    assert!(!all.contains(&"CAP_MKNOD".to_string()));
    // Adding one already there changes nothing.
    assert_eq!(capabilities(&s(&["CAP_KILL"]), &[]).unwrap(), default);
    assert_eq!(
        capabilities(&s(&["FOO"]), &[]),
        Err(SpecError::UnknownCapability {
            list: "CapAdd",
            name: "CAP_FOO".into()
        })
    );
    let e = capabilities(&[], &s(&["cap_bar"])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid CapDrop: unknown capability: \"CAP_BAR\""
    );
    assert_eq!(cap_number("CAP_SYS_ADMIN"), Some(21));
    assert_eq!(cap_number("CHECKPOINT_RESTORE"), Some(40));
}

#[test]
fn cpus_parse_like_docker() {
    let ok = |v: &str| parse_cpus(v, 4).unwrap();
    assert_eq!(ok("1"), Some(1_000_000_000));
    assert_eq!(ok("1.5"), Some(1_500_000_000));
    assert_eq!(ok(".25"), Some(250_000_000));
    assert_eq!(ok("0.01"), Some(10_000_000));
    assert_eq!(ok("4.000"), Some(4_000_000_000));
    assert_eq!(ok("0"), None);
    assert_eq!(ok("0.0"), None);
    for bad in ["", ".", "abc", "-1", "1e3", "1,5", "+1", " "] {
        assert_eq!(
            parse_cpus(bad, 4),
            Err(SpecError::InvalidCpus(bad.into())),
            "{bad:?}"
        );
    }
    assert_eq!(parse_cpus("4.5", 4), Err(SpecError::CpusRange(4)));
    assert_eq!(parse_cpus("0.001", 4), Err(SpecError::CpusRange(4)));
    assert_eq!(
        parse_cpus("99999999999999999999", 4),
        Err(SpecError::CpusRange(4))
    );
    assert_eq!(
        parse_cpus("1.0000000001", 4),
        Err(SpecError::CpusTooPrecise("1.0000000001".into()))
    );
    assert_eq!(cpu_quota_us(1_500_000_000), 150_000);
    assert_eq!(cpu_quota_us(10_000_000), 1_000);
}
