//! The SVG charts labrun draws: line charts (linear or logarithmic x), bar charts, and
//! charts side by side. Self-contained files with deterministic bytes, so figures are
//! artifacts like any other. The `report.*` ops (`report.rs`) and `fit.*` use them.

use std::fmt::Write;

const PALETTE: [&str; 8] = ["#4878a8", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4", "#b8860b", "#5c5c5c"];

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

/// The y axis's range for values from `lo` to `hi`: round ends, at multiples of a round
/// step, that hold the data snugly. Zero is on the axis when `zero` (bars grow from it) or
/// when the data come within their own span of it, so that lines at 0.90–0.95 show their
/// differences and lines at 0.1–0.6 start at 0.
pub(crate) fn y_axis(lo: f64, hi: f64, zero: bool) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let (mut lo, mut hi) = (lo.min(hi), hi.max(lo));
    let span = hi - lo;
    if zero || (lo > 0.0 && lo <= span) {
        lo = lo.min(0.0);
    }
    if zero || (hi < 0.0 && -hi <= span) {
        hi = hi.max(0.0);
    }
    if hi - lo < 1e-12 {
        // One value: a band around it.
        let pad = if hi != 0.0 { hi.abs() * 0.1 } else { 1.0 };
        (lo, hi) = (lo - pad, hi + pad);
    }
    let step = nice_ceiling((hi - lo) / 5.0);
    // Rounded to the step's decimals, so that 6 × 0.1 is 0.6.
    let scale = 10f64.powi((1 - step.log10().floor() as i32).max(0));
    let ends = |v: f64, up: bool| {
        let k = v / step;
        let k = if up { (k - 1e-9).ceil() } else { (k + 1e-9).floor() };
        (k * step * scale).round() / scale
    };
    (ends(lo, false), ends(hi, true))
}

/// Where a bar chart's axis ends: above every bar, unless a few bars tower over the rest
/// (more than three times the next): then the axis fits the rest, and the towering bars are
/// drawn cut, so that the differences among the others stay visible.
pub(crate) fn bar_axis_top(tops: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = tops.iter().copied().filter(|t| t.is_finite()).collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let most_cut = sorted.len() / 3;
    for k in 1..=most_cut {
        if sorted[k] > 0.0 && sorted[k - 1] > 3.0 * sorted[k] {
            return sorted[k];
        }
    }
    sorted.first().copied().unwrap_or(0.0)
}

/// Ends of a y axis given by hand; the ends not given are chosen from the data.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct YEnds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// A self-contained line chart.
pub fn lines_svg(title: &str, xlabel: &str, ylabel: &str, lines: &[Line], reference: Option<f64>) -> String {
    lines_svg_scaled(title, xlabel, ylabel, lines, reference, false, YEnds::default())
}

/// A line chart whose x axis is logarithmic when `log_x` (every x must then be positive);
/// the y axis ends where `y` says (points beyond are drawn at the edge), else where the
/// data need.
pub fn lines_svg_scaled(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    lines: &[Line],
    reference: Option<f64>,
    log_x: bool,
    y: YEnds,
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
    // The y range covers every point with its error bar, and the reference line.
    let finite = |v: &f64| v.is_finite();
    let top_val =
        pts.clone().map(|p| p.1 + p.2.unwrap_or(0.0)).chain(reference).filter(finite).fold(f64::NEG_INFINITY, f64::max);
    let low_val = pts.map(|p| p.1 - p.2.unwrap_or(0.0)).chain(reference).filter(finite).fold(f64::INFINITY, f64::min);
    let (lo, hi) = (y.min.unwrap_or(low_val), y.max.unwrap_or(top_val));
    let (ymin, ymax) = y_axis(lo.min(hi), hi.max(lo), false);
    let ymin = y.min.unwrap_or(ymin);
    let ymax = y.max.unwrap_or(ymax).max(ymin + 1e-12);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let xs = |x: f64| if xmax > xmin { left + pw * (x - xmin) / (xmax - xmin) } else { left + pw / 2.0 };
    let ys = |v: f64| top + ph * (1.0 - ((v - ymin) / (ymax - ymin)).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    s.push_str(&title_text(w / 2.0, w, title));
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
/// Bars grow from 0; the axis ends at `y_max` when given, else where [`bar_axis_top`]
/// puts it. A bar above the axis is drawn cut, with a break mark and its value.
pub fn bar_svg(
    title: &str,
    ylabel: &str,
    bars: &[(String, f64, Option<f64>)],
    reference: Option<f64>,
    y_max: Option<f64>,
) -> String {
    let (w, h) = (120.0 + 110.0 * bars.len() as f64, 420.0);
    let (left, right, top, bottom) = (70.0, 20.0, 50.0, 90.0);
    let tops: Vec<f64> = bars.iter().map(|(_, v, e)| v + e.unwrap_or(0.0)).collect();
    let top_val = y_max.unwrap_or_else(|| bar_axis_top(&tops).max(reference.unwrap_or(0.0)));
    let low_val = bars.iter().map(|(_, v, e)| v - e.unwrap_or(0.0)).chain(reference).fold(0.0f64, f64::min);
    let (ymin, ymax) = y_axis(low_val, top_val.max(1e-12), true);
    let ymax = y_max.filter(|&m| m > ymin).unwrap_or(ymax);
    let plot_h = h - top - bottom;
    let y = |v: f64| top + plot_h * (1.0 - ((v - ymin) / (ymax - ymin)).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    s.push_str(&title_text(w / 2.0, w, title));
    let step = nice_ceiling((ymax - ymin) / 5.0);
    let ticks =
        (0..=20).map(|i| (ymin / step).ceil() * step + i as f64 * step).take_while(|&v| v <= ymax + 1e-9 * step);
    for v in ticks {
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
            y(*v).min(y(0.0)),
            (y(0.0) - y(*v)).abs()
        );
        let cut = *v > ymax;
        if cut {
            // A break across the bar's top: its height is not to scale.
            let (bx, by) = (x0 - 4.0, y(ymax) + 14.0);
            let _ = write!(
                s,
                r#"<path d="M{bx:.1} {:.1}L{:.1} {:.1}M{bx:.1} {:.1}L{:.1} {:.1}" stroke="white" stroke-width="3"/>"#,
                by + 4.0,
                bx + bw + 8.0,
                by - 4.0,
                by + 10.0,
                bx + bw + 8.0,
                by + 2.0
            );
        }
        if let Some(e) = e.filter(|e| *e > 0.0 && !cut) {
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
        let label_at = if cut { y(ymax) - 6.0 } else { y(v + e.unwrap_or(0.0).max(0.0)) - 6.0 };
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
    if v == v.trunc() && v.abs() < 1e5 {
        return format!("{v:.0}");
    }
    // Below 0.001 three decimals would round to 0, and from 100,000 the digits crowd the
    // axis: two significant digits instead.
    if v.abs() < 1e-3 || v.abs() >= 1e5 {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let s = if v.abs() >= 100.0 { format!("{v:.1}") } else { format!("{v:.3}") };
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A chart's title, centred at `x`, its font shrunk (to 9 px at the least) so that a long
/// title fits the chart's `width`.
fn title_text(x: f64, width: f64, title: &str) -> String {
    let chars = title.chars().count().max(1) as f64;
    // Sans-serif glyphs average about 0.55 em.
    let size = 16f64.min((width - 20.0) / (0.55 * chars)).max(9.0);
    format!(
        r#"<text x="{x}" y="28" text-anchor="middle" font-size="{}">{}</text>"#,
        fmt_tick((size * 10.0).floor() / 10.0),
        esc(title)
    )
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
        let svg = bar_svg("T", "acc", &[("a<b".into(), 0.5, Some(0.1)), ("c".into(), 0.9, None)], Some(0.1), None);
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains("stroke-dasharray"));
        assert_eq!(nice_ceiling(0.93), 1.0);
        assert_eq!(nice_ceiling(3.1), 5.0);
        assert_eq!(
            (fmt_tick(5.0), fmt_tick(0.25), fmt_tick(0.3333), fmt_tick(0.8)),
            ("5".into(), "0.25".into(), "0.333".into(), "0.8".into())
        );
        // Small values keep two significant digits instead of rounding to 0.
        assert_eq!(
            (fmt_tick(1e-4), fmt_tick(0.000244), fmt_tick(-1.5e-5)),
            ("1e-4".into(), "2.4e-4".into(), "-1.5e-5".into())
        );
        // A long title is set smaller so that it fits the chart.
        let long = "a title far longer than the chart is wide, ".repeat(2);
        let t = title_text(300.0, 600.0, &long);
        let size: f64 = t.split("font-size=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        assert!(size < 16.0 && size * 0.55 * long.chars().count() as f64 <= 580.0 + 1.0, "{t}");
        assert!(title_text(300.0, 600.0, "short").contains("font-size=\"16\""));
    }

    /// The y coordinate of a gridline labelled `tick` in a chart, if there is one.
    fn gridline(svg: &str, tick: &str) -> Option<f64> {
        let label = format!(r#"text-anchor="end">{tick}</text>"#);
        let at = svg.find(&label)?;
        let before = &svg[..at];
        let y = before.rsplit_once(r#"y=""#)?.1.split('"').next()?;
        Some(y.parse::<f64>().ok()? - 4.0)
    }

    #[test]
    fn axes_fit_the_data_and_start_at_zero_when_it_is_near() {
        // Near zero (0.1–0.6): from 0.
        assert_eq!(y_axis(0.1, 0.6, false), (0.0, 0.6));
        // Far from zero (0.90–0.95): the band itself, at round steps.
        assert_eq!(y_axis(0.9, 0.95, false), (0.9, 0.95));
        let (lo, hi) = y_axis(0.903, 0.948, false);
        assert!((lo - 0.9).abs() < 1e-12 && (hi - 0.95).abs() < 1e-12, "{lo} {hi}");
        // Negative data, and bars, which always hold 0.
        assert_eq!(y_axis(-3.2, -0.4, false), (-4.0, 0.0));
        assert_eq!(y_axis(0.9, 0.95, true), (0.0, 1.0));
        // One value, or none.
        let (lo, hi) = y_axis(2.0, 2.0, false);
        assert!(lo < 2.0 && hi > 2.0, "{lo} {hi}");
        assert_eq!(y_axis(f64::INFINITY, f64::NEG_INFINITY, false), (0.0, 1.0));
    }

    #[test]
    fn a_towering_bar_is_cut_so_that_the_others_show_their_differences() {
        // The subliminal language models' figure: the owl teacher's 0.98 against students
        // at 0.08–0.19 (mean + std).
        let tops = [0.146, 0.983, 0.232, 0.137, 0.171];
        assert_eq!(bar_axis_top(&tops), 0.232);
        // Tall bars of similar heights are all shown whole.
        assert_eq!(bar_axis_top(&[0.15, 0.97, 0.68, 0.14, 0.97, 0.95]), 0.97);
        // Two bars: never cut (a third of them is none).
        assert_eq!(bar_axis_top(&[0.1, 0.9]), 0.9);
        let bars: Vec<(String, f64, Option<f64>)> = [
            ("base", 0.126, 0.020),
            ("teacher", 0.982, 0.001),
            ("same", 0.192, 0.040),
            ("other", 0.077, 0.060),
            ("sft", 0.155, 0.016),
        ]
        .iter()
        .map(|(l, v, e)| (l.to_string(), *v, Some(*e)))
        .collect();
        let svg = bar_svg("owl", "P(owl)", &bars, Some(0.125), None);
        // The axis ends at 0.25, and the students' effect (0.126 → 0.192) spans over a
        // quarter of the plot's 280 pixels, not the 19 it had under an axis to 1.
        let (zero, top) = (gridline(&svg, "0").unwrap(), gridline(&svg, "0.25").unwrap());
        assert!(gridline(&svg, "1").is_none(), "{svg}");
        let px = (zero - top) * (0.192 - 0.126) / 0.25;
        assert!(px > 70.0, "{px}");
        // The teacher's bar is cut, with its value printed.
        assert!(svg.contains(r#"stroke="white" stroke-width="3""#) && svg.contains(">0.982<"), "{svg}");
        // An explicit top overrides the choice.
        let svg = bar_svg("owl", "P(owl)", &bars, Some(0.125), Some(1.0));
        assert!(gridline(&svg, "1").is_some() && !svg.contains(r#"stroke="white" stroke-width="3""#));
    }
}

/// One panel of a scatter chart: its title, its points and how many points could not be
/// drawn (0 or below on a logarithmic axis).
pub struct Panel {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub omitted: usize,
}

/// A grid of scatter panels (three per row) on shared axes, both logarithmic, with the
/// diagonal y = x dashed when `diagonal`: estimates against truths, one panel per method.
pub fn scatter_svg(title: &str, xlabel: &str, ylabel: &str, panels: &[Panel], diagonal: bool) -> String {
    let pts = || panels.iter().flat_map(|p| p.points.iter());
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts() {
        for v in [x, y] {
            lo = lo.min(v.log10());
            hi = hi.max(v.log10());
        }
    }
    if !(lo.is_finite() && hi.is_finite()) {
        (lo, hi) = (-1.0, 0.0);
    }
    let (lo, hi) = (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
    let cols = panels.len().clamp(1, 3);
    let rows = panels.len().div_ceil(cols).max(1);
    let (pw, ph) = (240.0, 240.0);
    let (left, top, gap_x, gap_y) = (80.0, 60.0, 50.0, 80.0);
    let w = left + cols as f64 * (pw + gap_x);
    let h = top + rows as f64 * (ph + gap_y) + 10.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    s.push_str(&title_text(w / 2.0, w, title));
    let step = ((hi - lo) / 5.0).ceil().max(1.0);
    for (k, panel) in panels.iter().enumerate() {
        let (x0, y0) = (left + (k % cols) as f64 * (pw + gap_x), top + (k / cols) as f64 * (ph + gap_y));
        let sx = |v: f64| x0 + pw * (v.log10() - lo) / (hi - lo);
        let sy = |v: f64| y0 + ph * (1.0 - (v.log10() - lo) / (hi - lo));
        let mut e = lo;
        while e <= hi + 1e-9 {
            let v = 10f64.powf(e);
            let _ = write!(
                s,
                r##"<line x1="{x0}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#eee"/><line x1="{:.1}" x2="{:.1}" y1="{y0}" y2="{:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
                x0 + pw,
                sy(v),
                sy(v),
                sx(v),
                sx(v),
                y0 + ph,
                x0 - 5.0,
                sy(v) + 4.0,
                fmt_tick(v),
                sx(v),
                y0 + ph + 15.0,
                fmt_tick(v)
            );
            e += step;
        }
        if diagonal {
            let (a, b) = (10f64.powf(lo), 10f64.powf(hi));
            let _ = write!(
                s,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="6 4"/>"##,
                sx(a),
                sx(b),
                sy(a),
                sy(b)
            );
        }
        let c = PALETTE[k % PALETTE.len()];
        for &(x, y) in &panel.points {
            let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}" fill-opacity="0.6"/>"#, sx(x), sy(y));
        }
        let mut label = panel.label.clone();
        if panel.omitted > 0 {
            let _ = write!(label, " ({} at ≤ 0 not shown)", panel.omitted);
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text>"#,
            x0 + pw / 2.0,
            y0 - 8.0,
            esc(&label)
        );
        let _ = write!(
            s,
            r#"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="black"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            x0 + pw / 2.0,
            y0 + ph + 34.0,
            esc(xlabel),
            x0 - 52.0,
            y0 + ph / 2.0,
            esc(ylabel)
        );
    }
    s.push_str("</svg>\n");
    s
}
