//! cargo-fuzz target `http1`: the HTTP/1 engine's request parsing and body
//! framing against the framing scanner beside httparse (a differential
//! test); the property lives in `../parsers.rs`, shared with the stable
//! corpus replay in `tests/fuzz_corpus.rs`.
#![no_main]

#[path = "../parsers.rs"]
mod parsers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| parsers::http1(data));
