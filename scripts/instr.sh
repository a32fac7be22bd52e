#!/usr/bin/env bash
# Instructions per message on the fast path and the full path, for stacks
# of 4, 8 and 12 layers (fifo, then `pass` layers that do nothing), static
# and dynamic compositions. Counts with cachegrind (no hardware counters
# needed): each configuration runs at two message counts and the
# difference is divided by the extra messages, so setup cancels out. One
# message = a cast at member 0, its frame, its delivery at member 1, plus
# its share of the stability gossip.
#
#   scripts/instr.sh            # needs valgrind (apt-get install -y valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 1; }
cargo build --release --example accel_cost -q
bin=target/release/examples/accel_cost
A=2000
B=12000
irefs() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$@" 2>&1 >/dev/null \
        | sed -n 's/.*I *refs: *//p' | tr -d ','
}
printf '%-8s %-8s %6s %6s  %s\n' layers compose fast full "fast/full"
for comp in static dynamic; do
    for layers in 4 8 12; do
        out=()
        for path in fast full; do
            a=$(irefs "$layers" "$comp" "$path" "$A")
            b=$(irefs "$layers" "$comp" "$path" "$B")
            out+=($(( (b - a) / (B - A) )))
        done
        printf '%-8s %-8s %6d %6d  %.2f\n' "$layers" "$comp" "${out[0]}" "${out[1]}" \
            "$(echo "${out[0]} / ${out[1]}" | bc -l)"
    done
done
