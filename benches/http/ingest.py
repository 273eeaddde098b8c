#!/usr/bin/env python3
"""HTTP ingest benchmark: POST batches of N NDJSON lines to a router's /v1/logs.

Usage: ingest.py --router 'sluice up --config benches/scenarios/http.toml' \
                 --input /tmp/bench/json-5M.log --lines 1000000 --batch 1000 --conns 2

Starts the router, waits for the port, sends the first --lines lines of --input in batches
over --conns keep-alive connections (one thread each), checks every response is 200, and
prints events/s, MiB/s and the router's peak RSS (VmHWM) and CPU time. Loopback only.
"""
import argparse, http.client, os, shlex, socket, subprocess, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--router", required=True)
ap.add_argument("--input", required=True)
ap.add_argument("--lines", type=int, default=1_000_000)
ap.add_argument("--batch", type=int, default=1000)
ap.add_argument("--conns", type=int, default=2)
ap.add_argument("--port", type=int, default=19600)
a = ap.parse_args()

with open(a.input, "rb") as f:
    lines = [next(f) for _ in range(a.lines)]
batches = [b"".join(lines[i:i + a.batch]) for i in range(0, len(lines), a.batch)]
total_bytes = sum(len(b) for b in batches)

router = subprocess.Popen(shlex.split(a.router), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.time() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", a.port), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            router.kill(); sys.exit("router did not listen")
        time.sleep(0.02)

errors = []
def worker(k):
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
    for body in batches[k::a.conns]:
        conn.request("POST", "/v1/logs", body, {"Content-Type": "application/x-ndjson"})
        r = conn.getresponse(); r.read()
        if r.status != 200:
            errors.append(r.status)

t0 = time.time()
threads = [threading.Thread(target=worker, args=(k,)) for k in range(a.conns)]
for t in threads: t.start()
for t in threads: t.join()
wall = time.time() - t0
status = open(f"/proc/{router.pid}/status").read()
hwm = int([l for l in status.splitlines() if l.startswith("VmHWM")][0].split()[1]) / 1024
stat = open(f"/proc/{router.pid}/stat").read().split()
cpu = (int(stat[13]) + int(stat[14])) / os.sysconf("SC_CLK_TCK")
router.terminate(); router.wait(timeout=60)
print(f"http ingest: {len(lines)} events in {len(batches)} batches of {a.batch} over {a.conns} conns: "
      f"{wall:.2f} s, {len(lines)/wall:,.0f} events/s, {total_bytes/wall/2**20:.1f} MiB/s, "
      f"router peak RSS {hwm:.1f} MiB, router CPU {100*cpu/wall:.0f}%, non-200: {len(errors)}")
