#!/usr/bin/env bash
# Usage: BIN_DIR=DIR (holding sluice-old and sluice-new release binaries) ab-abcd.sh
# Inputs: gen_logs.py --lines 2000000 --seed 42 --out /tmp/bench/mixed-2M.log, and --seed 7 --mix json --out /tmp/bench/json-2M.log.
# Two binaries in turn, 3 rounds, on scenarios A (stdin -> file), B (tcp raw -> file),
# C (tcp json -> enrich -> file) and D (stdin -> blackhole).
set -u
B="${BENCH:-$(dirname "$0")/../../../shared/bench}"; S="$(cd "$(dirname "$0")" && pwd)"; R=${RESULTS:-/tmp/bench/abcd-ab.jsonl}
mkdir -p /tmp/bench/out
for round in 1 2 3; do
  for v in old new; do
    bin=${BIN_DIR:-/tmp/bench}/sluice-$v
    python3 $B/bench.py --peer sluice-$v --scenario A --feed stdin --input /tmp/bench/mixed-2M.log --lines 2000000 --reps 1 --results $R --out /tmp/bench/out/custom-A.log --cmd "$bin up --config $S/a.toml" || true
    python3 $B/bench.py --peer sluice-$v --scenario B --feed tcp --port 19502 --input /tmp/bench/mixed-2M.log --lines 2000000 --reps 1 --results $R --out /tmp/bench/out/custom-B.log --cmd "$bin up --config $S/b.toml" || true
    python3 $B/bench.py --peer sluice-$v --scenario C --feed tcp --port 19503 --input /tmp/bench/json-2M.log --lines 2000000 --reps 1 --results $R --out /tmp/bench/out/custom-C.log --cmd "$bin up --config $S/c.toml" || true
    python3 $B/bench.py --peer sluice-$v --scenario D --feed stdin --input /tmp/bench/mixed-2M.log --lines 2000000 --reps 1 --results $R --cmd "$bin up --config $S/d.toml" || true
  done
done
