#!/usr/bin/env bash
# Runs every libFuzzer target for a while (default 60 s each) from the
# seed corpus. Needs the nightly toolchain and cargo-fuzz (installed here
# if missing). Findings land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
for t in $(ls fuzz/fuzz_targets | sed 's/\.rs$//'); do
    # Work on a copy of the checked-in corpus: libFuzzer adds what it finds.
    work="fuzz/work/$t"
    mkdir -p "$work"
    cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
    echo "== $t ($secs s)"
    cargo +nightly fuzz run "$t" "$work" -- -max_total_time="$secs" -max_len=4096 2>&1 |
        grep -E "^#[0-9]+ +DONE|Done [0-9]+ runs|ERROR|panicked" || true
done
