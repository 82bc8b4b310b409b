//! The list types of the storefront route (`?type=`), what each reads and how each is ranked.
//!
//! | type | anchors | ranked by | purchased products |
//! |---|---|---|---|
//! | `for_you` (default) | the shopper's session (+ `product_id` on screen) | the session recommender: co-viewed neighbours, recency-weighted, lifted by the session's categories (and the shopper's, at the weight `make eval` tuned); then the session's categories' popular products, then preferred categories/brands, then trending | left out |
//! | `also_viewed` | `product_id` / `product_ids` | co-viewed neighbours of the anchors, then trending | left out |
//! | `similar` | `product_id` / `product_ids` | co-viewed neighbours in the anchor's category, then the category's popular products | left out |
//! | `bought_together` | `product_id` / `product_ids`, else the cart | co-bought neighbours (cart additions and orders), then co-viewed ones | kept: a complement bought before (ink, filters, batteries) is often bought again, and Affinity cannot tell consumables from durable goods; the anchors and the cart's lines are left out |
//! | `recently_viewed` | the shopper | their last views, newest first | left out |
//! | `trending` | the store, or `category` | the tenant's popularity, decayed to now | left out |
//!
//! Reads: the first round trip asks for the anchors' lists with the tenant and profile; a second (only
//! when needed) for the session's lists, or for the linked profile of a guest (then the session's
//! lists are not read: at most two sequential round trips per answer).

use std::collections::HashMap;

use affinity::http::ApiError;
use affinity::popularity::Popularity;
use affinity::profile::{Decay, Profile};
use affinity::rank::Reason;
use affinity::recommender::neighbours::{ListKey, ListKind, NeighbourList};
use affinity::recommender::{self, session, Context, Params, Pick};
use serde::Serialize;

/// Most anchor products in `product_ids`.
pub const MAX_ANCHORS: usize = 20;
/// Candidates ranked before `similar` keeps those in the anchor's category.
const CANDIDATES: usize = 500;

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListType {
    /// The shopper's session, neighbours, affinities, popularity.
    ForYou,
    /// Co-viewed products in the anchor's category.
    Similar,
    /// Co-viewed products.
    AlsoViewed,
    /// Co-bought products.
    BoughtTogether,
    /// The shopper's last views.
    RecentlyViewed,
    /// The store's (or a category's) popular products.
    Trending,
}

impl ListType {
    /// Every type, as named on the wire.
    pub const ALL: [(&'static str, Self); 6] = [
        ("for_you", Self::ForYou),
        ("similar", Self::Similar),
        ("also_viewed", Self::AlsoViewed),
        ("bought_together", Self::BoughtTogether),
        ("recently_viewed", Self::RecentlyViewed),
        ("trending", Self::Trending),
    ];

    /// Parses `type` (absent: `for_you`).
    ///
    /// # Errors
    /// 400 naming `type`.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let Some(raw) = raw else {
            return Ok(Self::ForYou);
        };
        Self::ALL
            .iter()
            .find(|(name, _)| *name == raw.trim())
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                ApiError::bad_request("type", format!("must be one of {}", names.join(", ")))
            })
    }
}

/// A parsed list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    /// Which list.
    pub kind: ListType,
    /// The anchor products: `product_id`, then `product_ids` (comma-separated), distinct.
    pub anchors: Vec<String>,
    /// `category`, for `trending`.
    pub category: Option<String>,
    /// Most items.
    pub limit: usize,
}

fn valid_product_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.contains('#')
}

impl ListRequest {
    /// Parses the query's `type`, `product_id`, `product_ids` and `category`.
    ///
    /// # Errors
    /// 400 naming the field: an unknown type, a bad product id, more than [`MAX_ANCHORS`], a product
    /// page list without a product.
    pub fn parse(
        kind: Option<&str>,
        product_id: Option<&str>,
        product_ids: Option<&str>,
        category: Option<&str>,
        limit: usize,
    ) -> Result<Self, ApiError> {
        let kind = ListType::parse(kind)?;
        let mut anchors: Vec<String> = Vec::new();
        if let Some(p) = product_id {
            let p = p.trim();
            if !valid_product_id(p) {
                return Err(ApiError::bad_request(
                    "product_id",
                    "must be 1-128 bytes without '#'",
                ));
            }
            anchors.push(p.to_string());
        }
        for p in product_ids.into_iter().flat_map(|s| s.split(',')) {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            if !valid_product_id(p) {
                return Err(ApiError::bad_request(
                    "product_ids",
                    "must be comma-separated ids of 1-128 bytes without '#'",
                ));
            }
            if !anchors.iter().any(|a| a == p) {
                anchors.push(p.to_string());
            }
        }
        if anchors.len() > MAX_ANCHORS {
            return Err(ApiError::bad_request(
                "product_ids",
                format!("must hold at most {MAX_ANCHORS} products"),
            ));
        }
        if matches!(kind, ListType::Similar | ListType::AlsoViewed) && anchors.is_empty() {
            return Err(ApiError::bad_request(
                "product_id",
                "is required for similar and also_viewed lists",
            ));
        }
        let category = match category.map(str::trim) {
            Some(c) if c.is_empty() || c.len() > 256 => {
                return Err(ApiError::bad_request("category", "must be 1-256 bytes"))
            }
            c => c.map(str::to_string),
        };
        Ok(Self {
            kind,
            anchors,
            category,
            limit,
        })
    }

    /// The lists the first round trip reads: the anchors'.
    pub fn first_lists(&self) -> Vec<ListKey> {
        let kinds: &[ListKind] = match self.kind {
            ListType::ForYou | ListType::Similar | ListType::AlsoViewed => &[ListKind::Viewed],
            ListType::BoughtTogether => &[ListKind::Bought, ListKind::Viewed],
            ListType::RecentlyViewed | ListType::Trending => &[],
        };
        kinds
            .iter()
            .flat_map(|k| {
                self.anchors.iter().map(|p| ListKey {
                    kind: *k,
                    product_id: p.clone(),
                })
            })
            .collect()
    }

    /// The lists a second round trip reads once the profile is known (none: no second read needed):
    /// the session's for `for_you` (and for `recently_viewed`, whose items take their category and
    /// brand from them as `for_you` does), the cart's for `bought_together` without anchors.
    pub fn second_lists(&self, profile: Option<&Profile>) -> Vec<ListKey> {
        let Some(p) = profile else { return Vec::new() };
        match self.kind {
            ListType::ForYou | ListType::RecentlyViewed => session(p)
                .into_iter()
                .filter(|id| !self.anchors.iter().any(|a| a == id))
                .map(|id| ListKey::viewed(&id))
                .collect(),
            ListType::BoughtTogether if self.anchors.is_empty() => p
                .cart
                .iter()
                .take(MAX_ANCHORS)
                .flat_map(|l| {
                    [
                        ListKey::bought(&l.product.id),
                        ListKey::viewed(&l.product.id),
                    ]
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// One recommended product, as the storefront renders it: no score, nothing about the shopper beyond
/// the item and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// Product id.
    pub product_id: String,
    /// Category, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Brand, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Why, as a code.
    pub reason: Reason,
    /// Why, as a merchant reads it ("viewed with SKU-1", "because you like sofas", "trending").
    pub reason_text: String,
    /// The product that brought this one (`viewed_with`, `bought_with`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because_of: Option<String>,
}

/// The text of a pick's reason.
pub fn reason_text(
    reason: Reason,
    because_of: Option<&str>,
    category: Option<&str>,
    brand: Option<&str>,
) -> String {
    let or = |s: Option<&str>, d: &str| s.unwrap_or(d).to_string();
    match reason {
        Reason::ViewedWith => format!("viewed with {}", or(because_of, "this")),
        Reason::BoughtWith => format!("bought with {}", or(because_of, "this")),
        Reason::ViewedBefore => "you viewed this".into(),
        Reason::PreferredCategory => format!("because you like {}", or(category, "this category")),
        Reason::PreferredBrand => format!("because you like {}", or(brand, "this brand")),
        Reason::SameCategory => format!("also in {}", or(category, "this category")),
        Reason::Trending => match category {
            Some(c) => format!("trending in {c}"),
            None => "trending".into(),
        },
    }
}

fn item(p: Pick) -> Item {
    let text = reason_text(
        p.reason,
        p.because_of.as_deref(),
        p.category.as_deref(),
        p.brand.as_deref(),
    );
    Item {
        product_id: p.product_id,
        category: p.category,
        brand: p.brand,
        reason: p.reason,
        reason_text: if p.reason == Reason::Trending {
            "trending".into()
        } else {
            text
        },
        because_of: p.because_of,
    }
}

/// What an answer is built from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The shopper's profile, if any.
    pub profile: Option<&'a Profile>,
    /// The tenant's popularity, if any.
    pub popularity: Option<&'a Popularity>,
    /// The lists read.
    pub lists: &'a HashMap<ListKey, NeighbourList>,
    /// Now, epoch ms.
    pub now_ms: i64,
    /// Affinity decay.
    pub decay: &'a Decay,
}

impl<'a> Inputs<'a> {
    /// The recommender's context for `session`.
    fn context(&self, session: &'a [&'a str]) -> Context<'a> {
        Context {
            session,
            profile: self.profile,
            popularity: self.popularity,
            now_ms: self.now_ms,
        }
    }
}

fn of_kind(
    lists: &HashMap<ListKey, NeighbourList>,
    kind: ListKind,
) -> HashMap<String, NeighbourList> {
    lists
        .iter()
        .filter(|(k, _)| k.kind == kind)
        .map(|(k, l)| (k.product_id.clone(), l.clone()))
        .collect()
}

fn bought(profile: Option<&Profile>, id: &str) -> bool {
    profile.is_some_and(|p| p.purchased.iter().any(|s| s.id == id))
}

/// The answer's items, best first, at most `req.limit`.
pub fn items(req: &ListRequest, inp: Inputs<'_>) -> Vec<Item> {
    let limit = req.limit;
    let params = Params::default();
    let product_page = Params {
        remind: 0.0,
        ..params
    };
    let anchors: Vec<&str> = req.anchors.iter().map(String::as_str).collect();
    let is_anchor = |id: &str| anchors.contains(&id);
    let picks: Vec<Pick> = match req.kind {
        ListType::ForYou => {
            let mut s = inp.profile.map(session).unwrap_or_default();
            s.retain(|id| !is_anchor(id));
            s.extend(req.anchors.iter().cloned());
            let s: Vec<&str> = s.iter().map(String::as_str).collect();
            let ctx = inp.context(&s);
            let viewed = of_kind(inp.lists, ListKind::Viewed);
            recommender::recommend(ctx, &viewed, limit + anchors.len(), &params, inp.decay)
        }
        ListType::AlsoViewed | ListType::Similar => {
            let ctx = inp.context(&anchors);
            let viewed = of_kind(inp.lists, ListKind::Viewed);
            if req.kind == ListType::AlsoViewed {
                recommender::recommend(
                    ctx,
                    &viewed,
                    limit + anchors.len(),
                    &product_page,
                    inp.decay,
                )
            } else {
                similar(
                    ctx,
                    &viewed,
                    limit + anchors.len(),
                    &product_page,
                    inp.decay,
                )
            }
        }
        ListType::BoughtTogether => bought_together(req, inp, &product_page),
        ListType::RecentlyViewed => inp
            .profile
            .map(|p| {
                p.recent_views
                    .iter()
                    .filter(|s| !bought(inp.profile, &s.id))
                    .map(|s| Pick {
                        product_id: s.id.clone(),
                        category: None,
                        brand: None,
                        score: 0.0,
                        reason: Reason::ViewedBefore,
                        because_of: None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ListType::Trending => return trending(req, inp),
    };
    picks
        .into_iter()
        .filter(|p| !is_anchor(&p.product_id))
        .take(limit)
        .map(|p| item(described(p, inp)))
        .collect()
}

/// `p` with the category and brand the answer's inputs know for its product, where the pick lacks
/// them: the product's own neighbour list (as last seen), then the tenant's popularity, then (for the
/// category) any neighbour entry naming the product. A neighbour entry carries no brand, so a
/// co-viewed product outside the popularity and the lists read has none.
fn described(mut p: Pick, inp: Inputs<'_>) -> Pick {
    if p.category.is_some() && p.brand.is_some() {
        return p;
    }
    let own = inp
        .lists
        .iter()
        .filter(|(k, _)| k.product_id == p.product_id)
        .map(|(_, l)| l);
    let popular = inp
        .popularity
        .and_then(|pop| pop.products.iter().find(|x| x.id == p.product_id));
    if p.category.is_none() {
        p.category = own
            .clone()
            .find_map(|l| l.category.clone())
            .or_else(|| popular.and_then(|x| x.category.clone()))
            .or_else(|| {
                inp.lists
                    .values()
                    .flat_map(|l| &l.neighbours)
                    .find(|n| n.id == p.product_id && n.c.is_some())
                    .and_then(|n| n.c.clone())
            });
    }
    if p.brand.is_none() {
        p.brand = own
            .clone()
            .find_map(|l| l.brand.clone())
            .or_else(|| popular.and_then(|x| x.brand.clone()));
    }
    p
}

/// Co-viewed products in the anchors' categories, then the categories' popular products.
fn similar(
    ctx: Context<'_>,
    viewed: &HashMap<String, NeighbourList>,
    limit: usize,
    params: &Params,
    decay: &Decay,
) -> Vec<Pick> {
    let cats: Vec<&str> = ctx
        .session
        .iter()
        .filter_map(|a| viewed.get(*a).and_then(|l| l.category.as_deref()))
        .collect();
    if cats.is_empty() {
        return recommender::recommend(ctx, viewed, limit, params, decay);
    }
    let no_fill = Context {
        popularity: None,
        ..ctx
    };
    let mut picks: Vec<Pick> = recommender::recommend(no_fill, viewed, CANDIDATES, params, decay)
        .into_iter()
        .filter(|p| p.category.as_deref().is_some_and(|c| cats.contains(&c)))
        .take(limit)
        .collect();
    if let Some(pop) = ctx.popularity {
        for p in &pop.products {
            if picks.len() >= limit {
                break;
            }
            let in_cat = p.category.as_deref().is_some_and(|c| cats.contains(&c));
            if !in_cat
                || bought(ctx.profile, &p.id)
                || ctx.session.contains(&p.id.as_str())
                || picks.iter().any(|x| x.product_id == p.id)
            {
                continue;
            }
            picks.push(Pick::same_category(p, 0.0));
        }
    }
    picks
}

/// Co-bought products of the anchors (or the cart), then co-viewed ones, then trending.
fn bought_together(req: &ListRequest, inp: Inputs<'_>, params: &Params) -> Vec<Pick> {
    let cart: Vec<&str> = inp
        .profile
        .map(|p| p.cart.iter().map(|l| l.product.id.as_str()).collect())
        .unwrap_or_default();
    let anchors: Vec<&str> = if req.anchors.is_empty() {
        cart.iter().take(MAX_ANCHORS).copied().collect()
    } else {
        req.anchors.iter().map(String::as_str).collect()
    };
    // No profile: purchases are not left out (see the module's table); the cart is.
    let ctx = Context {
        session: &anchors,
        profile: None,
        popularity: None,
        now_ms: inp.now_ms,
    };
    let limit = req.limit + anchors.len() + cart.len();
    let mut picks: Vec<Pick> = recommender::recommend(
        ctx,
        &of_kind(inp.lists, ListKind::Bought),
        limit,
        params,
        inp.decay,
    )
    .into_iter()
    .map(|p| Pick {
        reason: Reason::BoughtWith,
        ..p
    })
    .collect();
    let viewed = recommender::recommend(
        Context {
            popularity: inp.popularity,
            ..ctx
        },
        &of_kind(inp.lists, ListKind::Viewed),
        limit,
        params,
        inp.decay,
    );
    for p in viewed {
        if !picks.iter().any(|x| x.product_id == p.product_id) {
            picks.push(p);
        }
    }
    picks.retain(|p| {
        !anchors.contains(&p.product_id.as_str()) && !cart.contains(&p.product_id.as_str())
    });
    picks
}

/// The store's popular products (in `category` when given), decayed order kept, purchases left out.
fn trending(req: &ListRequest, inp: Inputs<'_>) -> Vec<Item> {
    let Some(pop) = inp.popularity else {
        return Vec::new();
    };
    pop.products
        .iter()
        .filter(|p| {
            req.category
                .as_deref()
                .is_none_or(|c| p.category.as_deref() == Some(c))
        })
        .filter(|p| !bought(inp.profile, &p.id) && !req.anchors.contains(&p.id))
        .take(req.limit)
        .map(|p| Item {
            product_id: p.id.clone(),
            category: p.category.clone(),
            brand: p.brand.clone(),
            reason: Reason::Trending,
            reason_text: reason_text(Reason::Trending, None, req.category.as_deref(), None),
            because_of: None,
        })
        .collect()
}
