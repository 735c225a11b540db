//! Table tests for image references, ID resolution, image configs, history, import changes,
//! manifests/indexes/manifest.json and docker's human formatting.

use std::collections::BTreeMap;

use cairn_driver::image::{
    self, ArchiveManifestEntry, Change, ChangeKind, ContainerConfig, EntryName, ImageConfig,
    ImageError, ImportOptions, IndexEntry, InspectImage, LayerCompression, MISSING,
    ManifestBuilder, ManifestFlavor, ManifestOrIndex, StoreFacts, Timestamp,
};
use cairn_driver::refs::{
    self, AnyReference, RefError, Reference, ResolveError, parse_any_reference, parse_docker_ref,
    parse_normalized, parse_normalized_named, resolve_image,
};
use oci_spec::image::MediaType;

/// (input, name, domain, tag, digest)
type ParseCase<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
type ErrCheck = fn(&RefError) -> bool;
type Mutation = Box<dyn Fn(&mut serde_json::Value)>;

const FFF: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

// ------------------------------------------------------------------------------------------
// References
// ------------------------------------------------------------------------------------------

/// distribution/reference `TestReferenceParse`: (input, name, domain, tag, digest).
#[test]
fn parse_table_from_distribution() {
    let long_path = format!("{}a", "a/".repeat(127));
    let long_input = format!("{long_path}:tag-puts-this-over-max");
    let long255 = format!("example.com/{}", "a".repeat(255));
    let long255_input = format!("{long255}:tag");
    let cases: Vec<ParseCase> = vec![
        ("test_com", "test_com", "", None, None),
        ("test.com:tag", "test.com", "", Some("tag"), None),
        ("test.com:5000", "test.com", "", Some("5000"), None),
        (
            "test.com/repo:tag",
            "test.com/repo",
            "test.com",
            Some("tag"),
            None,
        ),
        ("test:5000/repo", "test:5000/repo", "test:5000", None, None),
        (
            "test:5000/repo:tag",
            "test:5000/repo",
            "test:5000",
            Some("tag"),
            None,
        ),
        (
            "test:5000/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "test:5000/repo",
            "test:5000",
            None,
            Some(FFF),
        ),
        (
            "test:5000/repo:tag@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "test:5000/repo",
            "test:5000",
            Some("tag"),
            Some(FFF),
        ),
        (
            "lowercase:Uppercase",
            "lowercase",
            "",
            Some("Uppercase"),
            None,
        ),
        (
            &long_input,
            &long_path,
            "a",
            Some("tag-puts-this-over-max"),
            None,
        ),
        (
            "sub-dom1.foo.com/bar/baz/quux",
            "sub-dom1.foo.com/bar/baz/quux",
            "sub-dom1.foo.com",
            None,
            None,
        ),
        (
            "b.gcr.io/test.example.com/my-app:test.example.com",
            "b.gcr.io/test.example.com/my-app",
            "b.gcr.io",
            Some("test.example.com"),
            None,
        ),
        (
            "xn--n3h.com/myimage:xn--n3h.com",
            "xn--n3h.com/myimage",
            "xn--n3h.com",
            Some("xn--n3h.com"),
            None,
        ),
        ("foo_bar.com:8080", "foo_bar.com", "", Some("8080"), None),
        (
            "foo/foo_bar.com:8080",
            "foo/foo_bar.com",
            "foo",
            Some("8080"),
            None,
        ),
        ("192.168.1.1", "192.168.1.1", "", None, None),
        (
            "192.168.1.1:5000/repo:5050",
            "192.168.1.1:5000/repo",
            "192.168.1.1:5000",
            Some("5050"),
            None,
        ),
        (
            "[2001:db8::1]/repo",
            "[2001:db8::1]/repo",
            "[2001:db8::1]",
            None,
            None,
        ),
        (
            "[2001:db8::1]:5000/repo:tag",
            "[2001:db8::1]:5000/repo",
            "[2001:db8::1]:5000",
            Some("tag"),
            None,
        ),
        (
            "[::1]:5000/repo",
            "[::1]:5000/repo",
            "[::1]:5000",
            None,
            None,
        ),
        (&long255_input, &long255, "example.com", Some("tag"), None),
    ];
    for (input, name, domain, tag, digest) in cases {
        let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.to_string(), input, "round trip of {input}");
        assert_eq!(r.name(), name, "name of {input}");
        assert_eq!(r.domain(), domain, "domain of {input}");
        assert_eq!(r.tag(), tag, "tag of {input}");
        assert_eq!(r.digest(), digest, "digest of {input}");
    }
}

#[test]
fn parse_errors_from_distribution() {
    let too_long = format!("domain/{}:tag", "a".repeat(256));
    let cases: Vec<(&str, ErrCheck)> = vec![
        ("", |e| matches!(e, RefError::Empty)),
        (":justtag", |e| matches!(e, RefError::InvalidFormat(_))),
        (
            "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            |e| matches!(e, RefError::InvalidFormat(_)),
        ),
        ("repo@sha256:ffffffffffffffffffffffffffffffffff", |e| {
            matches!(e, RefError::DigestLength(_))
        }),
        (
            "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            |e| matches!(e, RefError::DigestUnsupported(_)),
        ),
        ("Uppercase:tag", |e| matches!(e, RefError::Uppercase(_))),
        ("test:5000/Uppercase/lowercase:tag", |e| {
            matches!(e, RefError::Uppercase(_))
        }),
        (&too_long, |e| matches!(e, RefError::NameTooLong(_))),
        ("aa/asdf$$^/aa", |e| matches!(e, RefError::InvalidFormat(_))),
        ("[2001:db8::1]", |e| matches!(e, RefError::InvalidFormat(_))),
        ("[2001:db8::1]:5000", |e| {
            matches!(e, RefError::InvalidFormat(_))
        }),
        ("[fe80::1%eth0]:5000/repo", |e| {
            matches!(e, RefError::InvalidFormat(_))
        }),
    ];
    for (input, check) in cases {
        let err = Reference::parse(input).expect_err(input);
        assert!(check(&err), "{input}: unexpected error {err:?}");
    }
}

#[test]
fn tag_regex_limits() {
    let base = Reference::parse("a").unwrap();
    assert!(base.with_tag(&"t".repeat(128)).is_ok());
    assert!(base.with_tag(&"t".repeat(129)).is_err());
    assert!(base.with_tag("_ok.-9").is_ok());
    assert!(base.with_tag(".bad").is_err());
    assert!(base.with_tag("-bad").is_err());
    assert!(base.with_tag("bad/tag").is_err());
    assert!(base.with_tag("é").is_err(), "\\w is ASCII only");
}

/// distribution/reference `TestValidateReferenceName` / `TestValidateRemoteName`.
#[test]
fn normalized_valid_and_invalid_names() {
    for ok in [
        "docker/docker",
        "library/debian",
        "debian",
        "localhost/library/debian",
        "localhost/debian",
        "LOCALDOMAIN/library/debian",
        "docker.io/docker/docker",
        "docker.io/debian",
        "index.docker.io/library/debian",
        "127.0.0.1:5000/docker/docker",
        "192.168.0.1",
        "192.168.0.1:80",
        "192.168.0.2:25000/debian",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "[fc00::1]:5000/docker",
        "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "Docker/docker",
        "docker-rules/docker",
        "docker---rules/docker",
        "d/docker",
        "jess/t",
        "dock__er/docker",
    ] {
        parse_normalized_named(ok).unwrap_or_else(|e| panic!("{ok} should be valid: {e}"));
    }
    for bad in [
        "https://github.com/docker/docker",
        "docker/Docker",
        "-docker",
        "-docker/docker",
        "docker///docker",
        "docker.io/docker/Docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "docker-/docker",
        "____/____",
        "_docker/_docker",
        "dock..er/docker",
        "dock_.er/docker",
        "dock-.er/docker",
        "docker/",
    ] {
        assert!(
            parse_normalized_named(bad).is_err(),
            "{bad} should be invalid"
        );
    }
}

#[test]
fn normalisation_and_familiar() {
    let d = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
    let cases = [
        (
            "busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "busybox:1.36",
            "docker.io/library/busybox:1.36",
            "busybox:1.36",
        ),
        (
            "library/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "docker.io/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "index.docker.io/user/app:v1",
            "docker.io/user/app:v1",
            "user/app:v1",
        ),
        ("user/app", "docker.io/user/app:latest", "user/app:latest"),
        (
            "localhost:5000/x/y:tag",
            "localhost:5000/x/y:tag",
            "localhost:5000/x/y:tag",
        ),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        (
            "quay.io/a/b/c",
            "quay.io/a/b/c:latest",
            "quay.io/a/b/c:latest",
        ),
        (
            "docker.io/library/a/b",
            "docker.io/library/a/b:latest",
            "library/a/b:latest",
        ),
    ];
    for (input, full, familiar) in cases {
        let r = parse_normalized(input).unwrap();
        assert_eq!(r.to_string(), full, "{input}");
        assert_eq!(r.familiar(), familiar, "{input}");
    }
    // name@digest keeps no tag; name:tag@digest keeps both; parse_docker_ref drops the tag.
    let r = parse_normalized(&format!("x/y@{d}")).unwrap();
    assert_eq!(r.to_string(), format!("docker.io/x/y@{d}"));
    assert_eq!(r.familiar(), format!("x/y@{d}"));
    let r = parse_normalized(&format!("busybox:1@{d}")).unwrap();
    assert_eq!((r.tag(), r.digest()), (Some("1"), Some(d)));
    let r = parse_docker_ref(&format!("busybox:1@{d}")).unwrap();
    assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
    assert_eq!(r.familiar_name(), "busybox");
    assert_eq!(r.path(), "library/busybox");
    assert_eq!(r.domain(), "docker.io");
    // Display/familiar round trip through FromStr.
    let again: Reference = "busybox:latest".parse().unwrap();
    assert_eq!(again, parse_normalized("busybox").unwrap());
}

#[test]
fn normalisation_errors_name_input() {
    let e = parse_normalized("Busybox").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid reference format: repository name (library/Busybox) must be lowercase"
    );
    let e = parse_normalized("a b").unwrap_err();
    assert!(e.to_string().contains("a b"), "{e}");
    let hex = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
    assert!(parse_normalized(hex).unwrap_err().to_string().contains(hex));
}

/// distribution/reference `TestParseAnyReference`.
#[test]
fn parse_any_reference_table() {
    let hex = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
    let cases = [
        ("redis", "docker.io/library/redis"),
        ("redis:latest", "docker.io/library/redis:latest"),
        ("dmcgowan/myapp", "docker.io/dmcgowan/myapp"),
        (&hex[..63], &format!("docker.io/library/{}", &hex[..63])),
        ("dbcc1", "docker.io/library/dbcc1"),
    ];
    for (input, want) in cases {
        match parse_any_reference(input).unwrap() {
            AnyReference::Named(r) => assert_eq!(r.to_string(), want),
            other => panic!("{input}: {other:?}"),
        }
    }
    for input in [hex.to_string(), format!("sha256:{hex}")] {
        assert_eq!(
            parse_any_reference(&input).unwrap(),
            AnyReference::Digest(format!("sha256:{hex}"))
        );
    }
}

// ------------------------------------------------------------------------------------------
// Resolving CLI arguments
// ------------------------------------------------------------------------------------------

fn id(prefix: &str) -> String {
    format!("sha256:{prefix}{}", "0".repeat(64 - prefix.len()))
}

#[test]
fn resolve_names_ids_and_prefixes() {
    let (a, b, c) = (id("abc1"), id("abc2"), id("ffee"));
    let mut refs = BTreeMap::new();
    refs.insert("docker.io/library/busybox:latest".to_string(), a.clone());
    refs.insert("localhost:5000/x/y:v1".to_string(), b.clone());
    let dig = FFF.to_string();
    refs.insert(format!("docker.io/library/alpine@{dig}"), c.clone());
    // A tag that looks like a hex prefix: names win over ID prefixes.
    refs.insert("docker.io/library/abc1:latest".to_string(), c.clone());
    let ids = vec![a.clone(), b.clone(), c.clone()];

    let ok = |arg: &str| resolve_image(arg, &refs, &ids).unwrap_or_else(|e| panic!("{arg}: {e}"));
    assert_eq!(ok("busybox").id, a);
    assert_eq!(
        ok("busybox").reference.unwrap().to_string(),
        "docker.io/library/busybox:latest"
    );
    assert_eq!(ok("busybox:latest").id, a);
    assert_eq!(ok("docker.io/library/busybox").id, a);
    assert_eq!(ok("localhost:5000/x/y:v1").id, b);
    assert_eq!(ok(&format!("alpine@{dig}")).id, c);
    assert_eq!(
        ok(&format!("alpine:3@{dig}")).id,
        c,
        "tag ignored when digest given"
    );
    assert_eq!(ok("abc1").id, c, "name before ID prefix");
    assert_eq!(ok("abc2").id, b);
    assert_eq!(ok("ff").id, c);
    assert_eq!(ok("f").id, c, "one character is enough when unambiguous");
    assert_eq!(ok("sha256:abc2").id, b);
    assert_eq!(ok(&b[7..]).id, b, "full hex");
    assert_eq!(ok(&b).id, b, "sha256:full");
    assert!(ok("ff").reference.is_none());

    let err = |arg: &str| resolve_image(arg, &refs, &ids).unwrap_err();
    assert_eq!(
        err("abc"),
        ResolveError::Ambiguous {
            arg: "abc".into(),
            count: 2
        }
    );
    assert!(err("abc").to_string().starts_with("No such image: abc"));
    assert_eq!(err("nothere").to_string(), "No such image: nothere:latest");
    assert_eq!(err("sha256:abc9").to_string(), "No such image: sha256:abc9");
    assert_eq!(err("busybox:1.0").to_string(), "No such image: busybox:1.0");
    let full = id("1234");
    assert_eq!(err(&full).to_string(), format!("No such image: {full}"));
    assert!(matches!(
        err("UPPER"),
        ResolveError::InvalidReference(RefError::Uppercase(_))
    ));
    assert!(matches!(
        err(""),
        ResolveError::InvalidReference(RefError::InvalidFormat(_))
    ));
}

#[test]
fn short_ids() {
    assert_eq!(refs::short_id(&id("0123456789abcdef")), "0123456789ab");
    assert_eq!(image::short_id("0123456789abcdef"), "0123456789ab");
}

// ------------------------------------------------------------------------------------------
// Image config
// ------------------------------------------------------------------------------------------

const BUSYBOX: &str = r##"{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"Image":"sha256:a416a98b71e224a31ee99cff8e16063554498227d2b696152a9c3e0aa65e5824","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"container":"bd1ea13bc2fd5d3fcf1c0a3e0d4a4ef9a1ad2c5a8cdbce0e7eea8c9ee4fbe8c5","container_config":{"Hostname":"bd1ea13bc2fd","Cmd":["/bin/sh","-c","#(nop) ","CMD [\"sh\"]"]},"created":"2023-07-18T23:19:33.655005962Z","docker_version":"20.10.23","history":[{"created":"2023-07-18T23:19:33.538571854Z","created_by":"/bin/sh -c #(nop) ADD file:7e9002edaafd4e4579b65c8f0aaabde1aeb7fd3f8d95579f7fd3443cef785fd1 in / "},{"created":"2023-07-18T23:19:33.655005962Z","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:3d24ee258efc3bfe4066a1a9fb83febf6dc0b1548dfe896161533668281c9f4f"]}}"##;

const NGINXISH: &str = r#"{
  "architecture": "arm64", "variant": "v8", "os": "linux", "author": "someone <a@b.c>",
  "created": "2024-02-01T10:00:00+01:00",
  "config": {
    "User": "101:101", "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
    "Env": ["PATH=/bin", "NGINX_VERSION=1.25.3"], "Entrypoint": ["/docker-entrypoint.sh"],
    "Cmd": ["nginx", "-g", "daemon off;"], "Volumes": {"/var/cache/nginx": {}},
    "WorkingDir": "/srv", "Labels": {"maintainer": "NGINX", "a": "b"}, "StopSignal": "SIGQUIT"
  },
  "rootfs": {"type": "layers", "diff_ids": [
    "sha256:1111111111111111111111111111111111111111111111111111111111111111",
    "sha256:2222222222222222222222222222222222222222222222222222222222222222",
    "sha256:3333333333333333333333333333333333333333333333333333333333333333"]},
  "history": [
    {"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs.tar /"},
    {"created": "2024-01-02T00:00:00Z", "created_by": "ENV A=b", "empty_layer": true},
    {"created": "2024-01-03T00:00:00Z", "created_by": "RUN apt-get install nginx", "comment": "buildkit.dockerfile.v0"},
    {"created_by": "COPY . /srv"},
    {"created": "2024-02-01T09:00:00Z", "created_by": "CMD [\"nginx\"]", "empty_layer": true}
  ]
}"#;

#[test]
fn busybox_config() {
    let c = ImageConfig::from_bytes(BUSYBOX.as_bytes().to_vec()).unwrap();
    assert_eq!(c.raw(), BUSYBOX.as_bytes());
    assert_eq!(c.image_id(), image::sha256_digest(BUSYBOX.as_bytes()));
    assert_eq!(c.architecture(), "amd64");
    assert_eq!(c.os(), "linux");
    assert_eq!(c.created(), Some("2023-07-18T23:19:33.655005962Z"));
    assert_eq!(
        c.created_time().unwrap().to_rfc3339(),
        "2023-07-18T23:19:33.655005962Z"
    );
    assert_eq!(c.docker_version(), Some("20.10.23"));
    assert_eq!(c.cmd(), Some(&["sh".to_string()][..]));
    assert_eq!(c.entrypoint(), None);
    assert_eq!(c.working_dir(), None);
    assert_eq!(c.user(), None);
    assert_eq!(
        c.env(),
        ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );
    assert_eq!(c.diff_ids().len(), 1);
    assert_eq!(c.chain_ids(), c.diff_ids());
    assert_eq!(c.history().len(), 2);
}

#[test]
fn image_id_is_hash_of_exact_bytes() {
    let pretty =
        serde_json::to_vec_pretty(&serde_json::from_str::<serde_json::Value>(BUSYBOX).unwrap())
            .unwrap();
    let a = ImageConfig::from_bytes(BUSYBOX.as_bytes()).unwrap();
    let b = ImageConfig::from_bytes(pretty.clone()).unwrap();
    assert_ne!(a.image_id(), b.image_id());
    assert_eq!(b.raw(), &pretty[..]);
    assert_eq!(a.diff_ids(), b.diff_ids());
}

#[test]
fn nginxish_config() {
    let c = ImageConfig::from_bytes(NGINXISH.as_bytes()).unwrap();
    assert_eq!(c.architecture(), "arm64");
    assert_eq!(c.variant(), Some("v8"));
    assert_eq!(c.author(), Some("someone <a@b.c>"));
    assert_eq!(
        c.created_time().unwrap().to_rfc3339(),
        "2024-02-01T09:00:00Z"
    );
    assert_eq!(c.user(), Some("101:101"));
    assert_eq!(c.exposed_ports(), ["443/tcp", "80/tcp"]);
    assert_eq!(c.volumes(), ["/var/cache/nginx"]);
    assert_eq!(c.working_dir(), Some("/srv"));
    assert_eq!(c.stop_signal(), Some("SIGQUIT"));
    assert_eq!(c.labels().unwrap()["maintainer"], "NGINX");
    assert_eq!(c.entrypoint().unwrap(), ["/docker-entrypoint.sh"]);
    let chains = c.chain_ids();
    assert_eq!(chains[0], c.diff_ids()[0]);
    assert_eq!(
        chains[1],
        image::sha256_digest(format!("{} {}", c.diff_ids()[0], c.diff_ids()[1]).as_bytes())
    );
    // Labels serialise in sorted order, whatever the input order.
    let j = serde_json::to_string(c.config().unwrap()).unwrap();
    assert!(
        j.contains(r#""Labels":{"a":"b","maintainer":"NGINX"}"#),
        "{j}"
    );
    assert!(
        j.contains(r#""ExposedPorts":{"443/tcp":{},"80/tcp":{}}"#),
        "{j}"
    );
}

#[test]
fn config_validation_names_the_field() {
    let base: serde_json::Value = serde_json::from_str(BUSYBOX).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = base.clone();
        f(&mut v);
        ImageConfig::from_bytes(serde_json::to_vec(&v).unwrap())
    };
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "\"architecture\"",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("architecture");
            }),
        ),
        ("\"os\"", Box::new(|v| v["os"] = serde_json::json!(""))),
        ("\"os\"", Box::new(|v| v["os"] = serde_json::json!(3))),
        (
            "\"rootfs\"",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("rootfs");
            }),
        ),
        (
            "\"rootfs.type\"",
            Box::new(|v| v["rootfs"]["type"] = serde_json::json!("tarball")),
        ),
        (
            "\"rootfs.type\"",
            Box::new(|v| {
                v["rootfs"].as_object_mut().unwrap().remove("type");
            }),
        ),
        (
            "\"rootfs.diff_ids[0]\"",
            Box::new(|v| v["rootfs"]["diff_ids"][0] = serde_json::json!("sha256:xyz")),
        ),
        (
            "\"rootfs.diff_ids\"",
            Box::new(|v| v["rootfs"]["diff_ids"] = serde_json::json!("nope")),
        ),
        (
            "\"created\"",
            Box::new(|v| v["created"] = serde_json::json!("yesterday")),
        ),
        (
            "\"history[1].created\"",
            Box::new(|v| v["history"][1]["created"] = serde_json::json!("2023-13-01T00:00:00Z")),
        ),
        (
            "\"config\"",
            Box::new(|v| v["config"] = serde_json::json!([])),
        ),
    ];
    for (field, f) in cases {
        let e = with(&*f).expect_err(field);
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    assert!(matches!(
        ImageConfig::from_bytes(b"{not json".to_vec()),
        Err(ImageError::Json { .. })
    ));
    assert!(ImageConfig::from_bytes(b"[]".to_vec()).is_err());
    // Layerless docker configs omit diff_ids: read as no layers; the raw bytes stay untouched.
    let raw = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#;
    let c = ImageConfig::from_bytes(raw.to_vec()).unwrap();
    assert!(c.diff_ids().is_empty());
    assert_eq!(c.raw(), raw);
    assert!(c.config().is_none() && c.cmd().is_none() && c.env().is_empty());
}

// ------------------------------------------------------------------------------------------
// History
// ------------------------------------------------------------------------------------------

#[test]
fn history_rows_busybox() {
    let c = ImageConfig::from_bytes(BUSYBOX.as_bytes()).unwrap();
    let rows = c.history_rows().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].id, c.image_id());
    assert!(rows[0].empty_layer && rows[0].diff_id.is_none() && rows[0].size == 0);
    assert_eq!(rows[0].created_by, "/bin/sh -c #(nop)  CMD [\"sh\"]");
    assert_eq!(rows[1].id, MISSING);
    assert!(!rows[1].empty_layer);
    assert_eq!(rows[1].diff_id.as_deref(), Some(c.diff_ids()[0].as_str()));
    assert_eq!(rows[1].chain_id.as_deref(), Some(c.diff_ids()[0].as_str()));
}

#[test]
fn history_rows_with_empty_layers() {
    let c = ImageConfig::from_bytes(NGINXISH.as_bytes()).unwrap();
    let rows = c.history_rows().unwrap();
    let summary: Vec<(&str, bool, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.created_by.as_str(),
                r.empty_layer,
                r.diff_id.as_deref().map(|d| &d[7..11]),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("CMD [\"nginx\"]", true, None),
            ("COPY . /srv", false, Some("3333")),
            ("RUN apt-get install nginx", false, Some("2222")),
            ("ENV A=b", true, None),
            ("ADD rootfs.tar /", false, Some("1111")),
        ]
    );
    assert_eq!(rows[0].id, c.image_id());
    assert!(rows[1..].iter().all(|r| r.id == MISSING));
    assert_eq!(rows[1].created, None);
    assert_eq!(rows[2].comment, "buildkit.dockerfile.v0");
    assert_eq!(rows[1].chain_id.as_ref(), c.chain_ids().last());
    assert_eq!(
        rows[4].created_time,
        Timestamp::parse_rfc3339("2024-01-01T00:00:00Z")
    );
}

#[test]
fn history_rows_errors_and_absence() {
    let too_many = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"ADD x /"}]}"#;
    let c = ImageConfig::from_bytes(too_many.as_bytes()).unwrap();
    assert!(matches!(
        c.history_rows(),
        Err(ImageError::HistoryMismatch { diff_ids: 0 })
    ));
    let none = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]}}"#;
    assert!(
        ImageConfig::from_bytes(none.as_bytes())
            .unwrap()
            .history_rows()
            .unwrap()
            .is_empty()
    );
}

// ------------------------------------------------------------------------------------------
// import changes
// ------------------------------------------------------------------------------------------

fn apply(changes: &[&str]) -> ContainerConfig {
    let parsed: Vec<Change> = changes.iter().map(|c| Change::parse(c).unwrap()).collect();
    let mut cfg = ContainerConfig::default();
    image::apply_changes(&mut cfg, &parsed).unwrap();
    cfg
}

fn strings(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

#[test]
fn change_parsing_table() {
    assert_eq!(Change::parse("env A=b").unwrap().kind(), ChangeKind::Env);
    assert_eq!(Change::parse("  WORKDIR   /x ").unwrap().args(), "/x");
    let c = apply(&["ENV A=b C=\"d e\" F='g h' I=j\\ k", "ENV L m n", "ENV A=z"]);
    assert_eq!(c.env, strings(&["A=z", "C=d e", "F=g h", "I=j k", "L=m n"]));
    let c = apply(&[
        "ENV PATH=/bin",
        "ENV PATH=/usr/local/bin:$PATH X=${PATH}:y D=${NOPE:-dflt} P=${PATH:+set} S='$PATH'",
    ]);
    assert_eq!(
        c.env,
        strings(&[
            "PATH=/usr/local/bin:/bin",
            "X=/bin:y",
            "D=dflt",
            "P=set",
            "S=$PATH"
        ])
    );
    assert_eq!(
        apply(&["CMD [\"echo\", \"hi\"]"]).cmd,
        strings(&["echo", "hi"])
    );
    assert_eq!(
        apply(&["CMD echo $HOME"]).cmd,
        strings(&["/bin/sh", "-c", "echo $HOME"])
    );
    assert_eq!(
        apply(&["CMD [not json"]).cmd,
        strings(&["/bin/sh", "-c", "[not json"])
    );
    let c = apply(&["CMD [\"a\"]", "ENTRYPOINT [\"/init\"]"]);
    assert_eq!(
        (c.entrypoint, c.cmd),
        (strings(&["/init"]), strings(&["a"]))
    );
    let c = apply(&["ENTRYPOINT /init --x"]);
    assert_eq!(c.entrypoint, strings(&["/bin/sh", "-c", "/init --x"]));
    assert_eq!(
        apply(&["WORKDIR /a", "WORKDIR b/../c", "WORKDIR ./d"])
            .working_dir
            .as_deref(),
        Some("/a/c/d")
    );
    assert_eq!(apply(&["WORKDIR rel"]).working_dir.as_deref(), Some("/rel"));
    assert_eq!(
        apply(&["ENV D=/data", "WORKDIR $D"]).working_dir.as_deref(),
        Some("/data")
    );
    assert_eq!(
        apply(&["USER 1000:1000"]).user.as_deref(),
        Some("1000:1000")
    );
    let ports: Vec<String> = apply(&["EXPOSE 80 53/UDP 8000-8002/tcp"])
        .exposed_ports
        .unwrap()
        .into_keys()
        .collect();
    assert_eq!(
        ports,
        ["53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp"]
    );
    let vols: Vec<String> = apply(&["VOLUME [\"/a\", \"/b c\"]", "VOLUME /d /e"])
        .volumes
        .unwrap()
        .into_keys()
        .collect();
    assert_eq!(vols, ["/a", "/b c", "/d", "/e"]);
    let labels = apply(&["LABEL a=b \"c d\"=e", "LABEL legacy value here"])
        .labels
        .unwrap();
    assert_eq!(labels["a"], "b");
    assert_eq!(labels["c d"], "e");
    assert_eq!(labels["legacy"], "value here");
    for s in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-1"] {
        assert_eq!(
            apply(&[&format!("STOPSIGNAL {s}")]).stop_signal.as_deref(),
            Some(s)
        );
    }
}

#[test]
fn change_errors() {
    assert!(
        matches!(Change::parse("RUN rm -rf /"), Err(ImageError::UnsupportedChange(w)) if w == "RUN")
    );
    assert!(matches!(
        Change::parse("FROM x"),
        Err(ImageError::UnsupportedChange(_))
    ));
    for bad in [
        "ENV",
        "ENV =x",
        "ENV A=b C",
        "ENV A=\"unterminated",
        "EXPOSE 80/foo",
        "EXPOSE 99999",
        "EXPOSE 90-80",
        "VOLUME [\"\"]",
        "STOPSIGNAL SIGNOPE",
        "STOPSIGNAL 0",
        "WORKDIR",
        "CMD",
        "ENV A=${B:?x}",
    ] {
        let e = Change::parse(bad).expect_err(bad);
        assert!(e.to_string().contains(bad), "{bad}: {e}");
    }
}

#[test]
fn import_config_is_deterministic() {
    let diff =
        vec!["sha256:3d24ee258efc3bfe4066a1a9fb83febf6dc0b1548dfe896161533668281c9f4f".to_string()];
    let changes: Vec<Change> = ["ENV A=b", "CMD [\"sh\"]", "LABEL z=1 a=2", "EXPOSE 80"]
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    let opts = ImportOptions {
        message: "Imported from -".into(),
        created: Timestamp::parse_rfc3339("2024-03-04T05:06:07.5Z").unwrap(),
        architecture: "amd64".into(),
        os: "linux".into(),
    };
    let a = image::new_config_for_import(&diff, &changes, &opts).unwrap();
    let b = image::new_config_for_import(&diff, &changes, &opts).unwrap();
    assert_eq!(a.raw(), b.raw());
    assert_eq!(a.image_id(), b.image_id());
    assert_eq!(
        std::str::from_utf8(a.raw()).unwrap(),
        r#"{"architecture":"amd64","comment":"Imported from -","config":{"ExposedPorts":{"80/tcp":{}},"Env":["A=b"],"Cmd":["sh"],"Labels":{"a":"2","z":"1"}},"created":"2024-03-04T05:06:07.5Z","history":[{"created":"2024-03-04T05:06:07.5Z","comment":"Imported from -"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:3d24ee258efc3bfe4066a1a9fb83febf6dc0b1548dfe896161533668281c9f4f"]}}"#
    );
    assert_eq!(a.comment(), Some("Imported from -"));
    let rows = a.history_rows().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].comment, "Imported from -");
    // No message, no changes.
    let plain = image::new_config_for_import(
        &diff,
        &[],
        &ImportOptions {
            message: String::new(),
            ..opts.clone()
        },
    )
    .unwrap();
    assert!(
        !std::str::from_utf8(plain.raw())
            .unwrap()
            .contains("comment")
    );
    // Host defaults are sane.
    let host = ImportOptions::new("m");
    assert_eq!(host.os, "linux");
    assert!(!host.architecture.is_empty());
    assert!(image::new_config_for_import(&["bad".into()], &[], &opts).is_err());
}

// ------------------------------------------------------------------------------------------
// Manifests, indexes, manifest.json
// ------------------------------------------------------------------------------------------

const L1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const L2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const CFG: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

#[test]
fn oci_manifest_round_trip() {
    let m = ManifestBuilder::new(ManifestFlavor::Oci, CFG, 1234)
        .unwrap()
        .layer(L1, 100, LayerCompression::Gzip)
        .unwrap()
        .layer(L2, 200, LayerCompression::None)
        .unwrap()
        .build();
    let bytes = image::manifest_to_bytes(&m);
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CFG}","size":1234}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{L1}","size":100}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{L2}","size":200}}]}}"#
        )
    );
    let back = image::parse_manifest(&bytes).unwrap();
    assert_eq!(back, m);
    assert_eq!(image::manifest_to_bytes(&back), bytes);
    let comp: Vec<LayerCompression> = back
        .layers()
        .iter()
        .map(|l| image::layer_compression(l.media_type()).unwrap())
        .collect();
    assert_eq!(comp, [LayerCompression::Gzip, LayerCompression::None]);
}

#[test]
fn docker_v2_manifest_round_trip() {
    let m = ManifestBuilder::new(ManifestFlavor::DockerV2, CFG, 10)
        .unwrap()
        .layer(L1, 100, LayerCompression::Gzip)
        .unwrap()
        .build();
    let bytes = image::manifest_to_bytes(&m);
    let s = std::str::from_utf8(&bytes).unwrap();
    assert!(s.contains(image::DOCKER_MANIFEST_V2) && s.contains(image::DOCKER_CONFIG_V1));
    assert!(s.contains(image::DOCKER_LAYER_GZIP));
    assert_eq!(image::parse_manifest(&bytes).unwrap(), m);
    assert!(
        ManifestBuilder::new(ManifestFlavor::DockerV2, CFG, 10)
            .unwrap()
            .layer(L1, 1, LayerCompression::Zstd)
            .is_err()
    );
    assert!(ManifestBuilder::new(ManifestFlavor::Oci, "sha256:short", 10).is_err());
}

#[test]
fn manifest_rejections() {
    let schema1 = br#"{"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[]}"#;
    let e = image::parse_manifest(schema1).unwrap_err();
    assert!(matches!(e, ImageError::Schema1 { .. }));
    assert!(e.to_string().contains("schema1"), "{e}");
    let signed = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}"}}"#,
        image::DOCKER_MANIFEST_V1_SIGNED
    );
    assert!(matches!(
        image::parse_manifest(signed.as_bytes()),
        Err(ImageError::Schema1 { .. })
    ));
    let unknown =
        br#"{"schemaVersion":2,"mediaType":"application/x-weird","config":{},"layers":[]}"#;
    let e = image::parse_manifest(unknown).unwrap_err();
    assert!(e.to_string().contains("application/x-weird"), "{e}");
    let bad_layer = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CFG}","size":1}},"layers":[{{"mediaType":"application/vnd.in-toto+json","digest":"{L1}","size":1}}]}}"#
    );
    let e = image::parse_manifest(bad_layer.as_bytes()).unwrap_err();
    assert!(
        e.to_string().contains("application/vnd.in-toto+json"),
        "{e}"
    );
    let helm = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{CFG}","size":1}},"layers":[]}}"#
    );
    assert!(matches!(
        image::parse_manifest(helm.as_bytes()),
        Err(ImageError::UnknownMediaType { what: "config", .. })
    ));
    assert!(matches!(
        image::parse_manifest(br#"{"schemaVersion":3}"#),
        Err(ImageError::SchemaVersion(3))
    ));
    assert!(image::parse_manifest(b"{}").is_err());
    // An index where a manifest is expected, and vice versa.
    let idx = image::index_to_bytes(&image::build_index(&[]).unwrap());
    assert!(matches!(
        image::parse_manifest(&idx),
        Err(ImageError::WrongKind { .. })
    ));
}

#[test]
fn index_round_trip_with_ref_names() {
    let busy = parse_normalized("busybox").unwrap();
    let entries = [
        IndexEntry {
            manifest_digest: L1.into(),
            manifest_size: 400,
            media_type: MediaType::ImageManifest,
            reference: Some(busy.clone()),
            platform: None,
        },
        IndexEntry {
            manifest_digest: L2.into(),
            manifest_size: 500,
            media_type: MediaType::ImageManifest,
            reference: None,
            platform: None,
        },
    ];
    let idx = image::build_index(&entries).unwrap();
    let bytes = image::index_to_bytes(&idx);
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{L1}","size":400,"annotations":{{"io.containerd.image.name":"docker.io/library/busybox:latest","org.opencontainers.image.ref.name":"latest"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{L2}","size":500}}]}}"#
        )
    );
    let back = image::parse_index(&bytes).unwrap();
    assert_eq!(back, idx);
    assert_eq!(image::index_to_bytes(&back), bytes);
    assert_eq!(
        image::index_entry_name(&back.manifests()[0]),
        EntryName::Reference(busy)
    );
    assert_eq!(
        image::index_entry_name(&back.manifests()[1]),
        EntryName::None
    );
    // Plain OCI layouts: ref.name is a tag, or a full reference.
    let tag_only = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{L1}","size":1,"annotations":{{"org.opencontainers.image.ref.name":"v1.0"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{L2}","size":1,"annotations":{{"org.opencontainers.image.ref.name":"quay.io/a/b:2"}}}}]}}"#
    );
    let idx = match image::parse_manifest_or_index(tag_only.as_bytes(), None).unwrap() {
        ManifestOrIndex::Index(i) => *i,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        image::index_entry_name(&idx.manifests()[0]),
        EntryName::Tag("v1.0".into())
    );
    assert_eq!(
        image::index_entry_name(&idx.manifests()[1]),
        EntryName::Reference(parse_normalized_named("quay.io/a/b:2").unwrap())
    );
    // Docker manifest lists are indexes; unknown entry types are rejected.
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{L1}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        image::DOCKER_MANIFEST_LIST_V2,
        image::DOCKER_MANIFEST_V2
    );
    assert_eq!(
        image::parse_index(list.as_bytes())
            .unwrap()
            .manifests()
            .len(),
        1
    );
    let odd = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"text/plain","digest":"{L1}","size":1}}]}}"#
    );
    assert!(matches!(
        image::parse_index(odd.as_bytes()),
        Err(ImageError::UnknownMediaType {
            what: "index entry",
            ..
        })
    ));
}

#[test]
fn archive_manifest_json_round_trip() {
    let tags = [
        parse_normalized("busybox").unwrap(),
        parse_normalized("localhost:5000/x:1").unwrap(),
    ];
    let e = ArchiveManifestEntry::new(CFG, &tags, &[L1.to_string(), L2.to_string()]).unwrap();
    let untagged = ArchiveManifestEntry::new(CFG, &[], &[L1.to_string()]).unwrap();
    let bytes = image::archive_manifest_to_bytes(&[e.clone(), untagged.clone()]);
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        r#"[{"Config":"blobs/sha256/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","RepoTags":["busybox:latest","localhost:5000/x:1"],"Layers":["blobs/sha256/1111111111111111111111111111111111111111111111111111111111111111","blobs/sha256/2222222222222222222222222222222222222222222222222222222222222222"]},{"Config":"blobs/sha256/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","RepoTags":null,"Layers":["blobs/sha256/1111111111111111111111111111111111111111111111111111111111111111"]}]"#
    );
    let back = image::parse_archive_manifest(&bytes).unwrap();
    assert_eq!(back, [e.clone(), untagged]);
    assert_eq!(back[0].references().unwrap(), tags);
    // Legacy docker-archive shape, with LayerSources.
    let legacy = br#"[{"Config":"abc.json","RepoTags":["a:b"],"Layers":["d1/layer.tar"],"LayerSources":{"sha256:1":{"mediaType":"x"}}}]"#;
    let l = image::parse_archive_manifest(legacy).unwrap();
    assert_eq!(l[0].layers, ["d1/layer.tar"]);
    assert!(l[0].layer_sources.is_some());
    for bad in [
        r#"[{"Config":"../etc/passwd","RepoTags":[],"Layers":[]}]"#,
        r#"[{"Config":"c","RepoTags":[],"Layers":["/abs"]}]"#,
        r#"[{"Config":"","RepoTags":[],"Layers":[]}]"#,
        r#"[{"RepoTags":[],"Layers":[]}]"#,
    ] {
        assert!(
            image::parse_archive_manifest(bad.as_bytes()).is_err(),
            "{bad}"
        );
    }
    let no_tag = ArchiveManifestEntry {
        repo_tags: vec!["busybox".into()],
        ..e
    };
    assert!(matches!(
        no_tag.references(),
        Err(ImageError::ArchiveTag { .. })
    ));
}

// ------------------------------------------------------------------------------------------
// inspect
// ------------------------------------------------------------------------------------------

#[test]
fn inspect_shape() {
    let c = ImageConfig::from_bytes(BUSYBOX.as_bytes()).unwrap();
    let d = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
    let facts = StoreFacts {
        repo_tags: vec![parse_normalized("busybox").unwrap()],
        repo_digests: vec![parse_docker_ref(&format!("busybox@{d}")).unwrap()],
        parent: None,
        size: 4_261_550,
        last_tag_time: None,
    };
    let i = InspectImage::new(&c, &facts);
    let v = serde_json::to_value(&i).unwrap();
    assert_eq!(v["Id"], c.image_id());
    assert_eq!(v["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(
        v["RepoDigests"],
        serde_json::json!([format!("busybox@{d}")])
    );
    assert_eq!(v["Parent"], "");
    assert_eq!(v["Comment"], "");
    assert_eq!(v["Created"], "2023-07-18T23:19:33.655005962Z");
    assert_eq!(v["Author"], "");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Size"], 4_261_550);
    assert_eq!(v["RootFS"]["Type"], "layers");
    assert_eq!(v["RootFS"]["Layers"], serde_json::json!(c.diff_ids()));
    assert_eq!(v["Metadata"]["LastTagTime"], "0001-01-01T00:00:00Z");
    assert!(v.get("Variant").is_none());
    let text = serde_json::to_string(&i).unwrap();
    let order = [
        "\"Id\"",
        "\"RepoTags\"",
        "\"RepoDigests\"",
        "\"Parent\"",
        "\"Comment\"",
        "\"Created\"",
        "\"Author\"",
        "\"Config\"",
        "\"Architecture\"",
        "\"Os\"",
        "\"Size\"",
        "\"RootFS\"",
        "\"Metadata\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    let back: InspectImage = serde_json::from_str(&text).unwrap();
    assert_eq!(back, i);
}

// ------------------------------------------------------------------------------------------
// Human formatting (vectors from docker/go-units' tests)
// ------------------------------------------------------------------------------------------

#[test]
fn human_size_go_units_vectors() {
    const KB: f64 = 1000.0;
    const MB: f64 = KB * 1000.0;
    const GB: f64 = MB * 1000.0;
    const TB: f64 = GB * 1000.0;
    const PB: f64 = TB * 1000.0;
    // go-units TestHumanSize (HumanSize = precision 4).
    let four = [
        (1000.0, "1kB"),
        (1024.0, "1.024kB"),
        (1_000_000.0, "1MB"),
        (1_048_576.0, "1.049MB"),
        (2.0 * MB, "2MB"),
        (3.42 * GB, "3.42GB"),
        (5.372 * TB, "5.372TB"),
        (2.22 * PB, "2.22PB"),
        (10_000_000_000_000.0 * PB, "1e+04YB"),
    ];
    for (n, want) in four {
        assert_eq!(image::human_size_with_precision(n, 4), want, "{n}");
    }
    // docker CLI (precision 3).
    let three = [
        (0u64, "0B"),
        (1, "1B"),
        (999, "999B"),
        (1000, "1kB"),
        (112_000, "112kB"),
        (4_261_550, "4.26MB"),
        (1_048_576, "1.05MB"),
        (77_800_000, "77.8MB"),
        (1_234_567_890, "1.23GB"),
        (999_950, "1e+03kB"),
    ];
    for (n, want) in three {
        assert_eq!(image::human_size(n), want, "{n}");
    }
}

#[test]
fn human_duration_go_units_vectors() {
    const S: i128 = 1_000_000_000;
    const M: i128 = 60 * S;
    const H: i128 = 60 * M;
    const DAY: i128 = 24 * H;
    const WEEK: i128 = 7 * DAY;
    const MONTH: i128 = 30 * DAY;
    const YEAR: i128 = 365 * DAY;
    let cases = [
        (450_000_000, "Less than a second"),
        (S, "1 second"),
        (45 * S, "45 seconds"),
        (46 * S, "46 seconds"),
        (59 * S, "59 seconds"),
        (60 * S, "About a minute"),
        (3 * M, "3 minutes"),
        (35 * M, "35 minutes"),
        (35 * M + 40 * S, "35 minutes"),
        (45 * M, "45 minutes"),
        (45 * M + 40 * S, "45 minutes"),
        (46 * M, "46 minutes"),
        (59 * M, "59 minutes"),
        (H, "About an hour"),
        (H + 29 * M, "About an hour"),
        (H + 31 * M, "2 hours"),
        (H + 59 * M, "2 hours"),
        (3 * H, "3 hours"),
        (3 * H + 29 * M, "3 hours"),
        (3 * H + 31 * M, "4 hours"),
        (3 * H + 59 * M, "4 hours"),
        (3 * H + 60 * M, "4 hours"),
        (24 * H, "24 hours"),
        (DAY + 12 * H, "36 hours"),
        (2 * DAY, "2 days"),
        (7 * DAY, "7 days"),
        (13 * DAY + 5 * H, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (3 * WEEK, "3 weeks"),
        (4 * WEEK, "4 weeks"),
        (4 * WEEK + 3 * DAY, "4 weeks"),
        (MONTH, "4 weeks"),
        (MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (2 * MONTH + 2 * WEEK, "2 months"),
        (3 * MONTH, "3 months"),
        (3 * MONTH + WEEK, "3 months"),
        (5 * MONTH + 2 * WEEK, "5 months"),
        (13 * MONTH, "13 months"),
        (23 * MONTH, "23 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
        (-5 * S, "Less than a second"),
    ];
    for (d, want) in cases {
        assert_eq!(image::human_duration(d), want, "{d}");
    }
    let now = Timestamp::parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
    let ago = |s: &str| image::time_ago(Timestamp::parse_rfc3339(s).unwrap(), now);
    assert_eq!(ago("2024-05-01T10:00:00Z"), "2 hours ago");
    assert_eq!(ago("2024-05-01T11:59:00Z"), "About a minute ago");
    assert_eq!(ago("2024-05-01T11:59:59.5Z"), "Less than a second ago");
    assert_eq!(ago("2024-04-10T12:00:00Z"), "3 weeks ago");
    assert_eq!(ago("2024-05-01T13:00:00+02:00"), "About an hour ago");
}

#[test]
fn rfc3339_parse_and_format() {
    let cases = [
        ("1970-01-01T00:00:00Z", 0, 0, "1970-01-01T00:00:00Z"),
        (
            "2023-07-18T23:19:33.655005962Z",
            1_689_722_373,
            655_005_962,
            "2023-07-18T23:19:33.655005962Z",
        ),
        (
            "2024-02-29T00:00:00.100Z",
            1_709_164_800,
            100_000_000,
            "2024-02-29T00:00:00.1Z",
        ),
        (
            "2024-01-01T01:00:00+01:00",
            1_704_067_200,
            0,
            "2024-01-01T00:00:00Z",
        ),
        ("1969-12-31T23:59:59-00:00", -1, 0, "1969-12-31T23:59:59Z"),
        (
            "0001-01-01T00:00:00Z",
            -62_135_596_800,
            0,
            "0001-01-01T00:00:00Z",
        ),
        (
            "2024-01-01T00:00:00.1234567890Z",
            1_704_067_200,
            123_456_789,
            "2024-01-01T00:00:00.123456789Z",
        ),
    ];
    for (s, secs, nanos, back) in cases {
        let t = Timestamp::parse_rfc3339(s).unwrap_or_else(|| panic!("{s}"));
        assert_eq!((t.secs, t.nanos), (secs, nanos), "{s}");
        assert_eq!(t.to_rfc3339(), back);
    }
    for bad in [
        "",
        "2024-01-01",
        "2024-01-01 00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00+0100",
    ] {
        assert!(Timestamp::parse_rfc3339(bad).is_none(), "{bad}");
    }
    assert_eq!(Timestamp::GO_ZERO.to_rfc3339(), "0001-01-01T00:00:00Z");
    let before = std::time::UNIX_EPOCH - std::time::Duration::from_millis(1500);
    assert_eq!(
        Timestamp::from(before),
        Timestamp {
            secs: -2,
            nanos: 500_000_000
        }
    );
}
