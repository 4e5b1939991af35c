//! Turning `report` blocks into results a researcher can open: Markdown tables, a JSON
//! file with every number, and SVG figures, in `results/<pipeline>/`.

use crate::plan::{ArgVal, Plan, RowPlan};
use lab_cache::{ArtifactId, Cache};
use serde_json::{Value as Json, json};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Reports rendered from a finished run.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub markdown: String,
    pub json: Json,
    /// (file name, SVG in the cache)
    pub figures: Vec<(String, PathBuf)>,
    /// The rows marked `headline`, for the end of a run.
    pub headlines: Vec<Headline>,
}

/// A row marked `headline`: where it is, and the row as `results.json` has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    pub report: String,
    /// The table's caption; `None` for a loose row.
    pub table: Option<String>,
    pub label: String,
    /// The row as `results.json` has it (its metrics, or its value).
    pub json: Json,
}

impl Headline {
    /// (column, value) as `results.md` shows them.
    pub fn cells(&self) -> Vec<(String, String)> {
        cells(&self.json)
    }
}

fn row_value(plan: &Plan, row: &RowPlan, outputs: &[Option<ArtifactId>], cache: &Cache) -> Json {
    match &row.value {
        ArgVal::Value(v) => json!({"value": serde_json::to_value(v).unwrap_or(Json::Null)}),
        ArgVal::Node(n) => match outputs[*n] {
            Some(id) => {
                // Where the artifact's files are, for tools and people who want more than the
                // summary (per-example records, scores files).
                let dir = cache.artifact_path(&id);
                let at = dir.display().to_string();
                if let Some(records) = lab_ops::text::samples(&dir, SAMPLES) {
                    return json!({"step": plan.nodes[*n].name, "records": records, "dir": at});
                }
                match lab_ops::artifact::metrics_json(&dir) {
                    Some(m) => json!({"step": plan.nodes[*n].name, "metrics": m, "dir": at}),
                    None => json!({"step": plan.nodes[*n].name, "artifact": id.to_string(), "dir": at}),
                }
            }
            None => json!({"step": plan.nodes[*n].name, "missing": true}),
        },
        ArgVal::List(_) => json!({"value": "list"}),
    }
}

/// Records shown for a text dataset in a report.
const SAMPLES: usize = 8;

/// A Markdown table of text records: prompt, completion and target when they have them,
/// else their text. Line breaks show as `⏎`.
fn md_samples(label: &str, records: &[Json], out: &mut String) {
    let has = |k: &str| records.iter().any(|r| r.get(k).is_some());
    let cols: Vec<&str> = if has("prompt") && has("completion") {
        ["prompt", "completion", "target"].into_iter().filter(|c| has(c)).collect()
    } else {
        vec!["text"]
    };
    let _ = writeln!(out, "**{label}** (first {} records)\n", records.len());
    let _ = writeln!(out, "| {} |", cols.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(cols.len()));
    for r in records {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match r.get(*c).and_then(Json::as_str) {
                Some(t) => format!("`{}`", t.replace('\n', "⏎").replace('|', "\\|").replace('`', "'")),
                None => String::new(),
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

pub(crate) use lab_ops::fmt_num;

/// The cells of one row for display, with column names.
fn cells(v: &Json) -> Vec<(String, String)> {
    let Some(m) = v.get("metrics").and_then(Json::as_object) else {
        return match v.get("value") {
            Some(x) => vec![("value".into(), x.to_string())],
            None => vec![("value".into(), "—".into())],
        };
    };
    let num = |k: &str| m.get(k).and_then(Json::as_f64);
    if let (Some(mean), Some(std)) = (num("mean"), num("std")) {
        let mut out = vec![("mean ± std".to_string(), format!("{} ± {}", fmt_num(mean), fmt_num(std)))];
        if let Some(ci) = num("ci95") {
            out.push(("95% CI".into(), format!("± {}", fmt_num(ci))));
        }
        if let (Some(lo), Some(hi)) = (num("min"), num("max")) {
            out.push(("range".into(), format!("{}–{}", fmt_num(lo), fmt_num(hi))));
        }
        if let Some(n) = num("n") {
            out.push(("n".into(), fmt_num(n)));
        }
        return out;
    }
    m.iter().filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), fmt_num(x)))).collect()
}

fn md_table(caption: Option<&str>, rows: &[(String, Json)], out: &mut String) {
    if let Some(c) = caption {
        let _ = writeln!(out, "**{c}**\n");
    }
    let mut columns: Vec<String> = Vec::new();
    let rendered: Vec<(String, Vec<(String, String)>)> = rows.iter().map(|(l, v)| (l.clone(), cells(v))).collect();
    for (_, cs) in &rendered {
        for (c, _) in cs {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
    }
    let _ = writeln!(out, "| | {} |", columns.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(columns.len()));
    for (label, cs) in &rendered {
        let row: Vec<String> =
            columns.iter().map(|c| cs.iter().find(|(k, _)| k == c).map_or(String::new(), |(_, v)| v.clone())).collect();
        let _ = writeln!(out, "| {label} | {} |", row.join(" | "));
    }
    out.push('\n');
}

/// Renders every report of `plan` from a run's outputs.
pub fn render(plan: &Plan, outputs: &[Option<ArtifactId>], cache: &Cache) -> Rendered {
    let mut r = Rendered::default();
    let mut reports = Vec::new();
    for rep in &plan.reports {
        let _ = writeln!(r.markdown, "## {}\n", rep.title);
        let mut tables = Vec::new();
        for t in &rep.tables {
            let rows: Vec<(String, Json)> =
                t.rows.iter().map(|row| (row.label.clone(), row_value(plan, row, outputs, cache))).collect();
            md_table(t.caption.as_deref(), &rows, &mut r.markdown);
            for (_, (label, v)) in t.rows.iter().zip(&rows).filter(|(row, _)| row.headline) {
                r.headlines.push(Headline {
                    report: rep.title.clone(),
                    table: t.caption.clone(),
                    label: label.clone(),
                    json: v.clone(),
                });
            }
            tables.push(json!({
                "caption": t.caption,
                "rows": t.rows.iter().zip(&rows).map(|(row, (l, v))| with_label(v, l, row.headline)).collect::<Vec<_>>(),
            }));
        }
        let mut figures = Vec::new();
        let mut singles = Vec::new();
        for row in &rep.rows {
            let value = row_value(plan, row, outputs, cache);
            if row.headline {
                r.headlines.push(Headline {
                    report: rep.title.clone(),
                    table: None,
                    label: row.label.clone(),
                    json: value.clone(),
                });
            }
            let svg = match &row.value {
                ArgVal::Node(n) => outputs[*n].and_then(|id| lab_ops::artifact::figure(&cache.artifact_path(&id))),
                _ => None,
            };
            match svg {
                Some(path) => {
                    let file = format!("{}.svg", sanitize(&row.label));
                    let _ = writeln!(r.markdown, "![{}]({file})\n", row.label);
                    figures.push(json!({"label": row.label, "file": file}));
                    r.figures.push((file, path));
                }
                None => singles.push((row.label.clone(), value, row.headline)),
            }
        }
        let (texts, singles): (Vec<_>, Vec<_>) = singles.into_iter().partition(|(_, v, _)| v.get("records").is_some());
        if !singles.is_empty() {
            let rows: Vec<(String, Json)> = singles.iter().map(|(l, v, _)| (l.clone(), v.clone())).collect();
            md_table(None, &rows, &mut r.markdown);
        }
        for (label, v, _) in &texts {
            md_samples(label, v["records"].as_array().map_or(&[][..], |a| &a[..]), &mut r.markdown);
        }
        let singles: Vec<_> = singles.into_iter().chain(texts).collect();
        reports.push(json!({
            "title": rep.title,
            "tables": tables,
            "figures": figures,
            "values": singles.iter().map(|(l, v, h)| with_label(v, l, *h)).collect::<Vec<_>>(),
        }));
    }
    r.json = json!({"params": plan.params, "reports": reports});
    r
}

/// A row's JSON with its label, and `"headline": true` where it is marked so.
fn with_label(v: &Json, label: &str, headline: bool) -> Json {
    let mut v = v.clone();
    v["label"] = json!(label);
    if headline {
        v["headline"] = json!(true);
    }
    v
}

pub(crate) fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Writes `results.md`, `results.json` and the figures into `dir`.
pub fn write(dir: &Path, r: &Rendered, title: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("results.md"), format!("# {title}\n\n{}", r.markdown))?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&r.json).expect("serialisable") + "\n")?;
    for (file, src) in &r.figures {
        std::fs::copy(src, dir.join(file))?;
    }
    Ok(())
}
