//! BigCommerce's app OAuth and signed payloads (filled in below).
