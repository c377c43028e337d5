#!/usr/bin/env bash
# Training throughput on a served device against the same device here, interleaved (two rounds):
# Burn's flex CPU backend locally; then served by `spreadout serve` on loopback: plain (ws://),
# each step sending its views as 8-bit pixels (--augment-on auto: a served CPU builds no views
# unless asked) and, the images kept on the server, sending only their draws (--augment-on
# device); over TLS (wss://, the server's key pinned by the token file), images kept; and over
# Iroh (relays and port mapping off), images kept.
# Prints a Markdown table, one row per run: round, where the views are built, device, images/s,
# seconds per step, and the bytes per step each way (KiB, counted below TLS, so its records'
# overhead is in them). Arguments go to `spreadout bench` (e.g. --batch-size 128 --image-size 32
# --steps 3 --warmup 1), except --write-page, which also puts the table into
# benchmarks/remote/README.md's results section with the command, machine, commit and date
# (benchmarks/common/page.sh).
set -euo pipefail
# The page records the command as it was given.
command="benchmarks/remote/run.sh${*:+ $*}"
write_page="" bench_args=()
for arg in "$@"; do
  if [ "$arg" = --write-page ]; then write_page=1; else bench_args+=("$arg"); fi
done
cd "$(dirname "$0")/../.."
. scripts/env.sh
bin=${SPREADOUT_BIN:-$CARGO_TARGET_DIR/debug/spreadout}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# One token file for the three servers: the TLS server adds its key's pin to it.
serve() { # NAME ARGS...
  local name=$1; shift
  "$bin" serve --device cpu --token-file "$work/token" "$@" 2>"$work/$name.log" &
  until grep -q '^serving' "$work/$name.log" 2>/dev/null; do sleep 0.2; done
}
serve ws --listen 127.0.0.1:7811
serve wss --listen 127.0.0.1:7813 --tls --tls-key "$work/tls.key"
serve iroh --listen 127.0.0.1:7812 --iroh --identity "$work/server.key"
id=$(grep -o 'iroh://[0-9a-f]*' "$work/iroh.log" | head -1)
{
  echo "| round | views built | device | images/s | seconds per step | network KiB/step sent / received |"
  echo "|---|---|---|---:|---:|---:|"
  for round in 1 2; do
    for run in cpu:auto ws://127.0.0.1:7811:auto ws://127.0.0.1:7811:device \
      wss://127.0.0.1:7813:device "$id@127.0.0.1:7812:device"; do
      device=${run%:*} views=${run##*:}
      token=(); [ "$device" = cpu ] || token=(--token-file "$work/token")
      "$bin" bench --device "$device" "${token[@]}" --augment-on "$views" --widths 16 --no-data ${bench_args[@]+"${bench_args[@]}"} \
        2>/dev/null | tail -1 |
        awk -F'|' -v r=$round -v v=$views '{ print "| " r " | " v " |" $3 "|" $5 "|" $6 "|" $12 "|" }'
    done
  done
} | tee "$work/table.md"
if [ -n "$write_page" ]; then
  . benchmarks/common/page.sh
  write_page benchmarks/remote/README.md "$work/table.md" "$command"
fi
