//! The evaluation report as one self-contained HTML page.
//!
//! No script, stylesheet, font or image is fetched: the style is inline and
//! the plots are SVG drawn here (recall and NDCG against K per model, repeat
//! against new recall, catalog coverage; the reliability of the buying
//! probability in the customer section). The page states what is needed to
//! reproduce the figures: data fingerprint, split, cutoffs, counts,
//! configuration and seed.

use crate::evaluate::{EvalReport, METRICS, ModelScores, SplitSummary, VIEWS};
use encore_model::customer::holdout::{DateErrors, NEXT_PURCHASE_BASELINE, REPLENISHMENT_BASELINE};
use std::fmt::Write as _;

/// Series colours (colour-blind friendly, Okabe-Ito), reused cyclically.
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

/// Escapes `s` for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A round upper bound for an axis holding values up to `max`.
fn axis_max(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let step = if max <= 0.1 {
        0.02
    } else if max <= 0.5 {
        0.1
    } else {
        0.2
    };
    ((max / step).ceil() * step).min(1.0).max(step)
}

/// `FROM .. TO`, with `-` for an end not known.
fn date_range(from: Option<&str>, to: Option<&str>) -> String {
    format!("{} .. {}", from.unwrap_or("-"), to.unwrap_or("-"))
}

const W: f64 = 560.0;
const H: f64 = 300.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

/// Frame, title, horizontal grid and y labels; returns the SVG so far and the y scale.
fn frame(title: &str, ymax: f64) -> (String, impl Fn(f64) -> f64) {
    let ph = H - TOP - BOTTOM;
    let y = move |v: f64| TOP + ph * (1.0 - (v / ymax).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{t}"><title>{t}</title><text x="{x}" y="18" text-anchor="middle" font-size="14" font-weight="bold">{t}</text>"#,
        t = escape(title),
        x = LEFT + (W - LEFT - RIGHT) / 2.0,
    );
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end" font-size="11">{v:.2}</text>"##,
            x2 = W - RIGHT,
            tx = LEFT - 6.0,
            ty = yy + 4.0,
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{yb}" stroke="#444"/><line x1="{LEFT}" x2="{xr}" y1="{yb}" y2="{yb}" stroke="#444"/>"##,
        yb = H - BOTTOM,
        xr = W - RIGHT,
    );
    (s, y)
}

/// The legend at the right of a plot.
fn legend(s: &mut String, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let y = TOP + 8.0 + 18.0 * i as f64;
        let x = W - RIGHT + 12.0;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{ry}" width="12" height="12" fill="{c}"/><text x="{tx}" y="{ty}" font-size="12">{n}</text>"#,
            ry = y - 10.0,
            c = colour(i),
            tx = x + 18.0,
            ty = y,
            n = escape(name),
        );
    }
}

/// A line per series: `values[j]` is the value at `xs[j]` (a cut-off K).
pub fn line_chart(title: &str, xs: &[usize], series: &[(String, Vec<Option<f64>>)]) -> String {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .fold(0.0, f64::max);
    let (mut s, y) = frame(title, axis_max(max));
    let pw = W - LEFT - RIGHT;
    let (lo, hi) = (
        xs.iter().copied().min().unwrap_or(0) as f64,
        xs.iter().copied().max().unwrap_or(1) as f64,
    );
    let x = |k: usize| {
        if hi > lo {
            LEFT + 20.0 + (pw - 40.0) * (k as f64 - lo) / (hi - lo)
        } else {
            LEFT + pw / 2.0
        }
    };
    for &k in xs {
        let _ = write!(
            s,
            r#"<text x="{xx:.1}" y="{ty}" text-anchor="middle" font-size="11">{k}</text>"#,
            xx = x(k),
            ty = H - BOTTOM + 16.0,
        );
    }
    let _ = write!(
        s,
        r#"<text x="{xx:.1}" y="{ty}" text-anchor="middle" font-size="12">K</text>"#,
        xx = LEFT + pw / 2.0,
        ty = H - 6.0,
    );
    for (i, (_, values)) in series.iter().enumerate() {
        let points: Vec<String> = xs
            .iter()
            .zip(values)
            .filter_map(|(&k, v)| v.map(|v| format!("{:.1},{:.1}", x(k), y(v))))
            .collect();
        if points.len() > 1 {
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{p}"/>"#,
                c = colour(i),
                p = points.join(" "),
            );
        }
        for p in &points {
            let (px, py) = p.split_once(',').expect("x,y");
            let _ = write!(
                s,
                r#"<circle cx="{px}" cy="{py}" r="3.5" fill="{c}"/>"#,
                c = colour(i)
            );
        }
    }
    let names: Vec<String> = series.iter().map(|(n, _)| n.clone()).collect();
    legend(&mut s, &names);
    s.push_str("</svg>");
    s
}

/// Grouped bars: one group per entry of `groups`, one bar per entry of `bars`
/// (coloured as in the legend); `values[g][b]` is the height.
pub fn bar_chart(
    title: &str,
    groups: &[String],
    bars: &[String],
    values: &[Vec<Option<f64>>],
) -> String {
    let max = values
        .iter()
        .flat_map(|v| v.iter().flatten().copied())
        .fold(0.0, f64::max);
    let ymax = axis_max(max);
    let (mut s, y) = frame(title, ymax);
    let pw = W - LEFT - RIGHT;
    let gw = pw / groups.len().max(1) as f64;
    let bw = (gw * 0.8) / bars.len().max(1) as f64;
    for (g, name) in groups.iter().enumerate() {
        let gx = LEFT + gw * g as f64 + gw * 0.1;
        for (b, v) in values.get(g).into_iter().flatten().enumerate() {
            let Some(v) = *v else { continue };
            let top = y(v);
            let _ = write!(
                s,
                r#"<rect x="{bx:.1}" y="{top:.1}" width="{bw:.1}" height="{h:.1}" fill="{c}"><title>{n} {bar}: {v:.4}</title></rect>"#,
                bx = gx + bw * b as f64,
                h = (H - BOTTOM - top).max(0.0),
                c = colour(b),
                n = escape(name),
                bar = escape(&bars[b]),
            );
        }
        let _ = write!(
            s,
            r#"<text x="{tx:.1}" y="{ty}" text-anchor="middle" font-size="11">{n}</text>"#,
            tx = gx + gw * 0.4,
            ty = H - BOTTOM + 16.0,
            n = escape(name),
        );
    }
    legend(&mut s, bars);
    s.push_str("</svg>");
    s
}

fn split_rows(out: &mut String, s: &SplitSummary) {
    let rows: [(&str, String); 10] = [
        ("split", format!("{}: {}", s.kind, s.description)),
        (
            "cutoff",
            s.cutoff.clone().unwrap_or_else(|| "per customer".into()),
        ),
        (
            "end",
            s.end.clone().unwrap_or_else(|| "end of the log".into()),
        ),
        (
            "targets dated",
            date_range(s.targets_from.as_deref(), s.targets_to.as_deref()),
        ),
        (
            "purchases",
            format!(
                "{} train, {} target, {} left out",
                s.train_purchases, s.test_purchases, s.left_out_purchases
            ),
        ),
        ("customers eligible", s.customers_eligible.to_string()),
        ("customers scored", s.customers_scored.to_string()),
        (
            "with repeat / new targets",
            format!("{} / {}", s.customers_with_repeat, s.customers_with_new),
        ),
        (
            "relevant items per customer",
            format!("{:.2}", s.mean_relevant),
        ),
        (
            "share of relevant items that are repeats",
            format!("{:.1}%", 100.0 * s.repeat_share),
        ),
    ];
    header_rows(out, rows);
}

/// One `<tr><th>name</th><td>value</td></tr>` a pair, both escaped.
fn header_rows<'a>(out: &mut String, rows: impl IntoIterator<Item = (&'a str, String)>) {
    for (k, v) in rows {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(&v)
        );
    }
}

fn metrics_table(out: &mut String, models: &[ModelScores], ks: &[usize]) {
    out.push_str("<table class=\"m\"><thead><tr><th>model</th>");
    let mut cols: Vec<String> = Vec::new();
    for &k in ks {
        for view in VIEWS {
            for m in METRICS {
                cols.push(format!("{m}{view}@{k}"));
            }
        }
        cols.push(format!("coverage@{k}"));
    }
    for c in &cols {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>");
    for m in models {
        let _ = write!(
            out,
            "<tr><th title=\"{}\">{}</th>",
            escape(&m.label),
            escape(&m.model)
        );
        for c in &cols {
            match m.metrics.get(c) {
                Some(v) => {
                    let _ = write!(out, "<td>{v:.4}</td>");
                }
                None => out.push_str("<td>-</td>"),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// The best model of each metric against the second best, with the paired
/// bootstrap interval of the gain ([`crate::evaluate::Gain`]).
fn gains_table(out: &mut String, models: &[ModelScores], ks: &[usize]) {
    let rows = crate::evaluate::best_against_second(models, ks);
    if rows.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<p>Best model against the second best, relative gain with a 95 % paired bootstrap \
         interval over the scored customers ({} resamples, seeded); an interval that holds 0 \
         is a difference this split cannot tell apart.</p>\
         <table><thead><tr><th>metric</th><th>best</th><th>second</th><th>gain</th>\
         <th>95 % interval</th></tr></thead><tbody>",
        crate::evaluate::BOOTSTRAP_RESAMPLES
    );
    for (name, best, second, g) in rows {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{:+.1} %</td><td>{:+.1} % to {:+.1} %</td></tr>",
            escape(&name),
            escape(&best.model),
            escape(&second.model),
            100.0 * g.gain,
            100.0 * g.low,
            100.0 * g.high
        );
    }
    out.push_str("</tbody></table>\n");
}

/// A figure with `digits` decimals, `-` when missing.
fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// One date-error table: counts, then a row per set of dates.
fn date_table(out: &mut String, title: &str, baseline: &str, t: &DateErrors) {
    let _ = write!(
        out,
        "<h3>{}</h3><p>{} bought after the cutoff, {} measured; left out of both: {} with a \
         single occasion before the cutoff, {} without an Encore date.</p>\
         <table class=\"m\"><thead><tr><th>dates</th><th>mean |error|, days</th>\
         <th>median |error|, days</th><th>Encore / baseline (means)</th></tr></thead><tbody>",
        escape(title),
        t.bought_after,
        t.measured,
        t.single_occasion,
        t.no_encore_date
    );
    for (name, s, ratio) in t.rows(baseline) {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            cell(s.mean_days, 1),
            cell(s.median_days, 1),
            cell(ratio, 3)
        );
    }
    out.push_str("</tbody></table>");
}

/// The customer models at the cutoff: rankings, Brier score, reliability
/// chart and the date-error tables (or why they are skipped).
fn customer_section(out: &mut String, r: &EvalReport) {
    out.push_str("<h2>Customer models</h2>");
    let Some(h) = &r.customers else {
        let _ = writeln!(
            out,
            "<p>Skipped: {}.</p>",
            escape(r.customers_skipped.as_deref().unwrap_or("not computed"))
        );
        return;
    };
    let date = encore_data::timestamp::format_date;
    let b = &h.buying;
    let _ = write!(
        out,
        "<p>Fitted on the purchases before {} ({} customers profiled, repeat-buying model {}) \
         and compared with the purchases from then to {} (the last one {}); \
         definitions in <code>encore_model::customer::holdout</code>.</p>\
         <h3>Who buys within {} days</h3><p>{} customers ranked, {} bought.{}</p>\
         <table class=\"m\"><thead><tr><th>ranking</th><th>ROC AUC</th></tr></thead><tbody>",
        date(h.cutoff),
        h.customers,
        escape(h.selected_model.as_deref().unwrap_or("none")),
        h.end.map_or_else(|| "the end of the log".into(), date),
        h.last_target.map_or_else(|| "-".into(), date),
        b.horizon_days,
        b.customers,
        b.buyers,
        b.propensity_error
            .as_ref()
            .map_or_else(String::new, |e| format!(
                " No buying probability: {}.",
                escape(e)
            )),
    );
    for rank in &b.rankings {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(&rank.score),
            cell(rank.auc, 4)
        );
    }
    let _ = write!(
        out,
        "</tbody></table><p>Brier score {} (the calibration window's buying rate for everyone: {}).</p>",
        cell(b.brier, 4),
        cell(b.brier_base_rate, 4)
    );
    if !b.reliability.is_empty() {
        let groups: Vec<String> = b
            .reliability
            .iter()
            .map(|x| format!("{:.1}-{:.1}", x.lower, x.upper))
            .collect();
        let values: Vec<Vec<Option<f64>>> = b
            .reliability
            .iter()
            .map(|x| vec![Some(x.mean_predicted), Some(x.observed)])
            .collect();
        out.push_str("<div class=\"plots\">");
        out.push_str(&bar_chart(
            "Reliability of the buying probability",
            &groups,
            &["mean predicted".to_string(), "share who bought".to_string()],
            &values,
        ));
        out.push_str(
            "</div><table class=\"m\"><thead><tr><th>predicted</th><th>customers</th>\
             <th>mean predicted</th><th>share who bought</th></tr></thead><tbody>",
        );
        for (g, x) in groups.iter().zip(&b.reliability) {
            let _ = write!(
                out,
                "<tr><th>{g}</th><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                x.customers, x.mean_predicted, x.observed
            );
        }
        out.push_str("</tbody></table>");
    }
    date_table(
        out,
        "Next purchase date (customers)",
        NEXT_PURCHASE_BASELINE,
        &h.next_purchase,
    );
    date_table(
        out,
        "Replenishment due date ((customer, item) pairs)",
        REPLENISHMENT_BASELINE,
        &h.replenishment,
    );
    out.push('\n');
}

/// The whole page.
pub fn render(r: &EvalReport) -> String {
    let mut out = String::new();
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Encore evaluation report</title><style>\
         body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}\
         table{border-collapse:collapse;margin:0.5em 0 1.5em}\
         th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}\
         table.m td{text-align:right;font-variant-numeric:tabular-nums}\
         .m{display:block;overflow-x:auto}\
         .plots{display:flex;flex-wrap:wrap;gap:1em}\
         pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}\
         </style></head><body>\n<h1>Encore evaluation report</h1>\n",
    );
    // Data and run.
    let d = &r.data;
    out.push_str("<h2>Data</h2><table>");
    let data_rows: [(&str, String); 6] = [
        ("fingerprint", r.data_fingerprint.clone()),
        ("source", d.source.clone()),
        (
            "rows",
            format!(
                "{} read, {} accepted, {} rejected",
                d.rows_read, d.rows_accepted, d.rows_rejected
            ),
        ),
        (
            "size",
            format!(
                "{} customers, {} items, {} orders",
                d.customers, d.items, d.orders
            ),
        ),
        (
            "purchases dated",
            date_range(d.first_purchase.as_deref(), d.last_purchase.as_deref()),
        ),
        (
            "catalog for coverage",
            format!(
                "{} available items bought in the training part",
                r.catalog_items
            ),
        ),
    ];
    header_rows(&mut out, data_rows);
    out.push_str("</table>\n<h2>Test split</h2><table>");
    split_rows(&mut out, &r.split);
    out.push_str("</table>\n<h2>Validation split (for tuning; the test targets are never used to choose parameters)</h2><table>");
    split_rows(&mut out, &r.validation.split);
    if let Some(days) = r.validation.days {
        let _ = write!(
            out,
            "<tr><th>window</th><td>{days} days before the test cutoff</td></tr>"
        );
    }
    out.push_str("</table>\n");

    // Metrics.
    let _ = write!(
        out,
        "<h2>Scores on the test split</h2><p>K = {}; seed {}; engine trained in {:.1} s. \
         Binary relevance, means over scored customers; <code>_repeat</code> / <code>_new</code> \
         use only the relevant items bought / not bought before the target \
         (formulas in <code>encore_model::metrics</code>).</p>",
        r.ks.iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        r.seed,
        r.train_seconds
    );
    metrics_table(&mut out, &r.models, &r.ks);
    gains_table(&mut out, &r.models, &r.ks);
    out.push_str(
        "<table><thead><tr><th>model</th><th>description</th><th>seconds</th></tr></thead><tbody>",
    );
    for m in &r.models {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td><td>{:.2}</td></tr>",
            escape(&m.model),
            escape(&m.label),
            m.seconds
        );
    }
    out.push_str("</tbody></table>\n");

    // Plots.
    out.push_str("<h2>Plots</h2><div class=\"plots\">");
    let series = |metric: &str| -> Vec<(String, Vec<Option<f64>>)> {
        r.models
            .iter()
            .map(|m| {
                let v =
                    r.ks.iter()
                        .map(|k| m.metrics.get(&format!("{metric}@{k}")).copied())
                        .collect();
                (m.model.clone(), v)
            })
            .collect()
    };
    out.push_str(&line_chart("Recall@K", &r.ks, &series("recall")));
    out.push_str(&line_chart("NDCG@K", &r.ks, &series("ndcg")));
    let groups: Vec<String> = r.models.iter().map(|m| m.model.clone()).collect();
    let mut bars = Vec::new();
    for &k in &r.ks {
        bars.push(format!("repeat@{k}"));
        bars.push(format!("new@{k}"));
    }
    let values: Vec<Vec<Option<f64>>> = r
        .models
        .iter()
        .map(|m| {
            r.ks.iter()
                .flat_map(|k| {
                    [
                        m.metrics.get(&format!("recall_repeat@{k}")).copied(),
                        m.metrics.get(&format!("recall_new@{k}")).copied(),
                    ]
                })
                .collect()
        })
        .collect();
    out.push_str(&bar_chart(
        "Recall of repeat and new items",
        &groups,
        &bars,
        &values,
    ));
    let cov_bars: Vec<String> = r.ks.iter().map(|k| format!("coverage@{k}")).collect();
    let cov: Vec<Vec<Option<f64>>> = r
        .models
        .iter()
        .map(|m| {
            r.ks.iter()
                .map(|k| m.metrics.get(&format!("coverage@{k}")).copied())
                .collect()
        })
        .collect();
    out.push_str(&bar_chart("Catalog coverage", &groups, &cov_bars, &cov));
    out.push_str("</div>\n");

    customer_section(&mut out, r);

    if let Some(vm) = &r.validation.models {
        out.push_str("<h2>Scores on the validation split</h2>");
        metrics_table(&mut out, vm, &r.ks);
    }

    // Configuration.
    let config = serde_json::to_string_pretty(&r.config).unwrap_or_else(|e| e.to_string());
    let _ = write!(
        out,
        "<h2>Configuration</h2><pre>{}</pre>\n</body></html>\n",
        escape(&config)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn charts_are_closed_svg_with_one_mark_per_value() {
        let s = line_chart(
            "R<K>",
            &[10, 20],
            &[
                ("a".into(), vec![Some(0.1), Some(0.2)]),
                ("b".into(), vec![None, Some(0.3)]),
            ],
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert_eq!(s.matches("<circle").count(), 3);
        assert_eq!(s.matches("<polyline").count(), 1);
        assert!(s.contains("R&lt;K&gt;"));
        let b = bar_chart(
            "cov",
            &["a".into(), "b".into()],
            &["x".into(), "y".into()],
            &[vec![Some(0.5), Some(0.0)], vec![None, Some(1.0)]],
        );
        // Three bars plus two legend swatches.
        assert_eq!(b.matches("<rect").count(), 5);
    }

    #[test]
    fn axis_max_is_round_and_covers_the_data() {
        assert_eq!(axis_max(0.0), 1.0);
        assert!((axis_max(0.033) - 0.04).abs() < 1e-12);
        assert!((axis_max(0.27) - 0.3).abs() < 1e-12);
        assert_eq!(axis_max(0.95), 1.0);
    }
}
