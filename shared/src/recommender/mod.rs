//! Session-aware item-to-item recommendations: what the shopper viewed in this session (the newest
//! counts most), the products other shoppers' sessions put next to them ([`neighbours`]), lifted by the
//! shopper's category and brand affinities across sessions, and the tenant's ranked popular products
//! ([`crate::rank`]) as the fallback.
//!
//! The score of a candidate `j` for a session `x_1 … x_n` (newest last) is
//! `Σ_d recency^d · w(x, j) / (n_x^source_norm · n_j^target_norm)` over the session's products `x` at
//! distance `d` from the newest, with `w` the decayed co-visitation weight and `n` the products'
//! decayed session counts (a cosine-like normalisation when both exponents are 0.5), scaled to 1 at the
//! best candidate. Earlier products of the session (not the one on screen) add `remind · recency^d`:
//! shoppers go back to what they compared. A candidate in a category the shopper likes is multiplied by
//! `1 + category · a_c` with `a_c` the category's affinity relative to the shopper's strongest.
//! The product on screen is never recommended, nor a product the shopper bought.
//!
//! The weights are tuned by `make eval` on a validation split carved from the training data
//! (`EVALUATION.md`); [`Params::default`] holds the values chosen.

pub mod neighbours;

use std::collections::HashMap;

use serde::Serialize;

use crate::popularity::Popularity;
use crate::profile::{Decay, Profile};
use crate::rank::{self, Reason};
use neighbours::{CoVisitWeights, NeighbourList};

/// The recommender's weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Weight of the session's product at distance `d` from the newest: `recency^d` (0–1).
    pub recency: f64,
    /// Exponent of the source product's session count in the similarity.
    pub source_norm: f64,
    /// Exponent of the candidate's session count in the similarity.
    pub target_norm: f64,
    /// Weight of showing again an earlier product of the session, relative to the best neighbour.
    pub remind: f64,
    /// Lift of a candidate in the shopper's strongest category (relative affinities scale it).
    pub category: f64,
    /// How co-visits are weighted when lists are built.
    pub covisit: CoVisitWeights,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            recency: 0.6,
            source_norm: 0.0,
            target_norm: 0.3,
            remind: 0.3,
            category: 0.5,
            covisit: CoVisitWeights::default(),
        }
    }
}

/// Where the recommender reads neighbour lists: a map in memory (evaluation, tests) or the lists the
/// recommend function fetched for this answer.
pub trait Lists {
    /// The list of `product_id`, if there is one.
    fn list(&self, product_id: &str) -> Option<&NeighbourList>;
}

impl Lists for HashMap<String, NeighbourList> {
    fn list(&self, product_id: &str) -> Option<&NeighbourList> {
        self.get(product_id)
    }
}

/// One recommended product, with the reason a merchant reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    /// Product id.
    pub product_id: String,
    /// Category, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Brand, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Relative score, best first; session picks score above every fallback.
    pub score: f64,
    /// Why.
    pub reason: Reason,
    /// The product of the session that brought this one (`viewed_with` and `viewed_before`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because_of: Option<String>,
}

/// What the recommender knows of the moment.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The session's products, oldest first, the one on screen last (consecutive repeats collapsed).
    pub session: &'a [&'a str],
    /// The shopper's profile, if known.
    pub profile: Option<&'a Profile>,
    /// The tenant's popularity, if any.
    pub popularity: Option<&'a Popularity>,
    /// Now, epoch ms.
    pub now_ms: i64,
}

struct Cand {
    score: f64,
    best: f64,
    because: usize,
    category: Option<String>,
    reminded: bool,
}

/// The best `limit` products for `ctx`, best first.
pub fn recommend<L: Lists>(
    ctx: Context<'_>,
    lists: &L,
    limit: usize,
    params: &Params,
    decay: &Decay,
) -> Vec<Pick> {
    let n = ctx.session.len();
    let current = ctx.session.last().copied();
    let bought = |id: &str| {
        ctx.profile
            .is_some_and(|p| p.purchased.iter().any(|s| s.id == id))
    };
    let mut cands: HashMap<&str, Cand> = HashMap::new();
    let mut seen: Vec<&str> = Vec::with_capacity(n);
    for (d, x) in ctx.session.iter().rev().enumerate() {
        if seen.contains(x) {
            continue;
        }
        seen.push(x);
        let Some(list) = lists.list(x) else { continue };
        let f = list.factor_at(ctx.now_ms, &params.covisit);
        let wd = params.recency.powi(d as i32);
        let nx = (list.sessions * f).max(1e-9).powf(params.source_norm);
        for nb in &list.neighbours {
            let s = wd * nb.w * f / (nx * nb.n.max(1e-9).powf(params.target_norm));
            let c = cands.entry(nb.id.as_str()).or_insert(Cand {
                score: 0.0,
                best: 0.0,
                because: seen.len() - 1,
                category: nb.c.clone(),
                reminded: false,
            });
            c.score += s;
            if s > c.best {
                c.best = s;
                c.because = seen.len() - 1;
            }
        }
    }
    let max = cands.values().map(|c| c.score).fold(0.0, f64::max);
    if max > 0.0 {
        for c in cands.values_mut() {
            c.score /= max;
        }
    }
    if params.remind > 0.0 {
        for (i, x) in seen.iter().enumerate().skip(1) {
            let r = params.remind * params.recency.powi(i as i32);
            let category = lists.list(x).and_then(|l| l.category.clone());
            let c = cands.entry(x).or_insert(Cand {
                score: 0.0,
                best: 0.0,
                because: i,
                category,
                reminded: false,
            });
            c.score += r;
            if r > c.best {
                c.best = r;
                c.because = i;
                c.reminded = true;
            }
        }
    }
    let strongest = ctx
        .profile
        .and_then(|p| p.categories.first())
        .map_or(0.0, |a| a.score);
    let lift = |cat: &Option<String>| -> f64 {
        match (ctx.profile, cat) {
            (Some(p), Some(c)) if strongest > 0.0 && params.category > 0.0 => p
                .categories
                .iter()
                .take(rank::MATCH_TOP)
                .find(|a| &a.name == c)
                .map_or(1.0, |a| 1.0 + params.category * a.score / strongest),
            _ => 1.0,
        }
    };
    let mut picks: Vec<Pick> = cands
        .into_iter()
        .filter(|(id, _)| Some(*id) != current && !bought(id))
        .map(|(id, c)| {
            let because = seen[c.because];
            Pick {
                product_id: id.to_string(),
                score: c.score * lift(&c.category),
                brand: lists.list(id).and_then(|l| l.brand.clone()),
                category: c.category,
                reason: if c.reminded {
                    Reason::ViewedBefore
                } else {
                    Reason::ViewedWith
                },
                because_of: Some(because.to_string()),
            }
        })
        .collect();
    picks.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.product_id.cmp(&b.product_id))
    });
    picks.truncate(limit);
    if picks.len() < limit {
        // The fallback: the tenant's popular products in the shopper's categories and brands, then
        // trending ones, scored below every session pick.
        let fill = rank::recommend(
            "",
            ctx.profile,
            ctx.popularity,
            limit + n + 1,
            ctx.now_ms,
            decay,
        );
        let floor = picks.last().map_or(1.0, |p| p.score).min(1.0);
        let top = fill.items.first().map_or(1.0, |i| i.score).max(1e-12);
        for it in fill.items {
            if picks.len() >= limit {
                break;
            }
            if Some(it.product_id.as_str()) == current
                || picks.iter().any(|p| p.product_id == it.product_id)
            {
                continue;
            }
            picks.push(Pick {
                product_id: it.product_id,
                category: it.category,
                brand: it.brand,
                score: floor * 0.5 * it.score / top,
                reason: it.reason,
                because_of: None,
            });
        }
    }
    picks
}

#[cfg(test)]
mod tests {
    use super::neighbours::{Builder, SessionEvent};
    use super::*;
    use crate::popularity::ProductScore;

    /// Events within a second: no decay to speak of (a co-visit halves in 7 days).
    fn ev(id: &str, at: i64) -> SessionEvent<'_> {
        let at = 1_000_000 + at;
        SessionEvent {
            id,
            category: None,
            brand: None,
            at_ms: at,
        }
    }

    fn lists() -> HashMap<String, NeighbourList> {
        let mut b = Builder::new(CoVisitWeights::default());
        b.add_session(&[ev("sofa", 1), ev("cushion", 2)]);
        b.add_session(&[ev("sofa", 3), ev("cushion", 4)]);
        b.add_session(&[ev("sofa", 5), ev("lamp", 6)]);
        b.add_session(&[ev("rug", 7), ev("lamp", 8)]);
        b.finish()
    }

    #[test]
    fn co_viewed_products_come_first_with_their_reason() {
        let pop = Popularity {
            ref_ms: 1_000_008,
            applied: Vec::new(),
            products: vec![ProductScore {
                id: "tv".into(),
                category: None,
                brand: None,
                score: 3.0,
            }],
        };
        let ctx = Context {
            session: &["sofa"],
            profile: None,
            popularity: Some(&pop),
            now_ms: 1_000_008,
        };
        let picks = recommend(ctx, &lists(), 3, &Params::default(), &Decay::default());
        let got: Vec<_> = picks
            .iter()
            .map(|p| (p.product_id.as_str(), p.reason, p.because_of.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("cushion", Reason::ViewedWith, Some("sofa")),
                ("lamp", Reason::ViewedWith, Some("sofa")),
                ("tv", Reason::Trending, None)
            ]
        );
        assert_eq!(picks[0].score, 1.0);
        // cushion: weight 2 over 2 sessions ^ 0.3 (its count at the last co-visit); lamp: weight 1
        // over 1 ^ 0.3 (rug's session came later).
        assert!((picks[1].score - 2f64.powf(0.3) / 2.0).abs() < 1e-6);
        assert!(picks[2].score < picks[1].score);
    }

    #[test]
    fn the_product_on_screen_is_never_recommended_but_earlier_ones_are() {
        let ctx = Context {
            session: &["sofa", "lamp"],
            profile: None,
            popularity: None,
            now_ms: 1_000_008,
        };
        let picks = recommend(ctx, &lists(), 10, &Params::default(), &Decay::default());
        assert!(picks.iter().all(|p| p.product_id != "lamp"));
        let ids: Vec<_> = picks.iter().map(|p| p.product_id.as_str()).collect();
        assert!(ids.contains(&"rug") && ids.contains(&"sofa") && ids.contains(&"cushion"));
    }
}
