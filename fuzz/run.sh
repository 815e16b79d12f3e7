#!/usr/bin/env bash
# Fuzzes farmgate for a bounded time per target (default 60 s each):
#   bash fuzz/run.sh                  # every target, 60 s each
#   bash fuzz/run.sh 300 framing      # one target, 5 minutes
# Targets: rules (normalisation and evaluation), config, units,
# status_ranges, cache_control, affinity, framing.
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz when it is missing. The committed seeds in fuzz/corpus/<target>
# are read; what the fuzzer finds grows fuzz/target/corpus/<target> (kept
# between runs, not committed). A crash lands in fuzz/artifacts/<target> and
# the script exits non-zero: fix it, add the input to fuzz/corpus/<target>
# and a regression test beside the parser. Without nightly, the same
# properties run on stable over the committed corpus:
# `cargo test --test rules_fuzz_corpus --test fuzz_corpus`.
# SANITIZER=none skips AddressSanitizer (faster; safe Rust needs it little).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(rules config units status_ranges cache_control affinity framing proxy_protocol)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz/run.sh: no nightly toolchain; install one with 'rustup toolchain install nightly'," >&2
    echo "or run the stable corpus replay: cargo test --test rules_fuzz_corpus --test fuzz_corpus" >&2
    exit 2
fi
if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${seconds}s"
    mkdir -p "target/corpus/$t"
    # -max_len: a request line plus a few headers for rules; a small config
    # or request pipeline for the others. Longer inputs only slow the
    # search down. libFuzzer writes new units to the first directory.
    max_len=4096
    [ "$t" = rules ] && max_len=512
    cargo +nightly fuzz run --sanitizer "${SANITIZER:-address}" "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
        tee "target/fuzz-$t.log" | grep -E '^(#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::peak_rss|==|SUMMARY|Done)' || true
    if grep -qE 'ERROR: libFuzzer|panicked|SUMMARY: ' "target/fuzz-$t.log"; then
        echo "fuzz/run.sh: $t found a failure; see fuzz/artifacts/$t and target/fuzz-$t.log" >&2
        exit 1
    fi
done
