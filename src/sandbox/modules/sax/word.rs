//! SAX words and the sliding window that keeps one current (Lin, Keogh et al.; iSAX 2.0).
//!
//! A series of `n` values becomes a word of `w` symbols: the values are z-normalised (a series
//! whose standard deviation is under 0.01 counts as flat, every frame at 0), averaged over `w`
//! equal frames, and each average named by the interval of the normal curve it falls in —
//! 'A' the lowest of `c`. NaN values are left out of their frame; a frame of nothing but NaN
//! (or of +∞ and −∞ together) is `#`. Infinite values count in their frame's average (so
//! the frame is at an end of the alphabet) but not in the mean and deviation.

use super::gaussian::{Alphabet, alphabet};

/// How far a series must vary to be more than flat.
const FLAT: f64 = 1e-2;

/// A word: one symbol index per frame (`c` for `#`).
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    pub symbols: Vec<u8>,
    /// The length of the series it stands for (0: unknown, a word made from text).
    pub n: usize,
    pub c: usize,
}

impl Word {
    /// The word of `series` in `w` frames (`w` divides the series' length).
    pub fn from_series(series: &[f64], w: usize, c: usize) -> Word {
        let (mean, sd) = mean_and_deviation(series);
        Word {
            symbols: transform(series, w, alphabet(c), mean, sd),
            n: series.len(),
            c,
        }
    }

    /// The word spelt `text` ('A'.. and '#'), or `None` when a symbol is outside the
    /// alphabet.
    pub fn from_text(text: &[u8], c: usize) -> Option<Word> {
        let symbols = text
            .iter()
            .map(|&b| match b {
                b'#' => Some(c as u8),
                b'A'..=b'Z' if ((b - b'A') as usize) < c => Some(b - b'A'),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()?;
        Some(Word { symbols, n: 0, c })
    }

    pub fn text(&self) -> String {
        self.symbols
            .iter()
            .map(|&s| {
                if s as usize == self.c {
                    '#'
                } else {
                    (b'A' + s) as char
                }
            })
            .collect()
    }

    /// Equal as the original compares: the same symbols of the same alphabet.
    pub fn same(&self, other: &Word) -> bool {
        self.c == other.c && self.symbols == other.symbols
    }
}

/// The lower bound on the Euclidean distance between the series two words stand for, and
/// its parts where `a` is above and below `b`; `None` for words of different shapes.
///
/// A `#` frame against a symbol counts as the symbol's farthest one (the lower end when both
/// ends are as far), so a missing stretch is as unlike anything as it can be.
pub fn mindist(a: &Word, b: &Word) -> Option<(f64, f64, f64)> {
    if a.c != b.c || a.symbols.len() != b.symbols.len() || (a.n != b.n && a.n != 0 && b.n != 0) {
        return None;
    }
    let (c, w) = (a.c, a.symbols.len());
    let n = match a.n.max(b.n) {
        0 => w,
        n => n,
    };
    let table = alphabet(c);
    let farthest = |s: usize| if s < c - 1 - s { c - 1 } else { 0 };
    let (mut above, mut below) = (0.0, 0.0);
    for (&sa, &sb) in a.symbols.iter().zip(&b.symbols) {
        let (mut sa, mut sb) = (sa as usize, sb as usize);
        if sa == sb {
            continue;
        }
        if sa == c {
            sa = farthest(sb);
        } else if sb == c {
            sb = farthest(sa);
        }
        let d = table.distance(sa, sb);
        if sa > sb {
            above += d * d;
        } else {
            below += d * d;
        }
    }
    let compression = (n as f64 / w as f64).sqrt();
    Some((
        compression * (above + below).sqrt(),
        compression * above.sqrt(),
        compression * below.sqrt(),
    ))
}

/// The last `n` values added (NaN where none yet) and their current word.
pub struct Window {
    /// A ring: `head` is the oldest value.
    values: Vec<f64>,
    head: usize,
    pub word: Word,
}

impl Window {
    pub fn new(n: usize, w: usize, c: usize) -> Window {
        Window {
            values: vec![f64::NAN; n],
            head: 0,
            word: Word {
                symbols: vec![c as u8; w],
                n,
                c,
            },
        }
    }

    /// The number of values it keeps.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Adds `values` in order (only the last `n` can matter), then renews the word.
    pub fn add(&mut self, values: &[f64]) {
        let n = self.values.len();
        for &v in &values[values.len().saturating_sub(n)..] {
            self.values[self.head] = v;
            self.head = (self.head + 1) % n;
        }
        self.values.rotate_left(self.head);
        self.head = 0;
        let (mean, sd) = mean_and_deviation(&self.values);
        let w = self.word.symbols.len();
        self.word.symbols = transform(&self.values, w, alphabet(self.word.c), mean, sd);
    }

    pub fn clear(&mut self) {
        self.values.fill(f64::NAN);
        self.head = 0;
        self.word.symbols.fill(self.word.c as u8);
    }

    /// The values, oldest first.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

/// The mean and population standard deviation of the finite values (0, 0 without any).
fn mean_and_deviation(series: &[f64]) -> (f64, f64) {
    let (mut count, mut mean, mut squares) = (0.0, 0.0, 0.0);
    for &v in series.iter().filter(|v| v.is_finite()) {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        squares += delta * (v - mean);
    }
    if count == 0.0 {
        (0.0, 0.0)
    } else {
        (mean, (squares / count).sqrt())
    }
}

fn transform(series: &[f64], w: usize, alphabet: &Alphabet, mean: f64, sd: f64) -> Vec<u8> {
    let c = alphabet.breakpoints.len() + 1;
    series
        .chunks(series.len() / w)
        .map(|frame| {
            let kept = frame.iter().filter(|v| !v.is_nan()).count();
            let sum: f64 = frame.iter().filter(|v| !v.is_nan()).sum();
            if kept == 0 || sum.is_nan() {
                return c as u8;
            }
            let level = if !sum.is_finite() {
                sum
            } else if sd < FLAT {
                0.0
            } else {
                (sum - kept as f64 * mean) / (kept as f64 * sd)
            };
            alphabet
                .breakpoints
                .iter()
                .position(|&b| level < b)
                .unwrap_or(c - 1) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_becomes_a_word() {
        // Highest, lowest, just above and just below the mean.
        let series = [
            5.0, 6.0, 7.0, -5.0, -6.0, -7.0, 0.25, 0.17, 0.04, -0.04, -0.17, -0.25,
        ];
        assert_eq!(Word::from_series(&series, 4, 8).text(), "HAED");
        // A flat series is in the middle at every cardinality.
        let flat = [8.0, 8.01, 7.99, 8.0, 8.0, 8.01];
        assert_eq!(Word::from_series(&flat, 3, 6).text(), "DDD");
        assert_eq!(Word::from_series(&flat, 2, 5).text(), "CC");
        // NaN frames are '#'; NaN elsewhere is left out; infinities go to the ends.
        let inf = f64::INFINITY;
        let odd = [
            f64::NAN,
            f64::NAN,
            inf,
            -inf,
            inf,
            1.0,
            -inf,
            -1.0,
            f64::NAN,
            -5.0,
            5.0,
            f64::NAN,
        ];
        assert_eq!(Word::from_series(&odd, 6, 8).text(), "##HAAH");
    }

    #[test]
    fn the_originals_worked_example() {
        let a = Word::from_series(&[10.3, 7.0, 1.0, -5.0, -5.0, 7.2], 2, 8);
        assert_eq!(a.text(), "FC");
        assert!(a.same(&Word::from_text(b"FC", 8).unwrap()));
        let mut b = Window::new(6, 2, 8);
        for v in [-9.0, -8.0, -7.0, -5.0, -5.0, 7.2] {
            b.add(&[v]);
        }
        let (d, above, below) = mindist(&a, &b.word).unwrap();
        assert!((d - 1.560325).abs() < 1e-6, "{d}");
        assert!((above - 1.103316).abs() < 1e-6, "{above}");
        assert!((below - 1.103316).abs() < 1e-6, "{below}");
    }

    #[test]
    fn a_window_slides_and_clears() {
        let mut window = Window::new(4, 2, 4);
        assert_eq!(window.word.text(), "##");
        window.add(&[1.0, 2.0, 3.0, 10.1]);
        assert_eq!(window.word.text(), "AD");
        window.add(&[-10.0, 1.0, 2.0, 3.0, 10.1]);
        assert_eq!(window.word.text(), "AD", "only the last n values count");
        window.add(&[1.5; 4]);
        assert_eq!(window.word.text(), "CC");
        window.clear();
        assert_eq!(window.word.text(), "##");
        assert!(window.values().iter().all(|v| v.is_nan()));
    }

    #[test]
    fn a_missing_frame_is_as_far_as_can_be() {
        let d = |a: &str, b: &str| {
            let a = Word::from_text(a.as_bytes(), 5).unwrap();
            let b = Word::from_text(b.as_bytes(), 5).unwrap();
            mindist(&a, &b).unwrap().0
        };
        assert_eq!(d("A", "#"), d("A", "E"));
        assert_eq!(d("E", "#"), d("E", "A"));
        assert_eq!(d("C", "#"), d("C", "A"));
        assert_eq!(d("#", "#"), 0.0);
        let two = Word::from_text(b"AB", 5).unwrap();
        let three = Word::from_text(b"ABC", 5).unwrap();
        assert!(mindist(&two, &three).is_none());
    }
}
