//! Google Merchandise Store: a hit-level Google Analytics export (one row per hit).
//!
//! * Shopper and session: `visitId`. (`fullVisitorId` was mangled by a spreadsheet into
//!   `2.81772E+18`-like values, so visits cannot be joined into visitors: every visit is its own
//!   shopper.)
//! * Timestamp: `visitId` is the visit's start time in Unix seconds (Google Analytics' usual
//!   `visitId` = `visitStartTime`; in this file 15,103 of 15,134 visit starts fall on the row's
//!   `date` in the store's Pacific time zone, the other 31 late on the day before: visits that
//!   crossed midnight) and `time` is the hit's offset into the visit in milliseconds (it never
//!   exceeds `timeOnSite`, in whole seconds, by a second or more). So timestamp = `visitId` ×
//!   1000 + `time`. Should a `visitId` not be a start time within a day of `date`, midnight UTC
//!   of `date` + `time` is used instead and counted in the notes.
//! * `searchKeyword` → a `search` event (`gms-{line}-search`).
//! * `eCommerceAction_type` (Google Analytics' product action): 1 (click through a product
//!   list) → click, 2 (product detail view) → view, 3 (add to cart) → cart_add, 4 (remove from
//!   cart) → cart_remove, 6 (completed purchase) → purchase. 0 (no product action), 5 (checkout
//!   step), 7 (refund) and 8 (checkout option) are skipped as "not a shopper behaviour".
//!   Event id `gms-{line}`.
//! * Product: `productSKU` → id; `v2ProductCategory` cleaned by [`clean_category`];
//!   `productPrice` is in micros (÷ 1,000,000).
//! * Purchase rows with the same visit and `transactionId` are one purchase event (order id
//!   `transactionId`, or `gms-{visitId}` without one), each row an item with quantity
//!   `productQuantity` (1 when empty); currency `currencyCode` (USD when empty: the file's only
//!   currency).

use std::collections::HashMap;
use std::io::Read;

use crate::source::reader::*;
use crate::values::{parse_micros, parse_yyyymmdd};

const COLUMNS: [&str; 11] = [
    "visitId",
    "date",
    "time",
    "searchKeyword",
    "eCommerceAction_type",
    "productSKU",
    "v2ProductCategory",
    "productPrice",
    "productQuantity",
    "currencyCode",
    "transactionId",
];

const DAY_MS: i64 = 86_400_000;

/// Reads a Google Merchandise Store sessions file; see the module documentation for the mapping.
pub fn parse<R: Read>(input: R, limit: Option<u64>) -> Result<Parsed, InputError> {
    // Purchases being grouped: (visit, order id) → index in `parsed.events`.
    let mut orders: HashMap<(String, String), usize> = HashMap::new();
    read_rows(input, &COLUMNS, limit, |row, parsed| {
        read_row(row, parsed, &mut orders)
    })
}

fn read_row(
    row: &Row<'_>,
    parsed: &mut Parsed,
    orders: &mut HashMap<(String, String), usize>,
) -> Result<(), RowError> {
    let line = row.line;
    let keyword = row.get("searchKeyword");
    let action_text = row.get("eCommerceAction_type");
    let action: u8 = if action_text.is_empty() {
        0
    } else {
        action_text.parse().map_err(|_| {
            (
                "bad eCommerceAction_type",
                format!("eCommerceAction_type {action_text:?}"),
            )
        })?
    };
    let kind = match action {
        0 => None,
        1 => Some(EventType::Click),
        2 => Some(EventType::View),
        3 => Some(EventType::CartAdd),
        4 => Some(EventType::CartRemove),
        6 => Some(EventType::Purchase),
        5 | 7 | 8 => None,
        other => {
            return Err((
                "bad eCommerceAction_type",
                format!("eCommerceAction_type {other} is not a Google Analytics product action"),
            ))
        }
    };
    if kind.is_none() && keyword.is_empty() {
        parsed.skip(match action {
            5 => "not a shopper behaviour (eCommerceAction_type 5: checkout step)",
            7 => "not a shopper behaviour (eCommerceAction_type 7: refund)",
            8 => "not a shopper behaviour (eCommerceAction_type 8: checkout option)",
            _ => "not a shopper behaviour (eCommerceAction_type 0: no product action, no search)",
        });
        return Ok(());
    }

    let visit = row.get("visitId");
    if visit.is_empty() {
        return Err(("missing field", "visitId is empty".into()));
    }
    let visit_start_s: i64 = visit
        .parse()
        .ok()
        .filter(|s: &i64| *s >= 0 && is_valid_shopper_id(visit))
        .ok_or_else(|| ("bad visitId", format!("visitId {visit:?}")))?;
    let date_ms = parse_yyyymmdd(row.get("date"))
        .ok_or_else(|| ("bad date", format!("date {:?}", row.get("date"))))?;
    let time_text = row.get("time");
    let offset_ms: i64 = time_text
        .parse()
        .ok()
        .filter(|t: &i64| *t >= 0)
        .ok_or_else(|| ("bad time", format!("time {time_text:?}")))?;
    let timestamp_ms = hit_timestamp_ms(visit_start_s, date_ms, offset_ms).unwrap_or_else(|| {
        parsed.note("visitId is not a start time on the row's date: timestamp = date + time");
        date_ms.saturating_add(offset_ms)
    });

    let base = Event {
        session_id: Some(visit.to_string()),
        ..Event::new(
            EventType::Search,
            visit.to_string(),
            String::new(),
            timestamp_ms,
            line,
        )
    };

    // Read the product first so that a bad product field rejects the whole row.
    let product = match kind {
        Some(_) => Some(read_product(row)?),
        None => None,
    };

    if !keyword.is_empty() {
        parsed.events.push(Event {
            event_id: format!("gms-{line}-search"),
            query: Some(keyword.to_string()),
            ..base.clone()
        });
    }
    let (Some(kind), Some(product)) = (kind, product) else {
        return Ok(());
    };
    if kind != EventType::Purchase {
        parsed.events.push(Event {
            kind,
            event_id: format!("gms-{line}"),
            product: Some(product),
            ..base
        });
        return Ok(());
    }

    let quantity_text = row.get("productQuantity");
    let quantity: u32 = if quantity_text.is_empty() {
        parsed.note("purchase without productQuantity: quantity 1");
        1
    } else {
        quantity_text
            .parse()
            .ok()
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| {
                (
                    "bad productQuantity",
                    format!("productQuantity {quantity_text:?}"),
                )
            })?
    };
    let item = Line { product, quantity };
    let transaction = row.get("transactionId");
    let order_id = if transaction.is_empty() {
        format!("gms-{visit}")
    } else if is_valid_id(transaction) {
        transaction.to_string()
    } else {
        return Err((
            "bad transactionId",
            format!("transactionId {transaction:?}"),
        ));
    };
    let key = (visit.to_string(), order_id.clone());
    if let Some(&at) = orders.get(&key) {
        if let Some(order) = parsed.events.get_mut(at) {
            order.timestamp_ms = order.timestamp_ms.min(timestamp_ms);
            order.items.get_or_insert_with(Vec::new).push(item);
            parsed.note("purchase row added to the order of an earlier row");
            return Ok(());
        }
    }
    let currency = match row.get("currencyCode") {
        "" => {
            parsed.note("purchase without currencyCode: USD");
            "USD".to_string()
        }
        code => code.to_string(),
    };
    orders.insert(key, parsed.events.len());
    parsed.events.push(Event {
        kind,
        event_id: format!("gms-{line}"),
        items: Some(vec![item]),
        order_id: Some(order_id),
        currency: Some(currency),
        ..base
    });
    Ok(())
}

fn read_product(row: &Row<'_>) -> Result<Product, RowError> {
    let sku = row.required("productSKU", "bad productSKU", is_valid_product_id)?;
    let price_text = row.get("productPrice");
    let price = if price_text.is_empty() {
        None
    } else {
        Some(
            parse_micros(price_text)
                .ok_or_else(|| ("bad productPrice", format!("productPrice {price_text:?}")))?,
        )
    };
    let (category, brand) = clean_category(row.get("v2ProductCategory"));
    let category = match category {
        Some(c) => name_field(&c).map_err(|e| ("bad v2ProductCategory", e))?,
        None => None,
    };
    let brand = match brand {
        Some(b) => name_field(&b).map_err(|e| ("bad v2ProductCategory", e))?,
        None => None,
    };
    Ok(Product {
        id: sku.to_string(),
        category,
        brand,
        price,
    })
}

/// The timestamp of a hit: the visit start (`visitId`, Unix seconds) plus the hit's offset,
/// when that start lies within a day of the row's `date` (given as its midnight UTC; the
/// store's own day is Pacific time, 7–8 hours behind). `None` otherwise.
pub fn hit_timestamp_ms(
    visit_start_s: i64,
    date_midnight_utc_ms: i64,
    offset_ms: i64,
) -> Option<i64> {
    let start_ms = visit_start_s.checked_mul(1000)?;
    let earliest = date_midnight_utc_ms - DAY_MS / 2;
    let latest = date_midnight_utc_ms + DAY_MS + DAY_MS / 2;
    if (earliest..latest).contains(&start_ms) {
        start_ms.checked_add(offset_ms)
    } else {
        None
    }
}

/// Cleans a `v2ProductCategory` into (category, brand):
///
/// * `(not set)`, empty, and unfilled page templates such as `${escCatTitle}` → no category;
/// * the navigation root `Home/` is dropped, slashes at either end are trimmed and empty path
///   parts removed: `Home/Apparel/Men's/Men's-T-Shirts/` → `Apparel/Men's/Men's-T-Shirts`;
/// * `Home/Brands/X/` and `Home/Shop by Brand/X/` are the same store section: both become
///   `Shop by Brand/X`, and `X` is the brand.
pub fn clean_category(raw: &str) -> (Option<String>, Option<String>) {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("(not set)") || raw.contains("${") {
        return (None, None);
    }
    let mut parts: Vec<&str> = raw
        .split('/')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.first() == Some(&"Home") {
        parts.remove(0);
    }
    if parts.first() == Some(&"Brands") {
        parts[0] = "Shop by Brand";
    }
    if parts.is_empty() {
        return (None, None);
    }
    let brand = match parts.as_slice() {
        ["Shop by Brand", brand, ..] => Some((*brand).to_string()),
        _ => None,
    };
    (Some(parts.join("/")), brand)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header and, unchanged, lines 2 (a page hit without product action), 28 (the first
    /// click), 194 (the first product detail view), 727 (the first add to cart), 927 (the first
    /// checkout step), 1085 (the first purchase) and 3784 (the only remove from cart) of
    /// `data/google-merch-store-sessions.csv`. In the slice they are lines 2 to 8.
    fn slice() -> String {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/google-merch-store-sessions.csv"
        ))
        .expect("data/google-merch-store-sessions.csv is in the repo");
        let lines: Vec<&str> = text.lines().collect();
        [1, 2, 28, 194, 727, 927, 1085, 3784]
            .iter()
            .map(|n| lines[n - 1])
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn categories_are_cleaned() {
        let c = |s| clean_category(s);
        assert_eq!(c("Home/Drinkware/"), (Some("Drinkware".into()), None));
        assert_eq!(
            c("Home/Apparel/Men's/Men's-T-Shirts/"),
            (Some("Apparel/Men's/Men's-T-Shirts".into()), None)
        );
        assert_eq!(
            c("Home/Shop by Brand/YouTube/"),
            (Some("Shop by Brand/YouTube".into()), Some("YouTube".into()))
        );
        assert_eq!(
            c("Home/Brands/Android/"),
            (Some("Shop by Brand/Android".into()), Some("Android".into()))
        );
        assert_eq!(
            c("Home/Shop by Brand/"),
            (Some("Shop by Brand".into()), None)
        );
        assert_eq!(c("Nest-USA"), (Some("Nest-USA".into()), None));
        assert_eq!(
            c("Wearables/Men's T-Shirts/"),
            (Some("Wearables/Men's T-Shirts".into()), None)
        );
        assert_eq!(c("(not set)"), (None, None));
        assert_eq!(c("${escCatTitle}"), (None, None));
        assert_eq!(c("Home/"), (None, None));
        assert_eq!(c(""), (None, None));
    }

    #[test]
    fn hit_time_is_visit_start_plus_offset() {
        // Line 2: visitId 1473757371, date 20160913, time 122213.
        let date = parse_yyyymmdd("20160913").expect("date");
        assert_eq!(
            hit_timestamp_ms(1_473_757_371, date, 122_213),
            Some(1_473_757_493_213)
        );
        // A visit starting in the evening (Pacific) of the 12th is the 13th in UTC: still fine.
        assert!(hit_timestamp_ms(1_473_724_800 + 10 * 3600, date, 0).is_some());
        // A visitId that is no start time near the date.
        assert_eq!(hit_timestamp_ms(1_000_000, date, 5), None);
    }

    #[test]
    fn real_rows_become_events() {
        let parsed = parse(slice().as_bytes(), None).expect("readable");
        assert_eq!(parsed.rows, 7);
        assert!(parsed.bad_rows.is_empty(), "{:?}", parsed.bad_rows);
        assert_eq!(
            parsed.skipped.get(
                "not a shopper behaviour (eCommerceAction_type 0: no product action, no search)"
            ),
            Some(&1)
        );
        assert_eq!(
            parsed
                .skipped
                .get("not a shopper behaviour (eCommerceAction_type 5: checkout step)"),
            Some(&1)
        );
        let kinds: Vec<_> = parsed.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                EventType::Click,
                EventType::View,
                EventType::CartAdd,
                EventType::Purchase,
                EventType::CartRemove,
            ]
        );
        let view = &parsed.events[1];
        assert_eq!(view.shopper_id, "1486988717");
        assert_eq!(view.session_id.as_deref(), Some("1486988717"));
        assert_eq!(view.event_id, "gms-4");
        // visitId 1486988717 s + time 42526 ms.
        assert_eq!(view.timestamp_ms, 1_486_988_717_000 + 42_526);
        let p = view.product.as_ref().expect("product");
        assert_eq!(p.id, "GGOEGAAX0613");
        assert_eq!(p.category.as_deref(), Some("Apparel/Kid's/Kid's-Infant"));
        // productPrice 19190000 micros.
        assert_eq!(p.price, Some(19.19));

        let cart = parsed.events[2].product.as_ref().expect("product");
        assert_eq!(cart.id, "GGOENEBJ079499");
        assert_eq!(cart.category.as_deref(), Some("Nest/Nest-USA"));
        assert_eq!(cart.price, Some(149.0));

        let purchase = &parsed.events[3];
        assert_eq!(purchase.shopper_id, "1489992840");
        assert_eq!(purchase.order_id.as_deref(), Some("ORD201703201805"));
        assert_eq!(purchase.currency.as_deref(), Some("USD"));
        let items = purchase.items.as_ref().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].product.id, "GGOENEBB078899");
        assert_eq!(items[0].product.category.as_deref(), Some("Nest-USA"));
        assert_eq!(items[0].product.price, Some(119.0));
        assert_eq!(items[0].quantity, 1);
        assert_eq!(purchase.timestamp_ms, 1_489_992_840_000);

        // "(not set)" category: the product has none.
        let removed = parsed.events[4].product.as_ref().expect("product");
        assert_eq!(removed.category, None);
        assert_eq!(removed.price, Some(16.99));
    }

    #[test]
    fn search_keyword_and_grouped_purchases() {
        let header = COLUMNS.join(",");
        let text = format!(
            "{header}\n\
             1489992840,20170320,0,nest cam,0,,,,,,\n\
             1489992840,20170320,5000,,6,SKU-A,Home/Nest/Nest-USA/,119000000,1,USD,ORD1\n\
             1489992840,20170320,5001,,6,SKU-B,Home/Bags/,3500000,50,USD,ORD1\n\
             1489992840,20170320,5002,,6,SKU-C,Home/Bags/,3500000,0,USD,ORD1\n\
             1489992840,20170320,6000,,5,SKU-C,Home/Bags/,3500000,,USD,\n\
             1489992840,20170320,7000,,9,SKU-C,Home/Bags/,3500000,,USD,\n\
             1489992840,20170320,7000,,2,SKU-C,Home/Bags/,3.5,,USD,\n"
        );
        let parsed = parse(text.as_bytes(), None).expect("readable");
        assert_eq!(parsed.rows, 7);
        assert_eq!(parsed.events.len(), 2);
        let search = &parsed.events[0];
        assert_eq!(search.kind, EventType::Search);
        assert_eq!(search.query.as_deref(), Some("nest cam"));
        assert_eq!(search.event_id, "gms-2-search");
        let order = &parsed.events[1];
        assert_eq!(order.event_id, "gms-3");
        let items = order.items.as_ref().expect("items");
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].quantity, 50);
        assert_eq!(items[1].product.price, Some(3.5));
        let bad = parsed.bad_row_lines();
        assert_eq!(
            bad,
            vec![
                (5, "bad productQuantity"),
                (7, "bad eCommerceAction_type"),
                (8, "bad productPrice")
            ]
        );
        assert_eq!(
            parsed
                .skipped
                .get("not a shopper behaviour (eCommerceAction_type 5: checkout step)"),
            Some(&1)
        );
    }
}
