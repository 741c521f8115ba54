//! The standard normal truncated to `[a, b]`, computed in log space so that kernels far in a
//! tail stay finite: Optuna's `samplers/_tpe/_truncnorm.py` (itself a port of SciPy's
//! `truncnorm`): `log_ndtr`, `log_gauss_mass`, `ndtri_exp`, `ppf`, `logpdf`. The inverse
//! normal CDF is Wichura's AS 241 (PPND16) fed with `ln p`, polished by one Newton step.

use statrs::function::erf::erfc;
use std::f64::consts::{FRAC_1_SQRT_2, LN_2};

/// `ln(2π) / 2`.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Φ(x).
pub fn ndtr(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// ln Φ(x), accurate in both tails.
pub fn log_ndtr(x: f64) -> f64 {
    if x > 6.0 {
        (-0.5 * erfc(x * FRAC_1_SQRT_2)).ln_1p()
    } else if x > -20.0 {
        (0.5 * erfc(-x * FRAC_1_SQRT_2)).ln()
    } else {
        // Asymptotic series of Mills' ratio: Φ(x) ≈ φ(x)/(-x) · (1 - 1/x² + 3/x⁴ - 15/x⁶ + 105/x⁸).
        let z = 1.0 / (x * x);
        let series = 1.0 - z * (1.0 - z * (3.0 - z * (15.0 - z * 105.0)));
        -0.5 * x * x - (-x).ln() - LN_SQRT_2PI + series.ln()
    }
}

/// ln(exp(a) - exp(b)) for a ≥ b.
fn log_diff(log_p: f64, log_q: f64) -> f64 {
    log_p + (-(log_q - log_p).exp()).ln_1p()
}

/// ln(exp(a) + exp(b)).
fn log_sum(a: f64, b: f64) -> f64 {
    let max = a.max(b);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + ((a - max).exp() + (b - max).exp()).ln()
}

/// ln(Φ(b) − Φ(a)), working in the left tail where Φ is accurate (Optuna's
/// `_log_gauss_mass`).
pub fn log_gauss_mass(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        log_diff(log_ndtr(b), log_ndtr(a))
    } else if a > 0.0 {
        log_diff(log_ndtr(-a), log_ndtr(-b))
    } else {
        // Central case: 1 − Φ(a) − Φ(−b), without cancellation as the mass approaches 1.
        (-ndtr(a) - ndtr(-b)).ln_1p()
    }
}

/// ln φ(x).
fn log_pdf_standard(x: f64) -> f64 {
    -0.5 * x * x - LN_SQRT_2PI
}

/// Φ⁻¹(p) for p < 0.5 given `ln p` (so tiny p stay representable): AS 241.
fn ndtri_lower(p: f64, log_p: f64) -> f64 {
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q
            * (((((((2_509.080_928_730_122_7 * r + 33_430.575_583_588_13) * r
                + 67_265.770_927_008_7)
                * r
                + 45_921.953_931_549_87)
                * r
                + 13_731.693_765_509_46)
                * r
                + 1_971.590_950_306_551_3)
                * r
                + 133.141_667_891_784_38)
                * r
                + 3.387_132_872_796_366_5)
            / (((((((5_226.495_278_852_545 * r + 28_729.085_735_721_943) * r
                + 39_307.895_800_092_71)
                * r
                + 21_213.794_301_586_597)
                * r
                + 5_394.196_021_424_751)
                * r
                + 687.187_007_492_057_9)
                * r
                + 42.313_330_701_600_91)
                * r
                + 1.0);
    }
    let mut r = (-log_p).sqrt();
    let x = if r <= 5.0 {
        r -= 1.6;
        (((((((7.745_450_142_783_414e-4 * r + 2.272_384_498_926_918_4e-2) * r
            + 2.417_807_251_774_506e-1)
            * r
            + 1.270_458_252_452_368_4)
            * r
            + 3.647_848_324_763_204_5)
            * r
            + 5.769_497_221_460_691)
            * r
            + 4.630_337_846_156_546)
            * r
            + 1.423_437_110_749_683_5)
            / (((((((1.050_750_071_644_416_8e-9 * r + 5.475_938_084_995_345e-4) * r
                + 1.519_866_656_361_645_7e-2)
                * r
                + 1.481_039_764_274_800_8e-1)
                * r
                + 6.897_673_349_851e-1)
                * r
                + 1.676_384_830_183_803_8)
                * r
                + 2.053_191_626_637_759)
                * r
                + 1.0)
    } else {
        r -= 5.0;
        (((((((2.010_334_399_292_288_1e-7 * r + 2.711_555_568_743_487_6e-5) * r
            + 1.242_660_947_388_078_4e-3)
            * r
            + 2.653_218_952_657_612_4e-2)
            * r
            + 2.965_605_718_285_048_7e-1)
            * r
            + 1.784_826_539_917_291_3)
            * r
            + 5.463_784_911_164_114)
            * r
            + 6.657_904_643_501_103)
            / (((((((2.044_263_103_389_939_7e-15 * r + 1.421_511_758_316_446e-7) * r
                + 1.846_318_317_510_054_8e-5)
                * r
                + 7.868_691_311_456_133e-4)
                * r
                + 1.487_536_129_085_061_5e-2)
                * r
                + 1.369_298_809_227_358e-1)
                * r
                + 5.998_322_065_558_879e-1)
                * r
                + 1.0)
    };
    -x
}

/// The x with ln Φ(x) = `y` (y ≤ 0), Optuna's `_ndtri_exp`.
pub fn ndtri_exp(y: f64) -> f64 {
    if y >= 0.0 {
        return f64::INFINITY;
    }
    if y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let mut x = if y < -LN_2 {
        ndtri_lower(y.exp(), y)
    } else {
        // p ≥ 0.5: use the upper tail q = 1 − p.
        let q = -y.exp_m1();
        -ndtri_lower(q, q.ln())
    };
    // One Newton step on ln Φ(x) − y: d/dx ln Φ(x) = φ(x) / Φ(x).
    if x.is_finite() {
        let log_phi = log_ndtr(x);
        let slope = (log_pdf_standard(x) - log_phi).exp();
        if slope.is_finite() && slope > 0.0 {
            x -= (log_phi - y) / slope;
        }
    }
    x
}

/// The `q`-quantile of the standard normal truncated to `[a, b]` (Optuna's `ppf`).
pub fn ppf(q: f64, a: f64, b: f64) -> f64 {
    if q <= 0.0 {
        return a;
    }
    if q >= 1.0 {
        return b;
    }
    let x = if a < 0.0 {
        ndtri_exp(log_sum(log_ndtr(a), q.ln() + log_gauss_mass(a, b)))
    } else {
        -ndtri_exp(log_sum(log_ndtr(-b), (-q).ln_1p() + log_gauss_mass(a, b)))
    };
    x.clamp(a, b)
}

/// Log density of the standard normal truncated to `[a, b]` at `x`.
pub fn logpdf(x: f64, a: f64, b: f64) -> f64 {
    if x < a || x > b {
        return f64::NEG_INFINITY;
    }
    log_pdf_standard(x) - log_gauss_mass(a, b)
}

/// `ln(2π)/2`, for the kernels' normalising constants.
pub const HALF_LN_2PI: f64 = LN_SQRT_2PI;

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::{ContinuousCDF, Normal};

    #[test]
    fn inverse_cdf_matches_statrs_and_inverts_log_ndtr_far_in_the_tails() {
        let normal = Normal::standard();
        for p in [
            1e-300,
            1e-50,
            1e-10,
            1e-4,
            0.02,
            0.3,
            0.5,
            0.7,
            0.975,
            0.9999,
            1.0 - 1e-12,
        ] {
            let x = ndtri_exp(f64::ln(p));
            let expected = normal.inverse_cdf(p);
            assert!(
                (x - expected).abs() < 1e-9 * expected.abs().max(1.0),
                "p = {p}: {x} vs {expected}"
            );
        }
        for y in [-5000.0, -800.0, -100.0] {
            let x = ndtri_exp(y);
            assert!((log_ndtr(x) - y).abs() < 1e-9 * y.abs(), "y = {y}: x = {x}");
        }
        assert!((log_ndtr(-30.0) - normal.cdf(-30.0).ln()).abs() < 1e-9);
        assert!((log_ndtr(-10.0) - normal.cdf(-10.0).ln()).abs() < 1e-12);
        assert!((log_ndtr(3.0) - normal.cdf(3.0).ln()).abs() < 1e-15);
    }

    #[test]
    fn truncated_quantiles_and_masses_are_consistent() {
        let normal = Normal::standard();
        for (a, b) in [
            (-1.0, 2.0),
            (-40.0, -38.0),
            (5.0, 60.0),
            (0.0, 0.5),
            (-3.0, 0.0),
        ] {
            let mass = log_gauss_mass(a, b).exp();
            if a > -8.0 && b < 8.0 {
                assert!((mass - (normal.cdf(b) - normal.cdf(a))).abs() < 1e-12);
            }
            for q in [0.001, 0.25, 0.5, 0.9, 0.999] {
                let x = ppf(q, a, b);
                assert!(x >= a && x <= b, "[{a}, {b}] q = {q}: {x}");
                // The mass below x is q of the interval's mass.
                let below = log_gauss_mass(a, x) - log_gauss_mass(a, b);
                assert!(
                    (below.exp() - q).abs() < 1e-7,
                    "[{a}, {b}] q = {q}: {}",
                    below.exp()
                );
            }
        }
        // The density integrates to one over [a, b].
        let (a, b) = (-0.7, 2.2);
        let n = 20_000;
        let h = (b - a) / n as f64;
        let integral: f64 = (0..n)
            .map(|i| logpdf(a + (i as f64 + 0.5) * h, a, b).exp() * h)
            .sum();
        assert!((integral - 1.0).abs() < 1e-6);
    }
}
