#!/usr/bin/env python3
"""Writes the container log fixtures: files laid out as the kubelet lays out /var/log/pods
(CRI format, as containerd and CRI-O write it) and as Docker's json-file driver lays out
/var/lib/docker/containers, with the events a reader must make of them in expected/.

    python3 tests/corpus/container/generate.py

Runtimes split a line longer than 16 KiB: CRI into `P` parts ended by an `F` part, Docker
into objects whose `log` does not end in a newline; both are here, with stdout and stderr
interleaved in one file as runtimes write them.
"""
import datetime
import json
import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent
SPLIT = 16 * 1024  # containerd's and Docker's default split size
BASE = datetime.datetime(2026, 12, 6, 10, 0, 0, tzinfo=datetime.timezone.utc)


def stamp(n):
    """The n-th runtime time: RFC 3339 with nanoseconds, as runtimes write it."""
    t = BASE + datetime.timedelta(milliseconds=n)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}{n % 1000:03d}Z"


def long_line(tag):
    # Printable, with a sequence so a misjoined part shows.
    body = "".join(f"{tag}{i:06d} " for i in range(5000))
    return body[: 2 * SPLIT + 1234]


JAVA_TRACE = [
    "java.lang.IllegalStateException: queue is closed",
    "\tat com.example.Queue.take(Queue.java:42)",
    "\tat com.example.Worker.run(Worker.java:17)",
    "\tat java.base/java.lang.Thread.run(Thread.java:840)",
]


class Writer:
    def __init__(self):
        self.n = 0
        self.raw = []
        self.expected = []

    def time(self):
        self.n += 1
        return stamp(self.n)


def cri(w, stream, message, parts=None):
    """One container line, split into parts as the runtime does."""
    parts = parts or [message[i : i + SPLIT] for i in range(0, len(message), SPLIT)] or [""]
    first = None
    for i, part in enumerate(parts):
        t = w.time()
        first = first or t
        tag = "F" if i == len(parts) - 1 else "P"
        w.raw.append(f"{t} {stream} {tag} {part}" if part or tag == "P" else f"{t} {stream} F")
    w.expected.append({"message": message, "stream": stream, "time": first})


def docker(w, stream, message):
    parts = [message[i : i + SPLIT] for i in range(0, len(message), SPLIT)] or [""]
    first = None
    for i, part in enumerate(parts):
        t = w.time()
        first = first or t
        last = i == len(parts) - 1
        w.raw.append(json.dumps({"log": part + ("\n" if last else ""), "stream": stream, "time": t}))
    w.expected.append({"message": message, "stream": stream, "time": first})


def save(path, w, joined=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(w.raw) + "\n")
    name = path.relative_to(HERE).as_posix().replace("/", "__")
    out = HERE / "expected" / (name + ".jsonl")
    out.parent.mkdir(exist_ok=True)
    out.write_text("".join(json.dumps(e) + "\n" for e in (joined or w.expected)))


shutil.rmtree(HERE / "var", ignore_errors=True)
shutil.rmtree(HERE / "expected", ignore_errors=True)

# /var/log/pods/<namespace>_<pod name>_<pod uid>/<container name>/<restart count>.log
pod = HERE / "var/log/pods/default_web-7d4b9c8f6d-x2x7k_3c1f6a2e-8d7b-4b9e-9f64-2a1d0c5e7b11"

w = Writer()
cri(w, "stdout", '10.1.2.3 - - [06/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 612')
cri(w, "stderr", "2026/12/06 10:00:00 [notice] 1#1: signal process started")
# A long line split in three; a stderr line written between its parts.
long = long_line("n")
parts = [long[i : i + SPLIT] for i in range(0, len(long), SPLIT)]
first = w.time()
w.raw.append(f"{first} stdout P {parts[0]}")
cri(w, "stderr", "2026/12/06 10:00:01 [warn] 1#1: an upstream response is buffered")
t = w.time()
w.raw.append(f"{t} stdout P {parts[1]}")
t = w.time()
w.raw.append(f"{t} stdout F {parts[2]}")
# Complete once its last part is read: after the stderr line written between its parts.
w.expected.append({"message": long, "stream": "stdout", "time": first})
cri(w, "stdout", "")  # an empty line
cri(w, "stdout", '10.1.2.3 - - [06/Dec/2026:10:00:02 +0000] "GET /health HTTP/1.1" 200 2')
save(pod / "nginx/0.log", w)

# A Java container: its trace on stderr, access lines on stdout between the trace's lines.
w = Writer()
cri(w, "stdout", "GET /orders 200")
trace_start = None
for i, line in enumerate(JAVA_TRACE):
    cri(w, "stderr", line)
    trace_start = trace_start or w.expected[-1]["time"]
    if i == 1:
        cri(w, "stdout", "GET /orders/7 200")
cri(w, "stdout", "GET /orders/8 200")
cri(w, "stderr", "2026-12-06 10:00:05 INFO worker restarted")
save(pod / "app/1.log", w)
# With `multiline = { preset = "java" }`, the trace is one event (expected/*.java.jsonl).
joined = [
    {"message": "GET /orders 200", "stream": "stdout"},
    {"message": "GET /orders/7 200", "stream": "stdout"},
    {"message": "\n".join(JAVA_TRACE), "stream": "stderr", "time": trace_start},
    {"message": "GET /orders/8 200", "stream": "stdout"},
    {"message": "2026-12-06 10:00:05 INFO worker restarted", "stream": "stderr"},
]
(HERE / "expected" / "var__log__pods__app.java.jsonl").write_text(
    "".join(json.dumps(e) + "\n" for e in joined)
)

# /var/lib/docker/containers/<id>/<id>-json.log
cid = "4f1be8c2d2a7b3c9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"
w = Writer()
docker(w, "stdout", "listening on :8080")
docker(w, "stdout", long_line("d"))
docker(w, "stderr", 'level=warn msg="slow query" took=1.2s')
docker(w, "stdout", "tab\there \"quoted\" and unicode: é")
save(HERE / f"var/lib/docker/containers/{cid}/{cid}-json.log", w)
# A line cut by a crash of the daemon: a bad line, then the file goes on.
path = HERE / f"var/lib/docker/containers/{cid}/{cid}-json.log"
with path.open("a") as f:
    f.write('{"log":"cut by a cra\n')
    t = stamp(999)
    f.write(json.dumps({"log": "after the crash\n", "stream": "stdout", "time": t}) + "\n")
name = path.relative_to(HERE).as_posix().replace("/", "__")
with (HERE / "expected" / (name + ".jsonl")).open("a") as f:
    f.write(json.dumps({"message": "after the crash", "stream": "stdout", "time": t}) + "\n")
print("written")
