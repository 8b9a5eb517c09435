//! The diagnosis as one self-contained HTML page: the verdict and advice on
//! top, then the matrix, one row per cell, with its stutter per turn drawn
//! as a bar split by cause (no scripts, no external files).

use super::verdict::Diagnosis;
use super::{Cause, CellResult};
use crate::report::html::escape::esc;
use std::fmt::Write;

/// Bar colours per cause, as the legend shows them.
const COLOURS: [(Cause, &str); 3] = [
    (Cause::Server, "#d62728"),
    (Cause::Network, "#1f77b4"),
    (Cause::Device, "#9467bd"),
];

/// The page for `cells` and their diagnosis.
pub fn page(title: &str, cells: &[CellResult], d: &Diagnosis) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td.l,th.l{{text-align:left}}\
         .bar{{display:flex;height:14px;width:240px;background:#f4f4f4}}.bar span{{display:block;height:14px}}\
         .bad{{background:#fde8e8}}.gone{{color:#888}}</style></head><body>\
         <h1>{t}</h1><p><b>{head}</b></p>",
        t = esc(title),
        head = esc(&d.headline)
    );
    if !d.advice.is_empty() {
        h.push_str("<h2>What to try</h2><ul>");
        for a in &d.advice {
            let _ = write!(h, "<li>{}</li>", esc(a));
        }
        h.push_str("</ul>");
    }
    h.push_str(&matrix_table(cells, d));
    if !d.inconclusive.is_empty() {
        h.push_str("<h2>Left out</h2><ul>");
        for (cell, why) in &d.inconclusive {
            let _ = write!(h, "<li>{}: {}</li>", esc(cell), esc(why));
        }
        h.push_str("</ul>");
    }
    h.push_str("</body></html>\n");
    h
}

/// The matrix: one row per cell.
fn matrix_table(cells: &[CellResult], d: &Diagnosis) -> String {
    let scale = cells.iter().map(CellResult::ms_per_turn).fold(60.0, f64::max);
    let mut h = String::from("<h2>Matrix</h2><p>Stutter per turn by cause: ");
    for (cause, colour) in COLOURS {
        let _ = write!(h, "<span style=\"color:{colour}\">■</span> {} ", cause.name());
    }
    h.push_str(
        "</p><table><tr><th class=\"l\">cell</th><th>devices</th><th class=\"l\">network</th>\
         <th class=\"l\">transport</th><th>turns</th><th>failed</th><th>stutter turns</th>\
         <th>ms per turn</th><th class=\"l\">by cause</th><th>first audio p95</th><th>server CPU</th></tr>",
    );
    for c in cells {
        let label = c.spec.factor.label();
        let brings = d.findings.iter().any(|f| f.label == label && f.brings_stutter);
        let class = match (&c.inconclusive, brings || (label == "baseline" && d.baseline_stutters)) {
            (Some(_), _) => " class=\"gone\"",
            (None, true) => " class=\"bad\"",
            (None, false) => "",
        };
        let _ = write!(
            h,
            "<tr{class}><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td>{}</td><td>{}</td><td>{} ({:.0}%)</td><td>{:.0}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&label),
            c.spec.devices,
            esc(&c.spec.network),
            c.spec.transport.as_str(),
            c.turns,
            c.failed,
            c.stutter_turns,
            c.stutter_share() * 100.0,
            c.ms_per_turn(),
            bar(c, scale),
            c.first_audio_p95_ms
                .map(|v| format!("{v:.0} ms"))
                .unwrap_or_else(|| "–".into()),
            c.server_cpu_cores
                .map(|v| format!("{v:.2} cores"))
                .unwrap_or_else(|| "–".into()),
        );
    }
    h.push_str("</table>");
    h
}

/// A bar 240 px wide at `scale` ms per turn, split by cause.
fn bar(c: &CellResult, scale: f64) -> String {
    let mut h = String::from("<div class=\"bar\">");
    for (cause, colour) in COLOURS {
        let ms = match cause {
            Cause::Server => c.server_ms,
            Cause::Network => c.network_ms,
            Cause::Device => c.device_ms,
        };
        let width = c.per_turn(ms) / scale * 240.0;
        if width > 0.0 {
            let _ = write!(
                h,
                "<span style=\"width:{width:.1}px;background:{colour}\" title=\"{} {:.0} ms per turn\"></span>",
                cause.name(),
                c.per_turn(ms)
            );
        }
    }
    h.push_str("</div>");
    h
}
