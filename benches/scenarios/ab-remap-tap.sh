#!/usr/bin/env bash
# Usage: BIN_DIR=DIR (holding sluice-old and sluice-new release binaries) ab-remap-tap.sh
# Input: gen_logs.py --lines 2000000 --seed 7 --mix json --out /tmp/bench/json-2M.log.
# Scenario C (tcp json -> enrich -> file), 3 interleaved rounds of: the old binary; the new
# one; the new one with a remap in place of the enrich (c-remap.toml, issue 21); the new one
# with a live tap on `tag` held by a client that never reads (c-tap.toml + tap_client.py,
# issue 20).
set -u
B="${BENCH:-$(dirname "$0")/../../../shared/bench}"; S="$(cd "$(dirname "$0")" && pwd)"; R=${RESULTS:-/tmp/bench/remap-tap.jsonl}
mkdir -p /tmp/bench/out
# The tap client's pid, so that it is stopped by pid (a pattern would match bench.py's own
# command line, which holds the client's).
PIDS=/tmp/bench/tap_client.pid; STOP_TAP="kill \$(cat $PIDS 2>/dev/null) 2>/dev/null"
run() { # peer config [pre]
  python3 $B/bench.py --peer "$1" --scenario C --feed tcp --port 19503 --input /tmp/bench/json-2M.log --lines 2000000 --reps 1 --results $R --out /tmp/bench/out/custom-C.log --cmd "$2" ${3:+--pre "$3"} || true
}
for round in 1 2 3; do
  run sluice-old "${BIN_DIR:-/tmp/bench}/sluice-old up --config $S/c.toml"
  run sluice-new "${BIN_DIR:-/tmp/bench}/sluice-new up --config $S/c.toml"
  run sluice-new-remap "${BIN_DIR:-/tmp/bench}/sluice-new up --config $S/c-remap.toml"
  run sluice-new-tap "${BIN_DIR:-/tmp/bench}/sluice-new up --config $S/c-tap.toml" "$STOP_TAP; python3 $S/tap_client.py --seconds 120 >/dev/null 2>&1 & echo \$! > $PIDS"
done
bash -c "$STOP_TAP"
