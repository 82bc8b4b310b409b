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
//! `1 + category · a_c` with `a_c` the category's affinity relative to the shopper's strongest (across
//! sessions), and by `1 + session_category · s_c` with `s_c` the recency-weighted share of this
//! session's products in its category (what the shopper is looking at now). When the neighbours run
//! out, the session's categories' popular products fill the list ("also in sofas"), then the
//! shopper's preferred categories and brands and the trending ones.
//! The product on screen is never recommended, nor a product the shopper bought. Everything comes from
//! the session products' lists, the profile and popularity: no other session is read at request time.
//!
//! The weights are tuned by `make eval` on a validation split carved from the training data
//! (`EVALUATION.md`); [`Params::default`] holds the values chosen.

pub mod neighbours;

use std::collections::HashMap;

use serde::Serialize;

use crate::popularity::{Popularity, ProductScore};
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
    /// Lift of a candidate in the session's categories: `1 + session_category · s_c`, with `s_c` the
    /// recency-weighted share of the session's products in the candidate's category (0–1).
    pub session_category: f64,
    /// How co-visits are weighted when lists are built.
    pub covisit: CoVisitWeights,
}

impl Default for Params {
    fn default() -> Self {
        // `make eval`'s choice on REES46's validation split (the data set with categories): see
        // EVALUATION.md.
        Self {
            recency: 0.6,
            source_norm: 0.0,
            target_norm: 0.0,
            remind: 0.6,
            category: 0.0,
            session_category: 2.0,
            covisit: CoVisitWeights::default(),
        }
    }
}

/// Most products of the shopper's session whose neighbour lists are read for `for_you`.
pub const SESSION_LISTS: usize = 10;

/// The shopper's latest session, as the recommend function reads it for `for_you`: their last views
/// (the profile's, distinct, each at its latest view) while the gaps stay within
/// [`neighbours::SESSION_GAP_MS`], oldest first, at most [`SESSION_LISTS`].
pub fn session(p: &Profile) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut edge = None;
    for s in &p.recent_views {
        if edge.is_some_and(|t: i64| t - s.at > neighbours::SESSION_GAP_MS)
            || out.len() >= SESSION_LISTS
        {
            break;
        }
        out.push(s.id.clone());
        edge = Some(s.at);
    }
    out.reverse();
    out
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

impl Pick {
    /// A popular product `p` of a category the session (or the product page) is in ("also in
    /// sofas"), scored `score`.
    pub fn same_category(p: &ProductScore, score: f64) -> Self {
        Self {
            product_id: p.id.clone(),
            category: p.category.clone(),
            brand: p.brand.clone(),
            score,
            reason: Reason::SameCategory,
            because_of: None,
        }
    }
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
    let shares = session_shares(&seen, lists, params.recency);
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
    let in_session = |cat: &Option<String>| -> f64 {
        let share = cat
            .as_deref()
            .and_then(|c| shares.iter().find(|(s, _)| *s == c))
            .map_or(0.0, |(_, w)| *w);
        1.0 + params.session_category * share
    };
    let lift = |cat: &Option<String>| -> f64 {
        in_session(cat)
            * match (ctx.profile, cat) {
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
        fill_from_session_categories(&mut picks, &shares, ctx, limit);
    }
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

/// The categories of the session's products (`seen`, newest first) with their recency-weighted shares
/// (summing to 1 over the products whose category is known), strongest first.
fn session_shares<'a, L: Lists>(seen: &[&str], lists: &'a L, recency: f64) -> Vec<(&'a str, f64)> {
    let mut shares: Vec<(&str, f64)> = Vec::new();
    let mut total = 0.0;
    for (d, x) in seen.iter().enumerate() {
        let Some(c) = lists.list(x).and_then(|l| l.category.as_deref()) else {
            continue;
        };
        let w = recency.powi(d as i32);
        total += w;
        match shares.iter_mut().find(|(s, _)| *s == c) {
            Some(e) => e.1 += w,
            None => shares.push((c, w)),
        }
    }
    for e in &mut shares {
        e.1 /= total;
    }
    shares.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    shares
}

/// Fills `picks` up to `limit` with the tenant's popular products in the session's categories
/// ([`Reason::SameCategory`], "also in sofas"), the session's strongest category first, scored below
/// every session pick; never the product on screen nor a product the shopper bought.
fn fill_from_session_categories(
    picks: &mut Vec<Pick>,
    shares: &[(&str, f64)],
    ctx: Context<'_>,
    limit: usize,
) {
    let Some(pop) = ctx.popularity else { return };
    let floor = picks.last().map_or(1.0, |p| p.score).min(1.0);
    let top = pop.products.first().map_or(1.0, |p| p.score).max(1e-12);
    let current = ctx.session.last().copied();
    for (c, share) in shares {
        for p in pop
            .products
            .iter()
            .filter(|p| p.category.as_deref() == Some(*c))
        {
            if picks.len() >= limit {
                return;
            }
            let bought = ctx
                .profile
                .is_some_and(|pr| pr.purchased.iter().any(|s| s.id == p.id));
            if Some(p.id.as_str()) == current
                || bought
                || picks.iter().any(|q| q.product_id == p.id)
            {
                continue;
            }
            let score =
                (floor * 0.75 * share * p.score / top).min(picks.last().map_or(1.0, |q| q.score));
            picks.push(Pick::same_category(p, score));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::neighbours::{test_event, Builder, SessionEvent};
    use super::*;

    fn ev(id: &str, at: i64) -> SessionEvent<'_> {
        test_event(id, at, None)
    }

    /// The weights these tests were written for (the defaults before `make eval` tuned them).
    fn old_defaults() -> Params {
        Params {
            recency: 0.6,
            source_norm: 0.0,
            target_norm: 0.3,
            remind: 0.3,
            category: 0.5,
            session_category: 0.0,
            covisit: CoVisitWeights::default(),
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
        let picks = recommend(ctx, &lists(), 3, &old_defaults(), &Decay::default());
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
        let picks = recommend(ctx, &lists(), 10, &old_defaults(), &Decay::default());
        assert!(picks.iter().all(|p| p.product_id != "lamp"));
        let ids: Vec<_> = picks.iter().map(|p| p.product_id.as_str()).collect();
        assert!(ids.contains(&"rug") && ids.contains(&"sofa") && ids.contains(&"cushion"));
    }

    #[test]
    fn the_sessions_categories_lift_their_products_and_fill_before_trending_ones() {
        let cat = |id, at, c| test_event(id, at, Some(c));
        let mut b = Builder::new(CoVisitWeights::default());
        b.add_session(&[cat("desk", 1, "office"), cat("chair", 2, "office")]);
        b.add_session(&[cat("desk", 3, "office"), cat("aloe", 4, "garden")]);
        let lists = b.finish();
        let product = |id: &str, c: Option<&str>, score| ProductScore {
            id: id.into(),
            category: c.map(str::to_string),
            brand: None,
            score,
        };
        let pop = Popularity {
            ref_ms: 1_000_004,
            applied: Vec::new(),
            products: vec![
                product("tv", None, 5.0),
                product("lamp", Some("office"), 1.0),
            ],
        };
        let ctx = Context {
            session: &["desk"],
            profile: None,
            popularity: Some(&pop),
            now_ms: 1_000_004,
        };
        let ids = |p: &Params| -> Vec<(String, Reason)> {
            recommend(ctx, &lists, 4, p, &Decay::default())
                .into_iter()
                .map(|p| (p.product_id, p.reason))
                .collect()
        };
        let flat = Params {
            target_norm: 0.0,
            session_category: 0.0,
            ..Params::default()
        };
        // One co-visit each at the same distance: aloe's is the newer (a hair less decayed).
        let got = ids(&flat);
        assert_eq!(got[0], ("aloe".to_string(), Reason::ViewedWith));
        assert_eq!(got[1], ("chair".to_string(), Reason::ViewedWith));
        // The session is all office: chair doubles; then office's popular lamp, then trending tv.
        let lifted = Params {
            session_category: 1.0,
            ..flat
        };
        assert_eq!(
            ids(&lifted),
            [
                ("chair".to_string(), Reason::ViewedWith),
                ("aloe".to_string(), Reason::ViewedWith),
                ("lamp".to_string(), Reason::SameCategory),
                ("tv".to_string(), Reason::Trending),
            ]
        );
    }
}
