//! Parsing of the field values the sources share: prices, date-times, quantities.

use time::macros::format_description;
use time::{Date, PrimitiveDateTime};

/// Parses a decimal price (`35.79`, `0`, `1e2`): finite and not negative.
pub fn parse_price(text: &str) -> Option<f64> {
    let value: f64 = text.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value)
}

/// Parses a price given in millionths of the currency unit (`2990000` → 2.99), as Google
/// Analytics exports revenues and prices.
pub fn parse_micros(text: &str) -> Option<f64> {
    let micros: u64 = text.trim().parse().ok()?;
    // Exact up to 2^53 micros (9 billion units): plenty for a product price.
    Some(micros as f64 / 1_000_000.0)
}

/// Parses `YYYY-MM-DD HH:MM:SS`, optionally followed by ` UTC`, as a UTC time, into epoch
/// milliseconds. Also accepts the `M/D/YYYY H:MM` form of spreadsheet exports.
pub fn parse_utc_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text.strip_suffix(" UTC").unwrap_or(text);
    let iso = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let us = format_description!(
        "[month padding:none]/[day padding:none]/[year] [hour padding:none]:[minute]"
    );
    let at = PrimitiveDateTime::parse(text, &iso)
        .or_else(|_| PrimitiveDateTime::parse(text, &us))
        .ok()?;
    let nanos = at.assume_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).ok()
}

/// Parses a `YYYYMMDD` date into the epoch milliseconds of its midnight, UTC.
pub fn parse_yyyymmdd(text: &str) -> Option<i64> {
    let date = Date::parse(text.trim(), &format_description!("[year][month][day]")).ok()?;
    let nanos = date.midnight().assume_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices() {
        assert_eq!(parse_price("35.79"), Some(35.79));
        assert_eq!(parse_price("0.00"), Some(0.0));
        assert_eq!(parse_price("-1"), None);
        assert_eq!(parse_price("NaN"), None);
        assert_eq!(parse_price("inf"), None);
        assert_eq!(parse_price("1,5"), None);
        assert_eq!(parse_price(""), None);
    }

    #[test]
    fn micros() {
        assert_eq!(parse_micros("2990000"), Some(2.99));
        assert_eq!(parse_micros("119000000"), Some(119.0));
        assert_eq!(parse_micros("0"), Some(0.0));
        assert_eq!(parse_micros("-5"), None);
        assert_eq!(parse_micros("2.99"), None);
    }

    #[test]
    fn datetimes() {
        assert_eq!(
            parse_utc_datetime("2019-10-01 00:00:00 UTC"),
            Some(1_569_888_000_000)
        );
        assert_eq!(
            parse_utc_datetime("2011-10-06 16:20:00"),
            Some(1_317_918_000_000)
        );
        assert_eq!(
            parse_utc_datetime("12/1/2010 8:26"),
            Some(1_291_191_960_000)
        );
        assert_eq!(parse_utc_datetime("2019-10-01"), None);
        assert_eq!(parse_utc_datetime("2019-13-01 00:00:00 UTC"), None);
        assert_eq!(parse_utc_datetime("2019-10-01 00:00:00 CET"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(parse_yyyymmdd("20160913"), Some(1_473_724_800_000));
        assert_eq!(parse_yyyymmdd("20161313"), None);
        assert_eq!(parse_yyyymmdd("2016-09-13"), None);
    }
}
