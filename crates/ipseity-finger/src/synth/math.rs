//! Transcendental functions built from `+ - * /` only, so that generated fingerprints are the
//! same bytes on every platform: the system `libm` may round `sin`, `exp` or `atan2`
//! differently from one machine to another, and one flipped threshold changes a ridge.

use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, LN_2, LOG2_E, PI};

// π/2 split in two (the rounded double and the rest) so that range reduction of moderate
// arguments keeps its precision.
const PI_2_HI: f64 = FRAC_PI_2;
const PI_2_LO: f64 = 6.123_233_995_736_766e-17;

/// `(sin x, cos x)`, accurate to about 1e-13 for |x| up to a few thousand.
pub(crate) fn sin_cos(x: f64) -> (f64, f64) {
    let q = (x * (2.0 / PI)).round();
    let r = (x - q * PI_2_HI) - q * PI_2_LO;
    let r2 = r * r;
    let s = r
        * (1.0
            + r2 * (-1.0 / 6.0
                + r2 * (1.0 / 120.0
                    + r2 * (-1.0 / 5040.0
                        + r2 * (1.0 / 362_880.0
                            + r2 * (-1.0 / 39_916_800.0 + r2 / 6_227_020_800.0))))));
    let c = 1.0
        + r2 * (-0.5
            + r2 * (1.0 / 24.0
                + r2 * (-1.0 / 720.0
                    + r2 * (1.0 / 40_320.0 + r2 * (-1.0 / 3_628_800.0 + r2 / 479_001_600.0)))));
    match (q as i64).rem_euclid(4) {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// `e^x`, with the argument clamped to ±700 so the result stays finite and normal.
pub(crate) fn exp(x: f64) -> f64 {
    let x = x.clamp(-700.0, 700.0);
    let k = (x * LOG2_E).round();
    let r = x - k * LN_2;
    let mut sum = 1.0;
    let mut term = 1.0;
    for i in 1..=13 {
        term *= r * INV[i];
        sum += term;
    }
    // k is within ±1010 after the clamp, so the biased exponent is a normal one.
    let bits = ((k as i64 + 1023).clamp(1, 2046) as u64) << 52;
    sum * f64::from_bits(bits)
}

const INV: [f64; 30] = {
    let mut t = [0.0; 30];
    let mut i = 1;
    while i < 30 {
        t[i] = 1.0 / i as f64;
        i += 1;
    }
    t
};

/// `atan2(y, x)` in `(-π, π]`, accurate to about 1e-12; `(0, 0)` gives 0.
pub(crate) fn atan2(y: f64, x: f64) -> f64 {
    let (ax, ay) = (x.abs(), y.abs());
    if ax == 0.0 && ay == 0.0 {
        return 0.0;
    }
    let (t, swap) = if ay <= ax {
        (ay / ax, false)
    } else {
        (ax / ay, true)
    };
    let (base, u) = if t > 0.414_213_562_373_095 {
        (FRAC_PI_4, (t - 1.0) / (t + 1.0))
    } else {
        (0.0, t)
    };
    let u2 = u * u;
    let mut term = u;
    let mut sum = u;
    for n in 1..=14 {
        term *= -u2;
        sum += term * INV[2 * n + 1];
    }
    let a = base + sum;
    let mut r = if swap { FRAC_PI_2 - a } else { a };
    if x < 0.0 {
        r = PI - r;
    }
    if y < 0.0 {
        -r
    } else {
        r
    }
}

/// A coarse `atan2` (error below 2e-3 rad) for quantising orientations pixel by pixel.
pub(crate) fn atan2_fast(y: f32, x: f32) -> f32 {
    use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, PI};
    let (ax, ay) = (x.abs(), y.abs());
    let m = ax.max(ay);
    if m == 0.0 {
        return 0.0;
    }
    let t = ax.min(ay) / m;
    let mut r = FRAC_PI_4 * t - t * (t - 1.0) * (0.2447 + 0.0663 * t);
    if ay > ax {
        r = FRAC_PI_2 - r;
    }
    if x < 0.0 {
        r = PI - r;
    }
    if y < 0.0 {
        -r
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_std() {
        let mut x = -20.0f64;
        while x < 20.0 {
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 1e-12, "sin {x}");
            assert!((c - x.cos()).abs() < 1e-12, "cos {x}");
            let e = exp(x);
            assert!(((e - x.exp()) / x.exp()).abs() < 1e-12, "exp {x}");
            for y in [-3.0, -0.5, 0.0, 0.7, 5.0] {
                assert!((atan2(y, x) - y.atan2(x)).abs() < 1e-11, "atan2 {y} {x}");
                let f = atan2_fast(y as f32, x as f32);
                assert!(
                    (f64::from(f) - y.atan2(x)).abs() < 2e-3,
                    "atan2_fast {y} {x}"
                );
            }
            x += 0.173;
        }
        assert_eq!(atan2(0.0, 0.0), 0.0);
        assert!(exp(-1e9) >= 0.0 && exp(1e9).is_finite());
    }
}
