//! Monitors over activations, shared by the detectors that read a model's insides: a
//! Gaussian fitted to activations on clean data, scoring new activations by their squared
//! Mahalanobis distance.

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};

/// A Gaussian fitted to rows of activations.
pub struct Gaussian {
    mean: DVector<f64>,
    chol: Cholesky<f64, Dyn>,
}

impl Gaussian {
    /// Mean and covariance of `rows` (row-major, `width` each), the covariance's diagonal
    /// raised by `ridge` × its mean (at least 1e-9) so that constant units (dead ReLUs)
    /// keep it invertible. Needs two rows or more.
    pub fn fit(rows: &[f32], width: usize, ridge: f64) -> Result<Gaussian, String> {
        let n = rows.len() / width.max(1);
        if n < 2 || width == 0 {
            return Err(format!("a Gaussian needs at least 2 rows of activations, not {n}"));
        }
        let x = DMatrix::from_row_iterator(n, width, rows.iter().map(|&v| v as f64));
        let mean = DVector::from_iterator(width, x.column_iter().map(|c| c.mean()));
        let centred = DMatrix::from_fn(n, width, |r, c| x[(r, c)] - mean[c]);
        let mut cov = centred.transpose() * &centred / (n - 1) as f64;
        let scale = (cov.trace() / width as f64).max(0.0);
        let lift = (ridge * scale).max(1e-9);
        for i in 0..width {
            cov[(i, i)] += lift;
        }
        if !cov.iter().all(|v| v.is_finite()) {
            return Err("the activations are not finite".into());
        }
        let chol = Cholesky::new(cov).ok_or("the covariance of the activations is not positive definite")?;
        Ok(Gaussian { mean, chol })
    }

    /// (h − μ)ᵀ Σ⁻¹ (h − μ).
    pub fn distance2(&self, h: &[f32]) -> f64 {
        let d = DVector::from_iterator(h.len(), h.iter().zip(self.mean.iter()).map(|(&v, m)| v as f64 - m));
        let z = self.chol.solve(&d);
        d.dot(&z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mahalanobis_matches_a_hand_computation() {
        // Columns: mean (1, 0); sample variances 8/3 and 2/3, uncorrelated.
        let rows = [3.0f32, 0.0, -1.0, 0.0, 1.0, 1.0, 1.0, -1.0];
        let g = Gaussian::fit(&rows, 2, 0.0).unwrap();
        let d = g.distance2(&[2.0, 1.0]);
        let hand = 1.0 / (8.0 / 3.0) + 1.0 / (2.0 / 3.0);
        assert!((d - hand).abs() < 1e-6, "{d} vs {hand}");
        // A constant column is lifted by the ridge, not a failure.
        let flat = [1.0f32, 5.0, 2.0, 5.0, 3.0, 5.0];
        assert!(Gaussian::fit(&flat, 2, 1e-3).unwrap().distance2(&[2.0, 6.0]) > 100.0);
        assert!(Gaussian::fit(&[1.0, 2.0], 2, 0.0).is_err());
    }
}
