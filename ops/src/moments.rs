//! Moments of ReLU of Gaussians, for the estimators of `estimate.*`: the mean and second
//! moment of relu(z) for z ~ N(μ, σ²) in closed form, and E[relu(a)·relu(b)] for a
//! bivariate Gaussian (a, b) by conditioning on a — the inner expectation is closed form,
//! the outer one a Gauss–Legendre integral over the half-line where a > 0.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// Standard normal density.
pub fn pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// Standard normal distribution function.
pub fn cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * FRAC_1_SQRT_2)
}

/// E[relu(z)] and E[relu(z)²] for z ~ N(mu, var).
pub fn relu_moments(mu: f64, var: f64) -> (f64, f64) {
    if var <= 0.0 {
        let r = mu.max(0.0);
        return (r, r * r);
    }
    let s = var.sqrt();
    let (p, c) = (pdf(mu / s), cdf(mu / s));
    (mu * c + s * p, (mu * mu + var) * c + mu * s * p)
}

/// Nodes and weights of `n`-point Gauss–Legendre quadrature on [−1, 1] (Newton's method on
/// the Legendre polynomial).
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let mut x = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
            let mut dp = 1.0;
            for _ in 0..100 {
                let (mut p0, mut p1) = (1.0, x);
                for k in 2..=n {
                    let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                    p0 = p1;
                    p1 = p2;
                }
                let pn = if n == 0 { 1.0 } else { p1 };
                let pm = if n == 1 { 1.0 } else { p0 };
                dp = n as f64 * (x * pn - pm) / (x * x - 1.0);
                let dx = pn / dp;
                x -= dx;
                if dx.abs() < 1e-15 {
                    break;
                }
            }
            (x, 2.0 / ((1.0 - x * x) * dp * dp))
        })
        .collect()
}

/// E[relu(a)·relu(b)] for (a, b) Gaussian with means `ma`, `mb`, variances `va`, `vb` and
/// covariance `cab`. With u ~ N(0, 1), a = ma + sa·u and b | u ~ N(mb + cab/sa·u,
/// vb − cab²/va); the integrand is zero where a < 0.
pub fn relu_cross_moment(ma: f64, mb: f64, va: f64, vb: f64, cab: f64, rule: &[(f64, f64)]) -> f64 {
    if va <= 0.0 {
        return ma.max(0.0) * relu_moments(mb, vb).0;
    }
    let sa = va.sqrt();
    let (slope, resid) = (cab / sa, (vb - cab * cab / va).max(0.0));
    // a > 0 ⇔ u > −ma/sa; the Gaussian weight is negligible past 9.
    let lo = (-ma / sa).max(-9.0);
    let hi = 9.0f64;
    if lo >= hi {
        return 0.0;
    }
    let (mid, half) = ((lo + hi) / 2.0, (hi - lo) / 2.0);
    rule.iter()
        .map(|&(t, w)| {
            let u = mid + half * t;
            let a = ma + sa * u;
            w * half * pdf(u) * a * relu_moments(mb + slope * u, resid).0
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn quadrature_integrates_polynomials_exactly() {
        let rule = gauss_legendre(16);
        let sum: f64 = rule.iter().map(|&(_, w)| w).sum();
        assert!((sum - 2.0).abs() < 1e-13);
        let x6: f64 = rule.iter().map(|&(x, w)| w * x.powi(6)).sum();
        assert!((x6 - 2.0 / 7.0).abs() < 1e-13);
    }

    /// Every rule against a million samples.
    #[test]
    fn moments_match_sampling() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n = 1_000_000;
        let rule = gauss_legendre(64);
        for &(ma, mb, va, vb, rho) in
            &[(0.3, -0.5, 1.0, 2.0, 0.6), (-1.0, 0.2, 0.5, 0.3, -0.4), (0.0, 0.0, 1.0, 1.0, 0.99)]
        {
            let (sa, sb) = (f64::sqrt(va), f64::sqrt(vb));
            let (mut s1, mut s2, mut sab) = (0.0, 0.0, 0.0);
            for _ in 0..n {
                let u: f64 = StandardNormal.sample(&mut rng);
                let w: f64 = StandardNormal.sample(&mut rng);
                let a = ma + sa * u;
                let b = mb + sb * (rho * u + (1.0 - rho * rho).sqrt() * w);
                s1 += a.max(0.0);
                s2 += a.max(0.0).powi(2);
                sab += a.max(0.0) * b.max(0.0);
            }
            let (e1, e2) = relu_moments(ma, va);
            let cross = relu_cross_moment(ma, mb, va, vb, rho * sa * sb, &rule);
            // Standard errors of these means are below 2e-3.
            assert!((s1 / n as f64 - e1).abs() < 5e-3, "mean {} vs {e1}", s1 / n as f64);
            assert!((s2 / n as f64 - e2).abs() < 1e-2, "second moment {} vs {e2}", s2 / n as f64);
            assert!((sab / n as f64 - cross).abs() < 1e-2, "cross moment {} vs {cross}", sab / n as f64);
        }
    }
}
