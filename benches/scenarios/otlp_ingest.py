#!/usr/bin/env python3
"""OTLP ingest and export benchmark, beside the http source's NDJSON in the same run.

Usage:
  otlp_ingest.py --bin target/release/sluice [--bin other/sluice] --input /tmp/bench/json-2M.log \
                 [--lines 1000000] [--batch 1000] [--conns 4] [--rounds 1] \
                 [--modes ndjson,otlp-http,otlp-grpc,sink-http,sink-grpc]
                 [--sink-concurrency 4] [--sink-buffer default]

The first --lines lines of --input (the bench corpus's JSON logs) are read once and turned
into request bodies once: NDJSON batches of --batch lines, and the same records as OTLP
`ExportLogsServiceRequest`s in protobuf (built with the OpenTelemetry Python SDK's proto
classes: one `ResourceLogs` per service, body the message, severity from the level, time
from `ts`, the other fields as typed attributes). Then, per round and mode:

- ndjson:    POST /v1/logs NDJSON to the http source -> JSON file sink;
- otlp-http: POST /v1/logs application/x-protobuf, same pipeline;
- otlp-grpc: LogsService/Export over --conns gRPC channels to the source's grpc_address;
- sink-http: NDJSON into router A, whose `opentelemetry` sink (OTLP/HTTP) exports to router
             B's http source -> blackhole; A answers each request only after B answered
             the export holding it, so the rate is the sink's, acknowledged end to end;
- sink-grpc: the same with `protocol = "grpc"` into B's grpc_address.
  --sink-concurrency sets the sink's `request.concurrency` (export requests in flight);
  several values, comma-separated, run each mode once per value. --sink-buffer sets the
  sink's `buffer.max_bytes` (`default`: unset), comma-separated the same way, e.g.
  `default,1048576` to compare the default queue with the 1 MiB every sink had before.

Several --bin take turns in every round and mode (before/after on the same load).

Each request is answered only after its events were written (or exported), and every answer
must be a success. Prints one line per run: records/s, the routers' peak RSS (VmHWM) and
CPU. The client shares the machine with the router(s). Loopback only.
"""
import argparse
import datetime
import http.client
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

SEVERITY = {"debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17, "fatal": 21}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"router exited: {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"nothing listens on {port}")


def attribute(key, value):
    v = common_pb2.AnyValue()
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    else:
        v.string_value = str(value)
    return common_pb2.KeyValue(key=key, value=v)


def otlp_body(lines):
    """One export request holding `lines` (JSON objects), one ResourceLogs per service."""
    by_service = {}
    for line in lines:
        obj = json.loads(line)
        ts = obj.pop("ts", None)
        nanos = 0
        if ts:
            t = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
            nanos = int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
        level = str(obj.pop("level", ""))
        record = logs_pb2.LogRecord(
            time_unix_nano=nanos,
            observed_time_unix_nano=nanos,
            severity_text=level,
            severity_number=SEVERITY.get(level.lower(), 0),
            body=common_pb2.AnyValue(string_value=str(obj.pop("msg", ""))),
            trace_id=bytes.fromhex(obj.get("req_id", "0" * 16) * 2)[:16],
            span_id=bytes.fromhex(obj.get("req_id", "0" * 16))[:8],
            flags=1,
        )
        service = str(obj.pop("svc", "unknown"))
        record.attributes.extend(attribute(k, v) for k, v in obj.items())
        by_service.setdefault(service, []).append(record)
    request = logs_service_pb2.ExportLogsServiceRequest()
    for service, records in by_service.items():
        resource_logs = request.resource_logs.add()
        resource_logs.resource.CopyFrom(
            resource_pb2.Resource(attributes=[attribute("service.name", service)])
        )
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.name = "bench"
        scope_logs.log_records.extend(records)
    return request.SerializeToString()


def rss_cpu(proc):
    status = open(f"/proc/{proc.pid}/status").read()
    hwm = int([l for l in status.splitlines() if l.startswith("VmHWM")][0].split()[1]) / 1024
    stat = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return hwm, cpu


def post_all(port, bodies, content_type, conns, errors):
    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for body in bodies[k::conns]:
            conn.request("POST", "/v1/logs", body, {"Content-Type": content_type})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def export_all(port, bodies, conns, errors):
    import grpc

    def worker(k):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            # Bodies are sent as built: identity (de)serialisers.
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                request_serializer=None,
                response_deserializer=None,
            )
            for body in bodies[k::conns]:
                try:
                    export(body, timeout=120)
                except grpc.RpcError as e:
                    errors.append(str(e.code()))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def start(binary, config, workdir, name):
    path = os.path.join(workdir, f"{name}.toml")
    with open(path, "w") as f:
        f.write(config)
    log = open(os.path.join(workdir, f"{name}.stderr"), "w")
    return subprocess.Popen([binary, "up", "--config", path], stdout=subprocess.DEVNULL, stderr=log)


def run(mode, a, binary, ndjson, otlp, records, workdir, concurrency, buffer):
    http_port, grpc_port, b_http, b_grpc = free_port(), free_port(), free_port(), free_port()
    out = os.path.join(workdir, "out.log")
    routers = []
    grpc_line = f'grpc_address = "127.0.0.1:{grpc_port}"' if mode == "otlp-grpc" else ""
    if mode.startswith("sink"):
        protocol = mode.split("-")[1]
        b_grpc_line = f'grpc_address = "127.0.0.1:{b_grpc}"' if protocol == "grpc" else ""
        uri = f"http://127.0.0.1:{b_grpc}" if protocol == "grpc" else f"http://127.0.0.1:{b_http}/v1/logs"
        b = start(binary, f"""
[sources.b_in]
type = "http"
address = "127.0.0.1:{b_http}"
{b_grpc_line}
[sinks.b_out]
type = "blackhole"
inputs = ["b_in"]
""", workdir, "b")
        wait_listening(b_grpc if protocol == "grpc" else b_http, b)
        protocol_line = 'protocol = "grpc"' if protocol == "grpc" else ""
        router = start(binary, f"""
[sources.a_in]
type = "http"
address = "127.0.0.1:{http_port}"
[sinks.a_otlp]
type = "opentelemetry"
inputs = ["a_in"]
uri = "{uri}"
request = {{ concurrency = {concurrency} }}
{protocol_line}
{"" if buffer == "default" else f"buffer = {{ max_bytes = {buffer} }}"}
""", workdir, "a")
        routers = [router, b]
    else:
        router = start(binary, f"""
[sources.in]
type = "http"
address = "127.0.0.1:{http_port}"
{grpc_line}
[sinks.out]
type = "file"
inputs = ["in"]
path = "{out}"
encoding = "json"
""", workdir, "router")
        routers = [router]
    wait_listening(http_port, router)
    if mode == "otlp-grpc":
        wait_listening(grpc_port, router)
    errors = []
    t0 = time.time()
    if mode == "otlp-grpc":
        export_all(grpc_port, otlp, a.conns, errors)
    elif mode == "otlp-http":
        post_all(http_port, otlp, "application/x-protobuf", a.conns, errors)
    else:
        post_all(http_port, ndjson, "application/x-ndjson", a.conns, errors)
    wall = time.time() - t0
    usage = [rss_cpu(p) for p in routers]
    for p in routers:
        p.terminate()
    for p in routers:
        p.wait(timeout=60)
    if os.path.exists(out):
        os.remove(out)
    rss = " + ".join(f"{h:.1f}" for h, _ in usage)
    cpu = " + ".join(f"{100 * c / wall:.0f}" for _, c in usage)
    print(json.dumps({
        "bin": binary, "mode": mode, "sink_concurrency": concurrency if mode.startswith("sink") else None,
        "sink_buffer": buffer if mode.startswith("sink") else None,
        "records": records, "batch": a.batch, "conns": a.conns,
        "seconds": round(wall, 3), "records_per_sec": round(records / wall),
        "peak_rss_mib": rss, "cpu_percent": cpu, "failed_requests": len(errors),
        "first_error": errors[0] if errors else None,
    }), flush=True)


def main():
    ap = argparse.ArgumentParser()
    # Repeated, the binaries take turns within each round (a before/after comparison).
    ap.add_argument("--bin", required=True, action="append")
    ap.add_argument("--input", required=True)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--modes", default="ndjson,otlp-http,otlp-grpc,sink-http,sink-grpc")
    ap.add_argument("--sink-concurrency", default="4")
    ap.add_argument("--sink-buffer", default="default")
    a = ap.parse_args()
    with open(a.input, "rb") as f:
        lines = [next(f) for _ in range(a.lines)]
    ndjson = [b"".join(lines[i:i + a.batch]) for i in range(0, len(lines), a.batch)]
    otlp = []
    # The sink modes post NDJSON only: the OTLP bodies (a minute for 1M records) are built
    # when a mode posts them.
    if any(not mode.startswith("sink") and mode != "ndjson" for mode in a.modes.split(",")):
        t = time.time()
        otlp = [otlp_body(lines[i:i + a.batch]) for i in range(0, len(lines), a.batch)]
        print(f"# {len(otlp)} OTLP bodies built in {time.time() - t:.1f} s; "
              f"NDJSON {sum(map(len, ndjson)) / len(lines):.0f} B/record, "
              f"OTLP protobuf {sum(map(len, otlp)) / len(lines):.0f} B/record", flush=True)
    concurrencies = [int(c) for c in a.sink_concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="otlp-bench-") as workdir:
        for _ in range(a.rounds):
            for mode in a.modes.split(","):
                sink = mode.startswith("sink")
                for concurrency in (concurrencies if sink else [None]):
                    for buffer in (a.sink_buffer.split(",") if sink else ["default"]):
                        for binary in a.bin:
                            run(mode, a, binary, ndjson, otlp, len(lines), workdir,
                                concurrency, buffer)


if __name__ == "__main__":
    main()
