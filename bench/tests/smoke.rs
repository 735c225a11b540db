//! Smoke test: run `cairn-bench --smoke` end to end so the harness does not rot.
//!
//! Needs root (overlay mounts, whiteout device nodes, drop_caches). Without root it prints why
//! and returns, except in CI (`CI=true`), where that is a failure: CI runs as root.

use std::process::Command;

#[test]
fn smoke_run_prints_table_and_writes_results() {
    if !rustix::process::geteuid().is_root() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but not running as root: cairn-bench --smoke needs root");
        }
        eprintln!("skipping cairn-bench smoke test: needs root (mounts, mknod, drop_caches)");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-smoke")
        .tempdir_in("/var/tmp")
        .expect("tempdir");
    let json = dir.path().join("results.json");
    let svg = dir.path().join("ratios.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .arg("--smoke")
        .arg("--workdir")
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("running cairn-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cairn-bench --smoke failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("| workload |"),
        "no table on stdout:\n{stdout}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON written"))
            .expect("valid JSON");
    let workloads = report["workloads"].as_array().expect("workloads array");
    assert!(
        workloads.len() >= 10,
        "expected the full workload list, got {}",
        workloads.len()
    );
    let kernel_available = report["implementations"]
        .as_array()
        .expect("implementations array")
        .iter()
        .any(|i| i["name"] == "kernel" && i["available"] == true);
    if kernel_available {
        for w in workloads {
            let k = &w["results"]["kernel"];
            assert!(
                k["error"].is_null(),
                "{} failed on kernel overlayfs: {}",
                w["name"],
                k["error"]
            );
            assert!(
                k["median_s"].as_f64().is_some_and(|m| m > 0.0),
                "{} has no kernel median",
                w["name"]
            );
        }
        assert!(
            svg.exists() || !stdout.contains("×"),
            "ratios measured but no SVG chart written"
        );
    } else {
        eprintln!("kernel overlayfs unavailable here; only checked that the harness ran");
    }

    // Image workloads: run whenever some image tool is there; every available tool must have
    // imported the archive.
    let tools: Vec<&str> = report["image_tools"]
        .as_array()
        .expect("image_tools array")
        .iter()
        .filter(|t| t["available"] == true)
        .filter_map(|t| t["name"].as_str())
        .collect();
    let image_workloads = report["image_workloads"]
        .as_array()
        .expect("image_workloads array");
    if tools.is_empty() {
        eprintln!("no image tool available here; image workloads not checked");
    } else {
        assert!(
            image_workloads.iter().any(|w| w["name"] == "load"),
            "no load workload in {image_workloads:?}"
        );
        assert!(
            stdout.contains("### image workloads"),
            "no image table:\n{stdout}"
        );
        // `pull` runs wherever a registry can be served from.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let on_path = |t: &str| std::env::split_paths(&path).any(|d| d.join(t).is_file());
        if on_path("docker-registry") && on_path("skopeo") {
            assert!(
                image_workloads.iter().any(|w| w["name"] == "pull"),
                "no pull workload in {image_workloads:?}"
            );
        }
    }
    for w in image_workloads {
        let results = w["results"].as_object().expect("results object");
        assert!(
            !results.is_empty(),
            "image workload {} has no result",
            w["name"]
        );
        for t in &tools {
            let r = &w["results"][*t];
            // A tool a workload does not apply to (runc for `load`, skopeo for `start`) has
            // no entry; one that ran has a result or an error.
            if r.is_null() {
                continue;
            }
            assert!(
                r["error"].is_null() && r["median_s"].as_f64().is_some_and(|m| m > 0.0),
                "image workload {} failed with {t}: {}",
                w["name"],
                r["error"]
            );
        }
    }
}
