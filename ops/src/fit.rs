//! `fit.*`: least-squares fits of functional forms to curves, and of how fitted
//! coefficients change with a quantity (data size, model size). A `Fit` artifact is
//! `fit.json` (the coefficients and the points fitted), `metrics.json` (the numbers, for
//! tables and plots) and `figure.svg` (the points with the fitted line).

use crate::artifact::{self, Metrics};
use crate::curve;
use crate::params::{CurveDir, MetricsDir, Params};
use crate::svg::lines_svg;
use crate::{Check, Op, OpError, Registry, RunCtx, Signature, Type, Value};
use serde_json::json;

pub fn register(r: &mut Registry) {
    r.add(Form::Bon);
    r.add(Form::Rl);
    r.add(Trend);
    r.add(crate::trees::FitTree);
    r.add(crate::rl::RlScaling);
}

/// Least squares without intercept, y ≈ a·f(d) − b·g(d): returns (a, b).
pub fn fit2(f: &[f64], g: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    // Normal equations of y = a·f + c·g, then b = −c.
    let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
    let (ff, fg, gg, fy, gy) = (dot(f, f), dot(f, g), dot(g, g), dot(f, y), dot(g, y));
    let det = ff * gg - fg * fg;
    if !(det.abs() > 1e-12 * (ff * gg).max(1e-300) && det.is_finite()) {
        return None;
    }
    let a = (fy * gg - gy * fg) / det;
    let c = (ff * gy - fg * fy) / det;
    Some((a, -c))
}

/// 1 − SS_res / SS_tot (about the mean of `y`).
pub fn r_squared(y: &[f64], pred: &[f64]) -> f64 {
    let m = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let tot: f64 = y.iter().map(|v| (v - m) * (v - m)).sum();
    let res: f64 = y.iter().zip(pred).map(|(v, p)| (v - p) * (v - p)).sum();
    if tot > 0.0 { 1.0 - res / tot } else { f64::NAN }
}

/// The functional forms of reward-model overoptimization (Gao et al.), with d = √KL:
/// best-of-n R(d) = d(α − βd), RL R(d) = d(α − β ln d).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Form {
    Bon,
    Rl,
}

impl Form {
    /// The two basis functions: R = α·f(d) − β·g(d).
    fn basis(self, d: f64) -> (f64, f64) {
        match self {
            Form::Bon => (d, d * d),
            Form::Rl => (d, if d > 0.0 { d * d.ln() } else { 0.0 }),
        }
    }

    pub fn eval(self, alpha: f64, beta: f64, d: f64) -> f64 {
        let (f, g) = self.basis(d);
        alpha * f - beta * g
    }

    /// The maximum of the fitted curve over d > 0, when it has one (β > 0).
    pub fn peak(self, alpha: f64, beta: f64) -> Option<(f64, f64)> {
        if beta.is_nan() || beta <= 0.0 {
            return None;
        }
        let d = match self {
            Form::Bon => alpha / (2.0 * beta),
            Form::Rl => (alpha / beta - 1.0).exp(),
        };
        (d > 0.0 && d.is_finite()).then(|| (d, self.eval(alpha, beta, d)))
    }

    /// Fits (α, β) to points (d, y).
    pub fn fit(self, d: &[f64], y: &[f64]) -> Option<(f64, f64)> {
        let (f, g): (Vec<f64>, Vec<f64>) = d.iter().map(|&d| self.basis(d)).unzip();
        fit2(&f, &g, y)
    }
}

#[derive(Params)]
pub struct FormParams {
    /// curves on one grid with columns `x` and `y`, e.g. from `estimate.best_of_n` (one per seed); they are averaged point by point
    #[param(non_empty)]
    curves: Vec<CurveDir>,
    /// the column of d = √KL
    #[param(default = "d")]
    x: String,
    /// the column fitted
    #[param(default = "gold")]
    y: String,
    /// title of the figure
    #[param(default = "")]
    title: String,
}

impl Op for Form {
    type Params = FormParams;

    fn signature(&self) -> Signature {
        let (method, doc) = match self {
            Form::Bon => (
                "bon",
                "least-squares fit of R(d) = d(α − βd), best-of-n's overoptimization form, to the point-by-point mean of the curves given (e.g. one per seed); reports `alpha`, `beta`, `r2`, the fitted peak `d_star`, `gold_star` (when β > 0), the largest measured y (`y_max` at `d_at_max`), the last (`y_end` at `d_end`), `fall` = y_max − y_end, and `proxy_rises` (1 when a `proxy` column never decreases)",
            ),
            Form::Rl => (
                "rl",
                "least-squares fit of R(d) = d(α − β ln d), RL's overoptimization form, to the point-by-point mean of the curves given (e.g. one per seed); reports `alpha`, `beta`, `r2`, the fitted peak `d_star`, `gold_star` (when β > 0), the largest measured y (`y_max` at `d_at_max`), the last (`y_end` at `d_end`), `fall` = y_max − y_end, and `proxy_rises` (1 when a `proxy` column never decreases)",
            ),
        };
        Signature::new("fit", method, 2, Type::Fit, doc)
    }

    fn run(&self, ctx: &RunCtx, p: FormParams) -> Result<(), OpError> {
        let curves = curve::read_all(&p.curves)?;
        let (xc, yc) = (p.x.as_str(), p.y.as_str());
        // Seeds are averaged point by point (on the same grid, as best-of-n's n or RL's KL
        // levels), then fitted: one seed's noise is as large as the effect.
        let mean = curve::mean(&curves, "curves")?;
        let (d, y) = (mean.column(xc, "x")?, mean.column(yc, "y")?);
        if let Some(i) = d.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(OpError::Data(format!("point {} has d = {}; d = √KL must be finite and ≥ 0", i + 1, d[i])));
        }
        if y.iter().any(|v| !v.is_finite()) {
            return Err(OpError::Data(format!("the `{yc}` column has a value that is not a finite number")));
        }
        if d.iter().filter(|&&v| v > 0.0).count() < 2 {
            return Err(OpError::invalid("curves", "have fewer than two points with d > 0; a fit needs at least two"));
        }
        let (alpha, beta) = self
            .fit(&d, &y)
            .ok_or_else(|| OpError::Data("the points do not determine both coefficients (are all d equal?)".into()))?;
        let pred: Vec<f64> = d.iter().map(|&v| self.eval(alpha, beta, v)).collect();
        let r2 = r_squared(&y, &pred);
        let (imax, &ymax) =
            y.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("at least two points were checked");
        let mut m = Metrics::new();
        m.insert("alpha".into(), json!(alpha));
        m.insert("beta".into(), json!(beta));
        if r2.is_finite() {
            m.insert("r2".into(), json!(r2));
        }
        let peak = self.peak(alpha, beta);
        if let Some((ds, ys)) = peak {
            m.insert("d_star".into(), json!(ds));
            m.insert("gold_star".into(), json!(ys));
        }
        // What was measured: the highest point, the last, and how far y fell between them.
        let last = d.len() - 1;
        m.insert("y_max".into(), json!(ymax));
        m.insert("d_at_max".into(), json!(d[imax]));
        m.insert("y_end".into(), json!(y[last]));
        m.insert("d_end".into(), json!(d[last]));
        m.insert("fall".into(), json!(ymax - y[last]));
        if let Ok(proxy) = mean.column("proxy", "curves") {
            let rises = proxy.windows(2).all(|w| w[1] >= w[0]);
            m.insert("proxy_rises".into(), json!(if rises { 1 } else { 0 }));
        }
        let form = match self {
            Form::Bon => "d(α − βd)",
            Form::Rl => "d(α − β ln d)",
        };
        let doc = json!({"form": form, "x": xc, "y": yc, "alpha": alpha, "beta": beta, "r2": r2.is_finite().then_some(r2), "peak": peak.map(|(d, y)| json!({"d": d, "y": y})), "points": d.iter().zip(&y).map(|(a, b)| [*a, *b]).collect::<Vec<_>>()});
        std::fs::write(ctx.out.join("fit.json"), serde_json::to_string_pretty(&doc).expect("json"))?;
        artifact::write_metrics(ctx.out, &m)?;
        // The points, and the fitted line over their range.
        let dmax = d.iter().copied().fold(0.0, f64::max);
        let mut order: Vec<usize> = (0..d.len()).collect();
        order.sort_by(|&a, &b| d[a].total_cmp(&d[b]));
        let points: Vec<(f64, f64, Option<f64>)> = order.iter().map(|&i| (d[i], y[i], None)).collect();
        let line: Vec<(f64, f64, Option<f64>)> =
            (0..=60).map(|i| dmax * i as f64 / 60.0).map(|v| (v, self.eval(alpha, beta, v), None)).collect();
        let title = p.title.as_str();
        let title = if title.is_empty() {
            format!("{yc} = {form}: α = {alpha:.3}, β = {beta:.3}, R² = {r2:.3}")
        } else {
            title.into()
        };
        let svg = lines_svg(
            &title,
            xc,
            yc,
            &[(format!("measured {yc}"), points).into(), (format!("fit {form}"), line).into()],
            None,
        );
        std::fs::write(ctx.out.join(crate::artifact::FIGURE_FILE), svg)?;
        Ok(())
    }
}

/// How a fitted coefficient changes with a quantity: y = a + b·log10(x) (or + b·x).
pub struct Trend;

#[derive(Params)]
#[params(same_length_or_empty(values, x), rules = x_axis_rules)]
pub struct TrendParams {
    /// the results (fits, scores), one per x
    values: Vec<MetricsDir>,
    /// the quantity, one per result (or give `x_metric`)
    #[param(default = vec![])]
    x: Vec<f64>,
    /// the metric of each result, e.g. `alpha`
    metric: String,
    /// read each x from this metric of its result instead (e.g. a model's `parameters`)
    #[param(default = "")]
    x_metric: String,
    /// regress on log10(x)
    #[param(default = true)]
    log_x: bool,
}

/// Exactly one of `x` and `x_metric` gives the x values (one per result); on a
/// logarithmic axis, given ones are positive. `fit.trend` and `report.lines` share them.
pub(crate) fn x_axis_rules() -> Vec<Check> {
    vec![
        Check::Rule {
            params: &["x", "x_metric"],
            doc: "`x` or `x_metric` is given",
            test: |v| match (v[0], v[1].as_str()) {
                (Value::List(xs), Some("")) if xs.is_empty() => {
                    Some("`x` is empty; give one x per result, or `x_metric` to read them from the results".to_string())
                }
                _ => None,
            },
        },
        Check::Rule {
            params: &["x_metric", "x"],
            doc: "`x` and `x_metric` are not both given",
            test: |v| match (v[0].as_str(), v[1]) {
                (Some(m), Value::List(xs)) if !m.is_empty() && !xs.is_empty() => {
                    Some("`x_metric` is given with `x`; give one of them".to_string())
                }
                _ => None,
            },
        },
        Check::Rule {
            params: &["x", "log_x"],
            doc: "with `log_x: true`, every `x` > 0",
            test: |v| match (v[0], v[1]) {
                (Value::List(xs), Value::Bool(true))
                    if xs.iter().filter_map(Value::as_f64).any(|x| x.is_nan() || x <= 0.0) =>
                {
                    Some("`x` must be positive with `log_x: true`".to_string())
                }
                _ => None,
            },
        },
    ]
}

impl Op for Trend {
    type Params = TrendParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "fit",
            "trend",
            1,
            Type::Fit,
            "least-squares line through one metric of several results against a quantity (e.g. `alpha` of each proxy's fit against its number of comparisons): y = intercept + slope·log10(x), or against x itself; reports `slope`, `intercept`, `r2`, `increasing` (1 when every step up in x raises y) and `decreasing` (1 when every step up lowers it)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: TrendParams) -> Result<(), OpError> {
        let paths = &p.values;
        let mut xs = p.x;
        let x_metric = p.x_metric.as_str();
        // Exactly one of `x` and `x_metric` is given: the rules of `x_axis_rules`.
        if xs.is_empty() {
            xs = paths
                .iter()
                .map(|p| artifact::metric(&artifact::read_metrics(p)?, x_metric))
                .collect::<Result<_, _>>()?;
        }
        // One x per result (`same_length_or_empty` when `x` is given); the number of results
        // is known only here.
        if paths.len() != xs.len() || xs.len() < 2 {
            return Err(OpError::invalid(
                "x",
                format!("has {} values for {} results; give one per result, at least two", xs.len(), paths.len()),
            ));
        }
        let metric = p.metric.as_str();
        let ys: Vec<f64> =
            paths.iter().map(|p| artifact::metric(&artifact::read_metrics(p)?, metric)).collect::<Result<_, _>>()?;
        let log = p.log_x;
        // Given `x` follow the rule of `x_axis_rules`; read from `x_metric` they are known only now.
        if log && xs.iter().any(|&x| x.is_nan() || x <= 0.0) {
            return Err(OpError::invalid("x", "must be positive with `log_x: true`"));
        }
        let u: Vec<f64> = xs.iter().map(|&x| if log { x.log10() } else { x }).collect();
        let ones = vec![1.0; u.len()];
        let neg_u: Vec<f64> = u.iter().map(|v| -v).collect();
        let (intercept, slope) = fit2(&ones, &neg_u, &ys)
            .ok_or_else(|| OpError::invalid("x", "has the same value everywhere; a trend needs two different x"))?;
        let pred: Vec<f64> = u.iter().map(|v| intercept + slope * v).collect();
        let r2 = r_squared(&ys, &pred);
        let mut order: Vec<usize> = (0..xs.len()).collect();
        order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
        let increasing = order.windows(2).all(|w| xs[w[0]] == xs[w[1]] || ys[w[1]] > ys[w[0]]);
        let decreasing = order.windows(2).all(|w| xs[w[0]] == xs[w[1]] || ys[w[1]] < ys[w[0]]);
        let mut m = Metrics::new();
        m.insert("slope".into(), json!(slope));
        m.insert("intercept".into(), json!(intercept));
        if r2.is_finite() {
            m.insert("r2".into(), json!(r2));
        }
        m.insert("increasing".into(), json!(if increasing { 1 } else { 0 }));
        m.insert("decreasing".into(), json!(if decreasing { 1 } else { 0 }));
        let doc = json!({"metric": metric, "log_x": log, "slope": slope, "intercept": intercept, "r2": r2.is_finite().then_some(r2), "points": xs.iter().zip(&ys).map(|(a, b)| [*a, *b]).collect::<Vec<_>>()});
        std::fs::write(ctx.out.join("fit.json"), serde_json::to_string_pretty(&doc).expect("json"))?;
        artifact::write_metrics(ctx.out, &m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::Curve;

    #[test]
    fn fits_recover_known_coefficients_and_peaks() {
        let d: Vec<f64> = (0..30).map(|i| 0.1 * i as f64).collect();
        for form in [Form::Bon, Form::Rl] {
            let y: Vec<f64> = d.iter().map(|&v| form.eval(1.3, 0.4, v)).collect();
            let (a, b) = form.fit(&d, &y).unwrap();
            assert!((a - 1.3).abs() < 1e-9 && (b - 0.4).abs() < 1e-9, "{form:?}: {a} {b}");
        }
        // d(α − βd) peaks at α/2β with α²/4β; d(α − β ln d) at e^{α/β − 1} with β·d*.
        let (ds, ys) = Form::Bon.peak(1.3, 0.4).unwrap();
        assert!((ds - 1.625).abs() < 1e-12 && (ys - 1.3 * 1.3 / 1.6).abs() < 1e-12);
        let (ds, ys) = Form::Rl.peak(1.3, 0.4).unwrap();
        assert!((ds - (1.3f64 / 0.4 - 1.0).exp()).abs() < 1e-12);
        assert!((ys - Form::Rl.eval(1.3, 0.4, ds)).abs() < 1e-12 && (ys - 0.4 * ds).abs() < 1e-9);
        assert!(Form::Bon.peak(1.0, -0.1).is_none());
    }

    #[test]
    fn r_squared_matches_a_hand_computation() {
        // y = [1, 2, 3], prediction [1, 2, 4]: SS_res = 1, SS_tot = 2.
        assert!((r_squared(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn curve_means_average_point_by_point() {
        let mut a = Curve::new(&["d", "gold"]);
        a.push(vec![0.0, 0.0]);
        a.push(vec![1.0, 2.0]);
        let mut b = Curve::new(&["d", "gold"]);
        b.push(vec![0.0, 1.0]);
        let m = curve::mean(&[a, b], "curves").unwrap();
        assert_eq!(m.rows, vec![vec![0.0, 0.5]]);
    }
}
