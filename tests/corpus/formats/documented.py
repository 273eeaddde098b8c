#!/usr/bin/env python3
"""Writes the corpus files of layouts whose program Debian does not ship (or that take
long to set up), line by line as each program's documentation describes its layout.

Each file is `<layout>.tsv`: `#` comment lines (the arrival time the test uses as the
reference for year-less and date-less times), then one row per line:

    expected level <TAB> expected timestamp <TAB> the log line

The level is in Sluice's vocabulary, mapped by the tables below from the program's own
level names (written here, not derived from Sluice); `-` means the line carries none. The
timestamp is UTC to the second; `--MM-DDTHH:MM:SS` for layouts without a year (judged on
month, day and time); `-` for none. Deterministic (seeded): re-running rewrites the same
files.

    python3 tests/corpus/formats/documented.py
"""

import datetime as dt
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
ARRIVAL = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.timezone.utc)
LINES = 60

MESSAGES = [
    "Starting service",
    "connection reset by peer",
    "cache warmed in 12 ms",
    "user alice logged in from 10.0.0.7",
    "retrying request after ERROR from upstream",
    "processed 1200 records with 0 errors",
    "Warning threshold not reached",
    "shutting down: received SIGTERM",
    "config reloaded (3 changes)",
    "GET /api/v1/items?id=42 took 231ms",
    "FATAL flag cleared for job 7",
    "disk usage at 91%",
    "INFO: nested marker inside the message",
    "could not open file '/var/lib/app/state.db': permission denied",
]


def when(rng, within_hours=72):
    """A time before arrival, with microseconds."""
    back = rng.uniform(60, within_hours * 3600)
    return ARRIVAL - dt.timedelta(seconds=back)


def same_day(rng):
    """A time earlier on arrival's day (for layouts that print only the clock)."""
    back = rng.uniform(60, 11 * 3600)
    return ARRIVAL - dt.timedelta(seconds=back)


def full(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def yearless(t):
    return t.strftime("--%m-%dT%H:%M:%S")


def ms(t):
    return f"{t.microsecond // 1000:03d}"


def write(name, about, rows):
    path = os.path.join(HERE, f"{name}.tsv")
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"# {about}\n")
        out.write("# written from the program's documentation by documented.py\n")
        out.write(f"# arrival: {ARRIVAL.strftime('%Y-%m-%dT%H:%M:%SZ')}\n")
        for level, ts, line in rows:
            assert "\n" not in line
            out.write(f"{level}\t{ts}\t{line}\n")


def layout(name, about, levels, make, seed, count=LINES):
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        native, ours = rng.choice(levels)
        msg = rng.choice(MESSAGES)
        rows.append(make(rng, native, ours, msg, i))
    write(name, about, rows)


def main():
    android = [("V", "trace"), ("D", "debug"), ("I", "info"), ("W", "warn"), ("E", "error"),
               ("F", "critical"), ("A", "critical")]
    tags = ["ActivityManager", "System.err", "Vold", "chromium", "AndroidRuntime", "wpa_supplicant"]

    def threadtime(rng, lv, ours, msg, i):
        t, pid = when(rng, 48), rng.randint(1, 32767)
        line = (f"{t.strftime('%m-%d %H:%M:%S')}.{ms(t)} {pid:5d} {rng.randint(1, 32767):5d} "
                f"{lv} {rng.choice(tags)}: {msg}")
        return ours, yearless(t), line
    layout("logcat_threadtime", "Android logcat -v threadtime (developer.android.com/tools/logcat)",
           android, threadtime, 1)

    def logcat_time(rng, lv, ours, msg, i):
        t = when(rng, 48)
        line = (f"{t.strftime('%m-%d %H:%M:%S')}.{ms(t)} {lv}/{rng.choice(tags)}"
                f"({rng.randint(1, 32767):5d}): {msg}")
        return ours, yearless(t), line
    layout("logcat_time", "Android logcat -v time", android, logcat_time, 2)

    def brief(rng, lv, ours, msg, i):
        return ours, "-", f"{lv}/{rng.choice(tags)}({rng.randint(1, 32767):5d}): {msg}"
    layout("logcat_brief", "Android logcat -v brief", android, brief, 3)

    glog_levels = [("I", "info"), ("W", "warn"), ("E", "error"), ("F", "critical")]
    files = ["controller.go", "reflector.go", "server.go", "kubelet.go", "main.cc"]

    def glog(rng, lv, ours, msg, i):
        t = when(rng, 48)
        line = (f"{lv}{t.strftime('%m%d %H:%M:%S')}.{t.microsecond:06d} {rng.randint(1, 99999):7d} "
                f"{rng.choice(files)}:{rng.randint(1, 900)}] {msg}")
        return ours, yearless(t), line
    layout("glog", "glog / klog (Kubernetes components): Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg",
           glog_levels, glog, 4)

    log4j = [("TRACE", "trace"), ("DEBUG", "debug"), ("INFO", "info"), ("WARN", "warn"),
             ("ERROR", "error"), ("FATAL", "critical")]
    loggers = ["com.example.App", "org.hibernate.SQL", "o.s.web.servlet.DispatcherServlet", "Main"]
    threads = ["main", "http-nio-8080-exec-3", "pool-1-thread-2", "Timer-0"]

    def log4j_pattern(rng, lv, ours, msg, i):
        t = when(rng)
        line = (f"{t.strftime('%Y-%m-%d %H:%M:%S')},{ms(t)} {lv:<5} [{rng.choice(threads)}] "
                f"{rng.choice(loggers)} - {msg}")
        return ours, full(t), line
    layout("log4j", "log4j PatternLayout %d %-5p [%t] %c - %m", log4j, log4j_pattern, 5)

    def logback(rng, lv, ours, msg, i):
        t = same_day(rng)
        line = (f"{t.strftime('%H:%M:%S')}.{ms(t)} [{rng.choice(threads)}] {lv:<5} "
                f"{rng.choice(loggers)} - {msg}")
        return ours, full(t), line
    layout("logback", "logback's default console pattern %d{HH:mm:ss.SSS} [%thread] %-5level %logger{36} - %msg",
           [lv for lv in log4j if lv[0] != "FATAL"], logback, 6)

    def log4net(rng, lv, ours, msg, i):
        line = f"{rng.randint(0, 900000)} [{rng.randint(1, 20)}] {lv} {rng.choice(loggers)} (null) - {msg}"
        return ours, "-", line
    layout("log4net", "log4net's documented pattern %timestamp [%thread] %-5level %logger %ndc - %message "
           "(%timestamp is milliseconds since start: no time)",
           [("DEBUG", "debug"), ("INFO", "info"), ("WARN", "warn"), ("ERROR", "error"), ("FATAL", "critical")],
           log4net, 7)

    def spring(rng, lv, ours, msg, i):
        t = when(rng)
        line = (f"{t.strftime('%Y-%m-%dT%H:%M:%S')}.{ms(t)}Z {lv:>5} {rng.randint(1, 65535)} --- "
                f"[{rng.choice(threads)}] {rng.choice(loggers):<40} : {msg}")
        return ours, full(t), line
    layout("spring_boot", "Spring Boot 3 default console layout",
           [lv for lv in log4j if lv[0] != "FATAL"], spring, 8)

    ruby = [("DEBUG", "debug"), ("INFO", "info"), ("WARN", "warn"), ("ERROR", "error"), ("FATAL", "critical")]

    def ruby_logger(rng, lv, ours, msg, i):
        t = when(rng)
        prog = rng.choice(["", "rails", "sidekiq"])
        line = (f"{lv[0]}, [{t.strftime('%Y-%m-%dT%H:%M:%S')}.{t.microsecond:06d} #{rng.randint(1, 99999)}] "
                f"{lv:>5} -- {prog}: {msg}")
        return ours, full(t), line
    layout("ruby_logger", "Ruby Logger / Rails (Logger::Formatter)", ruby, ruby_logger, 9)

    serilog = [("VRB", "trace"), ("DBG", "debug"), ("INF", "info"), ("WRN", "warn"), ("ERR", "error"),
               ("FTL", "critical")]

    def serilog_console(rng, lv, ours, msg, i):
        t = same_day(rng)
        return ours, full(t), f"[{t.strftime('%H:%M:%S')} {lv}] {msg}"
    layout("serilog", "Serilog console sink default [{Timestamp:HH:mm:ss} {Level:u3}] {Message}",
           serilog, serilog_console, 10)

    elixir = [("debug", "debug"), ("info", "info"), ("notice", "notice"), ("warning", "warn"),
              ("error", "error"), ("critical", "critical"), ("alert", "alert"), ("emergency", "emergency")]

    def elixir_logger(rng, lv, ours, msg, i):
        t = same_day(rng)
        return ours, full(t), f"{t.strftime('%H:%M:%S')}.{ms(t)} [{lv}] {msg}"
    layout("elixir", "Elixir Logger default console format $time [$level] $message", elixir, elixir_logger, 11)

    apache = [("emerg", "emergency"), ("alert", "alert"), ("crit", "critical"), ("error", "error"),
              ("warn", "warn"), ("notice", "notice"), ("info", "info"), ("debug", "debug")]

    def apache22(rng, lv, ours, msg, i):
        t = when(rng)
        client = rng.choice(["", "[client 10.0.0.7] "])
        return ours, full(t), f"[{t.strftime('%a %b %d %H:%M:%S %Y')}] [{lv}] {client}{msg}"
    layout("apache22_error", "Apache httpd 2.2 error log", apache, apache22, 12)

    def apache24(rng, lv, ours, msg, i):
        t = when(rng)
        mod = rng.choice(["core", "mpm_event", "ssl", "proxy", "authz_core"])
        line = (f"[{t.strftime('%a %b %d %H:%M:%S')}.{t.microsecond:06d} {t.year}] [{mod}:{lv}] "
                f"[pid {rng.randint(1, 99999)}:tid {rng.randint(10**9, 10**10)}] "
                f"[client 10.0.0.{rng.randint(1, 254)}:{rng.randint(1024, 65535)}] AH0{rng.randint(1000, 9999)}: {msg}")
        return ours, full(t), line
    layout("apache24_error", "Apache httpd 2.4 error log (ErrorLogFormat default)",
           apache + [("trace3", "trace"), ("trace8", "trace")], apache24, 13)

    mysql = [("System", "info"), ("ERROR", "error"), ("Warning", "warn"), ("Note", "info")]

    def mysql8(rng, lv, ours, msg, i):
        t = when(rng)
        line = (f"{t.strftime('%Y-%m-%dT%H:%M:%S')}.{t.microsecond:06d}Z {rng.randint(0, 50)} [{lv}] "
                f"[MY-0{rng.randint(10000, 13999)}] [{rng.choice(['Server', 'InnoDB', 'Repl'])}] {msg}")
        return ours, full(t), line
    layout("mysql8_error", "MySQL 8 error log (log_error_services default)", mysql, mysql8, 14)

    def mariadb(rng, lv, ours, msg, i):
        t = when(rng)
        line = (f"{t.year}-{t.month:02d}-{t.day:02d} {t.hour:2d}:{t.minute:02d}:{t.second:02d} "
                f"{rng.randint(0, 50)} [{lv}] {rng.choice(['', 'InnoDB: ', 'mariadbd: '])}{msg}")
        return ours, full(t), line
    layout("mariadb_error", "MariaDB error log (space-padded hour)",
           [("ERROR", "error"), ("Warning", "warn"), ("Note", "info")], mariadb, 15)

    mongo = [("F", "critical"), ("E", "error"), ("W", "warn"), ("I", "info"), ("D", "debug")]

    def mongodb(rng, lv, ours, msg, i):
        t = when(rng)
        comp = rng.choice(["NETWORK", "STORAGE", "COMMAND", "REPL", "-"])
        line = (f"{t.strftime('%Y-%m-%dT%H:%M:%S')}.{ms(t)}+0000 {lv} {comp:<8} "
                f"[{rng.choice(['conn12', 'initandlisten', 'listener'])}] {msg}")
        return ours, full(t), line
    layout("mongodb_text", "MongoDB 3.x-4.2 text log", mongo, mongodb, 16)

    cbs = [("Info", "info"), ("Warning", "warn"), ("Error", "error")]

    def windows_cbs(rng, lv, ours, msg, i):
        t = when(rng)
        comp = rng.choice(["CBS", "CSI", "DPX"])
        return ours, full(t), f"{t.strftime('%Y-%m-%d %H:%M:%S')}, {lv:<22}{comp:<7}{msg}"
    layout("windows_cbs", r"Windows CBS.log / CSI (C:\Windows\Logs\CBS\CBS.log)", cbs, windows_cbs, 17)

    supervisor = [("CRIT", "critical"), ("ERRO", "error"), ("WARN", "warn"), ("INFO", "info"),
                  ("DEBG", "debug"), ("TRAC", "trace"), ("BLAT", "trace")]

    def supervisord(rng, lv, ours, msg, i):
        t = when(rng)
        return ours, full(t), f"{t.strftime('%Y-%m-%d %H:%M:%S')},{ms(t)} {lv} {msg}"
    layout("supervisord", "supervisord main log", supervisor, supervisord, 18)

    hclog = [("TRACE", "trace"), ("DEBUG", "debug"), ("INFO", "info"), ("WARN", "warn"), ("ERROR", "error")]

    def hashicorp(rng, lv, ours, msg, i):
        t = when(rng)
        line = (f"{t.strftime('%Y-%m-%dT%H:%M:%S')}.{ms(t)}Z [{lv}]{' ' * (6 - len(lv))}"
                f"{rng.choice(['core', 'agent', 'raft'])}: {msg}")
        return ours, full(t), line
    layout("hclog", "HashiCorp hclog (Vault, Consul, Nomad)", hclog, hashicorp, 19)

    zap = [("debug", "debug"), ("info", "info"), ("warn", "warn"), ("error", "error"), ("fatal", "critical")]

    def zap_console(rng, lv, ours, msg, i):
        t = when(rng)
        line = (f"{t.strftime('%Y-%m-%dT%H:%M:%S')}.{ms(t)}Z\t{lv}\t"
                f"{rng.choice(['server/main.go:41', 'db/pool.go:118'])}\t{msg}")
        return ours, full(t), line
    layout("zap_console", "Go zap console encoder (production config, ISO8601 time)", zap, zap_console, 20)

    slog = [("DEBUG", "debug"), ("INFO", "info"), ("WARN", "warn"), ("ERROR", "error")]

    def slog_text(rng, lv, ours, msg, i):
        t = when(rng)
        line = (f"time={t.strftime('%Y-%m-%dT%H:%M:%S')}.{ms(t)}Z level={lv} "
                f"msg=\"{msg}\" count={rng.randint(0, 99)}")
        return ours, full(t), line
    layout("go_slog_text", "Go log/slog TextHandler", slog, slog_text, 21)

    nginx = [("debug", "debug"), ("info", "info"), ("notice", "notice"), ("warn", "warn"),
             ("error", "error"), ("crit", "critical"), ("alert", "alert"), ("emerg", "emergency")]

    def nginx_error(rng, lv, ours, msg, i):
        t = when(rng)
        line = (f"{t.strftime('%Y/%m/%d %H:%M:%S')} [{lv}] {rng.randint(1, 99999)}#{rng.randint(0, 8)}: "
                f"*{rng.randint(1, 9999)} {msg}")
        return ours, full(t), line
    layout("nginx_error_documented", "nginx error log (all eight levels; nginx_error.tsv holds real lines)",
           nginx, nginx_error, 22)

    redis = [(".", "debug"), ("-", "info"), ("*", "notice"), ("#", "warn")]

    def redis_log(rng, lv, ours, msg, i):
        t = when(rng)
        line = (f"{rng.randint(1, 99999)}:{rng.choice('MSCX')} {t.strftime('%d %b %Y %H:%M:%S')}.{ms(t)} "
                f"{lv} {msg}")
        return ours, full(t), line
    layout("redis_documented", "Redis log (all four markers; redis.tsv holds real lines)", redis, redis_log, 23)

    # Lines that carry no level: prose, and timestamps followed by ordinary words.
    def no_level(rng, lv, ours, msg, i):
        t = when(rng)
        shapes = [
            (f"{t.strftime('%Y-%m-%d %H:%M:%S')} user reported an ERROR in the checkout form", full(t)),
            (f"{t.strftime('%Y-%m-%dT%H:%M:%S')}Z request finished: WARN flag not set", full(t)),
            ("Error loading config, retrying", "-"),
            ("the build printed WARNING twice", "-"),
            ("processed 10 items, 0 errors, 2 warnings", "-"),
            ("    at com.example.App.main(App.java:12)", "-"),
            (f"took 00:01:23 to {msg}", "-"),
            (f"worker-3 | {t.strftime('%Y-%m-%dT%H:%M:%S')}Z request finished in 12 ms", full(t)),
            ("Traceback (most recent call last):", "-"),
            (f"{t.strftime('%b %d, %Y %-I:%M:%S %p')} com.example.App main", full(t)),
        ]
        line, ts = shapes[i % len(shapes)]
        return "-", ts, line
    layout("no_level", "lines that carry no level of their own (written for this corpus)",
           [("-", "-")], no_level, 24, count=44)


if __name__ == "__main__":
    main()
