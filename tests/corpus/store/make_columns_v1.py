#!/usr/bin/env python3
"""Writes columns-v1/: a block of the column engine's first layout ("SLUCOL01", sections
not paged), as a build of commit 8e58132 wrote it, so that tests can check that later
layouts still read it (src/store/columns/tests.rs).

Usage: make_columns_v1.py --bin PATH-TO-A-BUILD-OF-8e58132

Sends EVENTS events (each with its number in `seq`) to that build's HTTP source, once
acknowledged (after the store's commit) stops it, and keeps the block file it wrote.
"""
import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

EVENTS = 4000
HERE = os.path.dirname(os.path.abspath(__file__))


def event(i):
    levels = ["info", "info", "warn", "error"]
    out = {
        "seq": i,
        "level": levels[i % 4],
        "app": ["web", "worker", "db"][i % 3],
        "message": f"request {i} for user u{i % 97} took {i % 50}ms"
        if i % 5 else f"timeout talking to db shard {i % 7}",
        "user": f"u{i % 997}",
        "status": [200, 200, 404, 500][i % 4],
    }
    if i % 10 == 0:
        out["http"] = {"path": f"/api/items/{i}", "tags": ["a", f"b{i % 3}"]}
    if i % 3 == 0:
        out["dur_ms"] = i * 0.5
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="columns-v1-")
    port, api = free_port(), free_port()
    config = os.path.join(work, "pipeline.toml")
    with open(config, "w") as f:
        f.write(f"""[api]
address = "127.0.0.1:{api}"

[sources.in]
type = "http"
address = "127.0.0.1:{port}"
decoding = "json"

[sinks.store]
type = "store"
inputs = ["in"]
path = "{work}/store"
engine = "columns"
commit_interval_ms = 100
""")
    proc = subprocess.Popen([args.bin, "up", "--config", config], cwd=work)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the source did not listen")
                time.sleep(0.05)
        body = "".join(json.dumps(event(i)) + "\n" for i in range(EVENTS)).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/logs", data=body,
                                         headers={"Content-Type": "application/x-ndjson"})
        with urllib.request.urlopen(request, timeout=60) as r:
            assert r.status == 200, r.status
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    blocks = glob.glob(os.path.join(work, "store", "*", "*.blk"))
    assert len(blocks) == 1, blocks
    out = os.path.join(HERE, "columns-v1")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    # Kept in its partition's directory (named for the hour it arrived in).
    partition = os.path.basename(os.path.dirname(blocks[0]))
    os.makedirs(os.path.join(out, partition))
    shutil.copy(blocks[0], os.path.join(out, partition, os.path.basename(blocks[0])))
    with open(os.path.join(out, "EVENTS"), "w") as f:
        f.write(f"{EVENTS}\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
