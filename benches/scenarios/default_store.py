#!/usr/bin/env python3
"""The main job end to end: the embedded default pipeline (tcp -> parse auto -> enrich ->
daily files + the store), fed a prepared file over TCP, timed until the store can find
every event (`/v1/query` total reaches the number of lines sent).

Usage:
  default_store.py --bin BIN [--bin BIN2 ...] --input FILE [--conns K] [--rounds R]
                   [--engines tantivy,columns] [--config PIPELINE [--no-store]]
                   [--results OUT.jsonl]

Binaries are run in turn, round after round, so that old and new share the machine's
state. Prints one JSON line per run: label, events/s until searchable, seconds, peak RSS
(VmHWM) in MiB, CPU time per event (user + system, all threads: steadier than the rate
on a busy machine), the store's bytes on disk per event. Loopback only.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "bench")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, deadline):
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"nothing listens on {port}")


def total(api):
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/v1/query?limit=1", timeout=30) as r:
        return json.load(r)["total"]


# First pages (100 newest) timed once the store holds everything: a keyword, fields of
# `_kv` (a term and a wildcard), a numeric range and a word of the message.
QUERIES = ["level:error", "user:u36580", "path:/api/users/1*", "status:>=500", "timeout"]


def query_ms(api, q):
    """Best of 5, milliseconds, of the first page of `q`."""
    url = f"http://127.0.0.1:{api}/v1/query?limit=100&q={urllib.parse.quote(q)}"
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as r:
            json.load(r)
        best = min(best, time.perf_counter() - t)
    return round(best * 1000, 1)


def files_sent(api):
    """Events the `files` sink wrote (for a pipeline without the store)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('sluice_component_sent_events_total{component_id="files"}'):
                return int(float(line.split()[-1]))
    return 0


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dir_bytes(path):
    n = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                n += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return n


def start_default(binary, tmp, config=None, prefix="sluice-default-", engine=None):
    """`sluice up` (on the embedded default pipeline unless `config`) with its data in a new
    directory under `tmp` and every listener on a free loopback port: (process, data
    directory, tcp port, api port)."""
    data = tempfile.mkdtemp(prefix=prefix, dir=tmp)
    tcp, udp, http, api = free_port(), free_port(), free_port(), free_port()
    env = dict(os.environ, SLUICE_DATA_DIR=data, SLUICE_TCP=f"127.0.0.1:{tcp}",
               SLUICE_UDP=f"127.0.0.1:{udp}", SLUICE_HTTP=f"127.0.0.1:{http}",
               SLUICE_API=f"127.0.0.1:{api}", RUST_LOG="warn")
    if engine:
        env["SLUICE_STORE_ENGINE"] = engine
    cmd = [binary, "up"]
    if config:
        cmd += ["--config", config]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, data, tcp, api


def without_store(tmp):
    """pipelines/default.toml without its `[sinks.store]` table, written under `tmp`."""
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "..", "..", "pipelines", "default.toml")) as f:
        lines = f.read().splitlines(keepends=True)
    out, skipping = [], False
    for line in lines:
        if line.startswith("["):
            skipping = line.strip() == "[sinks.store]"
        if not skipping:
            out.append(line)
    os.makedirs(tmp, exist_ok=True)
    path = os.path.join(tmp, "default-no-store.toml")
    with open(path, "w") as f:
        f.writelines(out)
    return path


def run(binary, args, lines, engine=None):
    proc, data, tcp, api = start_default(binary, args.tmp, args.config, engine=engine)
    try:
        wait_listening(tcp, time.time() + 30)
        wait_listening(api, time.time() + 30)
        start = time.time()
        subprocess.run([sys.executable, os.path.join(BENCH, "tcp_send.py"), "--port", str(tcp),
                        "--file", args.input, "--conns", str(args.conns)], check=True,
                       stderr=subprocess.DEVNULL)
        sent = time.time() - start
        done = (lambda: files_sent(api)) if args.no_store else (lambda: total(api))
        while done() < lines:
            if time.time() - start > args.timeout:
                raise SystemExit(f"{binary}: only {total(api)} of {lines} searchable")
            time.sleep(0.05)
        elapsed = time.time() - start
        rss = peak_rss_mib(proc.pid)
        cpu = cpu_seconds(proc.pid)
        queries = {} if args.no_store else {q: query_ms(api, q) for q in QUERIES}
        proc.terminate()
        proc.wait(timeout=300)
        # After the shutdown's final merges, which leave the partition in its lasting shape.
        store = dir_bytes(os.path.join(data, "store"))
        return {"bin": binary, "engine": engine, "conns": args.conns, "lines": lines, "seconds": round(elapsed, 2),
                "send_seconds": round(sent, 2), "events_per_s": round(lines / elapsed),
                "peak_rss_mib": round(rss, 1), "cpu_us_per_event": round(cpu * 1e6 / lines, 2), "store_bytes_per_event": round(store / lines, 1), "query_ms": queries}
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=300)
        if args.keep:
            print(f"kept {data}", file=sys.stderr)
        else:
            shutil.rmtree(data, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", action="append", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--config", help="a pipeline instead of the embedded default")
    p.add_argument("--no-store", action="store_true",
                   help="the pipeline has no store: wait for the `files` sink instead "
                   "(without --config: the default pipeline with its [sinks.store] cut out)")
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--tmp", default="/tmp/bench")
    p.add_argument("--results")
    p.add_argument("--engines", help="run each binary with each store engine, e.g. "
                   "tantivy,columns (SLUICE_STORE_ENGINE in the default pipeline)")
    p.add_argument("--keep", action="store_true",
                   help="keep each run's data directory (for tests/it/store_usage.rs)")
    args = p.parse_args()
    if args.no_store and not args.config:
        args.config = without_store(args.tmp)
    with open(args.input, "rb") as f:
        lines = sum(1 for _ in f)
    for _ in range(args.rounds):
        for binary in args.bin:
            for engine in (args.engines.split(",") if args.engines else [None]):
                row = run(binary, args, lines, engine)
                print(json.dumps(row), flush=True)
                if args.results:
                    with open(args.results, "a") as out:
                        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
