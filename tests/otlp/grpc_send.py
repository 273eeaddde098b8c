"""Sends raw bytes as one OTLP/gRPC LogsService/Export call, as a client with bugs or bad
intent might: the bytes are not checked. Usage: grpc_send.py HOST:PORT FILE [gzip]
[TOKEN]. Prints one JSON line: the status code's name, its details, and for an OK answer
the partial success's rejected count and message."""
import json
import sys

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

address, path = sys.argv[1], sys.argv[2]
gzip = len(sys.argv) > 3 and sys.argv[3] == "gzip"
token = sys.argv[4] if len(sys.argv) > 4 else ""
with open(path, "rb") as f:
    body = f.read()
options = [("grpc.max_send_message_length", 64 << 20)]
with grpc.insecure_channel(address, options=options) as channel:
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        request_serializer=None,
        response_deserializer=None,
    )
    metadata = [("authorization", f"Bearer {token}")] if token else None
    compression = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
    try:
        answer = export(body, timeout=20, metadata=metadata, compression=compression)
        response = logs_service_pb2.ExportLogsServiceResponse.FromString(answer)
        partial = response.partial_success
        print(json.dumps({
            "code": "OK",
            "details": "",
            "rejected": partial.rejected_log_records,
            "message": partial.error_message,
        }))
    except grpc.RpcError as e:
        print(json.dumps({"code": e.code().name, "details": e.details() or ""}))
