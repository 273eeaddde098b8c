#!/usr/bin/env python3
"""Writes fuzz/seeds/otlp_protobuf/: OTLP ExportLogsServiceRequest bodies encoded by hand
(field numbers from opentelemetry-proto's logs.proto), so the fuzzer starts from bodies
that reach past the refusals. Run from the repository root."""
import os
import struct


def varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def ld(field, payload):
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def vi(field, n):
    return varint(field << 3) + varint(n)


def f64(field, n):
    return varint(field << 3 | 1) + struct.pack("<Q", n)


def s(field, text):
    return ld(field, text.encode())


def any_string(text):
    return s(1, text)


def kv(key, value):
    return s(1, key) + ld(2, value)


resource = ld(1, kv("service.name", any_string("api"))) + ld(1, kv("k8s.pod.name", any_string("api-7d9f")))
record = (
    f64(1, 1796558400000000000)
    + vi(2, 9)
    + s(3, "INFO")
    + ld(5, any_string("hello"))
    + ld(6, kv("http.status", vi(3, 200)))
    + ld(9, bytes(range(16)))
    + ld(10, bytes(range(8)))
)
scope = ld(1, s(1, "app.logger") + s(2, "1.0")) + ld(2, record)
request = ld(1, ld(1, resource) + ld(2, scope))
# A record whose time is past what an event holds: unmappable.
late = ld(1, ld(2, ld(2, f64(1, 2**64 - 1) + ld(5, any_string("late")))))

out = "fuzz/seeds/otlp_protobuf"
os.makedirs(out, exist_ok=True)
for name, body in [
    ("request", request),
    ("empty", b""),
    ("truncated", request[: len(request) // 2]),
    ("unmappable", late),
]:
    with open(os.path.join(out, name), "wb") as f:
        f.write(body)
