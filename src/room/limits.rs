//! The limits the server enforces that the page and the client package apply too
//! (rates, lengths, the in-sync threshold, the report interval's bounds).
//!
//! Their one source is `limits.json` at the root of the repository: `build.rs`
//! writes this module's constants from it, and `clients/js/limits.js`, the ES
//! module the page imports, from the same file, so the two sides cannot disagree
//! (`tests/shared_limits.rs` holds the server to what the page is served).

include!(concat!(env!("OUT_DIR"), "/limits.rs"));
