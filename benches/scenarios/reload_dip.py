#!/usr/bin/env python3
"""The reload dip: how much a hot reload costs a pipeline under steady load (issue 20:
"the pipeline's throughput during a reload dips by at most one second's worth of events and
recovers").

Usage:
  reload_dip.py [--bin target/debug/sluice] [--rate 20000] [--conns 2] [--reloads 10]
                [--interval 3] [--warmup 3] [--json OUT.jsonl]

A router runs `tcp` source `in` (JSON lines) -> `remap` transform `tag` -> `file` sink
`out`. --conns persistent TCP connections send --rate events/s in all, paced by the clock
(every 10 ms, what is due), so the offered load stays steady whatever the router does. After
--warmup seconds the pipeline is reloaded --reloads times, --interval seconds apart
(`POST /v1/reload`), alternately changing the transform (`.gen = N`) and the source's
`decoding` (json <-> bytes): the second kind replaces the source, whose listener and open
connections pass to the new instance.

Every 100 ms the script reads `/metrics` (`component_sent_events_total` of `out`: events
written) and the senders' count of events sent. Per reload, from the moment it is asked:
- delivered per 100 ms window against the steady rate (the median window of quiet periods:
  from 1 s after a reload to the next one);
- shortfall: the most the running sum of (steady - delivered) reaches within 1 s, in events
  and in seconds' worth (shortfall / steady rate per second); the same measure over a span
  as long halfway between reloads (no reload in it) is the control: the machine's noise;
- recovered: whether, before the next reload, the backlog (sent - written) came back to
  what it was just before the reload (plus one window's worth), and after how long.

The debug build is fine (and is what this measures by default): it sustains the default
20k events/s with headroom on 2 cores. Loopback only; the client shares the machine.
"""
import argparse
import datetime
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

WINDOW = 0.1
# How long after a reload its dip is looked for.
SPAN = 1.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pipeline(api, port, out, gen, decoding):
    return f"""
[api]
address = "127.0.0.1:{api}"

[sources.in]
type = "tcp"
address = "127.0.0.1:{port}"
decoding = "{decoding}"

[transforms.tag]
type = "remap"
inputs = ["in"]
source = '.gen = {gen}'

[sinks.out]
type = "file"
inputs = ["tag"]
path = "{out}"
"""


SENT_RE = re.compile(r'^sluice_component_sent_events_total\{[^}]*component_id="out"[^}]*\} (\d+)', re.M)


def request(api, method, path):
    conn = http.client.HTTPConnection("127.0.0.1", api, timeout=30)
    conn.request(method, path)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, body


def written(api):
    _, body = request(api, "GET", "/metrics")
    match = SENT_RE.search(body)
    return int(match.group(1)) if match else 0


class Sender(threading.Thread):
    """One persistent connection sending `rate` events/s, paced by the clock."""

    def __init__(self, port, index, rate, stop):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.index, self.rate, self.stop = index, rate, stop
        self.sent = 0
        self.error = None

    def run(self):
        start = time.monotonic()
        pad = "x" * 40
        try:
            while not self.stop.is_set():
                due = int(self.rate * (time.monotonic() - start)) - self.sent
                if due > 0:
                    lines = "".join(
                        f'{{"conn":{self.index},"seq":{self.sent + i},"pad":"{pad}"}}\n'
                        for i in range(due)
                    )
                    self.sock.sendall(lines.encode())
                    self.sent += due
                time.sleep(0.01)
        except OSError as error:
            self.error = error
        finally:
            self.sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/debug/sluice")
    parser.add_argument("--rate", type=int, default=20000, help="events/s in all")
    parser.add_argument("--conns", type=int, default=2)
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--interval", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--json", help="append one result line to this file")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="reload-dip-")
    api, port = free_port(), free_port()
    out = os.path.join(work, "out.log")
    config = os.path.join(work, "pipeline.toml")
    decoding = "json"
    with open(config, "w") as f:
        f.write(pipeline(api, port, out, 0, decoding))
    router = subprocess.Popen(
        [args.bin, "up", "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "router.log"), "w"),
    )
    deadline = time.time() + 60
    while True:
        try:
            if request(api, "GET", "/health")[0] == 200:
                break
        except OSError:
            pass
        if router.poll() is not None or time.time() > deadline:
            sys.exit(f"router did not start; see {work}/router.log")
        time.sleep(0.05)

    stop = threading.Event()
    senders = [Sender(port, i, args.rate / args.conns, stop) for i in range(args.conns)]
    for s in senders:
        s.start()

    samples = []  # (time, sent, written)
    sampling = threading.Event()

    def sample():
        next_at = time.monotonic()
        while not sampling.is_set():
            now = time.monotonic()
            samples.append((now, sum(s.sent for s in senders), written(api)))
            next_at += WINDOW
            time.sleep(max(0.0, next_at - time.monotonic()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    time.sleep(args.warmup)
    reloads = []  # (time asked, kind, took_ms)
    for n in range(1, args.reloads + 1):
        kind = "transform" if n % 2 == 1 else "decoding"
        if kind == "decoding":
            decoding = "bytes" if decoding == "json" else "json"
        with open(config, "w") as f:
            f.write(pipeline(api, port, out, n, decoding))
        asked = time.monotonic()
        status, body = request(api, "POST", "/v1/reload")
        if status != 200:
            sys.exit(f"reload {n} refused: {status} {body}")
        answer = json.loads(body)
        reloads.append((asked, kind, answer["took_ms"], answer["changed"]))
        time.sleep(args.interval)

    stop.set()
    for s in senders:
        s.join()
    errors = [s.error for s in senders if s.error]
    total = sum(s.sent for s in senders)
    deadline = time.time() + 60
    while written(api) < total and time.time() < deadline:
        time.sleep(0.1)
    sampling.set()
    sampler.join()
    final = written(api)
    router.terminate()
    router.wait(timeout=60)
    with open(out) as f:
        lines = sum(1 for _ in f)

    # Delivered per window: (start, end, events written, backlog at end).
    windows = [
        (a[0], b[0], b[2] - a[2], b[1] - b[2]) for a, b in zip(samples, samples[1:])
    ]
    quiet = [
        w[2] * WINDOW / (w[1] - w[0])
        for w in windows
        if w[0] >= samples[0][0] + 1.0
        and all(not (r[0] - 0.2 <= w[0] < r[0] + 1.0) for r in reloads)
        and w[1] <= reloads[-1][0] + args.interval
    ]
    steady = statistics.median(quiet)
    per_second = steady / WINDOW

    def dip(start, until):
        """The most the running sum of (steady - delivered) reaches from `start` to
        `until`, and the lowest window."""
        running, shortfall, lowest = 0.0, 0.0, None
        for w in windows:
            if w[1] <= start or w[0] >= until:
                continue
            delivered = w[2] * WINDOW / (w[1] - w[0])
            lowest = delivered if lowest is None else min(lowest, delivered)
            running += steady - delivered
            shortfall = max(shortfall, running)
        return shortfall, lowest or 0

    results = []
    for i, (asked, kind, took_ms, changed) in enumerate(reloads):
        until = reloads[i + 1][0] if i + 1 < len(reloads) else asked + args.interval
        before = [w for w in windows if w[1] <= asked]
        backlog_before = before[-1][3] if before else 0
        after = [w for w in windows if w[1] > asked and w[0] < until]
        shortfall, lowest = dip(asked, asked + SPAN)
        # The same measure over a span as long with no reload in it (the machine's noise).
        control, _ = dip(asked + args.interval / 2, asked + args.interval / 2 + SPAN)
        recovered_after = next(
            (w[1] - asked for w in after if w[3] <= backlog_before + steady), None
        )
        results.append(
            {
                "reload": i + 1,
                "kind": kind,
                "took_ms": took_ms,
                "shortfall_events": round(shortfall),
                "shortfall_seconds": round(shortfall / per_second, 3),
                "lowest_window": round(lowest),
                "control_shortfall_events": round(control),
                "backlog_before": backlog_before,
                "recovered_after_s": None if recovered_after is None else round(recovered_after, 2),
            }
        )

    print(f"router: {args.bin}; {args.conns} connections, {args.rate} events/s offered")
    print(f"steady: {steady:.0f} events per 100 ms ({per_second:.0f}/s) over {len(quiet)} quiet windows")
    print("reload kind       took_ms shortfall  (s)    lowest/100ms control backlog_before recovered_after_s")
    for r in results:
        print(
            f"{r['reload']:>6} {r['kind']:<9} {r['took_ms']:>7.1f} {r['shortfall_events']:>9} "
            f"{r['shortfall_seconds']:>6.3f} {r['lowest_window']:>12} {r['control_shortfall_events']:>7} "
            f"{r['backlog_before']:>14} {r['recovered_after_s']}"
        )
    worst = max(results, key=lambda r: r["shortfall_events"])
    all_recovered = all(r["recovered_after_s"] is not None for r in results)
    noise = max(r["control_shortfall_events"] for r in results)
    print(
        f"worst shortfall: {worst['shortfall_events']} events = {worst['shortfall_seconds']:.3f} s "
        f"worth (reload {worst['reload']}, {worst['kind']}); all recovered: {all_recovered}; "
        f"worst over spans without a reload: {noise} events"
    )
    print(f"sent {total}, written {final} (file lines {lines}); sender errors: {errors or 'none'}")
    if args.json:
        with open(args.json, "a") as f:
            f.write(
                json.dumps(
                    {
                        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                        "bin": args.bin,
                        "rate": args.rate,
                        "conns": args.conns,
                        "steady_per_100ms": steady,
                        "reloads": results,
                        "sent": total,
                        "written": final,
                        "file_lines": lines,
                    }
                )
                + "\n"
            )
    ok = final == total == lines and not errors and all_recovered
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
