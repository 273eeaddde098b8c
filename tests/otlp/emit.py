"""Emits log records through the OpenTelemetry Python SDK's OTLP exporter, as an
instrumented app would: Python's logging bridge, resource attributes, and every record
inside a span, so that it carries the trace context.
Usage: emit.py ENDPOINT COUNT [http|grpc]. OTLP/HTTP (protobuf) by default; with grpc,
ENDPOINT is the gRPC server (http://HOST:PORT). Prints the span's trace and span ids in hex
("TRACE SPAN"). Exits 1 if an export failed."""
import logging
import sys

from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

endpoint, count = sys.argv[1], int(sys.argv[2])
protocol = sys.argv[3] if len(sys.argv) > 3 else "http"
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    exporter = OTLPLogExporter(endpoint=endpoint, insecure=True, timeout=10)
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    exporter = OTLPLogExporter(endpoint=endpoint, timeout=10)
provider = LoggerProvider(
    resource=Resource.create(
        {"service.name": "checkout", "service.instance.id": "pod-7", "k8s.namespace.name": "shop"}
    )
)
failed = []
original = exporter.export


def export(batch):
    result = original(batch)
    if result.name != "SUCCESS":
        failed.append(result)
    return result


exporter.export = export
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
set_logger_provider(provider)
logger = logging.getLogger("payments")
logger.setLevel(logging.DEBUG)
logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
tracer = TracerProvider().get_tracer("payments")
with tracer.start_as_current_span("checkout") as span:
    context = span.get_span_context()
    print(f"{context.trace_id:032x} {context.span_id:016x}", flush=True)
    for i in range(count):
        level = logging.ERROR if i % 2 else logging.INFO
        logger.log(level, "payment %d processed", i, extra={"order.id": i})
provider.shutdown()
sys.exit(1 if failed else 0)
