//! Framing throughput over ~8 MiB of synthetic log lines, fed in 64 KiB reads as a socket
//! source would. The copy of each read into the buffer is included, as it is in a source.
//!
//! `cargo bench --bench codecs -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::codec::{Decoder, DecodingConfig, FrameLimits, FramingConfig};

const INPUT_BYTES: usize = 8 * 1024 * 1024;
const READ_BYTES: usize = 64 * 1024;

/// A small deterministic generator (xorshift), so every run frames the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Log lines of 100 to 250 bytes: a mix of JSON, logfmt and nginx access lines.
fn lines() -> Vec<String> {
    const PATHS: [&str; 4] = ["/", "/api/v1/orders", "/static/app.js", "/healthz"];
    const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut lines = Vec::new();
    let mut total = 0;
    while total < INPUT_BYTES {
        let target = 100 + rng.below(151) as usize;
        let id = rng.next();
        let level = LEVELS[rng.below(4) as usize];
        let path = PATHS[rng.below(4) as usize];
        let mut line = match rng.below(3) {
            0 => format!(
                r#"{{"ts":"2026-11-23T10:00:{:02}Z","level":"{level}","app":"checkout","req":"{id:x}","msg":""#,
                rng.below(60)
            ),
            1 => format!(
                "ts=2026-11-23T10:00:{:02}Z level={level} app=checkout req={id:x} path={path} msg=",
                rng.below(60)
            ),
            _ => format!(
                r#"10.{}.{}.{} - - [23/Nov/2026:10:00:00 +0000] "GET {path} HTTP/1.1" {} {} "-" "#,
                rng.below(256),
                rng.below(256),
                rng.below(256),
                [200, 304, 404, 500][rng.below(4) as usize],
                rng.below(100_000)
            ),
        };
        while line.len() < target {
            line.push(char::from(b'a' + rng.below(26) as u8));
        }
        line.truncate(target);
        total += line.len() + 1;
        lines.push(line);
    }
    lines
}

fn newline_stream(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INPUT_BYTES + 4096);
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// RFC 6587 frames with a syslog priority in front of each line and no trailing newline.
fn octet_stream(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INPUT_BYTES + lines.len() * 10);
    for line in lines {
        let msg = format!("<134>{line}");
        out.extend_from_slice(format!("{} ", msg.len()).as_bytes());
        out.extend_from_slice(msg.as_bytes());
    }
    out
}

fn length_stream(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INPUT_BYTES + lines.len() * 4);
    for line in lines {
        out.extend_from_slice(&(line.len() as u32).to_be_bytes());
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// Frames `input` in 64 KiB reads and returns the number of frames.
fn frame_all(framing: &FramingConfig, input: &[u8]) -> usize {
    let mut framer = framing.build();
    let mut buf = BytesMut::with_capacity(2 * READ_BYTES);
    let mut frames = 0;
    for read in input.chunks(READ_BYTES) {
        buf.extend_from_slice(read);
        while let Some(frame) = framer.next_frame(&mut buf, false) {
            black_box(frame);
            frames += 1;
        }
    }
    while let Some(frame) = framer.next_frame(&mut buf, true) {
        black_box(frame);
        frames += 1;
    }
    frames
}

/// Frames and decodes `input` into field maps, as a source does.
fn decode_all(framing: &FramingConfig, decoding: DecodingConfig, input: &[u8]) -> usize {
    let mut decoder = Decoder::new(framing.build(), decoding.build());
    let mut buf = BytesMut::with_capacity(2 * READ_BYTES);
    let mut items = 0;
    for read in input.chunks(READ_BYTES) {
        buf.extend_from_slice(read);
        decoder.decode_all(&mut buf, false, |item| {
            black_box(item);
            items += 1;
        });
    }
    decoder.decode_all(&mut buf, true, |item| {
        black_box(item);
        items += 1;
    });
    items
}

fn bench_framing(c: &mut Criterion) {
    let lines = lines();
    let limits = FrameLimits::default();
    let cases = [
        (
            "newline",
            FramingConfig::Newline(limits),
            newline_stream(&lines),
        ),
        (
            "octet_counting",
            FramingConfig::OctetCounting(limits),
            octet_stream(&lines),
        ),
        (
            "length_delimited",
            FramingConfig::LengthDelimited(limits),
            length_stream(&lines),
        ),
    ];

    let mut group = c.benchmark_group("framing");
    for (name, framing, input) in &cases {
        assert_eq!(frame_all(framing, input), lines.len(), "{name}");
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(*name, |b| b.iter(|| frame_all(framing, input)));
    }
    group.finish();

    // Framing plus the `bytes` decoding: the cost of building one field map per frame.
    let (_, framing, input) = &cases[0];
    let mut group = c.benchmark_group("decoder");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("newline_bytes", |b| {
        b.iter(|| decode_all(framing, DecodingConfig::Bytes, input))
    });
    group.finish();
}

criterion_group!(benches, bench_framing);
criterion_main!(benches);
