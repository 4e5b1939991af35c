//! `Curve` artifacts: a table of numbers, one row per point and one named column per
//! quantity (e.g. `n`, `kl`, `d`, `gold`, `proxy`). Written as `curve.csv` (for
//! spreadsheets, pandas, R) and `curve.json`, plus `metrics.json` with a summary so that
//! a curve in a report table shows something useful.

use crate::OpError;
use crate::artifact::{self, Metrics};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

const FILE: &str = "curve.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

impl Curve {
    pub fn new(columns: &[&str]) -> Curve {
        Curve { columns: columns.iter().map(|c| c.to_string()).collect(), rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<f64>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The values of column `name`; an unknown name is an error that lists the columns.
    pub fn column(&self, name: &str, arg: &str) -> Result<Vec<f64>, OpError> {
        let i = self.columns.iter().position(|c| c == name).ok_or_else(|| {
            OpError::invalid(arg, format!("names column `{name}`, but the curve has: {}", self.columns.join(", ")))
        })?;
        Ok(self.rows.iter().map(|r| r[i]).collect())
    }

    pub fn write(&self, dir: &Path, summary: &Metrics) -> Result<(), OpError> {
        let mut csv = self.columns.join(",");
        csv.push('\n');
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|v| v.to_string()).collect();
            let _ = writeln!(csv, "{}", cells.join(","));
        }
        std::fs::write(dir.join("curve.csv"), csv)?;
        let json = serde_json::to_string(self).map_err(|e| OpError::internal(e.to_string()))?;
        std::fs::write(dir.join(FILE), json)?;
        artifact::write_metrics(dir, summary)
    }

    pub fn read(dir: &Path) -> Result<Curve, OpError> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| OpError::Data(format!("{}: {e}", path.display())))?;
        let c: Curve = serde_json::from_str(&text)
            .map_err(|e| OpError::Data(format!("{} is not a valid curve: {e}", path.display())))?;
        if let Some(r) = c.rows.iter().find(|r| r.len() != c.columns.len()) {
            return Err(OpError::Data(format!(
                "{}: a row has {} values for {} columns",
                path.display(),
                r.len(),
                c.columns.len()
            )));
        }
        Ok(c)
    }
}

/// The point-by-point mean of curves with the same columns, over as many rows as the
/// shortest has (curves of several seeds, each on the same grid).
pub fn mean(curves: &[Curve], arg: &str) -> Result<Curve, OpError> {
    let first = curves.first().ok_or_else(|| OpError::invalid(arg, "is empty; give at least one curve"))?;
    if let Some(c) = curves.iter().find(|c| c.columns != first.columns) {
        return Err(OpError::invalid(
            arg,
            format!("mixes curves with columns ({}) and ({})", first.columns.join(", "), c.columns.join(", ")),
        ));
    }
    let rows = curves.iter().map(|c| c.rows.len()).min().unwrap_or(0);
    let mut out = Curve { columns: first.columns.clone(), rows: Vec::with_capacity(rows) };
    for i in 0..rows {
        let row = (0..first.columns.len())
            .map(|j| curves.iter().map(|c| c.rows[i][j]).sum::<f64>() / curves.len() as f64)
            .collect();
        out.rows.push(row);
    }
    Ok(out)
}

/// Reads the curves of a list argument.
pub fn read_all<P: AsRef<std::path::Path>>(dirs: &[P]) -> Result<Vec<Curve>, OpError> {
    dirs.iter().map(|d| Curve::read(d.as_ref())).collect()
}
