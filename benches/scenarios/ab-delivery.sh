#!/usr/bin/env bash
# Usage: BIN_DIR=DIR (holding sluice-old and sluice-new release binaries) ab-delivery.sh
# Inputs: gen_logs.py --lines 2000000 --seed 42 --out /tmp/bench/mixed-2M.log, and --seed 7 --mix json --out /tmp/bench/json-2M.log.
# Two binaries (here: before and after the delivery change) in turn on scenarios C, D and A-ack.
set -u
B="${BENCH:-$(dirname "$0")/../../../shared/bench}"; S="$(cd "$(dirname "$0")" && pwd)"; R=${RESULTS:-/tmp/bench/delivery-ab.jsonl}
mkdir -p /tmp/bench/out /tmp/bench/ack-state
for round in 1 2 3; do
  for v in old new; do
    bin=${BIN_DIR:-/tmp/bench}/sluice-$v
    python3 $B/bench.py --peer sluice-$v --scenario C --feed tcp --port 19503 --input /tmp/bench/json-2M.log --lines 2000000 --reps 1 --results $R --out /tmp/bench/out/custom-C.log --cmd "$bin up --config $S/c.toml" || true
    python3 $B/bench.py --peer sluice-$v --scenario D --feed stdin --input /tmp/bench/mixed-2M.log --lines 2000000 --reps 1 --results $R --cmd "$bin up --config $S/d.toml" || true
    python3 $B/bench.py --peer sluice-$v --scenario A-ack --feed none --input /tmp/bench/mixed-2M.log --lines 2000000 --reps 1 --results $R --out /tmp/bench/out/custom-A.log --pre 'rm -rf /tmp/bench/ack-state' --cmd "$bin up --config $S/a-ack.toml < /tmp/bench/mixed-2M.log" || true
  done
done
