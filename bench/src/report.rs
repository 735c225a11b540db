//! Results: statistics (median, min–max, ratio to the baseline), the markdown table on stdout
//! and the JSON document written to a file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::image_gen::ImageArchive;
use crate::profile::Profile;
use crate::runner::{Outcome, fmt_secs};
use crate::workloads::image::fmt_bytes;

/// The implementation ratios are taken against.
pub const BASELINE: &str = "kernel";

#[derive(Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub timestamp_unix: u64,
    pub host: Host,
    pub profile: Profile,
    pub seed: u64,
    pub repeats: usize,
    /// Lower layers are shared read-only by all implementations; each repetition gets a fresh
    /// upper and work directory.
    pub lower_layers: &'static str,
    pub stacks: Vec<StackSummary>,
    pub baseline: &'static str,
    pub implementations: Vec<ImplSummary>,
    pub workloads: Vec<WorkloadResult>,
    /// Image workloads: their columns are image tools, their baseline is `image_baseline`.
    pub image_baseline: &'static str,
    pub image_tools: Vec<ImplSummary>,
    pub image_archive: Option<ImageArchive>,
    pub image_workloads: Vec<WorkloadResult>,
}

#[derive(Serialize)]
pub struct Host {
    pub kernel: String,
    pub cpus: usize,
}

#[derive(Serialize)]
pub struct StackSummary {
    pub label: String,
    pub layers: Vec<String>,
    pub files: usize,
    pub entries: usize,
}

#[derive(Serialize)]
pub struct ImplSummary {
    pub name: String,
    pub command: String,
    pub available: bool,
    pub skipped_reason: Option<String>,
}

#[derive(Serialize)]
pub struct WorkloadResult {
    pub name: String,
    pub about: String,
    pub stack: String,
    /// The column ratios are taken against.
    pub baseline: &'static str,
    pub results: BTreeMap<String, ImplResult>,
}

#[derive(Serialize, Default)]
pub struct ImplResult {
    pub samples_s: Vec<f64>,
    pub ops: u64,
    pub bytes: u64,
    pub median_s: Option<f64>,
    pub min_s: Option<f64>,
    pub max_s: Option<f64>,
    /// median / median of the workload's baseline.
    pub ratio_to_baseline: Option<f64>,
    /// FUSE daemons that report counters (cairn): medians over the repetitions of requests
    /// per operation, daemon CPU µs per operation and peak RSS, each over the whole mount.
    pub requests_per_op: Option<f64>,
    pub daemon_cpu_us_per_op: Option<f64>,
    pub daemon_maxrss_mib: Option<f64>,
    pub error: Option<String>,
}

pub fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[mid]
    } else {
        (s[mid - 1] + s[mid]) / 2.0
    })
}

/// Turn the raw outcomes of one workload into per-implementation statistics.
pub fn summarize(
    outcomes: &BTreeMap<String, Outcome>,
    baseline: &str,
) -> BTreeMap<String, ImplResult> {
    let mut results: BTreeMap<String, ImplResult> = outcomes
        .iter()
        .map(|(name, o)| {
            let samples: Vec<f64> = o.samples.iter().map(|m| m.time.as_secs_f64()).collect();
            let first = o.samples.first().copied().unwrap_or_default();
            // Median over the repetitions of a daemon figure of one repetition.
            let daemon = |f: &dyn Fn(&crate::workloads::Daemon, f64) -> f64| {
                let v: Vec<f64> = o
                    .samples
                    .iter()
                    .filter_map(|m| m.daemon.map(|d| f(&d, m.ops.max(1) as f64)))
                    .collect();
                median(&v)
            };
            let r = ImplResult {
                median_s: median(&samples),
                min_s: samples.iter().copied().reduce(f64::min),
                max_s: samples.iter().copied().reduce(f64::max),
                samples_s: samples,
                ops: first.ops,
                bytes: first.bytes,
                ratio_to_baseline: None,
                requests_per_op: daemon(&|d, ops| d.requests as f64 / ops),
                daemon_cpu_us_per_op: daemon(&|d, ops| d.cpu_s * 1e6 / ops),
                daemon_maxrss_mib: daemon(&|d, _| d.maxrss_kib as f64 / 1024.0),
                error: o.error.clone(),
            };
            (name.clone(), r)
        })
        .collect();
    let base = results
        .get(baseline)
        .filter(|r| r.error.is_none())
        .and_then(|r| r.median_s);
    if let Some(base) = base.filter(|b| *b > 0.0) {
        for r in results.values_mut().filter(|r| r.error.is_none()) {
            r.ratio_to_baseline = r.median_s.map(|m| m / base);
        }
    }
    results
}

fn cell(r: Option<&ImplResult>, baseline: bool) -> String {
    let Some(r) = r else { return "—".into() };
    if r.error.is_some() {
        return "failed".into();
    }
    let (Some(med), Some(min), Some(max)) = (r.median_s, r.min_s, r.max_s) else {
        return "—".into();
    };
    let mut s = fmt_secs(med);
    if r.samples_s.len() > 1 {
        let _ = write!(s, " ({}–{})", fmt_secs(min), fmt_secs(max));
    }
    if let (Some(ratio), false) = (r.ratio_to_baseline, baseline) {
        let _ = write!(s, " **×{ratio:.2}**");
    }
    s
}

/// One table: a row per workload, a column per available implementation, baseline first.
fn table(out: &mut String, impls: &[ImplSummary], workloads: &[WorkloadResult], baseline: &str) {
    let mut names: Vec<&str> = impls
        .iter()
        .filter(|i| i.available)
        .map(|i| i.name.as_str())
        .collect();
    names.sort_by_key(|n| *n != baseline);
    let header: Vec<String> = names
        .iter()
        .map(|n| match *n == baseline {
            true => format!("{n} (baseline)"),
            false => n.to_string(),
        })
        .collect();
    let _ = writeln!(out, "| workload | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    for w in workloads {
        let cells: Vec<String> = names
            .iter()
            .map(|n| cell(w.results.get(*n), *n == baseline || *n == w.baseline))
            .collect();
        let _ = writeln!(out, "| {} | {} |", w.name, cells.join(" | "));
    }
}

/// Per implementation with daemon counters: requests and CPU per operation, peak RSS.
fn daemon_table(out: &mut String, workloads: &[WorkloadResult]) {
    let mut names: Vec<&str> = workloads
        .iter()
        .flat_map(|w| w.results.iter())
        .filter(|(_, r)| r.requests_per_op.is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let _ = writeln!(
            out,
            "\n`{name}` daemon, whole mount (untimed setup included), median per repetition:\n"
        );
        let _ = writeln!(
            out,
            "| workload | ops | FUSE requests / op | daemon CPU µs / op | peak RSS MiB |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for w in workloads {
            let Some(r) = w.results.get(name) else {
                continue;
            };
            let (Some(req), Some(cpu), Some(rss)) = (
                r.requests_per_op,
                r.daemon_cpu_us_per_op,
                r.daemon_maxrss_mib,
            ) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} | {req:.2} | {cpu:.1} | {rss:.0} |",
                w.name, r.ops
            );
        }
    }
}

/// The markdown report: the filesystem table (baseline kernel overlayfs), the image table
/// (baseline skopeo + umoci), what each workload does, skipped implementations, failures.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## cairn-bench — profile `{}`, seed {}, {} repetition(s), kernel {}, {} CPUs\n",
        report.profile.name, report.seed, report.repeats, report.host.kernel, report.host.cpus
    );
    let _ = writeln!(
        out,
        "Median (min–max) wall time; **×r** = median / median of the section's baseline column \
         (lower is better).\n"
    );
    if !report.workloads.is_empty() {
        let _ = writeln!(out, "### filesystem workloads (baseline: `{BASELINE}`)\n");
        table(
            &mut out,
            &report.implementations,
            &report.workloads,
            report.baseline,
        );
        daemon_table(&mut out, &report.workloads);
        let _ = writeln!(out, "\nWorkloads:\n");
        for w in &report.workloads {
            let _ = writeln!(out, "- `{}` (stack `{}`): {}", w.name, w.stack, w.about);
        }
    }
    if !report.image_workloads.is_empty() {
        let base = report.image_baseline;
        let gap = if report.workloads.is_empty() {
            ""
        } else {
            "\n"
        };
        let _ = writeln!(out, "{gap}### image workloads (baseline: `{base}`)\n");
        table(&mut out, &report.image_tools, &report.image_workloads, base);
        let _ = writeln!(out);
        for w in &report.image_workloads {
            let base = w.baseline;
            let Some(base_median) = w.results.get(base).and_then(|r| r.median_s) else {
                continue;
            };
            for (name, r) in w.results.iter().filter(|(n, _)| *n != base) {
                if let (Some(ratio), Some(median)) = (r.ratio_to_baseline, r.median_s) {
                    let _ = writeln!(
                        out,
                        "`{}`: {name} is **{:.2}× as fast as** {base} (median {} vs {}).",
                        w.name,
                        1.0 / ratio.max(1e-9),
                        fmt_secs(median),
                        fmt_secs(base_median),
                    );
                }
            }
        }
        if let Some(a) = &report.image_archive {
            let _ = writeln!(
                out,
                "\nArchive: {} layers, {} files, {} uncompressed, {} of gzip layers, \
                 {} archive (`{}`).",
                a.layers,
                a.files,
                fmt_bytes(a.uncompressed_bytes),
                fmt_bytes(a.compressed_bytes),
                fmt_bytes(a.archive_bytes),
                a.path.display()
            );
        }
        let _ = writeln!(out, "\nWorkloads:\n");
        for w in &report.image_workloads {
            let _ = writeln!(out, "- `{}`: {}", w.name, w.about);
        }
        let _ = writeln!(out, "\nTools:\n");
        for t in report.image_tools.iter().filter(|t| t.available) {
            let _ = writeln!(out, "- `{}`: `{}`", t.name, t.command);
        }
    }
    let skipped: Vec<&ImplSummary> = report
        .implementations
        .iter()
        .chain(&report.image_tools)
        .filter(|i| !i.available)
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(out, "\nSkipped implementations:\n");
        for i in skipped {
            let _ = writeln!(
                out,
                "- `{}`: {}",
                i.name,
                i.skipped_reason.as_deref().unwrap_or("unavailable")
            );
        }
    }
    let failures: Vec<(&str, &str, &str)> = report
        .workloads
        .iter()
        .chain(&report.image_workloads)
        .flat_map(|w| {
            w.results
                .iter()
                .filter_map(|(n, r)| r.error.as_deref().map(|e| (w.name.as_str(), n.as_str(), e)))
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailures:\n");
        for (w, n, e) in failures {
            let e: String = e.chars().take(300).collect();
            let _ = writeln!(out, "- `{w}` on `{n}`: {}", e.replace('\n', " "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
