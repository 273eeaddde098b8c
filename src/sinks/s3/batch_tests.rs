use std::io::Read;

use bytes::Bytes;

use super::*;
use crate::ack::AckStatus;

fn batcher(template: &str, compression: Compression, max_bytes: usize, max_open: usize) -> Batcher {
    Batcher::new(
        KeyTemplate::parse(template).expect("template"),
        Encoding::Json,
        compression,
        max_bytes,
        max_open,
        Duration::from_secs(60),
    )
    .expect("batcher")
}

fn event(app: &str, n: usize) -> Event {
    let mut event = Event::from_message(Bytes::from(format!("line {n}")));
    event.insert("app", app);
    event
}

fn decompress(compression: Compression, body: &[u8]) -> String {
    let mut out = String::new();
    match compression {
        Compression::None => out.push_str(std::str::from_utf8(body).expect("utf-8")),
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(body)
                .read_to_string(&mut out)
                .expect("gzip");
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(body)
                .expect("zstd")
                .read_to_string(&mut out)
                .expect("zstd");
        }
    }
    out
}

/// Every event lands exactly once, in order, in the object of its prefix, whatever the
/// compression; a multi-member gzip or multi-frame zstd object (more than one 256 KiB
/// chunk) reads back as one stream.
#[test]
fn objects_hold_their_prefix_events_in_order() {
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut b = batcher("logs/{{ app }}/", compression, usize::MAX, 8);
        let mut ready = Vec::new();
        let n = 20_000; // about 600 KiB per app: three chunks
        for i in 0..n {
            b.add(&event(if i % 2 == 0 { "web" } else { "db" }, i), &mut ready);
        }
        assert!(ready.is_empty());
        let mut sealed = b.drain();
        sealed.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        assert_eq!(
            sealed.iter().map(|s| s.prefix.as_str()).collect::<Vec<_>>(),
            ["logs/db/", "logs/web/"]
        );
        for (object, parity) in sealed.iter().zip([1, 0]) {
            assert_eq!(object.closed, Closed::Shutdown);
            let text = decompress(compression, &object.body);
            let expected: Vec<String> = (0..n)
                .filter(|i| i % 2 == parity)
                .map(|i| {
                    let app = if parity == 0 { "web" } else { "db" };
                    format!("{{\"message\":\"line {i}\",\"app\":\"{app}\"}}")
                })
                .collect();
            assert_eq!(
                text.lines().collect::<Vec<_>>(),
                expected,
                "{compression:?}"
            );
            assert_eq!(object.count, n / 2);
        }
    }
}

#[test]
fn closes_at_max_bytes() {
    let mut b = batcher("p/", Compression::None, 100, 8);
    let mut ready = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..10 {
        b.add(&event("a", i), &mut ready);
        sizes.extend(ready.drain(..).map(|s| {
            assert_eq!(s.closed, Closed::MaxBytes);
            s.count
        }));
    }
    // Each line is 31 bytes: the fourth passes 100.
    assert_eq!(sizes, [4, 4]);
    assert_eq!(b.open_objects(), 1);
}

/// Sender-chosen prefixes cannot open unbounded objects: the oldest is closed first.
#[test]
fn at_most_max_open_objects() {
    let mut b = batcher("{{ app }}/", Compression::Gzip, usize::MAX, 3);
    let mut ready = Vec::new();
    for i in 0..10 {
        b.add(&event(&format!("app{i}"), i), &mut ready);
        assert!(b.open_objects() <= 3);
    }
    let evicted: Vec<String> = ready.iter().map(|s| s.prefix.clone()).collect();
    assert_eq!(
        evicted,
        (0..7).map(|i| format!("app{i}/")).collect::<Vec<_>>()
    );
    assert!(ready.iter().all(|s| s.closed == Closed::MaxOpenObjects));
}

#[test]
fn times_out() {
    let mut b = Batcher::new(
        KeyTemplate::parse("p/").unwrap(),
        Encoding::Json,
        Compression::Gzip,
        usize::MAX,
        8,
        Duration::from_millis(50),
    )
    .unwrap();
    let mut ready = Vec::new();
    b.add(&event("a", 1), &mut ready);
    let deadline = b.next_deadline().expect("an object is open");
    assert!(b.expired(deadline - Duration::from_millis(1)).is_empty());
    let expired = b.expired(deadline);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].closed, Closed::Timeout);
    assert!(b.next_deadline().is_none());
}

/// The tokens wait for the object: nothing resolves while it is open; an object dropped
/// (a task cancelled) reports errored; its events read back carry their own tokens.
#[tokio::test]
async fn tokens_wait_for_the_object_and_read_back_for_dead_letters() {
    let (t1, mut r1) = AckToken::new();
    let (t2, r2) = AckToken::new();
    let mut b = Batcher::new(
        KeyTemplate::parse("p/").unwrap(),
        Encoding::Text,
        Compression::Zstd,
        usize::MAX,
        8,
        Duration::from_secs(60),
    )
    .unwrap();
    let mut ready = Vec::new();
    let mut e1 = event("a", 1);
    e1.meta.ack = Some(t1.clone());
    let mut e2 = event("a", 2);
    e2.meta.ack = Some(t2.clone());
    let mut bare = Event::new(Map::new());
    bare.insert("n", 3);
    bare.meta.ack = Some(t2.clone());
    for e in [&e1, &e1, &e2, &bare] {
        b.add(e, &mut ready);
    }
    drop((e1, e2, bare, t1, t2));
    assert!(
        r1.try_recv().is_err(),
        "no outcome while the object is open"
    );
    let mut sealed = b.drain().pop().expect("one object");
    let body = std::mem::take(&mut sealed.body);
    let events = sealed.events(&body, Encoding::Text, Compression::Zstd);
    let messages: Vec<String> = events
        .iter()
        .map(|e| {
            e.fields
                .get("message")
                .map(|v| v.to_text())
                .unwrap_or_default()
        })
        .collect();
    // Text: the message, or JSON for an event without one.
    assert_eq!(messages, ["line 1", "line 1", "line 2", "{\"n\":3}"]);
    let tokens: Vec<bool> = events.iter().map(|e| e.meta.ack.is_some()).collect();
    assert_eq!(tokens, [true; 4]);
    events[0]
        .meta
        .ack
        .as_ref()
        .unwrap()
        .update(AckStatus::Rejected);
    drop(events);
    // Dropped without discharging: errored, unless something worse was stated.
    drop(sealed);
    assert_eq!(r1.await.unwrap(), AckStatus::Rejected);
    assert_eq!(r2.await.unwrap(), AckStatus::Errored);
}
