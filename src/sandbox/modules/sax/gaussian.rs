//! The standard normal distribution's breakpoints for SAX symbols, and the symbol distances
//! built on them, at the precision the original module's tables have.
//!
//! A SAX alphabet of cardinality `c` cuts the normal curve into `c` equally likely intervals:
//! the breakpoints are the quantiles at `1/c, 2/c, …, (c-1)/c`. The original stores them cut
//! (not rounded) to three decimals, and the distance between two symbols — the gap between the
//! breakpoints that separate them, zero for neighbours — computed from the exact quantiles and
//! rounded to three decimals, both as single-precision floats. Those are the numbers its
//! `mindist` results are made of (a plugin's alert text quotes them), so they are reproduced
//! here from the quantiles themselves rather than from an approximation of them.

use std::sync::OnceLock;

/// The largest cardinality (alphabet size).
pub const MAX_CARDINALITY: usize = 16;
/// The smallest.
pub const MIN_CARDINALITY: usize = 2;

/// Tables for one cardinality.
pub struct Alphabet {
    /// `c - 1` ascending breakpoints.
    pub breakpoints: Vec<f64>,
    /// `c × c` symbol distances, row-major by symbol index (0 = 'A').
    distances: Vec<f64>,
    cardinality: usize,
}

impl Alphabet {
    /// The distance between symbols `a` and `b` (indices below the cardinality).
    pub fn distance(&self, a: usize, b: usize) -> f64 {
        self.distances[a * self.cardinality + b]
    }
}

/// The tables for cardinality `c` (between [`MIN_CARDINALITY`] and [`MAX_CARDINALITY`]).
pub fn alphabet(c: usize) -> &'static Alphabet {
    static TABLES: OnceLock<Vec<Alphabet>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| (MIN_CARDINALITY..=MAX_CARDINALITY).map(build).collect());
    &tables[c - MIN_CARDINALITY]
}

fn build(c: usize) -> Alphabet {
    let exact: Vec<f64> = (1..c).map(|k| quantile(k as f64 / c as f64)).collect();
    let breakpoints = exact
        .iter()
        .map(|&q| single((q * 1000.0).trunc() / 1000.0))
        .collect();
    let mut distances = vec![0.0; c * c];
    for a in 0..c {
        for b in 0..c {
            let (low, high) = (a.min(b), a.max(b));
            if high - low > 1 {
                let gap = exact[high - 1] - exact[low];
                distances[a * c + b] = single((gap * 1000.0).round() / 1000.0);
            }
        }
    }
    Alphabet {
        breakpoints,
        distances,
        cardinality: c,
    }
}

/// `x` as the original's single-precision table entry holds it.
fn single(x: f64) -> f64 {
    x as f32 as f64
}

/// The standard normal density.
fn density(x: f64) -> f64 {
    (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// The standard normal distribution function, by Marsaglia's series
/// `Φ(x) = ½ + φ(x)(x + x³/3 + x⁵/(3·5) + …)`: exact to double precision for the |x| < 3
/// the breakpoints need.
fn distribution(x: f64) -> f64 {
    let (mut term, mut sum, mut i) = (x, x, 1.0);
    while term.abs() > 1e-18 * sum.abs().max(1e-300) {
        i += 2.0;
        term *= x * x / i;
        sum += term;
    }
    0.5 + density(x) * sum
}

/// The quantile at `p` (0 < p < 1), by Newton's method on [`distribution`].
fn quantile(p: f64) -> f64 {
    let mut x = 0.0;
    for _ in 0..100 {
        let step = (distribution(x) - p) / density(x);
        x -= step;
        if step.abs() < 1e-15 {
            break;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakpoints_are_the_normal_quantiles_cut_to_three_decimals() {
        // The textbook values: the quartiles, and the sixths a cardinality of 6 uses.
        assert!((quantile(0.75) - 0.674_489_750_196_08).abs() < 1e-12);
        assert!((quantile(5.0 / 6.0) - 0.967_421_566_101_70).abs() < 1e-12);
        assert_eq!(
            alphabet(4).breakpoints,
            vec![single(-0.674), 0.0, single(0.674)]
        );
        // 0.8416 and 0.2533 are cut, not rounded.
        assert_eq!(
            alphabet(5).breakpoints,
            [-0.841, -0.253, 0.253, 0.841].map(single)
        );
        for c in MIN_CARDINALITY..=MAX_CARDINALITY {
            let b = &alphabet(c).breakpoints;
            assert_eq!(b.len(), c - 1);
            assert!(b.windows(2).all(|w| w[0] < w[1]), "ascending for {c}");
            assert!(
                b.iter().zip(b.iter().rev()).all(|(l, h)| l == &-h),
                "symmetric for {c}"
            );
        }
    }

    #[test]
    fn distances_are_the_exact_gaps_rounded_and_zero_for_neighbours() {
        let six = alphabet(6);
        assert_eq!(six.distance(0, 1), 0.0);
        assert_eq!(six.distance(3, 0), single(0.967));
        assert_eq!(six.distance(1, 3), single(0.431), "0.4307 rounds up");
        assert_eq!(six.distance(0, 5), single(1.935));
        assert_eq!(alphabet(3).distance(0, 2), single(0.861), "2 × 0.4307");
    }
}
