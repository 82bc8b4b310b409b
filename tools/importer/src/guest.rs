//! The guest ids of a live replay: each data file's user id becomes a stable, random-looking guest id.
//!
//! A storefront's guest ids are long random strings, and the live route rejects short ones; the data
//! sets' user ids are short numbers (`515136153`, `uci-12748`). So `--live` sends every event of a
//! user id under [`guest_id`]: the first 32 hex digits (128 bits) of
//! SHA-256(`affinity-import/{format}/{user id}`). The same file always gives the same guest ids (a
//! re-run is recognised as duplicates); the report prints both ids side by side (`user_id`,
//! `shopper_id`). This is a mapping of public pseudonyms, not a secret: anyone with the file can
//! compute it. The import route keeps the file's ids.

use sha2::{Digest, Sha256};

/// Hex digits of a mapped guest id.
pub const GUEST_ID_LEN: usize = 32;

/// The guest id the live route sends `user_id` of a file of `format` (its `--format` name) under.
pub fn guest_id(format: &str, user_id: &str) -> String {
    let digest = Sha256::digest(format!("affinity-import/{format}/{user_id}").as_bytes());
    hex::encode(&digest[..GUEST_ID_LEN / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_long_and_distinct() {
        let a = guest_id("rees46", "515136153");
        assert_eq!(a, guest_id("rees46", "515136153"));
        assert_eq!(a.len(), GUEST_ID_LEN);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, guest_id("rees46", "515136154"));
        assert_ne!(a, guest_id("uci", "515136153"));
        // SHA-256("affinity-import/rees46/515136153"), first 16 bytes.
        assert_eq!(a, "9167029e9090f2b8d43cc5e60fffa85b");
    }
}
