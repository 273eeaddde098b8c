"""Numbered log records through the OpenTelemetry Python SDK (logging bridge, batch
processor, OTLP/HTTP or OTLP/gRPC exporter), in batches a test asks for while it stops and
restarts the router behind ENDPOINT, so that the exporter's own retries carry the records
across. Usage: emit_across_restart.py ENDPOINT BATCH_SIZE [http|grpc] (with grpc, ENDPOINT
is the gRPC server, http://HOST:PORT). Prints "ready"; then for each stdin line
"batches N" exports N batches of BATCH_SIZE records ("record I", numbered on across
batches), each flushed before the next, printing "exported K ok|failed" per batch and
"done" after the N. Each retry the exporter logs is printed as "retrying REASON". At stdin's
end prints one JSON line: the record numbers of the exports that succeeded and of those
that failed, and the number of retries."""
import json
import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

endpoint, batch_size = sys.argv[1], int(sys.argv[2])
if len(sys.argv) > 3 and sys.argv[3] == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
# Long enough for the backoffs (1, 2, 4 s...) to span a router's restart.
options = {"timeout": 60}
if len(sys.argv) > 3 and sys.argv[3] == "grpc":
    # gRPC's channel reconnects on its own schedule (1 s growing by 1.6x up to 2 min), and
    # an export retried while the channel waits fails at once: on a loaded machine, where
    # the router takes seconds to start again, the two schedules can miss each other until
    # the exporter's six tries are spent. Reconnecting at least every second keeps the
    # exporter's own backoff the one that decides.
    options["channel_options"] = (("grpc.max_reconnect_backoff_ms", 1000),)
exporter = OTLPLogExporter(endpoint=endpoint, **options)
succeeded, failed = [], []
original = exporter.export


def export(batch):
    numbers = [int(str(r.log_record.body).split()[1]) for r in batch]
    result = original(batch)
    (succeeded if result == LogRecordExportResult.SUCCESS else failed).extend(numbers)
    return result


exporter.export = export


class Retries(logging.Handler):
    """The exporter's "Transient error ..., retrying in" warnings, printed and counted."""

    count = 0

    def emit(self, record):
        message = record.getMessage()
        if "retrying" in message:
            Retries.count += 1
            print(f"retrying {message}", flush=True)


exporter_log = logging.getLogger("opentelemetry.exporter.otlp")
exporter_log.addHandler(Retries())
exporter_log.setLevel(logging.WARNING)

provider = LoggerProvider(resource=Resource.create({"service.name": "restart-test"}))
# Exports happen when a batch is flushed, not on a timer.
processor = BatchLogRecordProcessor(
    exporter, schedule_delay_millis=600_000, max_export_batch_size=batch_size
)
provider.add_log_record_processor(processor)
logger = logging.getLogger("numbered")
logger.propagate = False
logger.setLevel(logging.INFO)
logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))

print("ready", flush=True)
n = batches = 0
for line in sys.stdin:
    count = int(line.split()[1])
    for _ in range(count):
        before = len(succeeded)
        for _ in range(batch_size):
            logger.info("record %d", n)
            n += 1
        provider.force_flush(120_000)
        batches += 1
        print(f"exported {batches} {'ok' if len(succeeded) > before else 'failed'}", flush=True)
    print("done", flush=True)
provider.shutdown()
print(json.dumps({"succeeded": succeeded, "failed": failed, "retries": Retries.count}), flush=True)
