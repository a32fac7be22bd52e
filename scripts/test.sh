#!/usr/bin/env bash
# Every check CI runs: formatting, lints, then all tests (unit, wire
# property tests, simulator seeds, allocation count) in release mode, where
# the simulator runs fast. TUTTI_SOAK=<n> raises the simulator seed count.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test --release"
cargo test --workspace --release
