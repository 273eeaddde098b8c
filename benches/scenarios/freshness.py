#!/usr/bin/env python3
"""Freshness of the main job: how long after it is sent an event can be found.

The embedded default pipeline (tcp -> parse auto -> enrich -> daily files + the store) is
started at its default settings. Optionally a background load is sent over one TCP
connection, paced by the clock at `--rate` lines/s (lines from `--input`, repeated). Every
`--every` seconds a marker line with a word of its own is sent over a second connection and
`/v1/query?q=WORD` is polled until it answers with the marker; the time from the send to the
first answer that holds it is the marker's freshness (an upper bound, by the poll's period
and the query's own time).

Usage:
  freshness.py --bin BIN [--bin BIN2 ...] [--input FILE --rate N] [--markers 50]

Prints one JSON line per binary and load: markers found, p50, p90 and max seconds, and the
background lines actually sent per second. Loopback only.
"""
import argparse
import json
import os
import shutil
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from default_store import start_default, wait_listening  # noqa: E402


def found(api, word):
    url = f"http://127.0.0.1:{api}/v1/query?limit=1&q={urllib.parse.quote(word)}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)["total"] > 0


def background(port, path, rate, stop, sent):
    """Sends lines of `path`, over and over, at `rate` lines/s in 10 ms slices."""
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    conn = socket.create_connection(("127.0.0.1", port))
    per_slice = max(1, rate // 100)
    start = time.monotonic()
    i = 0
    while not stop.is_set():
        chunk = b"".join(lines[(i + k) % len(lines)] for k in range(per_slice))
        conn.sendall(chunk)
        i += per_slice
        sent[0] += per_slice
        due = start + sent[0] / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    conn.close()


def run(binary, args, rate):
    proc, data, tcp, api = start_default(binary, args.tmp, prefix="sluice-fresh-")
    stop, sent = threading.Event(), [0]
    loader = None
    try:
        wait_listening(tcp, time.time() + 30)
        wait_listening(api, time.time() + 30)
        if rate:
            loader = threading.Thread(target=background,
                                      args=(tcp, args.input, rate, stop, sent))
            loader.start()
            time.sleep(2)  # the load reaches its pace before the first marker
        load_start, load_sent = time.monotonic(), sent[0]
        marker = socket.create_connection(("127.0.0.1", tcp))
        ages = []
        for n in range(args.markers):
            word = f"freshmark{os.getpid()}x{n}"
            sent_at = time.monotonic()
            marker.sendall(f'{{"message":"marker {word}","level":"info"}}\n'.encode())
            while not found(api, word):
                if time.monotonic() - sent_at > 60:
                    raise SystemExit(f"{binary}: marker {n} not searchable after 60 s")
                time.sleep(0.01)
            ages.append(time.monotonic() - sent_at)
            # Markers start at `--every` intervals whatever their own freshness was.
            time.sleep(max(0.0, sent_at + args.every - time.monotonic()))
        load_rate = (sent[0] - load_sent) / (time.monotonic() - load_start)
        marker.close()
        ages.sort()
        pick = lambda q: round(ages[min(len(ages) - 1, int(q * len(ages)))], 3)
        return {"bin": binary, "rate": rate, "sent_per_s": round(load_rate),
                "markers": len(ages), "p50_s": pick(0.5), "p90_s": pick(0.9),
                "max_s": round(ages[-1], 3)}
    finally:
        stop.set()
        if loader:
            loader.join()
        proc.terminate()
        proc.wait(timeout=300)
        shutil.rmtree(data, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", action="append", required=True)
    p.add_argument("--input", help="background lines (needed with --rate)")
    p.add_argument("--rate", type=int, action="append", default=None,
                   help="background lines/s; repeat for several loads (0: none)")
    p.add_argument("--markers", type=int, default=50)
    p.add_argument("--every", type=float, default=0.2)
    p.add_argument("--tmp", default="/tmp/bench")
    args = p.parse_args()
    rates = args.rate or [0]
    if any(rates) and not args.input:
        p.error("--rate needs --input")
    os.makedirs(args.tmp, exist_ok=True)
    for rate in rates:
        for binary in args.bin:
            print(json.dumps(run(binary, args, rate)), flush=True)


if __name__ == "__main__":
    main()
