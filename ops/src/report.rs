//! `report.*`: figures. Tables come from `report` blocks themselves.

use crate::artifact::{self, Metrics};
use crate::curve::{self, Curve};
use crate::params::{CurveDir, Grid, MetricsDir, ModelDir, Params};
use crate::svg::{Line, YEnds, bar_svg, fmt_tick, lines_svg, lines_svg_scaled, side_by_side};
use crate::{Check, Op, OpError, Registry, RunCtx, Signature, Type, Value};

pub fn register(r: &mut Registry) {
    r.add(Bar);
    r.add(Lines);
    r.add(Loss);
    r.add(Curves);
    r.add(Scatter);
}

/// Points of curves on log–log axes, a panel per curve: estimates against truths.
pub struct Scatter;

#[derive(Params)]
#[params(same_length(curves, labels))]
pub struct ScatterParams {
    /// the curves, one panel each (e.g. one per method)
    #[param(non_empty)]
    curves: Vec<CurveDir>,
    /// one title per panel
    labels: Vec<String>,
    /// the column on the x axis
    #[param(default = "probability")]
    x: String,
    /// the column on the y axis
    #[param(default = "estimate")]
    y: String,
    /// draw the diagonal y = x
    #[param(default = true)]
    diagonal: bool,
    /// chart title
    #[param(default = "")]
    title: String,
    /// x-axis label (default: the x column)
    #[param(default = "")]
    xlabel: String,
    /// y-axis label (default: the y column)
    #[param(default = "")]
    ylabel: String,
}

impl Op for Scatter {
    type Params = ScatterParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "report",
            "scatter",
            1,
            Type::Figure,
            "an SVG scatter chart on logarithmic axes, one panel per curve on shared axes, each row of a curve a point (x, y), with the diagonal y = x; points that cannot be drawn there (a coordinate 0 or below, e.g. estimates of 0) are counted in the panel's title instead",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ScatterParams) -> Result<(), OpError> {
        let mut panels = Vec::new();
        for (i, (dir, label)) in p.curves.iter().zip(&p.labels).enumerate() {
            let arg = format!("curves[{i}]");
            let c = Curve::read(dir)?;
            let (xs, ys) = (c.column(&p.x, &arg)?, c.column(&p.y, &arg)?);
            let ok = |v: f64| v.is_finite() && v > 0.0;
            let points: Vec<(f64, f64)> =
                xs.iter().zip(&ys).map(|(&x, &y)| (x, y)).filter(|&(x, y)| ok(x) && ok(y)).collect();
            panels.push(crate::svg::Panel { label: label.clone(), omitted: xs.len() - points.len(), points });
        }
        let xlabel = if p.xlabel.is_empty() { &p.x } else { &p.xlabel };
        let ylabel = if p.ylabel.is_empty() { &p.y } else { &p.ylabel };
        let svg = crate::svg::scatter_svg(&p.title, xlabel, ylabel, &panels, p.diagonal);
        std::fs::write(ctx.out.join(crate::artifact::FIGURE_FILE), svg)?;
        Ok(())
    }
}

/// Training-loss curves of trained language models.
pub struct Loss;

#[derive(Params)]
#[params(same_length(models, labels))]
pub struct LossParams {
    /// models trained by a `finetune.*` language-model op
    #[param(non_empty)]
    models: Vec<ModelDir>,
    /// one legend label per model
    labels: Vec<String>,
    /// steps per plotted point
    #[param(default = 10, min = 1)]
    smooth: usize,
    /// chart title
    #[param(default = "Training loss")]
    title: String,
}

impl Op for Loss {
    type Params = LossParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "report",
            "loss",
            4,
            Type::Figure,
            "an SVG chart of the training loss of each model against the step (averaged over windows of `smooth` steps), with the validation loss where it was measured",
        )
    }

    fn run(&self, ctx: &RunCtx, p: LossParams) -> Result<(), OpError> {
        let (paths, labels) = (&p.models, &p.labels);
        let smooth = p.smooth;
        let mut lines = Vec::new();
        for (p, label) in paths.iter().zip(labels) {
            let text = std::fs::read_to_string(p.join("train_log.json")).map_err(|_| {
                OpError::invalid(
                    "models",
                    format!("`{label}` has no training log; only models from `finetune.*` language-model ops have one"),
                )
            })?;
            let log: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| OpError::Data(format!("{}: {e}", p.display())))?;
            let loss: Vec<f64> =
                log["loss"].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
            let pts: Vec<(f64, f64, Option<f64>)> = loss
                .chunks(smooth)
                .enumerate()
                .map(|(i, c)| ((i * smooth + c.len()) as f64, c.iter().sum::<f64>() / c.len() as f64, None))
                .collect();
            lines.push(Line::from((format!("{label} (train)"), pts)));
            if let Some(val) = log["val_loss"].as_array().filter(|v| !v.is_empty()) {
                let pts = val.iter().filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?, None))).collect();
                lines.push(Line {
                    dashed: true,
                    color: Some(lines.len() - 1),
                    ..Line::from((format!("{label} (validation)"), pts))
                });
            }
        }
        let svg = lines_svg(&p.title, "step", "loss (nats per token)", &lines, None);
        std::fs::write(ctx.out.join(crate::artifact::FIGURE_FILE), svg)?;
        Ok(())
    }
}

/// A line chart: one line per series over shared x values, with ± error bars.
pub struct Lines;

#[derive(Params)]
#[params(
    same_length_or_empty(series, metrics),
    same_length(values, series),
    same_length_or_empty(series, labels),
    rules = crate::fit::x_axis_rules
)]
pub struct LinesParams {
    /// one list of results per series, one result per x value
    #[param(non_empty)]
    values: Grid<MetricsDir>,
    /// the x values (or give `x_metric`)
    #[param(default = vec![])]
    x: Vec<f64>,
    /// read each x value from this metric of the first series' results instead (e.g. a model's `parameters`)
    #[param(default = "")]
    x_metric: String,
    /// the value that names each series in the legend
    #[param(non_empty)]
    series: Vec<f64>,
    /// legend text after each series value, e.g. `aux logits`
    #[param(default = "")]
    series_name: String,
    /// legend labels, one per series, instead of `series` and `series_name`
    #[param(default = vec![])]
    labels: Vec<String>,
    /// the metric on the y axis
    #[param(default = "mean")]
    metric: String,
    /// one y metric per series instead of `metric` (e.g. `normalized_0shot`, `normalized_1shot` of the same results)
    #[param(default = vec![])]
    metrics: Vec<String>,
    /// the metric drawn as an error bar; `""` for none
    #[param(default = "std")]
    error: String,
    /// chart title
    #[param(default = "")]
    title: String,
    /// x-axis label
    #[param(default = "")]
    xlabel: String,
    /// y-axis label
    #[param(default = "")]
    ylabel: String,
    /// draw a dashed horizontal line at this value (e.g. chance)
    #[param(default = f64::MIN)]
    reference: f64,
    /// a logarithmic x axis (x values must be positive)
    #[param(default = false)]
    log_x: bool,
    /// the top of the y axis (higher points are drawn at the top); by default the axis
    /// fits the data, and starts at 0 when they come near it
    #[param(default = f64::MIN)]
    y_max: f64,
}

impl Op for Lines {
    type Params = LinesParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "report",
            "lines",
            5,
            Type::Figure,
            "an SVG line chart: one line per series (rows of `values`) over the x values, with ± error bars when the results have `std`",
        )
    }

    fn run(&self, ctx: &RunCtx, p: LinesParams) -> Result<(), OpError> {
        let paths = &p.values.0;
        let mut xs: Vec<f64> = p.x.clone();
        let x_metric = p.x_metric.as_str();
        // `x` or `x_metric`, not both: declared rules.
        if xs.is_empty() {
            let series = p.series.len().max(1);
            let per = paths.len() / series;
            xs = paths[..per]
                .iter()
                .map(|p| artifact::metric(&artifact::read_metrics(p)?, x_metric))
                .collect::<Result<_, _>>()?;
        }
        let log_x = p.log_x;
        // Given x values are checked before the run; those read from `x_metric` only now.
        if log_x && xs.iter().any(|&x| x.is_nan() || x <= 0.0) {
            return Err(OpError::invalid("x", "must be positive for `log_x: true`"));
        }
        let series: &[f64] = &p.series;
        if xs.is_empty() || paths.len() != xs.len() * series.len() {
            return Err(OpError::invalid(
                "values",
                format!(
                    "has {} results; expected one per series and x value ({} × {})",
                    paths.len(),
                    series.len(),
                    xs.len()
                ),
            ));
        }
        let (metric, error) = (p.metric.as_str(), p.error.as_str());
        let (metrics, labels) = (&p.metrics, &p.labels);
        let mut lines = Vec::new();
        for (si, sv) in series.iter().enumerate() {
            let mut pts = Vec::new();
            for (xi, &x) in xs.iter().enumerate() {
                let m = artifact::read_metrics(&paths[si * xs.len() + xi])?;
                let y = artifact::metric(&m, metrics.get(si).map_or(metric, String::as_str))?;
                let e = if error.is_empty() { None } else { m.get(error).and_then(|v| v.as_f64()) };
                pts.push((x, y, e));
            }
            let name = &p.series_name;
            let label = match labels.get(si) {
                Some(l) => l.clone(),
                None => format!("{} {name}", fmt_tick(*sv)).trim().to_string(),
            };
            lines.push(Line::from((label, pts)));
        }
        let reference = Some(p.reference).filter(|&r| r > f64::MIN);
        let y = YEnds { min: None, max: Some(p.y_max).filter(|&m| m > f64::MIN) };
        let svg = lines_svg_scaled(&p.title, &p.xlabel, &p.ylabel, &lines, reference, log_x, y);
        std::fs::write(ctx.out.join(crate::artifact::FIGURE_FILE), svg)?;
        Ok(())
    }
}

/// A bar chart of one metric per result, with error bars when the metrics carry a spread.
pub struct Bar;

#[derive(Params)]
#[params(same_length(values, labels))]
pub struct BarParams {
    /// the results, one bar each
    #[param(non_empty)]
    values: Vec<MetricsDir>,
    /// one label per bar
    labels: Vec<String>,
    /// the metric that sets a bar's height
    #[param(default = "mean")]
    metric: String,
    /// the metric drawn as an error bar; `""` for none
    #[param(default = "std")]
    error: String,
    /// chart title
    #[param(default = "")]
    title: String,
    /// y-axis label
    #[param(default = "")]
    ylabel: String,
    /// draw a dashed horizontal line at this value (e.g. chance)
    #[param(default = f64::MIN)]
    reference: f64,
    /// the top of the y axis (taller bars are drawn cut); by default the axis fits every
    /// bar, or the rest when a few tower more than 3× over them
    #[param(default = f64::MIN)]
    y_max: f64,
}

impl Op for Bar {
    type Params = BarParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "report",
            "bar",
            3,
            Type::Figure,
            "an SVG bar chart: one bar per result, its height the metric, with ± error bars when the results have `std`",
        )
    }

    fn run(&self, ctx: &RunCtx, p: BarParams) -> Result<(), OpError> {
        let paths = &p.values;
        let labels = &p.labels;
        let metric = p.metric.as_str();
        let error = p.error.as_str();
        let mut bars = Vec::new();
        for (dir, label) in paths.iter().zip(labels) {
            let m: Metrics = artifact::read_metrics(dir)?;
            let h = artifact::metric(&m, metric)?;
            let e = if error.is_empty() { None } else { m.get(error).and_then(|v| v.as_f64()) };
            bars.push((label.clone(), h, e));
        }
        let reference = Some(p.reference).filter(|&r| r > f64::MIN);
        let y_max = Some(p.y_max).filter(|&m| m > f64::MIN);
        if y_max.is_some_and(|m| !(m > 0.0)) {
            return Err(OpError::invalid("y_max", "must be above 0: bars grow from 0"));
        }
        let svg = bar_svg(&p.title, &p.ylabel, &bars, reference, y_max);
        std::fs::write(ctx.out.join(crate::artifact::FIGURE_FILE), svg)?;
        Ok(())
    }
}

/// Curves (e.g. gold and proxy reward against d = √KL), one colour per group of curves.
pub struct Curves;

#[derive(Params)]
#[params(rules = curves_rules)]
pub struct CurvesParams {
    /// one list of curves per group (each group the same length, e.g. one curve per seed), averaged
    curves: Grid<CurveDir>,
    /// one legend label per group
    #[param(default = vec![])]
    labels: Vec<String>,
    /// instead of `labels`: the value that names each group, e.g. `sizes`
    #[param(default = vec![])]
    series: Vec<f64>,
    /// legend text after each `series` value, e.g. `pairs`
    #[param(default = "")]
    series_name: String,
    /// small multiples: the value that names each panel, e.g. `widths` (the groups of `curves` are split into that many panels, in order: `[[c[w, n, s] for s in seeds] for w in widths for n in sizes]`); one chart when empty
    #[param(default = vec![])]
    panels: Vec<f64>,
    /// text after each `panels` value in the panel titles, e.g. `hidden units`
    #[param(default = "")]
    panel_name: String,
    /// the column on the x axis
    #[param(default = "d")]
    x: String,
    /// the columns drawn, each as a line per group
    #[param(default = vec!["gold".to_string(), "proxy".to_string()], non_empty)]
    y: Vec<String>,
    /// chart title
    #[param(default = "")]
    title: String,
    /// x-axis label (default: the x column)
    #[param(default = "")]
    xlabel: String,
    /// y-axis label
    #[param(default = "")]
    ylabel: String,
    /// a logarithmic x axis (points with x ≤ 0 are left out)
    #[param(default = false)]
    log_x: bool,
}

/// The groups need names: `labels`, or `series` to make them from.
fn curves_rules() -> Vec<Check> {
    vec![Check::Rule {
        params: &["labels", "series"],
        doc: "`labels` or `series` is not empty",
        test: |v| match (v[0], v[1]) {
            (Value::List(labels), Value::List(series)) if labels.is_empty() && series.is_empty() => Some(
                "`labels` and `series` are both empty; give one label (or `series` value) per group of curves"
                    .to_string(),
            ),
            _ => None,
        },
    }]
}

impl Op for Curves {
    type Params = CurvesParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "report",
            "curves",
            3,
            Type::Figure,
            "an SVG chart of curves: each group of curves (e.g. one per seed) is averaged point by point and drawn in one colour, its first `y` column solid and the others dashed",
        )
    }

    fn run(&self, ctx: &RunCtx, p: CurvesParams) -> Result<(), OpError> {
        // Nested lists arrive flattened: the labels say how many groups there are.
        let all = &p.curves.0;
        let mut labels = p.labels.clone();
        if labels.is_empty() {
            let name = &p.series_name;
            labels = p.series.iter().map(|v| format!("{} {name}", fmt_tick(*v)).trim().to_string()).collect();
        }
        if labels.is_empty() || all.len() % labels.len() != 0 {
            return Err(OpError::invalid(
                "labels",
                format!(
                    "has {} labels for {} curves; give one label per group, each group the same number of curves",
                    labels.len(),
                    all.len()
                ),
            ));
        }
        let panels = &p.panels;
        let n_panels = panels.len().max(1);
        if all.len() % (labels.len() * n_panels) != 0 {
            return Err(OpError::invalid(
                "panels",
                format!(
                    "has {} values, but {} curves do not split into that many panels of {} groups",
                    panels.len(),
                    all.len(),
                    labels.len()
                ),
            ));
        }
        let (xc, ys) = (p.x.as_str(), &p.y);
        let xlabel = match p.xlabel.as_str() {
            "" => xc,
            l => l,
        };
        let title = p.title.as_str();
        let mut panels_lines = Vec::new();
        for panel in all.chunks(all.len() / n_panels) {
            let mut lines = Vec::new();
            for (gi, (group, label)) in panel.chunks(panel.len() / labels.len()).zip(&labels).enumerate() {
                let curves = group.iter().map(|d| Curve::read(d)).collect::<Result<Vec<_>, _>>()?;
                let mean = curve::mean(&curves, "curves")?;
                let x = mean.column(xc, "x")?;
                for (j, yc) in ys.iter().enumerate() {
                    let y = mean.column(yc, "y")?;
                    let points =
                        x.iter().zip(&y).filter(|(a, _)| !p.log_x || **a > 0.0).map(|(&a, &b)| (a, b, None)).collect();
                    let label = if ys.len() > 1 { format!("{label}, {yc}") } else { label.clone() };
                    lines.push(Line { label, points, dashed: j > 0, color: Some(gi) });
                }
            }
            panels_lines.push(lines);
        }
        // Panels side by side share one y axis, so that their heights compare.
        let (lo, hi) = panels_lines
            .iter()
            .flatten()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .filter(|y| y.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
        let shared = if panels_lines.len() > 1 {
            let (min, max) = crate::svg::y_axis(lo, hi, false);
            YEnds { min: Some(min), max: Some(max) }
        } else {
            YEnds::default()
        };
        let mut svgs = Vec::new();
        for (pi, lines) in panels_lines.iter().enumerate() {
            let title = match panels.get(pi) {
                Some(v) => format!("{title} ({} {})", fmt_tick(*v), p.panel_name).replace(" )", ")"),
                None => title.to_string(),
            };
            svgs.push(lines_svg_scaled(&title, xlabel, &p.ylabel, lines, None, p.log_x, shared));
        }
        let svg = if svgs.len() == 1 { svgs.remove(0) } else { side_by_side(&svgs) };
        std::fs::write(ctx.out.join(crate::artifact::FIGURE_FILE), svg)?;
        Ok(())
    }
}
