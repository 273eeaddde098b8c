//! Table tests for the syslog parser; expected maps are written as JSON for readability.

use super::*;
use crate::parse::parse_timestamp;

/// The parsed map rendered as JSON, with timestamps as RFC 3339 strings.
fn render(map: &Map) -> String {
    serde_json::to_string(map).unwrap()
}

fn ts(text: &str) -> String {
    crate::event::format_timestamp(parse_timestamp(text.as_bytes(), 0).unwrap())
}

fn check(input: &str, expected: Result<String, &str>) {
    let got = syslog(input.as_bytes())
        .map(|m| render(&m))
        .map_err(|e| e.reason);
    assert_eq!(got, expected.map_err(str::to_string), "input: {input:?}");
}

#[test]
fn rfc5424() {
    check(
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed",
        Ok(r#"{"facility":"auth","severity":"crit","timestamp":"2003-10-11T22:14:15.003000Z","host":"mymachine.example.com","app":"su","msgid":"ID47","message":"BOM'su root' failed"}"#.into()),
    );
    check(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.\n",
        Ok(r#"{"facility":"local4","severity":"notice","timestamp":"2003-08-24T12:14:15.000003Z","host":"192.0.2.1","app":"myproc","proc_id":"8710","message":"%% It's time to make the do-nuts."}"#.into()),
    );
    check(
        r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event"#,
        Ok(r#"{"facility":"local4","severity":"notice","timestamp":"2003-10-11T22:14:15.003000Z","host":"mymachine.example.com","app":"evntslog","msgid":"ID47","sd":{"exampleSDID@32473":{"iut":"3","eventSource":"Application","eventID":"1011"}},"message":"An application event"}"#.into()),
    );
    check(
        r#"<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a@1 x="q\"uo\]te\\" y=""][b@2]"#,
        Ok(r#"{"facility":"local4","severity":"notice","timestamp":"2003-10-11T22:14:15.003000Z","host":"host","app":"app","msgid":"ID47","sd":{"a@1":{"x":"q\"uo]te\\","y":""},"b@2":{}}}"#.into()),
    );
    check(
        "<0>1 - - - - - -",
        Ok(r#"{"facility":"kern","severity":"emerg"}"#.into()),
    );
    check(
        "<13>1 2026-11-23T10:00:00Z h a p m - \u{feff}hello",
        Ok(r#"{"facility":"user","severity":"notice","timestamp":"2026-11-23T10:00:00.000000Z","host":"h","app":"a","proc_id":"p","msgid":"m","message":"hello"}"#.into()),
    );
}

#[test]
fn logplex() {
    check(
        "<190>1 2026-11-23T10:00:00.123+00:00 host app web.1 - message here",
        Ok(r#"{"facility":"local7","severity":"info","timestamp":"2026-11-23T10:00:00.123000Z","host":"host","app":"app","proc_id":"web.1","instance":"web.1","message":"message here"}"#.into()),
    );
    check(
        "<40>1 2012-11-30T06:45:29+00:00 host heroku router - at=info method=GET status=200",
        Ok(r#"{"facility":"syslog","severity":"emerg","timestamp":"2012-11-30T06:45:29.000000Z","host":"host","app":"heroku","proc_id":"router","instance":"router","message":"at=info method=GET status=200"}"#.into()),
    );
    // A message starting with `[` that is not structured data is still the message.
    check(
        "<190>1 2026-11-23T10:00:00Z host app web.2 - [INFO] started",
        Ok(r#"{"facility":"local7","severity":"info","timestamp":"2026-11-23T10:00:00.000000Z","host":"host","app":"app","proc_id":"web.2","instance":"web.2","message":"[INFO] started"}"#.into()),
    );
}

#[test]
fn rfc3164() {
    let t = ts("Oct 11 22:14:15");
    check(
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        Ok(format!(
            r#"{{"facility":"auth","severity":"crit","timestamp":"{t}","host":"mymachine","app":"su","message":"'su root' failed for lonvick on /dev/pts/8"}}"#
        )),
    );
    check(
        "<13>Oct 11 22:14:15 host sshd[24200]: Invalid user x\r\n",
        Ok(format!(
            r#"{{"facility":"user","severity":"notice","timestamp":"{t}","host":"host","app":"sshd","proc_id":"24200","message":"Invalid user x"}}"#
        )),
    );
    // Without a hostname, as a local logger sends it.
    check(
        "<13>Oct 11 22:14:15 sshd[1]: hi",
        Ok(format!(
            r#"{{"facility":"user","severity":"notice","timestamp":"{t}","app":"sshd","proc_id":"1","message":"hi"}}"#
        )),
    );
    // Without a priority, as written to /var/log by the daemon.
    let t = ts("Jun 14 15:16:01");
    check(
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; uid=0",
        Ok(format!(
            r#"{{"timestamp":"{t}","host":"combo","app":"sshd(pam_unix)","proc_id":"19939","message":"authentication failure; uid=0"}}"#
        )),
    );
    let t = ts("Dec  4 06:55:46");
    check(
        "Dec  4 06:55:46 LabSZ kernel: boot",
        Ok(format!(
            r#"{{"timestamp":"{t}","host":"LabSZ","app":"kernel","message":"boot"}}"#
        )),
    );
    // No tag: everything after the timestamp is the message.
    check(
        "Dec  4 06:55:46 just some words",
        Ok(format!(
            r#"{{"timestamp":"{t}","message":"just some words"}}"#
        )),
    );
    // RFC 3339 timestamps, as rsyslog forwards them.
    check(
        "<86>2026-11-23T10:00:00+01:00 web1 cron[7]: ran",
        Ok(r#"{"facility":"authpriv","severity":"info","timestamp":"2026-11-23T09:00:00.000000Z","host":"web1","app":"cron","proc_id":"7","message":"ran"}"#.into()),
    );
    // A priority but no timestamp: the rest is the message (RFC 3164 section 4.3.2).
    check(
        "<13>hello there",
        Ok(r#"{"facility":"user","severity":"notice","message":"hello there"}"#.into()),
    );
}

#[test]
fn errors() {
    check(
        "<192>1 - - - - - -",
        Err("invalid syslog priority: expected `<0>` to `<191>`"),
    );
    check(
        "<1234>x",
        Err("invalid syslog priority: expected `<0>` to `<191>`"),
    );
    check(
        "<>x",
        Err("invalid syslog priority: expected `<0>` to `<191>`"),
    );
    check(
        "<13>1 yesterday h a p m -",
        Err("invalid rfc 5424 timestamp `yesterday`"),
    );
    check(
        "<13>1 2026-11-23T10:00:00Z h a",
        Err("truncated rfc 5424 header: missing proc_id"),
    );
    check("<13>1", Err("truncated rfc 5424 header: missing timestamp"));
    check(
        "hello world",
        Err("not a syslog line: expected `<priority>` or a timestamp at `hello world`"),
    );
    check(
        "",
        Err("not a syslog line: expected `<priority>` or a timestamp at ``"),
    );
}

#[test]
fn invalid_utf8_and_huge_lines_are_handled() {
    let mut line = b"<13>1 2026-11-23T10:00:00Z h\xff a p m [x@1 k=\"\xfe\"] ".to_vec();
    line.extend(std::iter::repeat_n(b'[', 1_000_000));
    let map = syslog(&line).unwrap();
    assert_eq!(
        map.get("host"),
        Some(&Value::Bytes(Bytes::from_static(b"h\xff")))
    );
    assert_eq!(
        map.get("message").and_then(Value::as_bytes).map(Bytes::len),
        Some(1_000_000)
    );
}
