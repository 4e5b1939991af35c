//! The SVG charts labrun draws: line charts (linear or logarithmic x), bar charts, and
//! charts side by side. Self-contained files with deterministic bytes, so figures are
//! artifacts like any other. The `report.*` ops (`report.rs`) and `fit.*` use them.

use std::fmt::Write;

const PALETTE: [&str; 6] = ["#4878a8", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4"];

/// Points (x, y, ± error) of a line.
pub type Points = Vec<(f64, f64, Option<f64>)>;

/// One line of a chart: points (x, y, ± error), drawn solid or dashed, in the palette
/// colour of its index or of `color`.
pub struct Line {
    pub label: String,
    pub points: Points,
    pub dashed: bool,
    pub color: Option<usize>,
}

impl From<(String, Points)> for Line {
    fn from((label, points): (String, Points)) -> Line {
        Line { label, points, dashed: false, color: None }
    }
}

/// A self-contained line chart.
pub fn lines_svg(title: &str, xlabel: &str, ylabel: &str, lines: &[Line], reference: Option<f64>) -> String {
    lines_svg_scaled(title, xlabel, ylabel, lines, reference, false)
}

/// A line chart whose x axis is logarithmic when `log_x` (every x must then be positive).
pub fn lines_svg_scaled(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    lines: &[Line],
    reference: Option<f64>,
    log_x: bool,
) -> String {
    let tx = |x: f64| if log_x { x.log10() } else { x };
    let scaled: Vec<(&str, Points)> =
        lines.iter().map(|l| (l.label.as_str(), l.points.iter().map(|&(x, y, e)| (tx(x), y, e)).collect())).collect();
    // The legend gets the room its longest label needs.
    let longest = lines.iter().map(|l| l.label.chars().count()).max().unwrap_or(0) as f64;
    let right = (50.0 + 7.5 * longest).max(150.0);
    let (w, h) = (490.0 + right, 420.0);
    let (left, top, bottom) = (70.0, 50.0, 60.0);
    let pts = scaled.iter().flat_map(|(_, p)| p.iter());
    let xmin = pts.clone().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let xmax = pts.clone().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    // The y range covers every point with its error bar, and 0.
    let top_val = pts.clone().map(|p| p.1 + p.2.unwrap_or(0.0)).chain(reference).fold(0.0f64, f64::max);
    let low_val = pts.map(|p| p.1 - p.2.unwrap_or(0.0)).chain(reference).fold(0.0f64, f64::min);
    let ymax = if top_val > 0.0 { nice_ceiling(top_val) } else { 0.0 };
    let ymin = if low_val < 0.0 { -nice_ceiling(-low_val) } else { 0.0 };
    let ymax = if ymax == ymin { ymin + 1.0 } else { ymax };
    let (pw, ph) = (w - left - right, h - top - bottom);
    let xs = |x: f64| if xmax > xmin { left + pw * (x - xmin) / (xmax - xmin) } else { left + pw / 2.0 };
    let ys = |v: f64| top + ph * (1.0 - ((v - ymin) / (ymax - ymin)).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ =
        write!(s, r#"<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#, left + pw / 2.0, esc(title));
    // Gridlines at multiples of a round step, so that 0 is always one of them.
    let ystep = nice_ceiling((ymax - ymin) / 5.0);
    let ticks: Vec<f64> = (0..=20)
        .map(|i| (ymin / ystep).ceil() * ystep + i as f64 * ystep)
        .filter(|&v| v <= ymax + 1e-9 * ystep)
        .collect();
    for v in ticks {
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            ys(v),
            ys(v),
            left - 6.0,
            ys(v) + 4.0,
            fmt_tick(v)
        );
    }
    if ymin < 0.0 {
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#888"/>"##,
            left + pw,
            ys(0.0),
            ys(0.0)
        );
    }
    // A tick at every x value when there are few (sweeps), else six evenly spaced ones
    // (curves over training steps).
    let mut seen: Vec<f64> = Vec::new();
    for &(x, _, _) in scaled.iter().flat_map(|(_, p)| p.iter()) {
        if !seen.contains(&x) {
            seen.push(x);
        }
    }
    let many = seen.len() > 12;
    if log_x {
        // Ticks at the powers of ten (and 2× and 5× them when few) within the range.
        let (lo, hi) = (xmin.floor() as i32, xmax.ceil() as i32);
        let mults: &[f64] = if hi - lo <= 3 { &[1.0, 2.0, 5.0] } else { &[1.0] };
        seen = (lo..=hi)
            .flat_map(|e| mults.iter().map(move |m| (m * 10f64.powi(e)).log10()))
            .filter(|&x| x >= xmin - 1e-9 && x <= xmax + 1e-9)
            .collect();
    } else if many {
        let step = nice_ceiling((xmax - xmin) / 6.0);
        seen = (0..=6).map(|i| (xmin / step).ceil() * step + i as f64 * step).filter(|&x| x <= xmax).collect();
    }
    for x in seen {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            xs(x),
            top + ph + 18.0,
            fmt_tick(if log_x { 10f64.powf(x) } else { x })
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        h - 14.0,
        esc(xlabel)
    );
    let _ = write!(
        s,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        esc(ylabel)
    );
    if let Some(r) = reference {
        let _ = write!(
            s,
            r#"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="crimson" stroke-dasharray="6 4"/>"#,
            left + pw,
            ys(r),
            ys(r)
        );
    }
    for (i, ((label, p), line)) in scaled.iter().zip(lines).enumerate() {
        let c = PALETTE[line.color.unwrap_or(i) % PALETTE.len()];
        let dash = if line.dashed { r#" stroke-dasharray="7 4""# } else { "" };
        let path: Vec<String> = p
            .iter()
            .enumerate()
            .map(|(j, &(x, y, _))| format!("{}{:.1} {:.1}", if j == 0 { "M" } else { "L" }, xs(x), ys(y)))
            .collect();
        let _ = write!(s, r#"<path d="{}" fill="none" stroke="{c}" stroke-width="2"{dash}/>"#, path.join(""));
        for &(x, y, e) in p {
            if let Some(e) = e.filter(|e| *e > 0.0) {
                let _ = write!(s, r#"<path d="M{:.1} {:.1}V{:.1}" stroke="{c}"/>"#, xs(x), ys(y - e), ys(y + e));
            }
            if p.len() <= 40 {
                let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"/>"#, xs(x), ys(y));
            }
        }
        let ly = top + 10.0 + 20.0 * i as f64;
        let _ = write!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly:.1}" y2="{ly:.1}" stroke="{c}" stroke-width="2"{dash}/><text x="{}" y="{:.1}">{}</text>"#,
            left + pw + 12.0,
            left + pw + 32.0,
            left + pw + 38.0,
            ly + 4.0,
            esc(label)
        );
    }
    let _ = write!(
        s,
        r#"<line x1="{left}" x2="{left}" y1="{top}" y2="{:.1}" stroke="black"/><line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="black"/></svg>"#,
        top + ph,
        left + pw,
        top + ph,
        top + ph
    );
    s.push('\n');
    s
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A self-contained SVG; deterministic bytes for deterministic inputs.
pub fn bar_svg(title: &str, ylabel: &str, bars: &[(String, f64, Option<f64>)], reference: Option<f64>) -> String {
    let (w, h) = (120.0 + 110.0 * bars.len() as f64, 420.0);
    let (left, right, top, bottom) = (70.0, 20.0, 50.0, 90.0);
    let top_val = bars.iter().map(|(_, v, e)| v + e.unwrap_or(0.0)).chain(reference).fold(0.0f64, f64::max);
    let ymax = nice_ceiling(top_val.max(1e-12));
    let plot_h = h - top - bottom;
    let y = |v: f64| top + plot_h * (1.0 - (v / ymax).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(s, r#"<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#, w / 2.0, esc(title));
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            w - right,
            left - 6.0,
            yy + 4.0,
            fmt_tick(v)
        );
    }
    let _ = write!(
        s,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + plot_h / 2.0,
        esc(ylabel)
    );
    let slot = (w - left - right) / bars.len().max(1) as f64;
    for (i, (label, v, e)) in bars.iter().enumerate() {
        let x0 = left + slot * i as f64 + slot * 0.15;
        let bw = slot * 0.7;
        let _ = write!(
            s,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="#4878a8"/>"##,
            y(*v),
            y(0.0) - y(*v)
        );
        if let Some(e) = e.filter(|e| *e > 0.0) {
            let cx = x0 + bw / 2.0;
            let _ = write!(
                s,
                r#"<path d="M{cx:.1} {:.1}V{:.1}M{:.1} {:.1}h12M{:.1} {:.1}h12" stroke="black"/>"#,
                y(v - e),
                y(v + e),
                cx - 6.0,
                y(v - e),
                cx - 6.0,
                y(v + e)
            );
        }
        let label_at = y(v + e.unwrap_or(0.0).max(0.0)) - 6.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{label_at:.1}" text-anchor="middle">{}</text>"#,
            x0 + bw / 2.0,
            fmt_tick(*v)
        );
        let lx = x0 + bw / 2.0;
        let ly = h - bottom + 16.0;
        let _ = write!(
            s,
            r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-25 {lx:.1} {ly:.1})">{}</text>"#,
            esc(label)
        );
    }
    if let Some(r) = reference {
        let _ = write!(
            s,
            r#"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="crimson" stroke-dasharray="6 4"/>"#,
            w - right,
            y(r),
            y(r)
        );
    }
    let _ = write!(
        s,
        r#"<line x1="{left}" x2="{left}" y1="{top}" y2="{:.1}" stroke="black"/><line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="black"/></svg>"#,
        y(0.0),
        w - right,
        y(0.0),
        y(0.0)
    );
    s.push('\n');
    s
}

pub(crate) fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * p).find(|&c| c >= v).unwrap_or(10.0 * p)
}

/// A number as a person writes it: `5`, `0.25`, `0.333`, `1200`.
pub(crate) fn fmt_tick(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e12 {
        return format!("{v:.0}");
    }
    let s = if v.abs() >= 100.0 { format!("{v:.1}") } else { format!("{v:.3}") };
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Charts placed left to right in one SVG.
pub fn side_by_side(svgs: &[String]) -> String {
    let size = |s: &str, attr: &str| -> f64 {
        s.split_once(&format!(" {attr}=\""))
            .and_then(|(_, rest)| rest.split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let total: f64 = svgs.iter().map(|s| size(s, "width")).sum();
    let height = svgs.iter().map(|s| size(s, "height")).fold(0.0, f64::max);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{height}" viewBox="0 0 {total} {height}">"#
    );
    let mut x = 0.0;
    for s in svgs {
        let inner = s.trim_end().replacen("<svg ", &format!(r#"<svg x="{x}" y="0" "#), 1);
        out.push_str(&inner);
        x += size(s, "width");
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_one_bar_per_value_and_escapes_labels() {
        let svg = bar_svg("T", "acc", &[("a<b".into(), 0.5, Some(0.1)), ("c".into(), 0.9, None)], Some(0.1));
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains("stroke-dasharray"));
        assert_eq!(nice_ceiling(0.93), 1.0);
        assert_eq!(nice_ceiling(3.1), 5.0);
        assert_eq!(
            (fmt_tick(5.0), fmt_tick(0.25), fmt_tick(0.3333), fmt_tick(0.8)),
            ("5".into(), "0.25".into(), "0.333".into(), "0.8".into())
        );
    }
}
