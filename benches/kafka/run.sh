#!/usr/bin/env bash
# Kafka benchmarks against a local tansu broker (memory storage) on 127.0.0.1:
#   sink: stdin → kafka sink, N events, until every delivery report is in (the router
#         exits at stdin EOF only after its sinks drained);
#   e2e:  agent (stdin → kafka) and aggregator (kafka → file) at the same time, from the
#         agent's start until the aggregator's file holds N lines.
# Usage: benches/kafka/run.sh   (env: N [1000000], PORT [19092], SLUICE [target/release/sluice])
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${N:-1000000}"; PORT="${PORT:-19092}"
S="${SLUICE:-${CARGO_TARGET_DIR:-target}/release/sluice}"
SC="$PWD/benches/scenarios"
WORK="$(mktemp -d)"; trap 'kill $BROKER $AGG 2>/dev/null || true; rm -rf "$WORK"' EXIT
AGG=""
URL="tcp://127.0.0.1:$PORT"
export KAFKA_BOOTSTRAP="127.0.0.1:$PORT"

tansu broker --storage-engine memory://tansu/ --listener-url "$URL" \
  --advertised-listener-url "$URL" >"$WORK/tansu.log" 2>&1 &
BROKER=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

python3 - "$N" >"$WORK/events.ndjson" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    app = f"app{i % 12}"
    out.write(f'{{"app":"{app}","level":"info","seq":{i},"message":"GET /api/items/{i % 977} 200 {i % 53}ms"}}\n')
PY
echo "input: $N events, $(du -m "$WORK/events.ndjson" | cut -f1) MiB"

now() { date +%s.%N; }
rate() { python3 -c "import sys; n,a,b=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f'{n/(b-a):,.0f} events/s ({b-a:.2f} s)')" "$@"; }

for topic in bench-sink bench-e2e; do
  tansu topic create "$topic" --partitions 6 --broker "$URL" >/dev/null
done

start=$(now)
KAFKA_TOPIC=bench-sink "$S" up --config "$SC/kafka-agent.toml" <"$WORK/events.ndjson" 2>"$WORK/sink.log"
end=$(now)
echo "sink (stdin → kafka, acknowledged): $(rate "$N" "$start" "$end")"

OUT="$WORK/out.log" KAFKA_TOPIC=bench-e2e KAFKA_GROUP=bench \
  "$S" up --config "$SC/kafka-aggregator.toml" 2>"$WORK/aggregator.log" &
AGG=$!
sleep 2 # the aggregator joins its group (the clock starts with the agent)
start=$(now)
KAFKA_TOPIC=bench-e2e "$S" up --config "$SC/kafka-agent.toml" <"$WORK/events.ndjson" 2>"$WORK/agent.log"
agent_end=$(now)
while [ "$(wc -l <"$WORK/out.log" 2>/dev/null || echo 0)" -lt "$N" ]; do sleep 0.05; done
end=$(now)
echo "agent alone: $(rate "$N" "$start" "$agent_end")"
echo "end to end (agent → broker → aggregator → file): $(rate "$N" "$start" "$end")"
echo "aggregator peak RSS: $(grep VmHWM /proc/$AGG/status | awk '{print $2/1024 " MiB"}')"
