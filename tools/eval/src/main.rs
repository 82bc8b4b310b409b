//! `make eval`: replays REES46 (data/rees46-2019-oct-sample.csv) and the YOOCHOOSE 100k subset
//! (data/yoochoose-clicks-100k-{train,test}.tsv) under the session-based next-item protocol and writes
//! EVALUATION.md. Affinity's recommender runs in process through `affinity::recommender`, the code the
//! recommend function serves.

mod baselines;
mod metrics;
mod profiles;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Instant;

use affinity::event::{EventType, Product};
use affinity::popularity::Popularity;
use affinity::profile::{Decay, Profile};
use affinity::recommender::neighbours::{
    session_before, Builder, CoVisitWeights, NeighbourList, SessionEvent,
};
use affinity::recommender::{self, Context, Params};

/// One event: item index, category and brand indexes (if any), shopper index, epoch ms.
#[derive(Clone, Copy)]
pub struct Ev {
    pub item: u32,
    pub cat: Option<u32>,
    pub brand: Option<u32>,
    pub user: u32,
    pub ts: i64,
}

/// A session: events in time order, consecutive repeats collapsed.
#[derive(Clone)]
pub struct Session {
    pub events: Vec<Ev>,
}

impl Session {
    pub fn start(&self) -> i64 {
        self.events[0].ts
    }
    pub fn end(&self) -> i64 {
        self.events[self.events.len() - 1].ts
    }
}

/// A data set split in time.
pub struct Split {
    pub name: &'static str,
    pub items: Vec<String>,
    pub cats: Vec<String>,
    pub brands: Vec<String>,
    pub train: Vec<Session>,
    pub test: Vec<Session>,
}

#[derive(Default)]
struct Interner {
    map: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.map.get(s) {
            return *i;
        }
        let i = self.names.len() as u32;
        self.map.insert(s.to_string(), i);
        self.names.push(s.to_string());
        i
    }
}

fn sessions_of(mut rows: Vec<(String, Ev)>) -> Vec<Session> {
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.ts.cmp(&b.1.ts)));
    let mut out: Vec<Session> = Vec::new();
    let mut cur: Option<String> = None;
    for (s, e) in rows {
        if cur.as_deref() != Some(s.as_str()) {
            out.push(Session { events: Vec::new() });
            cur = Some(s);
        }
        let ses = out.last_mut().expect("pushed above");
        if ses.events.last().map(|l| l.item) != Some(e.item) {
            ses.events.push(e);
        }
    }
    out.retain(|s| s.events.len() > 1);
    out.sort_by_key(|s| (s.start(), s.end()));
    out
}

fn filter_test(train: &[Session], test: Vec<Session>) -> Vec<Session> {
    let known: HashSet<u32> = train
        .iter()
        .flat_map(|s| s.events.iter().map(|e| e.item))
        .collect();
    test.into_iter()
        .map(|s| Session {
            events: {
                let mut v: Vec<Ev> = Vec::new();
                for e in s.events.into_iter().filter(|e| known.contains(&e.item)) {
                    if v.last().map(|l| l.item) != Some(e.item) {
                        v.push(e);
                    }
                }
                v
            },
        })
        .filter(|s| s.events.len() > 1)
        .collect()
}

/// Test sessions: those starting after 80% of the events (time order).
fn split_80(
    all: Vec<Session>,
    name: &'static str,
    items: Vec<String>,
    cats: Vec<String>,
    brands: Vec<String>,
) -> Split {
    let mut ts: Vec<i64> = all
        .iter()
        .flat_map(|s| s.events.iter().map(|e| e.ts))
        .collect();
    ts.sort_unstable();
    let cut = ts[(ts.len() * 8) / 10];
    let (test, train): (Vec<Session>, Vec<Session>) =
        all.into_iter().partition(|s| s.start() > cut);
    let test = filter_test(&train, test);
    Split {
        name,
        items,
        cats,
        brands,
        train,
        test,
    }
}

fn load_rees46(path: &str) -> Split {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut items = Interner::default();
    let mut cats = Interner::default();
    let mut brands = Interner::default();
    let mut users = Interner::default();
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 || f[8].trim().is_empty() {
            continue; // the cut-off last row
        }
        let Ok(t) = time::PrimitiveDateTime::parse(
            f[0].trim_end_matches(" UTC"),
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        ) else {
            continue;
        };
        let ts = t.assume_utc().unix_timestamp() * 1000;
        let cat = (!f[3].is_empty()).then(|| cats.id(f[3]));
        let brand = (!f[5].is_empty()).then(|| brands.id(f[5]));
        rows.push((
            f[8].to_string(),
            Ev {
                item: items.id(f[2]),
                cat,
                brand,
                user: users.id(f[7]),
                ts,
            },
        ));
    }
    split_80(
        sessions_of(rows),
        "REES46 sample (2019-10-01)",
        items.names,
        cats.names,
        brands.names,
    )
}

fn load_yoochoose(train: &str, test: &str) -> Split {
    let mut items = Interner::default();
    let mut sessions = Interner::default();
    let mut read = |path: &str| {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut rows = Vec::new();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            let (Some(s), Some(i), Some(t)) = (f.first(), f.get(1), f.get(2)) else {
                continue;
            };
            let Ok(t) = t.parse::<f64>() else { continue };
            rows.push((
                s.to_string(),
                Ev {
                    item: items.id(i),
                    cat: None,
                    brand: None,
                    user: sessions.id(s),
                    ts: (t * 1000.0) as i64,
                },
            ));
        }
        sessions_of(rows)
    };
    let tr = read(train);
    let te = read(test);
    let te = filter_test(&tr, te);
    Split {
        name: "YOOCHOOSE 100k (session-rec subset)",
        items: items.names,
        cats: Vec::new(),
        brands: Vec::new(),
        train: tr,
        test: te,
    }
}

/// Bootstrap resamples of the test sessions for the intervals.
const BOOTSTRAP: usize = 2000;

/// A next-item model: given the session prefix, the ranked items.
pub trait Model {
    fn name(&self) -> String;
    fn rank(&mut self, prefix: &[Ev], k: usize) -> Vec<u32>;
}

/// What Affinity serves from: the neighbour lists and popularity folded from the training events.
struct Fitted {
    lists: HashMap<String, NeighbourList>,
    pop: Popularity,
    /// Shoppers' profiles after their training events.
    profiles: HashMap<u32, Profile>,
    now: i64,
}

impl Fitted {
    /// Folds the training events in time order, as the aggregate function folds the stream: each
    /// event's earlier products are its session's, as `session_before` gives them from the views so
    /// far (distinct, latest view first, a 30-minute gap ends the session), and every list a batch
    /// touched is bounded at the batch's end (`Builder`, the stored form).
    fn fit(split: &Split, train: &[Session], cw: CoVisitWeights) -> Self {
        let mut order: Vec<(i64, usize, usize)> = train
            .iter()
            .enumerate()
            .flat_map(|(si, s)| s.events.iter().enumerate().map(move |(i, e)| (e.ts, si, i)))
            .collect();
        order.sort_unstable();
        let mut b = Builder::new(cw);
        let decay = Decay::default();
        let mut pop = Popularity::default();
        let mut now = 0;
        let mut profiles: HashMap<u32, Profile> = HashMap::new();
        let name = |e: &Ev| split.items[e.item as usize].as_str();
        for (ts, si, i) in order {
            let evs = &train[si].events;
            let e = evs[i];
            let seen: Vec<(String, i64)> = evs[..i]
                .iter()
                .map(|p| (name(p).to_string(), p.ts))
                .collect();
            let before = session_before(&seen, ts);
            let before: Vec<&str> = before.iter().map(String::as_str).collect();
            let category = e.cat.map(|c| split.cats[c as usize].as_str());
            let brand = e.brand.map(|c| split.brands[c as usize].as_str());
            b.add_event(
                &before,
                SessionEvent {
                    id: name(&e),
                    category,
                    brand,
                    at_ms: ts,
                },
            );
            let p = Product {
                id: name(&e).to_string(),
                category: category.map(str::to_string),
                brand: brand.map(str::to_string),
                price: None,
            };
            pop.add(EventType::View, &[&p], ts, &decay);
            profiles::apply(profiles.entry(e.user).or_default(), split, &e, &decay);
            now = now.max(ts);
        }
        pop.trim();
        Self {
            lists: b.finish(),
            pop,
            profiles,
            now,
        }
    }
}

/// Affinity's recommender, in process.
struct Affinity<'a> {
    split: &'a Split,
    fitted: &'a Fitted,
    params: Params,
    index: HashMap<&'a str, u32>,
}

impl<'a> Affinity<'a> {
    fn new(split: &'a Split, fitted: &'a Fitted, params: Params) -> Self {
        let index = split
            .items
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i as u32))
            .collect();
        Self {
            split,
            fitted,
            params,
            index,
        }
    }
}

impl Model for Affinity<'_> {
    fn name(&self) -> String {
        "**Affinity (session item-to-item)**".into()
    }
    fn rank(&mut self, prefix: &[Ev], k: usize) -> Vec<u32> {
        let now = self.fitted.now.max(prefix.last().map_or(0, |e| e.ts));
        // The shopper's profile as the recommend function reads it: their training events and this
        // session's so far; the session is the one `for_you` reads from it (`recommender::session`:
        // the last 10 distinct views within 30-minute gaps).
        let decay = Decay::default();
        let mut profile = prefix
            .first()
            .and_then(|e| self.fitted.profiles.get(&e.user))
            .cloned()
            .unwrap_or_default();
        for e in prefix {
            profiles::apply(&mut profile, self.split, e, &decay);
        }
        let session = recommender::session(&profile);
        let names: Vec<&str> = session.iter().map(String::as_str).collect();
        let ctx = Context {
            session: &names,
            profile: Some(&profile),
            popularity: Some(&self.fitted.pop),
            now_ms: now,
        };
        recommender::recommend(ctx, &self.fitted.lists, k, &self.params, &Decay::default())
            .into_iter()
            .filter_map(|p| self.index.get(p.product_id.as_str()).copied())
            .collect()
    }
}

fn evaluate(model: &mut dyn Model, test: &[Session]) -> metrics::Totals {
    let mut t = metrics::Totals::default();
    for s in test {
        for n in 1..s.events.len() {
            let ranked = model.rank(&s.events[..n], 20);
            t.add(&ranked, s.events[n].item);
        }
    }
    t
}

/// Carves a validation split from training: the last 20% of training sessions by start.
fn validation(train: &[Session]) -> (Vec<Session>, Vec<Session>) {
    let cut = train.len() * 8 / 10;
    let tr = train[..cut].to_vec();
    let va = filter_test(&tr, train[cut..].to_vec());
    (tr, va)
}

fn tune(split: &Split) -> (Params, String) {
    let (tr, va) = validation(&split.train);
    let mut best = (Params::default(), -1.0);
    let mut log = String::new();
    for backward in [0.25, 0.5, 1.0] {
        let cw = CoVisitWeights {
            backward,
            ..CoVisitWeights::default()
        };
        let fitted = Fitted::fit(split, &tr, cw);
        // Without categories (YOOCHOOSE) the category weights change nothing: not searched.
        let cat_grid: &[(f64, f64)] = if split.cats.is_empty() {
            &[(0.0, 0.0)]
        } else {
            &[
                (0.0, 0.0),
                (0.5, 0.0),
                (0.0, 0.5),
                (0.0, 1.0),
                (0.5, 1.0),
                (0.0, 2.0),
            ]
        };
        for recency in [0.4, 0.6, 0.8] {
            for target_norm in [0.0, 0.3] {
                for remind in [0.0, 0.3, 0.6] {
                    for &(category, session_category) in cat_grid {
                        let p = Params {
                            recency,
                            target_norm,
                            remind,
                            category,
                            session_category,
                            covisit: cw,
                            ..Params::default()
                        };
                        let t = evaluate(&mut Affinity::new(split, &fitted, p), &va);
                        let score = t.hr(20) + t.mrr(20);
                        if score > best.1 {
                            best = (p, score);
                        }
                    }
                }
            }
        }
    }
    let p = best.0;
    let _ = write!(
        log,
        "recency {}, target_norm {}, remind {}, category {}, session_category {}, backward {} (validation HR@20+MRR@20 {:.4}, {} train / {} validation sessions)",
        p.recency, p.target_norm, p.remind, p.category, p.session_category, p.covisit.backward, best.1, tr.len(), va.len()
    );
    (p, log)
}

fn main() {
    let started = Instant::now();
    let out_path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "EVALUATION.md".into());
    let splits = [
        load_rees46("data/rees46-2019-oct-sample.csv"),
        load_yoochoose(
            "data/yoochoose-clicks-100k-train.tsv",
            "data/yoochoose-clicks-100k-test.tsv",
        ),
    ];
    let mut md = String::new();
    md.push_str("# Evaluation: next-item recommendation in the session\n\nWritten by `make eval` (`cargo run --profile bench -p eval`). Every figure below comes from one run, every method on the same split.\n\n");
    md.push_str("## Protocol\n\n- Events in time order, grouped by session (REES46 `user_session`, YOOCHOOSE `SessionId`); every event type counts as an interaction with the product; consecutive repeats of one product collapsed; sessions of one event dropped.\n- Test sessions: REES46, those starting after 80% of the events; YOOCHOOSE, the data set's own test file (the next day). Test products never seen in training dropped, then test sessions left with one event dropped.\n- For every position of a test session the model sees the events so far and ranks 20 products; HR@k (the next product is in the top k), MRR@k (1/rank, 0 beyond k), NDCG@k (1/log2(rank+1)), averaged over all predictions.\n- Baselines, same split, same run: POP (most popular in training), S-POP (most frequent in the session so far, ties by popularity), ItemKNN (co-occurrence in training sessions with the last product, cosine), V-SKNN (session kNN with session-rec's defaults as read from its code: k=100 neighbours among the 500 most recent candidate sessions sharing a product, linear position weights of the current session, neighbour scores divided by the step to the newest shared product).\n- Affinity: `affinity::recommender::recommend`, the code the recommend function's `for_you` runs, over neighbour lists folded from the training events and the shopper's profile. Its weights are tuned on a validation split carved from the training data (its last 20% of sessions, a small grid), never on the test sessions. It never recommends the product on screen (a product rule); the baselines follow session-rec and may.\n- What the evaluation does as production does (the same code): the training events are folded in time order by `neighbours::fold_event` (the aggregate function's fold), each with its session's earlier products as `neighbours::session_before` gives them (distinct, at their latest view, a 30-minute gap ends the session, the last 20); they are folded in batches as the aggregate function's event source cuts the stream (`neighbours::Batching`: 1,000 events or 30 s, from `template.yaml`), and every list a batch touched is stored `NeighbourList::bound`ed (100 neighbours, 8 KB) at the batch's end, so the lists read are the stored ones, trimmed during training as in production. The shopper's profile is `affinity::profile` over their events so far (training events and the session's prefix, across sessions: REES46 `user_id`); the session the recommender reads is `recommender::session` of that profile (the last 10 distinct views, 30-minute gaps), the one `for_you` reads; popularity is `affinity::popularity` (its top products) as the fallback.\n- What it does not: every event is a view (REES46 cart and purchase events are not folded into `bought_together` lists nor weighted as such in the profile); consecutive repeats are collapsed before the profile sees them; batches are cut by event time, not arrival; no concurrent batches (production retries a conflicting list write, and gives up after 5); the clock is the newest event's time, not the wall clock; YOOCHOOSE has no shopper id, so each session is its own shopper. The HTTP path (ingest, the stream, recommend's DynamoDB reads) is not in `make eval`; see the agreement check below.\n\n");
    for split in &splits {
        let (params, tuned) = tune(split);
        let preds: usize = split.test.iter().map(|s| s.events.len() - 1).sum();
        let _ = writeln!(
            md,
            "## {}\n\n{} training sessions, {} test sessions, {} predictions, {} products.\nAffinity's weights (tuned on validation): {}.\n",
            split.name, split.train.len(), split.test.len(), preds, split.items.len(), tuned
        );
        md.push_str("| method | HR@20 | MRR@20 | NDCG@20 | HR@10 | MRR@10 | NDCG@10 |\n|---|---|---|---|---|---|---|\n");
        let fitted = Fitted::fit(split, &split.train, params.covisit);
        let mut models: Vec<Box<dyn Model + '_>> = vec![
            Box::new(baselines::Pop::fit(&split.train)),
            Box::new(baselines::SPop::fit(&split.train)),
            Box::new(baselines::ItemKnn::fit(&split.train)),
            Box::new(baselines::VSknn::fit(&split.train)),
            Box::new(Affinity::new(split, &fitted, params)),
        ];
        let mut rows = Vec::new();
        for m in &mut models {
            let t = evaluate(m.as_mut(), &split.test);
            let _ = writeln!(
                md,
                "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
                m.name(),
                t.hr(20),
                t.mrr(20),
                t.ndcg(20),
                t.hr(10),
                t.mrr(10),
                t.ndcg(10)
            );
            rows.push((m.name(), t));
        }
        if let (Some(v), Some(a)) = (rows.get(3), rows.get(4)) {
            let _ = writeln!(
                md,
                "\nAffinity / V-SKNN: HR@20 {:.2}x, MRR@20 {:.2}x (target 1.05x).\n",
                a.1.hr(20) / v.1.hr(20),
                a.1.mrr(20) / v.1.mrr(20)
            );
            let groups: Vec<usize> = split.test.iter().map(|s| s.events.len() - 1).collect();
            let ci: Vec<String> = rows
                .iter()
                .map(|(name, t)| {
                    let (lo, hi) = metrics::bootstrap_hr(t, None, &groups, 20, BOOTSTRAP);
                    format!(
                        "{} {:.3} [{lo:.3}, {hi:.3}]",
                        name.trim_matches('*'),
                        t.hr(20)
                    )
                })
                .collect();
            let (lo, hi) = metrics::bootstrap_hr(&a.1, Some(&v.1), &groups, 20, BOOTSTRAP);
            let _ = writeln!(
                md,
                "HR@20 with 95% intervals ({BOOTSTRAP} bootstrap resamples of the {} test sessions): {}. Affinity − V-SKNN, paired: {:+.3} [{lo:+.3}, {hi:+.3}].\n",
                groups.len(),
                ci.join("; "),
                a.1.hr(20) - v.1.hr(20)
            );
        }
        if !split.cats.is_empty() {
            let h = profiles::category_preference(split);
            let rate = |x: usize| x as f64 / h.events.max(1) as f64;
            let _ = writeln!(
                md,
                "Category preference: over the {} events of test sessions with a category whose shopper had one already (`affinity::profile` over their events so far, across sessions), the shopper's top-3 categories contain the event's category for {:.3}; the store's 3 most viewed categories so far for {:.3}.\n\n| measure | hit rate |\n|---|---|\n| shopper's top-3 preferred categories | {:.3} |\n| store's 3 most popular categories | {:.3} |\n",
                h.events,
                rate(h.profile),
                rate(h.store),
                rate(h.profile),
                rate(h.store)
            );
        }
        eprintln!(
            "{} done at {:.1}s",
            split.name,
            started.elapsed().as_secs_f64()
        );
    }
    let _ = writeln!(
        md,
        "## Not measured here\n\nThe agreement of the in-process path with the deployed one (a slice replayed through the local stack's HTTP API, same top-20 hits) is not measured yet: what the evaluation shares with production and what it does not is listed under Protocol.\n\n## Data\n\nSee `data/PROVENANCE.md`: the REES46 sample (head of the Oct 2019 file of the REES46 / Open CDP multi-category store data set) and the YOOCHOOSE 100k subset session-rec ships (`data/rsc15/prepared/yoochoose-clicks-100k_train_full.txt` and `_test.txt`, rn5l/session-rec commit 02cf507; RecSys Challenge 2015).\n\nRun time: {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&out_path, md).unwrap_or_else(|e| panic!("{out_path}: {e}"));
    eprintln!("wrote {out_path}");
}
