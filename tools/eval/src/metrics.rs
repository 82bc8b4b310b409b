//! HR@k, MRR@k and NDCG@k for next-item prediction (one relevant item per prediction).

/// Sums over predictions of the rank of the next item (1-based) when it is in the top 20.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// Ranks found (None: not in the list).
    pub ranks: Vec<Option<usize>>,
}

impl Totals {
    /// Records one prediction: the ranked list and the item that came next.
    pub fn add(&mut self, ranked: &[u32], next: u32) {
        self.ranks
            .push(ranked.iter().position(|i| *i == next).map(|p| p + 1));
    }
    fn mean(&self, f: impl Fn(usize) -> f64, k: usize) -> f64 {
        if self.ranks.is_empty() {
            return 0.0;
        }
        let s: f64 = self
            .ranks
            .iter()
            .flatten()
            .filter(|r| **r <= k)
            .map(|r| f(*r))
            .sum();
        s / self.ranks.len() as f64
    }
    /// Hit rate at k.
    pub fn hr(&self, k: usize) -> f64 {
        self.mean(|_| 1.0, k)
    }
    /// Mean reciprocal rank at k.
    pub fn mrr(&self, k: usize) -> f64 {
        self.mean(|r| 1.0 / r as f64, k)
    }
    /// NDCG at k with one relevant item: 1 / log2(rank + 1).
    pub fn ndcg(&self, k: usize) -> f64 {
        self.mean(|r| 1.0 / ((r + 1) as f64).log2(), k)
    }
}

/// A 95% percentile bootstrap interval of HR@k, resampling whole test sessions (a session's
/// predictions are not independent): `groups` holds each session's number of predictions, in the order
/// of `ranks`. With `minus`, the interval of the paired difference `HR(self) - HR(minus)` over the same
/// resampled sessions. Deterministic (`reps` resamples from a fixed seed).
pub fn bootstrap_hr(
    t: &Totals,
    minus: Option<&Totals>,
    groups: &[usize],
    k: usize,
    reps: usize,
) -> (f64, f64) {
    let hit = |t: &Totals, i: usize| f64::from(u8::from(t.ranks[i].is_some_and(|r| r <= k)));
    let mut per: Vec<(f64, usize)> = Vec::with_capacity(groups.len());
    let mut at = 0;
    for g in groups {
        let s: f64 = (at..at + g)
            .map(|i| hit(t, i) - minus.map_or(0.0, |m| hit(m, i)))
            .sum();
        per.push((s, *g));
        at += g;
    }
    // xorshift64*: no dependency for a resampler.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let n = per.len();
    let mut stats: Vec<f64> = (0..reps)
        .map(|_| {
            let (mut s, mut c) = (0.0, 0usize);
            for _ in 0..n {
                let (hs, g) = per[(next() % n as u64) as usize];
                s += hs;
                c += g;
            }
            if c == 0 {
                0.0
            } else {
                s / c as f64
            }
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let q = |p: f64| stats[((reps as f64 - 1.0) * p).round() as usize];
    (q(0.025), q(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_example() {
        let mut t = Totals::default();
        t.add(&[5, 7, 9], 5); // rank 1
        t.add(&[5, 7, 9], 9); // rank 3
        t.add(&[5, 7, 9], 4); // miss
        t.add(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 12); // rank 12
        assert!((t.hr(20) - 0.75).abs() < 1e-12);
        assert!((t.hr(10) - 0.5).abs() < 1e-12);
        assert!((t.mrr(20) - (1.0 + 1.0 / 3.0 + 1.0 / 12.0) / 4.0).abs() < 1e-12);
        assert!((t.mrr(10) - (1.0 + 1.0 / 3.0) / 4.0).abs() < 1e-12);
        // 1/log2(2) = 1, 1/log2(4) = 0.5, 1/log2(13) = 0.270238...
        assert!((t.ndcg(20) - (1.0 + 0.5 + 1.0 / 13f64.log2()) / 4.0).abs() < 1e-12);
        assert!((t.ndcg(10) - 1.5 / 4.0).abs() < 1e-12);
    }

    #[test]
    fn the_bootstrap_brackets_the_mean_and_a_method_against_itself_differs_by_nothing() {
        let mut t = Totals::default();
        // 10 sessions of 2 predictions: half the predictions hit at rank 1.
        for i in 0..20 {
            t.add(&[1, 2], if i % 2 == 0 { 1 } else { 9 });
        }
        let groups = vec![2; 10];
        let (lo, hi) = bootstrap_hr(&t, None, &groups, 20, 500);
        // Every session holds one hit of two: every resample's HR is exactly 0.5.
        assert_eq!((lo, hi), (0.5, 0.5));
        assert_eq!(bootstrap_hr(&t, Some(&t), &groups, 20, 500), (0.0, 0.0));
        let mut u = Totals::default();
        for i in 0..20 {
            u.add(&[1, 2], if i < 10 { 1 } else { 9 });
        }
        let (lo, hi) = bootstrap_hr(&u, None, &groups, 20, 500);
        assert!(lo < 0.5 && hi > 0.5 && lo >= 0.0 && hi <= 1.0, "{lo} {hi}");
        let (lo, hi) = bootstrap_hr(&u, Some(&t), &groups, 20, 500);
        assert!(lo < 0.0 && hi > 0.0, "{lo} {hi}");
    }
}
