#!/usr/bin/env python3
"""A live-tap client that never reads: taps output TAP (default `tag`) of the router whose
API is at 127.0.0.1:PORT (default 19686) once it answers, then holds the connection open
without reading for SECONDS (default 600). Its receive buffer is kept small, so the
router's per-client queue fills at once and every later event is dropped for it alone.

Usage: tap_client.py [--port 19686] [--tap tag] [--seconds 600]
"""
import argparse
import socket
import time

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=19686)
parser.add_argument("--tap", default="tag")
parser.add_argument("--seconds", type=float, default=600)
args = parser.parse_args()

deadline = time.time() + 60
while True:
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", args.port))
        break
    except OSError:
        sock.close()
        if time.time() > deadline:
            raise SystemExit("the router's API never answered")
        time.sleep(0.02)
sock.sendall(f"GET /v1/tap?component={args.tap} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
time.sleep(args.seconds)
