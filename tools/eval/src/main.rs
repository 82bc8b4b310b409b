//! `make eval`: replays REES46 (data/rees46-2019-oct-sample.csv) and the YOOCHOOSE 100k subset
//! (data/yoochoose-clicks-100k-{train,test}.tsv) under the session-based next-item protocol and writes
//! EVALUATION.md. Affinity's recommender runs in process through `affinity::recommender`, the code the
//! recommend function serves.

mod baselines;
mod metrics;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Instant;

use affinity::event::{EventType, Product};
use affinity::popularity::Popularity;
use affinity::profile::Decay;
use affinity::recommender::neighbours::{Builder, SessionEvent};
use affinity::recommender::{self, Context, Params};

/// One event: item index, category index (if any), epoch ms.
#[derive(Clone, Copy)]
pub struct Ev {
    pub item: u32,
    pub cat: Option<u32>,
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
fn split_80(all: Vec<Session>, name: &'static str, items: Vec<String>, cats: Vec<String>) -> Split {
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
        train,
        test,
    }
}

fn load_rees46(path: &str) -> Split {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut items = Interner::default();
    let mut cats = Interner::default();
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
        rows.push((
            f[8].to_string(),
            Ev {
                item: items.id(f[2]),
                cat,
                ts,
            },
        ));
    }
    split_80(
        sessions_of(rows),
        "REES46 sample (2019-10-01)",
        items.names,
        cats.names,
    )
}

fn load_yoochoose(train: &str, test: &str) -> Split {
    let mut items = Interner::default();
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
        train: tr,
        test: te,
    }
}

/// A next-item model: given the session prefix, the ranked items.
pub trait Model {
    fn name(&self) -> String;
    fn rank(&mut self, prefix: &[Ev], k: usize) -> Vec<u32>;
}

/// Affinity's recommender, in process.
struct Affinity<'a> {
    split: &'a Split,
    lists: HashMap<String, affinity::recommender::neighbours::NeighbourList>,
    pop: Popularity,
    params: Params,
    index: HashMap<&'a str, u32>,
    now: i64,
}

impl<'a> Affinity<'a> {
    fn fit(split: &'a Split, train: &[Session], params: Params) -> Self {
        let mut b = Builder::new(params.covisit);
        let decay = Decay::default();
        let mut pop = Popularity::default();
        let mut now = 0;
        for s in train {
            let evs: Vec<SessionEvent> = s
                .events
                .iter()
                .map(|e| SessionEvent {
                    id: &split.items[e.item as usize],
                    category: e.cat.map(|c| split.cats[c as usize].as_str()),
                    brand: None,
                    at_ms: e.ts,
                })
                .collect();
            b.add_session(&evs);
            for e in &s.events {
                let p = Product {
                    id: split.items[e.item as usize].clone(),
                    category: e.cat.map(|c| split.cats[c as usize].clone()),
                    brand: None,
                    price: None,
                };
                pop.add(EventType::View, &[&p], e.ts, &decay);
                now = now.max(e.ts);
            }
        }
        pop.trim();
        let index = split
            .items
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i as u32))
            .collect();
        Self {
            split,
            lists: b.finish(),
            pop,
            params,
            index,
            now,
        }
    }
}

impl Model for Affinity<'_> {
    fn name(&self) -> String {
        "**Affinity (session item-to-item)**".into()
    }
    fn rank(&mut self, prefix: &[Ev], k: usize) -> Vec<u32> {
        let names: Vec<&str> = prefix
            .iter()
            .map(|e| self.split.items[e.item as usize].as_str())
            .collect();
        let now = self.now.max(prefix.last().map_or(0, |e| e.ts));
        let ctx = Context {
            session: &names,
            profile: None,
            popularity: Some(&self.pop),
            now_ms: now,
        };
        recommender::recommend(ctx, &self.lists, k, &self.params, &Decay::default())
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
    for recency in [0.4, 0.6, 0.8] {
        for target_norm in [0.0, 0.3, 0.6] {
            for remind in [0.0, 0.3, 0.6] {
                for backward in [0.25, 0.5, 1.0] {
                    let mut p = Params {
                        recency,
                        target_norm,
                        remind,
                        ..Params::default()
                    };
                    p.covisit.backward = backward;
                    let mut m = Affinity::fit(split, &tr, p);
                    let t = evaluate(&mut m, &va);
                    let score = t.hr(20) + t.mrr(20);
                    if score > best.1 {
                        best = (p, score);
                    }
                }
            }
        }
    }
    let p = best.0;
    let _ = write!(
        log,
        "recency {}, target_norm {}, remind {}, backward {} (validation HR@20+MRR@20 {:.4}, {} train / {} validation sessions)",
        p.recency, p.target_norm, p.remind, p.covisit.backward, best.1, tr.len(), va.len()
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
    md.push_str("## Protocol\n\n- Events in time order, grouped by session (REES46 `user_session`, YOOCHOOSE `SessionId`); every event type counts as an interaction with the product; consecutive repeats of one product collapsed; sessions of one event dropped.\n- Test sessions: REES46, those starting after 80% of the events; YOOCHOOSE, the data set's own test file (the next day). Test products never seen in training dropped, then test sessions left with one event dropped.\n- For every position of a test session the model sees the events so far and ranks 20 products; HR@k (the next product is in the top k), MRR@k (1/rank, 0 beyond k), NDCG@k (1/log2(rank+1)), averaged over all predictions.\n- Baselines, same split, same run: POP (most popular in training), S-POP (most frequent in the session so far, ties by popularity), ItemKNN (co-occurrence in training sessions with the last product, cosine), V-SKNN (session kNN with session-rec's defaults as read from its code: k=100 neighbours among the 500 most recent candidate sessions sharing a product, linear position weights of the current session, neighbour scores divided by the step to the newest shared product).\n- Affinity: `affinity::recommender` over neighbour lists built by `affinity::recommender::neighbours::Builder` (the fold the aggregate function runs) from the training sessions, popularity from `affinity::popularity` as the fallback. Its weights are tuned on a validation split carved from the training data (its last 20% of sessions), never on the test sessions. It never recommends the product on screen (a product rule); the baselines follow session-rec and may.\n\n");
    for split in &splits {
        let (params, tuned) = tune(split);
        let preds: usize = split.test.iter().map(|s| s.events.len() - 1).sum();
        let _ = writeln!(
            md,
            "## {}\n\n{} training sessions, {} test sessions, {} predictions, {} products.\nAffinity's weights (tuned on validation): {}.\n",
            split.name, split.train.len(), split.test.len(), preds, split.items.len(), tuned
        );
        md.push_str("| method | HR@20 | MRR@20 | NDCG@20 | HR@10 | MRR@10 | NDCG@10 |\n|---|---|---|---|---|---|---|\n");
        let mut models: Vec<Box<dyn Model + '_>> = vec![
            Box::new(baselines::Pop::fit(&split.train)),
            Box::new(baselines::SPop::fit(&split.train)),
            Box::new(baselines::ItemKnn::fit(&split.train)),
            Box::new(baselines::VSknn::fit(&split.train)),
            Box::new(Affinity::fit(split, &split.train, params)),
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
        }
        eprintln!(
            "{} done at {:.1}s",
            split.name,
            started.elapsed().as_secs_f64()
        );
    }
    let _ = writeln!(
        md,
        "## Data\n\nSee `data/PROVENANCE.md`: the REES46 sample (head of the Oct 2019 file of the REES46 / Open CDP multi-category store data set) and the YOOCHOOSE 100k subset session-rec ships (`data/rsc15/prepared/yoochoose-clicks-100k_train_full.txt` and `_test.txt`, rn5l/session-rec commit 02cf507; RecSys Challenge 2015).\n\nRun time: {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&out_path, md).unwrap_or_else(|e| panic!("{out_path}: {e}"));
    eprintln!("wrote {out_path}");
}
