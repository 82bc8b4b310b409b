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
}
