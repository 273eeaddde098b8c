//! Table tests for text layouts: each line's level, timestamp and source fields.

use super::*;
use crate::event::format_timestamp;

/// 2026-12-06T12:00:00Z, the arrival time of every line here.
const NOW: i64 = 1_796_558_400_000_000_000;

fn check(line: &str, level: Option<&str>, time: Option<&str>) {
    let got = scan(line.as_bytes(), NOW, true, &UTC);
    let got_time = match got.time {
        Search::Found(f) => Some(format_timestamp(f.nanos)),
        _ => None,
    };
    assert_eq!(
        (got.level.map(Level::as_str), got_time.as_deref()),
        (level, time),
        "line: {line:?}"
    );
}

#[test]
fn reference_time() {
    assert_eq!(format_timestamp(NOW), "2026-12-06T12:00:00.000000Z");
}

#[test]
fn layouts() {
    let table: &[(&str, Option<&str>, Option<&str>)] = &[
        // Android logcat threadtime, time, brief.
        (
            "12-06 01:29:59.626  1234  5678 I ActivityManager: Start proc",
            Some("info"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "12-06 01:29:59.626  1234  5678 E AndroidRuntime: FATAL EXCEPTION: main",
            Some("error"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "12-06 01:29:59.626 W/System.err( 1234): at x",
            Some("warn"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        ("V/Tag( 1234): verbose", Some("trace"), None),
        ("A/DEBUG   ( 1234): backtrace", Some("critical"), None),
        // glog / klog.
        (
            "I1206 01:29:59.626547    123 controller.go:24] synced",
            Some("info"),
            Some("2026-12-06T01:29:59.626547Z"),
        ),
        (
            "E1206 01:29:59.626547    123 controller.go:24] boom",
            Some("error"),
            Some("2026-12-06T01:29:59.626547Z"),
        ),
        // log4j / logback / log4net.
        (
            "2026-12-06 01:29:59,626 ERROR [main] com.example.App - boom",
            Some("error"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "2026-12-06 01:29:59.626 [http-nio-8080-exec-1] WARN  c.e.Svc - slow",
            Some("warn"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "01:29:59.626 [main] DEBUG com.example.App - starting",
            Some("debug"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "2026-12-06T01:29:59,626 INFO  [org.jboss.as] (MSC service thread 1-2) WFLYSRV0049",
            Some("info"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        // java.util.logging: the level is on the second line.
        (
            "Dec 06, 2026 1:29:59 AM com.example.App main",
            None,
            Some("2026-12-06T01:29:59.000000Z"),
        ),
        (
            "Dec 06, 2026 1:29:59 PM com.example.App main",
            None,
            Some("2026-12-06T13:29:59.000000Z"),
        ),
        ("SEVERE: could not connect", Some("error"), None),
        ("FINE: cache warmed", Some("debug"), None),
        // Python logging.
        ("WARNING:root:disk almost full", Some("warn"), None),
        ("CRITICAL:app.db:gone", Some("critical"), None),
        (
            "2026-12-06 01:29:59,626 - myapp.db - ERROR - connection lost",
            Some("error"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "2026-12-06 01:29:59,626 INFO starting",
            Some("info"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        // Ruby Logger.
        (
            "E, [2026-12-06T01:29:59.626547 #1234] ERROR -- : boom",
            Some("error"),
            Some("2026-12-06T01:29:59.626547Z"),
        ),
        (
            "I, [2026-12-06T01:29:59.626547 #1234]  INFO -- app: hi",
            Some("info"),
            Some("2026-12-06T01:29:59.626547Z"),
        ),
        // Serilog, Elixir, hclog.
        (
            "[01:29:59 INF] Starting web host",
            Some("info"),
            Some("2026-12-06T01:29:59.000000Z"),
        ),
        (
            "[01:29:59 WRN] Slow",
            Some("warn"),
            Some("2026-12-06T01:29:59.000000Z"),
        ),
        (
            "01:29:59.626 [error] GenServer terminating",
            Some("error"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "2026-12-06T01:29:59.626Z [INFO]  core: vault is unsealed",
            Some("info"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        // nginx, Apache 2.2 and 2.4.
        (
            "2026/12/06 01:31:37 [error] 123#0: *1 open() failed",
            Some("error"),
            Some("2026-12-06T01:31:37.000000Z"),
        ),
        (
            "[Sun Dec 06 01:29:59 2026] [notice] Apache configured",
            Some("notice"),
            Some("2026-12-06T01:29:59.000000Z"),
        ),
        (
            "[Sun Dec 06 01:29:59.626547 2026] [core:error] [pid 35708:tid 4328] [client 1.2.3.4:0] AH00037",
            Some("error"),
            Some("2026-12-06T01:29:59.626547Z"),
        ),
        (
            "[Sun Dec 06 01:29:59.626547 2026] [ssl:trace3] [pid 1] x",
            Some("trace"),
            Some("2026-12-06T01:29:59.626547Z"),
        ),
        // PostgreSQL.
        (
            "2026-12-06 01:29:59.626 UTC [1234] LOG:  database system is ready",
            Some("info"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "2026-12-06 01:29:59.626 UTC [1234] FATAL:  role \"x\" does not exist",
            Some("critical"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "2026-12-06 01:29:59.626 UTC [1234] DETAIL:  Key (id)=(1) already exists.",
            None,
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        ("ERROR:  relation \"x\" does not exist", Some("error"), None),
        // MySQL 8, MariaDB.
        (
            "2026-12-06T01:29:59.626547Z 0 [System] [MY-010116] [Server] starting",
            Some("info"),
            Some("2026-12-06T01:29:59.626547Z"),
        ),
        (
            "2026-12-06T01:29:59.626547Z 0 [Warning] [MY-010068] [Server] CA certificate",
            Some("warn"),
            Some("2026-12-06T01:29:59.626547Z"),
        ),
        (
            "2026-12-06  1:29:59 0 [Note] InnoDB: Initializing buffer pool",
            Some("info"),
            Some("2026-12-06T01:29:59.000000Z"),
        ),
        (
            "2026-12-06 11:29:59 0 [ERROR] mariadbd: Can't lock aria control file",
            Some("error"),
            Some("2026-12-06T11:29:59.000000Z"),
        ),
        // Redis.
        (
            "1234:M 06 Dec 2026 01:29:59.626 * Ready to accept connections",
            Some("notice"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "1234:M 06 Dec 2026 01:29:59.626 # WARNING overcommit_memory is set to 0!",
            Some("warn"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "1234:C 06 Dec 2026 01:29:59.626 . debug",
            Some("debug"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        // MongoDB text (before 4.4).
        (
            "2026-12-06T01:29:59.626+0000 I  NETWORK  [listener] waiting for connections",
            Some("info"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "2026-12-06T01:29:59.626+0100 E  STORAGE  [initandlisten] exception",
            Some("error"),
            Some("2026-12-06T00:29:59.626000Z"),
        ),
        // Windows CBS / CSI.
        (
            "2026-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack",
            Some("info"),
            Some("2026-09-28T04:30:30.000000Z"),
        ),
        (
            "2026-09-28 04:30:31, Error                 CSI    00000001@2026/9/28:04:30:31",
            Some("error"),
            Some("2026-09-28T04:30:31.000000Z"),
        ),
        // supervisord.
        (
            "2026-12-06 01:29:59,626 DEBG 'app' stdout output:",
            Some("debug"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        (
            "2026-12-06 01:29:59,626 CRIT Supervisor is running as root.",
            Some("critical"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        // zap console (tab separated, lower case).
        (
            "2026-12-06T01:29:59.626Z\twarn\tserver/main.go:12\tslow",
            Some("warn"),
            Some("2026-12-06T01:29:59.626000Z"),
        ),
        // Loghub layouts.
        (
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: x",
            Some("info"),
            Some("2008-11-09T20:36:15.000000Z"),
        ),
        (
            "17/06/09 20:10:40 ERROR executor.Executor: z",
            Some("error"),
            Some("2017-06-09T20:10:40.000000Z"),
        ),
        (
            "2015-07-29 19:04:29,071 - WARN  [SendWorker:188978561024] - y",
            Some("warn"),
            Some("2015-07-29T19:04:29.071000Z"),
        ),
        // Level first.
        ("[ERROR] build failed", Some("error"), None),
        (
            "[ERROR] 2026-12-06 01:29:59 build failed",
            Some("error"),
            Some("2026-12-06T01:29:59.000000Z"),
        ),
        (
            "WARN  2026-12-06T01:29:59Z disk",
            Some("warn"),
            Some("2026-12-06T01:29:59.000000Z"),
        ),
        ("INFO  starting", Some("info"), None),
        ("<crit> kernel panic", Some("critical"), None),
        ("error: could not open file", Some("error"), None),
        // A timestamp not at the start.
        (
            "worker-3 | 2026-12-06T01:29:59Z request done",
            None,
            Some("2026-12-06T01:29:59.000000Z"),
        ),
    ];
    for (line, level, time) in table {
        check(line, *level, *time);
    }
}

#[test]
fn no_level_from_words_in_the_message() {
    let table = [
        "2026-12-06 01:29:59,626 user reported an ERROR in the form",
        "retrying after ERROR from upstream",
        "processed with 0 errors",
        "GET /api/ERROR HTTP/1.1",
        "an error occurred",
        "I think so",
        "Invalid user webmaster from 173.234.31.186",
        "reverse mapping failed - POSSIBLE BREAK-IN ATTEMPT!",
        "a word: error: late colon",
        "FINE CONFIG VERBOSE",
        "Error loading config, retrying",
        "Warning signs were ignored",
        "12-06 01:29:59.626 the E key was pressed",
        "2026-12-06 01:29:59 E is a letter",
        "2026/12/06 01:31:37 something [error] later",
        "1234:M 06 Dec 2026 01:29:59.626 x",
        "",
    ];
    for line in table {
        assert_eq!(
            scan(line.as_bytes(), NOW, true, &UTC).level,
            None,
            "line: {line:?}"
        );
    }
}

#[test]
fn source_fields() {
    let line = "12-06 01:29:59.626  1234  5678 I ActivityManager: Start proc";
    let got = scan(line.as_bytes(), NOW, true, &UTC).source;
    let text = |r: &Option<Range<usize>>| r.clone().map(|r| &line[r]);
    assert_eq!(text(&got.pid), Some("1234"));
    assert_eq!(text(&got.tid), Some("5678"));
    assert_eq!(text(&got.component), Some("ActivityManager"));

    let line = "W/System.err( 1234): at x";
    let got = scan(line.as_bytes(), NOW, true, &UTC).source;
    let text = |r: &Option<Range<usize>>| r.clone().map(|r| &line[r]);
    assert_eq!(text(&got.component), Some("System.err"));
    assert_eq!(text(&got.pid), Some("1234"));

    let line = "I1206 01:29:59.626547    123 controller.go:24] synced";
    let got = scan(line.as_bytes(), NOW, true, &UTC).source;
    let text = |r: &Option<Range<usize>>| r.clone().map(|r| &line[r]);
    assert_eq!(text(&got.tid), Some("123"));
    assert_eq!(text(&got.file), Some("controller.go"));
    assert_eq!(text(&got.line), Some("24"));

    let line = "2026-12-06 01:29:59.626 [main] WARN  com.example.Svc - slow";
    let got = scan(line.as_bytes(), NOW, true, &UTC).source;
    let text = |r: &Option<Range<usize>>| r.clone().map(|r| &line[r]);
    assert_eq!(text(&got.thread), Some("main"));
    assert_eq!(text(&got.logger), Some("com.example.Svc"));

    // MySQL's number is a thread id, not a pid; `[web]` before no level is no thread.
    for line in [
        "2026-12-06T01:29:59.626547Z 0 [Warning] [MY-010068] [Server] CA",
        "[web] 2026-12-06T01:29:59Z started",
    ] {
        assert_eq!(
            scan(line.as_bytes(), NOW, true, &UTC).source,
            Source::default(),
            "{line}"
        );
    }
}

#[test]
fn layout_names() {
    let table: &[(&str, Option<&str>)] = &[
        ("E1206 01:29:59.626547    123 c.go:24] boom", Some("glog")),
        ("12-06 01:29:59.626  1234  5678 I Tag: x", Some("logcat")),
        ("12-06 01:29:59.626 W/Tag( 1234): x", Some("logcat")),
        ("I/Tag( 1234): x", Some("logcat")),
        (
            "E, [2026-12-06T01:29:59.626547 #1] ERROR -- : x",
            Some("ruby_logger"),
        ),
        ("1234:M 06 Dec 2026 01:29:59.626 * Ready", Some("redis")),
        (
            "2026-12-06 01:29:59.626 UTC [1] LOG:  ready",
            Some("postgresql"),
        ),
        (
            "2026-12-06 01:29:59.626 UTC [1] DETAIL:  Key",
            Some("postgresql"),
        ),
        (
            "2026-12-06T01:29:59.626+0000 I  NETWORK  [l] x",
            Some("mongodb"),
        ),
        (
            "2026/12/06 01:31:37 [error] 1#0: x",
            Some("bracketed_level"),
        ),
        (
            "2026-12-06 01:29:59,626 ERROR [main] c.e.App - x",
            Some("timestamp_level"),
        ),
        ("WARNING:root:x", Some("level_first")),
        ("time=2026 level=warn msg=x", Some("level_key")),
        ("2026-12-06T01:29:59Z started", Some("timestamp")),
        ("hello world", None),
    ];
    for (line, name) in table {
        assert_eq!(
            scan(line.as_bytes(), NOW, true, &UTC).layout,
            *name,
            "line: {line:?}"
        );
    }
}
