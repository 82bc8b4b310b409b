//! REES46 / Open CDP "eCommerce behavior data from multi category store" (one row per event).
//!
//! Columns: `event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session`.
//!
//! * `event_time` `2019-10-01 00:00:00 UTC` → timestamp.
//! * `event_type` `view` → view, `cart` → cart_add, `remove_from_cart` → cart_remove,
//!   `purchase` → purchase with one item (quantity 1, `order_id` = `{user_session}-{line}`,
//!   currency USD). Any other type is a bad row.
//! * `product_id` → product id; `category_code` (e.g. `computers.notebook`) → category, or the
//!   19-digit `category_id` (kept as a string) when the code is empty; `brand` → brand (omitted
//!   when empty); `price` → price.
//! * `user_id` → shopper id; `user_session` → session id.
//! * event id `rees46-{line}`.

use std::io::Read;

use crate::source::reader::*;
use crate::values::{parse_price, parse_utc_datetime};

const COLUMNS: [&str; 9] = [
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
];

/// Reads a REES46 file; see the module documentation for the mapping.
pub fn parse<R: Read>(input: R, limit: Option<u64>) -> Result<Parsed, InputError> {
    read_rows(input, &COLUMNS, limit, |row, parsed| {
        let event = event_from_row(row, parsed)?;
        parsed.events.push(event);
        Ok(())
    })
}

fn event_from_row(row: &Row<'_>, parsed: &mut Parsed) -> Result<Event, RowError> {
    let line = row.line;
    let kind = match row.get("event_type") {
        "view" => EventType::View,
        "cart" => EventType::CartAdd,
        "remove_from_cart" => EventType::CartRemove,
        "purchase" => EventType::Purchase,
        "" => return Err(("missing field", "event_type is empty".into())),
        other => return Err(("unknown event_type", format!("event_type {other:?}"))),
    };
    let timestamp_ms = parse_utc_datetime(row.get("event_time")).ok_or_else(|| {
        (
            "bad event_time",
            format!("event_time {:?}", row.get("event_time")),
        )
    })?;
    let product_id = row.required("product_id", "bad product_id", is_valid_product_id)?;
    let shopper_id = row.required("user_id", "bad user_id", is_valid_shopper_id)?;
    let price_text = row.get("price");
    let price = if price_text.is_empty() {
        return Err(("missing field", "price is empty".into()));
    } else {
        parse_price(price_text).ok_or_else(|| ("bad price", format!("price {price_text:?}")))?
    };
    let code = name_field(row.get("category_code")).map_err(|e| ("bad category_code", e))?;
    let category = match code {
        Some(code) => Some(code),
        None => name_field(row.get("category_id")).map_err(|e| ("bad category_id", e))?,
    };
    let brand = name_field(row.get("brand")).map_err(|e| ("bad brand", e))?;
    let session_id = match row.get("user_session") {
        "" => None,
        s if is_valid_id(s) => Some(s.to_string()),
        _ => {
            parsed.note("user_session not usable as a session id: sent without session");
            None
        }
    };

    let mut event = Event {
        session_id: session_id.clone(),
        ..Event::new(
            kind,
            shopper_id.to_string(),
            format!("rees46-{line}"),
            timestamp_ms,
            line,
        )
    };
    if kind == EventType::Purchase {
        event.items = Some(vec![Line {
            product: Product {
                id: product_id.to_string(),
                category,
                brand,
                price: Some(price),
            },
            quantity: 1,
        }]);
        event.order_id = Some(match session_id {
            Some(session) => format!("{session}-{line}"),
            None => format!("rees46-{line}"),
        });
        event.currency = Some("USD".into());
    } else {
        event.product = Some(Product {
            id: product_id.to_string(),
            category,
            brand,
            price: Some(price),
        });
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header and lines 2, 3, 4, 164 (the first purchase) and 333 (the first cart) of
    /// `data/rees46-2019-oct-sample.csv`, unchanged but for the line ends (the file has CRLF).
    const SLICE: &str = "\
event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-8bb3-4e00-8c23-a032dfed738c
2019-10-01 00:00:00 UTC,view,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a-4708-9857-6336556b0fcc
2019-10-01 00:00:01 UTC,view,17200506,2053013559792632471,furniture.living_room.sofa,,543.10,519107250,566511c2-e2e3-422b-b695-cf8e6e792ca8
2019-10-01 00:02:14 UTC,purchase,1004856,2053013555631882655,electronics.smartphone,samsung,130.76,543272936,8187d148-3c41-46d4-b0c0-9c08cd9dc564
2019-10-01 00:05:14 UTC,cart,5100816,2053013553375346967,,xiaomi,29.51,550121407,6f623695-9581-4633-813f-825b8760c7ae
";

    #[test]
    fn real_rows_become_events() {
        let parsed = parse(SLICE.as_bytes(), None).expect("readable");
        assert_eq!(parsed.rows, 5);
        assert!(parsed.bad_rows.is_empty(), "{:?}", parsed.bad_rows);
        let e = &parsed.events;
        assert_eq!(e.len(), 5);

        assert_eq!(e[0].kind, EventType::View);
        assert_eq!(e[0].shopper_id, "541312140");
        assert_eq!(e[0].event_id, "rees46-2");
        assert_eq!(e[0].timestamp_ms, 1_569_888_000_000);
        assert_eq!(
            e[0].session_id.as_deref(),
            Some("72d76fde-8bb3-4e00-8c23-a032dfed738c")
        );
        let p0 = e[0].product.as_ref().expect("product");
        assert_eq!(p0.id, "44600062");
        // No category_code: the 19-digit category_id, kept exactly (it does not fit an f64).
        assert_eq!(p0.category.as_deref(), Some("2103807459595387724"));
        assert_eq!(p0.brand.as_deref(), Some("shiseido"));
        assert_eq!(p0.price, Some(35.79));

        let p1 = e[1].product.as_ref().expect("product");
        assert_eq!(
            p1.category.as_deref(),
            Some("appliances.environment.water_heater")
        );
        assert_eq!(p1.price, Some(33.2));

        // Empty brand is omitted.
        let p2 = e[2].product.as_ref().expect("product");
        assert_eq!(p2.brand, None);
        assert_eq!(e[2].timestamp_ms, 1_569_888_001_000);

        assert_eq!(e[3].kind, EventType::Purchase);
        assert!(e[3].product.is_none());
        assert_eq!(
            e[3].order_id.as_deref(),
            Some("8187d148-3c41-46d4-b0c0-9c08cd9dc564-5")
        );
        assert_eq!(e[3].currency.as_deref(), Some("USD"));
        let items = e[3].items.as_ref().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].product.id, "1004856");
        assert_eq!(items[0].quantity, 1);
        assert_eq!(items[0].product.price, Some(130.76));
        assert_eq!(items[0].product.brand.as_deref(), Some("samsung"));

        assert_eq!(e[4].kind, EventType::CartAdd);
        assert_eq!(e[4].shopper_id, "550121407");
        let p4 = e[4].product.as_ref().expect("product");
        assert_eq!(p4.category.as_deref(), Some("2053013553375346967"));
        assert_eq!(p4.brand.as_deref(), Some("xiaomi"));
    }

    #[test]
    fn bad_values_are_reported_with_their_line() {
        let text = "\
event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
2019-10-01 25:00:00 UTC,view,1,2,,,1.00,5,s
2019-10-01 00:00:00 UTC,wishlist,1,2,,,1.00,5,s
2019-10-01 00:00:00 UTC,view,1,2,,,abc,5,s
2019-10-01 00:00:00 UTC,view,1,2,,,-3,5,s
2019-10-01 00:00:00 UTC,view,1,2,,,1.00,,s
2019-10-01 00:00:00 UTC,view,1,2,,,1.00,a b,s
2019-10-01 00:00:00 UTC,view,1,2,,,1.00,5,
";
        let parsed = parse(text.as_bytes(), None).expect("readable");
        let bad = parsed.bad_row_lines();
        assert_eq!(
            bad,
            vec![
                (2, "bad event_time"),
                (3, "unknown event_type"),
                (4, "bad price"),
                (5, "bad price"),
                (6, "missing field"),
                (7, "bad user_id"),
            ]
        );
        // A row without a session is still an event.
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(parsed.events[0].session_id, None);
    }
}
