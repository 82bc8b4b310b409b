//! The platforms' OAuth and request-signing rules: Shopify ([`shopify`]) and BigCommerce
//! ([`bigcommerce`]). Pure functions over what arrived and the app's credentials; the HTTP calls
//! (token exchange) belong to the consent function.

pub mod bigcommerce;
pub mod shopify;

/// A secret from the environment (a client secret). Its `Debug` and `Display` print nothing of it, so it
/// cannot reach a log by accident; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for signing and for the token exchange only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An app's credentials on a platform (from the environment, read once at cold start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredentials {
    /// The public client id (Shopify: API key; BigCommerce: client id).
    pub client_id: String,
    /// The client secret: signs Shopify's redirects and webhooks and BigCommerce's payloads.
    pub client_secret: Secret,
}

/// Splits a raw query string (`a=1&b=x%20y`) into decoded pairs, in order, as web frameworks do before
/// platforms' libraries verify them: `+` is a space, percent escapes are decoded (invalid UTF-8 is
/// replaced), a pair without `=` has an empty value, empty pairs are skipped.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The single value of `name` among `pairs`: `None` when absent or repeated (a repeated parameter is
/// ambiguous, so it is treated as missing and the request refused).
pub fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut found = pairs.iter().filter(|(k, _)| k == name);
    let first = found.next()?;
    found.next().is_none().then_some(first.1.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_plus_and_percent_and_keep_order() {
        assert_eq!(
            parse_query("b=x+y&a=1%262&ids[]=2&ids[]=1&flag&&c="),
            vec![
                ("b".into(), "x y".into()),
                ("a".into(), "1&2".into()),
                ("ids[]".into(), "2".into()),
                ("ids[]".into(), "1".into()),
                ("flag".into(), String::new()),
                ("c".into(), String::new()),
            ]
        );
    }

    #[test]
    fn repeated_parameters_count_as_missing() {
        let q = parse_query("a=1&a=2&b=3");
        assert_eq!(single(&q, "a"), None);
        assert_eq!(single(&q, "b"), Some("3"));
        assert_eq!(single(&q, "c"), None);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hush");
        assert_eq!(format!("{s:?} {s}"), "Secret(<redacted>) <redacted>");
        assert_eq!(s.expose(), "hush");
    }
}
