//! The rules fuzz target's properties on stable Rust: every input of the
//! committed seed corpus (fuzz/corpus/rules) and a fixed-seed batch of
//! mutations of it, so `cargo test` guards what the fuzzer found.
//! Real fuzzing: `bash fuzz/run.sh`.
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/check.rs"]
mod check;

fn corpus() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = std::fs::read_dir("fuzz/corpus/rules")
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    out
}

#[test]
fn seed_corpus_holds_the_properties() {
    let seeds = corpus();
    assert!(seeds.len() >= 10, "the seed corpus is missing");
    for s in &seeds {
        check::check(s);
    }
}

#[test]
fn mutated_corpus_holds_the_properties() {
    const ALPHABET: &[u8] = b"/%.\\?&=#aAdDmMiInN0123456789eEfF2:-_~ \t\n";
    let seeds = corpus();
    let mut rng = fastrand::Rng::with_seed(0x5eed_f00d);
    for _ in 0..20_000 {
        let mut input = seeds[rng.usize(..seeds.len())].clone();
        for _ in 0..rng.usize(1..6) {
            let at = rng.usize(..=input.len());
            match rng.u8(..4) {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 if at < input.len() => input[at] = ALPHABET[rng.usize(..ALPHABET.len())],
                2 => {
                    let from = rng.usize(..seeds.len());
                    let piece = &seeds[from][..seeds[from].len().min(8)];
                    input.splice(at..at, piece.iter().copied());
                }
                _ => input.insert(at, ALPHABET[rng.usize(..ALPHABET.len())]),
            }
        }
        check::check(&input);
    }
}
