//! The SVG chart: per workload, one horizontal bar per implementation showing its ratio to the
//! baseline on a log scale, diverging from ×1 (left of the line = faster than the kernel), with
//! a whisker over the repetitions' spread (min–max time / baseline median).
//! Written by hand: a few rectangles and labels need no plotting library.

use std::fmt::Write as _;

use crate::report::{BASELINE, Report};

const PALETTE: [&str; 6] = [
    "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
];
const LEFT: f64 = 230.0;
const PLOT_W: f64 = 560.0;
const RIGHT: f64 = 80.0;
const TOP: f64 = 70.0;
const BAR_H: f64 = 12.0;
const ROW_GAP: f64 = 8.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Nice grid values (1, 2, 5 × 10^k) between `lo` and `hi`.
fn grid(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powi(lo.log10().floor() as i32);
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo * 0.999 && v <= hi * 1.001 {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

fn fmt_ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("×{r:.0}")
    } else {
        format!("×{r:.2}")
    }
}

/// Render the ratio chart; `None` when there is nothing to compare (no baseline or no peer).
pub fn chart(report: &Report) -> Option<String> {
    let peers: Vec<&str> = report
        .implementations
        .iter()
        .filter(|i| i.available && i.name != BASELINE)
        .map(|i| i.name.as_str())
        .collect();
    // Per workload and peer: (ratio of medians, spread low, spread high).
    type Bar = Option<(f64, f64, f64)>;
    let rows: Vec<(&str, Vec<Bar>)> = report
        .workloads
        .iter()
        .map(|w| {
            let base = w.results.get(BASELINE).and_then(|r| r.median_s);
            let ratios = peers
                .iter()
                .map(|p| {
                    let r = w.results.get(*p)?;
                    let ratio = r.ratio_to_baseline?;
                    let spread = |t: Option<f64>| match (t, base) {
                        (Some(t), Some(b)) if b > 0.0 => t / b,
                        _ => ratio,
                    };
                    Some((ratio, spread(r.min_s), spread(r.max_s)))
                })
                .collect();
            (w.name.as_str(), ratios)
        })
        .filter(|(_, r): &(&str, Vec<Bar>)| r.iter().any(Option::is_some))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let all = rows
        .iter()
        .flat_map(|(_, r)| r.iter().flatten().flat_map(|&(m, a, b)| [m, a, b]));
    let (min, max) = all.fold((1.0f64, 1.0f64), |(a, b), r| (a.min(r), b.max(r)));
    let lo = grid(1e-3, 1.0)
        .into_iter()
        .rev()
        .find(|v| *v <= (min / 1.15).min(0.5))
        .unwrap_or(1e-3);
    let hi = grid(1.0, 1e4)
        .into_iter()
        .find(|v| *v >= (max * 1.15).max(2.0))
        .unwrap_or(1e4);
    let x = |r: f64| LEFT + (r.max(lo).min(hi).ln() - lo.ln()) / (hi.ln() - lo.ln()) * PLOT_W;
    let row_h = BAR_H * peers.len() as f64 + ROW_GAP;
    let height = TOP + row_h * rows.len() as f64 + 40.0;
    let width = LEFT + PLOT_W + RIGHT;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="12" y="20" font-size="13" font-weight="bold">cairn-bench ({}): median time / {BASELINE} median, log scale, lower is better</text>"#,
        esc(report.profile.name)
    );
    for (i, p) in peers.iter().enumerate() {
        let lx = LEFT + i as f64 * 150.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="32" width="12" height="12" fill="{}"/><text x="{}" y="42">{}</text>"#,
            PALETTE[i % PALETTE.len()],
            lx + 16.0,
            esc(p)
        );
    }
    let bottom = TOP + row_h * rows.len() as f64;
    for g in grid(lo, hi) {
        let gx = x(g);
        let (stroke, w) = if (g - 1.0).abs() < 1e-9 {
            ("#000", 1.5)
        } else {
            ("#ddd", 1.0)
        };
        let _ = writeln!(
            s,
            r#"<line x1="{gx:.1}" y1="{}" x2="{gx:.1}" y2="{bottom}" stroke="{stroke}" stroke-width="{w}"/><text x="{gx:.1}" y="{}" text-anchor="middle">{}</text>"#,
            TOP - 6.0,
            bottom + 14.0,
            fmt_ratio(g)
        );
    }
    for (ri, (name, ratios)) in rows.iter().enumerate() {
        let y0 = TOP + ri as f64 * row_h;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y0 + row_h / 2.0,
            esc(name)
        );
        for (pi, r) in ratios.iter().enumerate() {
            let Some((r, lo_r, hi_r)) = *r else { continue };
            let y = y0 + pi as f64 * BAR_H;
            let (a, b) = (x(1.0).min(x(r)), x(1.0).max(x(r)));
            let _ = writeln!(
                s,
                r#"<rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="9">{}</text>"#,
                (b - a).max(1.0),
                BAR_H - 2.0,
                PALETTE[pi % PALETTE.len()],
                x(hi_r).max(b) + 3.0,
                y + BAR_H - 3.0,
                fmt_ratio(r)
            );
            let wy = y + (BAR_H - 2.0) / 2.0;
            let _ = writeln!(
                s,
                r##"<line x1="{:.1}" y1="{wy:.1}" x2="{:.1}" y2="{wy:.1}" stroke="#333" stroke-width="1"/>"##,
                x(lo_r),
                x(hi_r)
            );
        }
    }
    s.push_str("</svg>\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::grid;

    #[test]
    fn grid_is_125_series() {
        assert_eq!(grid(0.5, 20.0), vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0]);
    }
}
