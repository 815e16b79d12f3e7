//! The parser fuzz targets on stable: every committed seed in
//! `fuzz/corpus/<target>/` is replayed through the same properties the
//! cargo-fuzz targets check (`fuzz/parsers.rs`), then a bounded number of
//! random mutations of those seeds (fixed seed, so a failure reproduces;
//! `FUZZ_SEED` and `FUZZ_MUTATIONS` change it). Real fuzzing is
//! `bash fuzz/run.sh` (nightly).
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/parsers.rs"]
mod parsers;

use std::path::Path;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        out.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// One random edit: flip, insert, delete, duplicate a span, or splice in
/// part of another seed.
fn mutate(rng: &mut fastrand::Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.usize(1..4) {
        let at = rng.usize(..=v.len());
        match rng.u8(..5) {
            0 if !v.is_empty() => {
                let i = rng.usize(..v.len());
                v[i] ^= 1 << rng.u8(..8);
            }
            1 => {
                let alphabet = b"\r\n\t ,;=\"-:0123456789azAZ\x00\xff";
                v.insert(at, alphabet[rng.usize(..alphabet.len())]);
            }
            2 if at < v.len() => {
                let end = rng.usize(at..=v.len());
                v.drain(at..end);
            }
            3 if at < v.len() => {
                let end = rng.usize(at..=v.len().min(at + 64));
                let span = v[at..end].to_vec();
                v.splice(at..at, span);
            }
            _ if !other.is_empty() => {
                let s = rng.usize(..other.len());
                let e = rng.usize(s..=other.len().min(s + 64));
                v.splice(at..at, other[s..e].iter().copied());
            }
            _ => {}
        }
    }
    v
}

#[test]
fn seeds_and_mutations_keep_every_property() {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let rounds: usize = std::env::var("FUZZ_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    for (name, check) in parsers::TARGETS {
        let mut seeds = corpus(name);
        let mut rounds = rounds;
        if *name == "http1" {
            // The differential test of the HTTP/1 engine: framing's seeds
            // too, and more mutations (each is cheap).
            seeds.extend(corpus("framing"));
            rounds *= 30;
        }
        for s in &seeds {
            check(s);
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        for i in 0..rounds {
            let a = &seeds[rng.usize(..seeds.len())];
            let b = &seeds[rng.usize(..seeds.len())];
            let input = mutate(&mut rng, a, b);
            let r = std::panic::catch_unwind(|| check(&input));
            assert!(
                r.is_ok(),
                "{name}: mutation {i} (FUZZ_SEED={seed}) failed on {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}
