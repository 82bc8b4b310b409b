//! UCI "Online Retail": purchase lines of a UK online retailer (one row per invoice line).
//!
//! Columns: `InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country`.
//!
//! * All lines of an invoice, wherever they are in the file, make one `purchase` event: event id
//!   and order id from `InvoiceNo` (`uci-{InvoiceNo}`), currency GBP, timestamp the earliest
//!   `InvoiceDate` of its lines (read as UTC; the store's clock was UK time, so summer times are
//!   an hour ahead of true UTC).
//! * `CustomerID` (`12923.0`) becomes the customer id `12923` and the shopper id `uci-12923`.
//! * Each line is an item: `StockCode` → id, `UnitPrice` → price, `Quantity` → quantity. The
//!   file has no category or brand: `Description` is a free-text product name, not a category,
//!   so items carry neither.
//! * Skipped with a counted reason: cancellations (`InvoiceNo` starting with `C`), lines
//!   without `CustomerID` (no shopper to attribute them to), lines that are no product
//!   (postage, carriage, fees, discounts, manual and sample lines: `POST`, `DOT`, `C2`, `D`,
//!   `M`, `S`, `CRUK`, `AMAZONFEE`, `BANK CHARGES`, `PADS`, `B`) and non-positive quantities
//!   outside a cancellation (stock adjustments).

use std::collections::HashMap;
use std::io::Read;

use crate::source::reader::*;
use crate::values::{parse_price, parse_utc_datetime};

const COLUMNS: [&str; 6] = [
    "InvoiceNo",
    "StockCode",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
];

/// Stock codes that are charges or adjustments, not products.
const NOT_PRODUCTS: [&str; 11] = [
    "POST",
    "DOT",
    "C2",
    "D",
    "M",
    "S",
    "B",
    "CRUK",
    "AMAZONFEE",
    "BANK CHARGES",
    "PADS",
];

/// Skip reason of a cancellation line.
pub const SKIP_CANCELLATION: &str = "cancellation (InvoiceNo starts with C)";
/// Skip reason of a line without customer.
pub const SKIP_NO_CUSTOMER: &str = "no CustomerID (no shopper to attribute the line to)";
/// Skip reason of a postage, fee or adjustment line.
pub const SKIP_NOT_PRODUCT: &str =
    "not a product (postage, carriage, fee, discount, manual or sample line)";
/// Skip reason of a non-positive quantity on an ordinary invoice.
pub const SKIP_NON_POSITIVE: &str =
    "quantity not positive outside a cancellation (stock adjustment)";

/// Reads a UCI Online Retail file; see the module documentation for the mapping.
pub fn parse<R: Read>(input: R, limit: Option<u64>) -> Result<Parsed, InputError> {
    let mut invoices: HashMap<String, usize> = HashMap::new();
    read_rows(input, &COLUMNS, limit, |row, parsed| {
        read_row(row, parsed, &mut invoices)
    })
}

fn read_row(
    row: &Row<'_>,
    parsed: &mut Parsed,
    invoices: &mut HashMap<String, usize>,
) -> Result<(), RowError> {
    let invoice = row.get("InvoiceNo");
    if invoice.is_empty() {
        return Err(("missing field", "InvoiceNo is empty".into()));
    }
    if invoice.starts_with(['C', 'c']) {
        parsed.skip(SKIP_CANCELLATION);
        return Ok(());
    }
    if !is_valid_id(invoice) {
        return Err(("bad InvoiceNo", format!("InvoiceNo {invoice:?}")));
    }
    let customer_text = row.get("CustomerID");
    if customer_text.is_empty() {
        parsed.skip(SKIP_NO_CUSTOMER);
        return Ok(());
    }
    let customer = parse_customer_id(customer_text)
        .ok_or_else(|| ("bad CustomerID", format!("CustomerID {customer_text:?}")))?;
    let stock_code = row.required("StockCode", "bad StockCode", is_valid_product_id)?;
    if NOT_PRODUCTS
        .iter()
        .any(|c| c.eq_ignore_ascii_case(stock_code))
    {
        parsed.skip(SKIP_NOT_PRODUCT);
        return Ok(());
    }
    let quantity_text = row.get("Quantity");
    let quantity: i64 = quantity_text
        .parse()
        .map_err(|_| ("bad Quantity", format!("Quantity {quantity_text:?}")))?;
    if quantity <= 0 {
        parsed.skip(SKIP_NON_POSITIVE);
        return Ok(());
    }
    let quantity = u32::try_from(quantity)
        .ok()
        .filter(|q| *q <= MAX_QUANTITY)
        .ok_or_else(|| {
            (
                "bad Quantity",
                format!("Quantity {quantity_text:?} is above {MAX_QUANTITY}"),
            )
        })?;
    let price_text = row.get("UnitPrice");
    let price = parse_price(price_text)
        .ok_or_else(|| ("bad UnitPrice", format!("UnitPrice {price_text:?}")))?;
    let date_text = row.get("InvoiceDate");
    let timestamp_ms = parse_utc_datetime(date_text)
        .ok_or_else(|| ("bad InvoiceDate", format!("InvoiceDate {date_text:?}")))?;

    let item = Line {
        product: Product {
            id: stock_code.to_string(),
            category: None,
            brand: None,
            price: Some(price),
        },
        quantity,
    };
    if let Some(&at) = invoices.get(invoice) {
        let Some(order) = parsed.events.get_mut(at) else {
            return Err(("internal", format!("invoice {invoice} lost")));
        };
        if order.customer_id.as_deref() != Some(customer.as_str()) {
            return Err((
                "invoice with two customers",
                format!(
                    "invoice {invoice} belongs to customer {} (line {}), this line says {customer}",
                    order.customer_id.as_deref().unwrap_or("?"),
                    order.line
                ),
            ));
        }
        let other_date = order.timestamp_ms != timestamp_ms;
        order.timestamp_ms = order.timestamp_ms.min(timestamp_ms);
        let items = order.items.get_or_insert_with(Vec::new);
        let repeated = items.contains(&item);
        items.push(item);
        if other_date {
            parsed.note("invoice lines with different InvoiceDate: the earliest is used");
        }
        if repeated {
            parsed.note("line repeated within an invoice: kept as another item");
        }
        return Ok(());
    }
    let shopper_id = format!("uci-{customer}");
    if !is_valid_shopper_id(&shopper_id) {
        return Err(("bad CustomerID", format!("CustomerID {customer_text:?}")));
    }
    invoices.insert(invoice.to_string(), parsed.events.len());
    parsed.events.push(Event {
        customer_id: Some(customer),
        items: Some(vec![item]),
        order_id: Some(invoice.to_string()),
        currency: Some("GBP".into()),
        ..Event::new(
            EventType::Purchase,
            shopper_id,
            format!("uci-{invoice}"),
            timestamp_ms,
            row.line,
        )
    });
    Ok(())
}

/// `12923.0` (a spreadsheet's float) or `12923` → `12923`; anything else (a real fraction,
/// letters, a sign) → `None`.
pub fn parse_customer_id(text: &str) -> Option<String> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let digits = !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit());
    let zeros = fraction.bytes().all(|b| b == b'0');
    (digits && zeros).then(|| whole.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header and lines 2 to 5 of `data/uci-online-retail-sample.csv`, unchanged, then
    /// constructed lines (same shape, values chosen for the cases).
    const SLICE: &str = "\
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
569901,23256,CHILDRENS CUTLERY SPACEBOY ,2,2011-10-06 16:20:00,4.15,12923.0,United Kingdom
565806,23275,SET OF 3 HANGING OWLS OLLIE BEAK,12,2011-09-07 10:51:00,1.25,15594.0,United Kingdom
568198,21407,BROWN CHECK CAT DOORSTOP ,2,2011-09-25 14:52:00,4.25,16771.0,United Kingdom
578044,23033,DRAWER KNOB CERAMIC RED,24,2011-11-22 14:41:00,1.45,13488.0,United Kingdom
569901,22029,SPACEBOY BIRTHDAY CARD,12,2011-10-06 16:20:00,0.42,12923.0,United Kingdom
C569902,23256,CHILDRENS CUTLERY SPACEBOY ,-2,2011-10-06 16:25:00,4.15,12923.0,United Kingdom
569903,23256,CHILDRENS CUTLERY SPACEBOY ,2,2011-10-06 16:26:00,4.15,,United Kingdom
569901,POST,POSTAGE,1,2011-10-06 16:20:00,18.00,12923.0,United Kingdom
569901,22029,SPACEBOY BIRTHDAY CARD,12,2011-10-06 16:19:00,0.42,12923.0,United Kingdom
569901,22030,X,abc,2011-10-06 16:20:00,0.42,12923.0,United Kingdom
569901,22031,X,1,2011-10-06 16:20:00,0.42,12924.0,United Kingdom
569904,22031,X,-4,2011-10-06 16:20:00,0.42,12924.0,United Kingdom
569905,22031,X,1,06.10.2011,0.42,12924.5,United Kingdom
";

    #[test]
    fn invoice_lines_are_grouped_and_cancellations_skipped() {
        let parsed = parse(SLICE.as_bytes(), None).expect("readable");
        assert_eq!(parsed.rows, 13);
        assert_eq!(parsed.events.len(), 4);
        let first = &parsed.events[0];
        assert_eq!(first.kind, EventType::Purchase);
        assert_eq!(first.event_id, "uci-569901");
        assert_eq!(first.order_id.as_deref(), Some("569901"));
        assert_eq!(first.shopper_id, "uci-12923");
        assert_eq!(first.customer_id.as_deref(), Some("12923"));
        assert_eq!(first.currency.as_deref(), Some("GBP"));
        // Earliest InvoiceDate of its lines: 16:19 (line 10), not 16:20.
        assert_eq!(first.timestamp_ms, 1_317_918_000_000 - 60_000);
        let items = first.items.as_ref().expect("items");
        let ids: Vec<_> = items
            .iter()
            .map(|i| (i.product.id.as_str(), i.quantity, i.product.price))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("23256", 2, Some(4.15)),
                ("22029", 12, Some(0.42)),
                ("22029", 12, Some(0.42)),
            ]
        );
        assert!(items
            .iter()
            .all(|i| i.product.category.is_none() && i.product.brand.is_none()));

        assert_eq!(parsed.skipped.get(SKIP_CANCELLATION), Some(&1));
        assert_eq!(parsed.skipped.get(SKIP_NO_CUSTOMER), Some(&1));
        assert_eq!(parsed.skipped.get(SKIP_NOT_PRODUCT), Some(&1));
        assert_eq!(parsed.skipped.get(SKIP_NON_POSITIVE), Some(&1));
        let bad = parsed.bad_row_lines();
        assert_eq!(
            bad,
            vec![
                (11, "bad Quantity"),
                (12, "invoice with two customers"),
                (14, "bad CustomerID"),
            ]
        );
        assert_eq!(
            parsed
                .notes
                .get("line repeated within an invoice: kept as another item"),
            Some(&1)
        );
    }

    #[test]
    fn customer_ids() {
        assert_eq!(parse_customer_id("12923.0").as_deref(), Some("12923"));
        assert_eq!(parse_customer_id("12923").as_deref(), Some("12923"));
        assert_eq!(parse_customer_id("12923.5"), None);
        assert_eq!(parse_customer_id("-1"), None);
        assert_eq!(parse_customer_id(".0"), None);
        assert_eq!(parse_customer_id("1.2E4"), None);
    }
}
