//! The size of a DynamoDB item, counted as DynamoDB counts it against its 400 KB item limit and for
//! write capacity (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>):
//! - an item is the sum of its attributes, each its name's UTF-8 bytes plus its value;
//! - a string: its UTF-8 bytes; a binary: its bytes; a boolean or null: 1 byte;
//! - a number: 1 byte per two significant digits (leading and trailing zeros trimmed), plus 1;
//! - a list or a map: 3 bytes, plus 1 byte per element, plus its elements (in a map, their names
//!   too); a set: the sum of its elements.

use aws_sdk_dynamodb::types::AttributeValue;

use super::attrs::Item;

/// The size of `item`, in bytes, as DynamoDB counts it (see the module).
pub fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    map_size(item)
}

fn map_size(m: &Item) -> usize {
    m.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn number_size(n: &str) -> usize {
    let mantissa = n
        .split(['e', 'E'])
        .next()
        .unwrap_or_default()
        .trim_start_matches(['-', '+']);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0');
    // Trailing zeros of an integer part are significant to the value but DynamoDB trims them too.
    let significant = significant.trim_end_matches('0');
    significant.len().div_ceil(2) + 1
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        // A type this SDK does not know yet: count nothing rather than guess.
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        let item: Item = [
            ("pk".to_string(), AttributeValue::S("ab\u{1F600}".into())), // 2 + 2 + 4
            ("n".to_string(), AttributeValue::N("-0012.3400".into())),   // 1 + (4 digits: 2) + 1
            ("b".to_string(), AttributeValue::B(Blob::new(vec![0u8; 8]))), // 1 + 8
            ("t".to_string(), AttributeValue::Bool(true)),               // 1 + 1
            (
                "l".to_string(),
                AttributeValue::L(vec![AttributeValue::S("xyz".into())]), // 1 + 3 + 1 + 3
            ),
            (
                "m".to_string(),
                AttributeValue::M([("k".to_string(), AttributeValue::N("7".into()))].into()), // 1 + 3 + 1 + 1 + 2
            ),
        ]
        .into();
        assert_eq!(item_size(&item), 8 + 4 + 9 + 2 + 8 + 8);
    }
}
