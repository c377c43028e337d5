#!/usr/bin/env bash
# Training throughput on a served device against the same device here, interleaved (A B C, two
# rounds): Burn's flex CPU backend locally, then served by `spreadout serve` on loopback over
# WebSocket and over Iroh (relays disabled). Prints one line per row: device, images/s, seconds
# per step, and for WebSocket the bytes per step each way (KiB). Arguments go to `spreadout
# bench` (e.g. --batch-size 128 --image-size 32 --steps 3 --warmup 1).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
bin=${SPREADOUT_BIN:-$CARGO_TARGET_DIR/debug/spreadout}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" serve --device cpu --token-file "$work/token" --listen 127.0.0.1:7811 2>"$work/ws.log" &
until grep -q '^serving' "$work/ws.log" 2>/dev/null; do sleep 0.2; done
"$bin" serve --iroh --identity "$work/server.key" --device cpu --token-file "$work/token" \
  --listen 0.0.0.0:7812 2>"$work/iroh.log" &
until grep -q '^serving' "$work/iroh.log" 2>/dev/null; do sleep 0.2; done
id=$(grep -o 'iroh://[0-9a-f]*' "$work/iroh.log" | head -1)
for round in 1 2; do
  for device in cpu ws://127.0.0.1:7811 "$id@127.0.0.1:7812"; do
    token=(); [ "$device" = cpu ] || token=(--token-file "$work/token")
    "$bin" bench --device "$device" "${token[@]}" --widths 16 --no-data "$@" 2>/dev/null | tail -1 |
      awk -F'|' -v r=$round '{ print "round " r " |" $3 "|" $5 "|" $6 "|" $12 }'
  done
done
