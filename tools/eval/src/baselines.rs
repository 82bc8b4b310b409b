//! The field's baselines for session-based next-item prediction, written from their published
//! descriptions (session-rec, Ludewig & Jannach 2018): POP, S-POP, ItemKNN and V-SKNN.

use std::collections::{HashMap, HashSet};

use crate::{Ev, Model, Session};

fn counts(train: &[Session]) -> HashMap<u32, f64> {
    let mut c = HashMap::new();
    for s in train {
        for e in &s.events {
            *c.entry(e.item).or_insert(0.0) += 1.0;
        }
    }
    c
}

fn top(scores: HashMap<u32, f64>, k: usize) -> Vec<u32> {
    let mut v: Vec<(u32, f64)> = scores.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(k);
    v.into_iter().map(|(i, _)| i).collect()
}

/// Most popular products in training.
pub struct Pop {
    ranked: Vec<u32>,
    pop: HashMap<u32, f64>,
}

impl Pop {
    pub fn fit(train: &[Session]) -> Self {
        let pop = counts(train);
        Self {
            ranked: top(pop.clone(), 100),
            pop,
        }
    }
}

impl Model for Pop {
    fn name(&self) -> String {
        "POP".into()
    }
    fn rank(&mut self, _: &[Ev], k: usize) -> Vec<u32> {
        self.ranked.iter().take(k).copied().collect()
    }
}

/// Most frequent in the session so far, ties and the rest by popularity.
pub struct SPop(Pop);

impl SPop {
    pub fn fit(train: &[Session]) -> Self {
        Self(Pop::fit(train))
    }
}

impl Model for SPop {
    fn name(&self) -> String {
        "S-POP".into()
    }
    fn rank(&mut self, prefix: &[Ev], k: usize) -> Vec<u32> {
        let max = self.0.pop.values().fold(1.0, |a: f64, b| a.max(*b));
        let mut s: HashMap<u32, f64> = HashMap::new();
        for e in prefix {
            *s.entry(e.item).or_insert(0.0) += 1.0;
        }
        for v in s.iter_mut() {
            *v.1 += self.0.pop.get(v.0).copied().unwrap_or(0.0) / (max + 1.0);
        }
        let mut out = top(s, k);
        for i in &self.0.ranked {
            if out.len() >= k {
                break;
            }
            if !out.contains(i) {
                out.push(*i);
            }
        }
        out
    }
}

/// Co-occurrence with the last product in training sessions, cosine-normalised.
pub struct ItemKnn {
    co: HashMap<u32, HashMap<u32, f64>>,
    pop: HashMap<u32, f64>,
}

impl ItemKnn {
    pub fn fit(train: &[Session]) -> Self {
        let mut co: HashMap<u32, HashMap<u32, f64>> = HashMap::new();
        let mut pop: HashMap<u32, f64> = HashMap::new();
        for s in train {
            let set: HashSet<u32> = s.events.iter().map(|e| e.item).collect();
            for a in &set {
                *pop.entry(*a).or_insert(0.0) += 1.0;
                for b in &set {
                    if a != b {
                        *co.entry(*a).or_default().entry(*b).or_insert(0.0) += 1.0;
                    }
                }
            }
        }
        Self { co, pop }
    }
}

impl Model for ItemKnn {
    fn name(&self) -> String {
        "ItemKNN".into()
    }
    fn rank(&mut self, prefix: &[Ev], k: usize) -> Vec<u32> {
        let Some(last) = prefix.last() else {
            return Vec::new();
        };
        let Some(row) = self.co.get(&last.item) else {
            return Vec::new();
        };
        let na = self.pop.get(&last.item).copied().unwrap_or(1.0);
        let s = row
            .iter()
            .map(|(b, c)| {
                (
                    *b,
                    c / (na * self.pop.get(b).copied().unwrap_or(1.0)).sqrt(),
                )
            })
            .collect();
        top(s, k)
    }
}

/// Session kNN with session-rec's defaults (k=100, 500 most recent candidate sessions, linear
/// position weights, neighbour scores divided by the step to the newest shared product).
pub struct VSknn {
    sessions: Vec<(Vec<u32>, i64)>,
    by_item: HashMap<u32, Vec<usize>>,
}

impl VSknn {
    pub const K: usize = 100;
    pub const SAMPLE: usize = 500;

    pub fn fit(train: &[Session]) -> Self {
        let mut sessions = Vec::new();
        let mut by_item: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, s) in train.iter().enumerate() {
            let mut items: Vec<u32> = s.events.iter().map(|e| e.item).collect();
            items.sort_unstable();
            items.dedup();
            for it in &items {
                by_item.entry(*it).or_default().push(i);
            }
            sessions.push((items, s.end()));
        }
        Self { sessions, by_item }
    }
}

impl Model for VSknn {
    fn name(&self) -> String {
        "V-SKNN".into()
    }
    fn rank(&mut self, prefix: &[Ev], k: usize) -> Vec<u32> {
        let n = prefix.len();
        // Position weights: the newest 1, each step back 0.1 less, nothing beyond 10 steps.
        let mut pos: HashMap<u32, f64> = HashMap::new();
        for (i, e) in prefix.iter().enumerate() {
            let back = (n - 1 - i) as f64;
            pos.insert(e.item, (1.0 - 0.1 * back).max(0.0));
        }
        let mut cand: HashSet<usize> = HashSet::new();
        for e in prefix {
            if let Some(v) = self.by_item.get(&e.item) {
                cand.extend(v.iter().copied());
            }
        }
        let mut cand: Vec<usize> = cand.into_iter().collect();
        cand.sort_by(|a, b| self.sessions[*b].1.cmp(&self.sessions[*a].1).then(a.cmp(b)));
        cand.truncate(Self::SAMPLE);
        let mut neigh: Vec<(usize, f64)> = cand
            .into_iter()
            .map(|c| {
                let items = &self.sessions[c].0;
                let sim: f64 = pos
                    .iter()
                    .filter(|(i, _)| items.binary_search(i).is_ok())
                    .map(|(_, w)| w)
                    .sum::<f64>()
                    / pos.len() as f64;
                (c, sim)
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        neigh.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        neigh.truncate(Self::K);
        let mut scores: HashMap<u32, f64> = HashMap::new();
        for (c, sim) in neigh {
            let items = &self.sessions[c].0;
            let step = prefix
                .iter()
                .rev()
                .position(|e| items.binary_search(&e.item).is_ok())
                .map_or(1, |p| p + 1);
            for it in items {
                *scores.entry(*it).or_insert(0.0) += sim / step as f64;
            }
        }
        top(scores, k)
    }
}
