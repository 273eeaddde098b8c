#!/usr/bin/env python3
"""File-source benchmarks (issue 16 "Performance"), peers interleaved round by round.

Scenario E: one file written at full speed (`cat INPUT >> tailed.log`, started once the
router runs) -> file sink; done when the output holds every line. Peers: sluice's `file`
source, rsyslog `imfile` (inotify), syslog-ng `file()`; configs in benches/peers/.

Scenario F (sluice): 100 files written concurrently at a total rate (default 500k lines/s)
for DURATION seconds; every line carries its file, sequence and write time; the output is
sampled every 0.5 s to find, per file, the newest line that arrived: the lag of a file is
now minus that line's write time (while it is being written), the max over files and samples
is reported, with the time to all lines and peak RSS.

Scenario K (sluice): kubernetes_logs over a generated /var/log/pods layout (CRI lines,
20 containers), read from the start -> file sink as JSON with the kubernetes fields.

Usage:
  file-tail.py e --input mixed-2M.log --lines 2000000 --rounds 3 [--peers sluice,rsyslog,syslog-ng]
  file-tail.py f [--rate 500000] [--duration 10] [--files 100]
  file-tail.py k [--lines 2000000] [--rounds 3]
Environment: SLUICE (binary, default target/release/sluice), SYSLOG_NG, SYSLOG_NG_LIB
(LD_LIBRARY_PATH), SYSLOG_NG_MODULES (--module-path) for an unpacked syslog-ng.
One JSON object per run is appended to --results.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PEERS = os.path.join(ROOT, "benches", "peers")
WORK = "/tmp/hbench/e"
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


def vm_hwm_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class LineCounter:
    """Counts newlines of a growing file incrementally."""

    def __init__(self, path):
        self.path, self.pos, self.lines = path, 0, 0

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                while True:
                    chunk = f.read(8 << 20)
                    if not chunk:
                        break
                    self.lines += chunk.count(b"\n")
                    self.pos += len(chunk)
        except FileNotFoundError:
            pass
        return self.lines


def sluice_bin():
    return os.environ.get("SLUICE", os.path.join(ROOT, "target", "release", "sluice"))


def reset(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def router_cmd(peer, scenario):
    if peer == "sluice":
        return [sluice_bin(), "up", "--config", os.path.join(HERE, "%s-file.toml" % scenario)]
    if peer == "rsyslog":
        return ["rsyslogd", "-n", "-iNONE", "-f", os.path.join(PEERS, "rsyslog-%s.conf" % scenario)]
    if peer == "syslog-ng":
        cmd = [os.environ.get("SYSLOG_NG", "syslog-ng")]
        if os.environ.get("SYSLOG_NG_MODULES"):
            cmd.append("--module-path=" + os.environ["SYSLOG_NG_MODULES"])
        return cmd + ["-F", "-e", "--persist-file=%s/sng/persist" % WORK,
                      "--control=%s/sng/ctl" % WORK, "--pidfile=%s/sng/pid" % WORK, "--no-caps",
                      "-f", os.path.join(PEERS, "syslog-ng-%s.conf" % scenario)]
    raise SystemExit("unknown peer " + peer)


def spawn(peer, scenario, log):
    env = dict(os.environ)
    if peer == "syslog-ng" and os.environ.get("SYSLOG_NG_LIB"):
        env["LD_LIBRARY_PATH"] = os.environ["SYSLOG_NG_LIB"]
    return subprocess.Popen(router_cmd(peer, scenario), stdout=log, stderr=log, env=env)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run_e(args, peer, rnd):
    reset(WORK)
    os.makedirs(WORK + "/out")
    os.makedirs(WORK + "/sng")
    os.makedirs(WORK + "/rsyslog-work")
    os.makedirs(WORK + "/data")
    tailed = WORK + "/tailed.log"
    open(tailed, "wb").close()
    out = WORK + "/out/%s-E.log" % peer
    log = open(WORK + "/%s-E-%d.log" % (peer, rnd), "wb")
    proc = spawn(peer, "E", log)
    time.sleep(args.settle)  # the router opens the (empty) file
    counter = LineCounter(out)
    cpu0, load0 = proc_cpu_s(proc.pid), loadavg()
    t0 = time.monotonic()
    writer = subprocess.Popen(["sh", "-c", "cat '%s' >> '%s'" % (args.input, tailed)])
    hwm, done = 0.0, False
    while time.monotonic() - t0 < args.timeout:
        hwm = max(hwm, vm_hwm_mib(proc.pid) or 0)
        if counter.poll() >= args.lines:
            done = True
            break
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    wall = time.monotonic() - t0
    writer.wait()
    cpu = (proc_cpu_s(proc.pid) or 0) - (cpu0 or 0)
    hwm = max(hwm, vm_hwm_mib(proc.pid) or 0)
    stop(proc)
    return {"scenario": "E", "peer": peer, "round": rnd, "lines": counter.lines,
            "complete": done, "wall_s": round(wall, 3),
            "lines_per_s": round(counter.lines / wall) if wall else None,
            "cpu_pct": round(100 * cpu / wall), "peak_rss_mib": round(hwm, 1),
            "loadavg_start": load0, "loadavg_end": loadavg()}


def write_files(first, count, rate, duration, t0, written):
    """One writer process: files first..first+count at `rate` lines/s in total; each line
    carries its file, sequence and write time (ms), so the output shows each file's lag."""
    files = [open(WORK + "/many/f%03d.log" % i, "ab", buffering=0) for i in range(first, first + count)]
    pad = "x" * 110
    tick = 0.01
    per_tick = max(1, int(rate * tick / count))
    seqs = [0] * count
    next_t = t0
    while time.time() - t0 < duration:
        ms = int(time.time() * 1000)
        for k, f in enumerate(files):
            s0 = seqs[k]
            f.write("".join("f%03d %010d %013d %s\n" % (first + k, s0 + j, ms, pad) for j in range(per_tick)).encode())
            seqs[k] += per_tick
        next_t += tick
        delay = next_t - time.time()
        if delay > 0:
            time.sleep(delay)
    written.value = sum(seqs)


def run_f(args):
    """--files files written concurrently by --writers processes at --rate lines/s in total."""
    import multiprocessing as mp
    reset(WORK)
    os.makedirs(WORK + "/out")
    os.makedirs(WORK + "/many")
    os.makedirs(WORK + "/data")
    out = WORK + "/out/sluice-F.log"
    log = open(WORK + "/sluice-F.log", "wb")
    for i in range(args.files):
        open(WORK + "/many/f%03d.log" % i, "wb").close()
    proc = spawn("sluice", "F", log)
    time.sleep(args.settle)
    newest = [0] * args.files
    max_lag = [0.0]
    hwm = [0.0]
    writing = threading.Event()
    writing.set()
    stop_sampling = threading.Event()

    def sample():
        # Every 0.5 s, the newest line of each file among the output's last 32 MiB (a line
        # every 8 KiB: a read sends 64 KiB of one file, so each run of a file is seen):
        # while the writers run, a file's lag is now minus that line's write time.
        while not stop_sampling.wait(0.5):
            hwm[0] = max(hwm[0], vm_hwm_mib(proc.pid) or 0)
            try:
                size = os.path.getsize(out)
                with open(out, "rb") as f:
                    f.seek(max(0, size - (32 << 20)))
                    tail = f.read()
            except FileNotFoundError:
                continue
            for at in range(0, max(0, len(tail) - 200), 8192):
                start = tail.find(b"\n", at) + 1
                line = tail[start:start + 30]
                if line[:1] == b"f" and len(line) == 30:
                    try:
                        i, ms = int(line[1:4]), int(line[16:29])
                    except ValueError:
                        continue
                    newest[i] = max(newest[i], ms)
            if writing.is_set() and all(newest):
                now_ms = time.time() * 1000
                max_lag[0] = max(max_lag[0], max((now_ms - n) / 1000 for n in newest))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.time()
    cpu0 = proc_cpu_s(proc.pid)
    per = args.files // args.writers
    counts = [mp.Value("q", 0) for _ in range(args.writers)]
    writers = [mp.Process(target=write_files, args=(w * per, per, args.rate / args.writers, args.duration, t0, counts[w]))
               for w in range(args.writers)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    writing.clear()
    write_s = time.time() - t0
    total = sum(c.value for c in counts)
    counter = LineCounter(out)
    done = False
    while time.time() - t0 < args.timeout:
        if counter.poll() >= total:
            done = True
            break
        time.sleep(0.05)
    wall = time.time() - t0
    stop_sampling.set()
    sampler.join()
    cpu = (proc_cpu_s(proc.pid) or 0) - (cpu0 or 0)
    hwm[0] = max(hwm[0], vm_hwm_mib(proc.pid) or 0)
    stop(proc)
    return {"scenario": "F", "peer": "sluice", "files": args.files, "lines": counter.lines,
            "written": total, "complete": done, "write_s": round(write_s, 2),
            "offered_lines_per_s": round(total / write_s), "wall_s": round(wall, 2),
            "catch_up_s": round(wall - write_s, 2), "max_file_lag_s": round(max_lag[0], 2),
            "cpu_pct": round(100 * cpu / wall), "peak_rss_mib": round(hwm[0], 1),
            "loadavg_end": loadavg()}


def make_pods(root, lines, containers):
    """A kubelet layout: /var/log/pods/NS_POD_UID/CONTAINER/0.log in CRI format."""
    per = lines // containers
    msg = "level=info msg=\"request served\" path=/api/v1/items status=200 duration_ms=12 " + "y" * 60
    for c in range(containers):
        pod = "default_web-%d-7d4b9c_0f1e2d3c-4b5a-6978-8a9b-%012d" % (c, c)
        d = os.path.join(root, pod, "app")
        os.makedirs(d)
        with open(os.path.join(d, "0.log"), "w") as f:
            for k in range(per):
                # The container first: files whose first bytes match are one file to
                # the source (its identity is a checksum of them).
                f.write("2026-12-06T23:50:%02d.%09dZ stdout F c=%d %s seq=%d\n" % (k % 60, k, c, msg, k))
    return per * containers


def run_k(args, rnd):
    out = WORK + "/out/sluice-K.log"
    shutil.rmtree(WORK + "/out", ignore_errors=True)
    shutil.rmtree(WORK + "/data", ignore_errors=True)
    os.makedirs(WORK + "/out")
    os.makedirs(WORK + "/data")
    log = open(WORK + "/sluice-K-%d.log" % rnd, "wb")
    counter = LineCounter(out)
    t0 = time.monotonic()
    proc = spawn("sluice", "K", log)
    cpu0 = proc_cpu_s(proc.pid)
    hwm, done = 0.0, False
    while time.monotonic() - t0 < args.timeout:
        hwm = max(hwm, vm_hwm_mib(proc.pid) or 0)
        if counter.poll() >= args.total:
            done = True
            break
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    wall = time.monotonic() - t0
    cpu = (proc_cpu_s(proc.pid) or 0) - (cpu0 or 0)
    stop(proc)
    return {"scenario": "K", "peer": "sluice", "round": rnd, "lines": counter.lines,
            "complete": done, "wall_s": round(wall, 3),
            "lines_per_s": round(counter.lines / wall), "cpu_pct": round(100 * cpu / wall),
            "peak_rss_mib": round(hwm, 1), "loadavg_end": loadavg()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=["e", "f", "k"])
    p.add_argument("--input", default="/tmp/hbench/mixed-2M.log")
    p.add_argument("--lines", type=int, default=2_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--peers", default="sluice,rsyslog,syslog-ng")
    p.add_argument("--rate", type=int, default=500_000)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--files", type=int, default=100)
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--containers", type=int, default=20)
    p.add_argument("--settle", type=float, default=1.5)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--results", default="/tmp/hbench/file-source.jsonl")
    args = p.parse_args()
    rows = []
    if args.scenario == "e":
        peers = args.peers.split(",")
        for rnd in range(1, args.rounds + 1):
            # Interleaved, the order rotated each round, so the machine's load falls on all.
            order = peers[rnd - 1:] + peers[:rnd - 1]
            for peer in order:
                rows.append(run_e(args, peer, rnd))
                print(json.dumps(rows[-1]), flush=True)
    elif args.scenario == "f":
        for rnd in range(1, args.rounds + 1):
            rows.append(run_f(args))
            rows[-1]["round"] = rnd
            print(json.dumps(rows[-1]), flush=True)
    else:
        reset(WORK)
        args.total = make_pods(WORK + "/pods", args.lines, args.containers)
        for rnd in range(1, args.rounds + 1):
            rows.append(run_k(args, rnd))
            print(json.dumps(rows[-1]), flush=True)
    with open(args.results, "a") as f:
        for row in rows:
            row["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            f.write(json.dumps(row) + "\n")
    key = "lines_per_s" if args.scenario != "f" else "max_file_lag_s"
    for peer in sorted({r["peer"] for r in rows}):
        vals = [r[key] for r in rows if r["peer"] == peer and r.get(key) is not None]
        if vals:
            print("%s %s: median %s (min %s, max %s) over %d" % (
                peer, key, statistics.median(vals), min(vals), max(vals), len(vals)))


if __name__ == "__main__":
    sys.exit(main())
