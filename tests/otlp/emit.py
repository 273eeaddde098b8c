"""Emits log records through the OpenTelemetry Python SDK's OTLP/HTTP exporter (protobuf),
as an instrumented app would. Usage: emit.py ENDPOINT COUNT. Exits 1 if the export failed."""
import logging
import sys

from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

endpoint, count = sys.argv[1], int(sys.argv[2])
provider = LoggerProvider(
    resource=Resource.create(
        {"service.name": "checkout", "service.instance.id": "pod-7", "k8s.namespace.name": "shop"}
    )
)
exporter = OTLPLogExporter(endpoint=endpoint, timeout=10)
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
for i in range(count):
    level = logging.ERROR if i % 2 else logging.INFO
    logger.log(level, "payment %d processed", i, extra={"order.id": i})
provider.shutdown()
sys.exit(1 if failed else 0)
