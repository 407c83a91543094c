#!/usr/bin/env bash
# The live loop for 60 s: `quorum feed serve` replays the bundled spot sample (11 minutes at 11x)
# on 127.0.0.1 the way Binance sends it; `quorum live` runs the feed, the worker and the paper
# agent on it (Kafka and Redis from `quorum services up`) and prints the paper result. Topics
# get a fresh prefix per run, so a demo never reads an earlier one's data.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out=out/live-demo
rm -rf "$out"
mkdir -p "$out"
export QUORUM_TOPIC_PREFIX="live-demo-$(date +%s)."
export QUORUM_STATE_SECRET="${QUORUM_STATE_SECRET:-live-demo-secret-for-the-local-demo}"
.venv/bin/quorum feed serve data/binance/spot/*.gz --port 0 --speed 11 >"$out/serve.log" 2>&1 &
sim=$!
trap 'kill "$sim" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 200); do
    url="$(grep -o 'ws://[0-9.]*:[0-9]*' "$out/serve.log" | head -n 1 || true)"
    [[ -n $url ]] && break
    sleep 0.1
done
[[ -n $url ]] || { echo "the simulator did not start; see $out/serve.log" >&2; exit 1; }
view=--no-view
[[ -t 1 ]] && view=--view
.venv/bin/quorum live --venue binance --symbols BTCUSDT,ETHUSDT --url "$url/stream" \
    --duration 90 --stop-when-quiet 3 --record "$out/recording" --log-dir "$out" --json "$out/summary.json" \
    "$view" >/dev/null
.venv/bin/python - "$out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
f, p = s["feed"], s["paper"] or {}
print(f"feed: {f['ticks']:,} ticks, {f['rejects']} rejects, {f['duplicates']} repeats dropped, "
      f"{f['gaps']} gaps, clock offset {f['clock_offset_ns'] / 1e6:.1f} ms")
print("signals: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s["signals"].items())))
print(f"paper: net PnL {p.get('net_pnl', 0):+.2f} after {p.get('fees', 0):.2f} fees; "
      f"{p.get('n_orders', 0)} orders, {p.get('n_fills', 0)} fills; positions {p.get('positions')}")
print(f"recording: {', '.join(f['recorded'])} (replay it: quorum backtest --paper FILE)")
print(f"topics: prefix {s['topic_prefix']}; logs: {s['logs']}")
PY
