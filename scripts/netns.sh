#!/usr/bin/env bash
# Two network namespaces joined by a veth pair, for UDP tests between
# "hosts" on one machine:
#   tutti-a: 10.77.0.1/24   <->   tutti-b: 10.77.0.2/24
# Usage: scripts/netns.sh up | down | status
# Needs root and iproute2 (`ip`); says so and exits 2 otherwise.
set -euo pipefail
A=tutti-a
B=tutti-b
cmd=${1:-status}
if [ "$(id -u)" -ne 0 ]; then
  echo "netns.sh: needs root to create network namespaces" >&2
  exit 2
fi
if ! command -v ip >/dev/null 2>&1; then
  echo "netns.sh: needs iproute2 (ip)" >&2
  exit 2
fi
case "$cmd" in
  up)
    "$0" down >/dev/null 2>&1 || true
    ip netns add $A
    ip netns add $B
    ip link add veth-ta type veth peer name veth-tb
    ip link set veth-ta netns $A
    ip link set veth-tb netns $B
    ip -n $A addr add 10.77.0.1/24 dev veth-ta
    ip -n $B addr add 10.77.0.2/24 dev veth-tb
    for ns in $A $B; do ip -n $ns link set lo up; done
    ip -n $A link set veth-ta up
    ip -n $B link set veth-tb up
    echo "netns.sh: $A 10.77.0.1 <-> $B 10.77.0.2 up"
    ;;
  down)
    ip netns del $A 2>/dev/null || true
    ip netns del $B 2>/dev/null || true
    echo "netns.sh: removed"
    ;;
  status)
    ip netns list
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
