//! cargo-fuzz target: path normalisation and rule evaluation over an
//! arbitrary request line and headers. The properties live in `check.rs`,
//! shared with the stable corpus replay in `tests/rules_fuzz_corpus.rs`.
#![no_main]

#[path = "../check.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
