//! cargo-fuzz target `proxy_protocol`; the properties live in
//! `../parsers.rs`, shared with the stable corpus replay in
//! `tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../parsers.rs"]
mod parsers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| parsers::proxy_protocol(data));
