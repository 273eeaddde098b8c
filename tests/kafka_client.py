#!/usr/bin/env python3
"""An independent Kafka client for sluice's tests (confluent-kafka, its own librdkafka).

  kafka_client.py produce BOOTSTRAP TOPIC COUNT [--apps N] [--start S] [--rate PER_SEC]
      Produces COUNT JSON messages {"app": "appK", "seq": S+i, "message": "..."} keyed by
      their app (app = (S+i) mod N), idempotently with acks=all; prints one JSON line
      {"delivered": n, "failed": m} when every delivery report is in.

  kafka_client.py consume BOOTSTRAP TOPIC COUNT [--timeout SECS]
      Reads every partition of TOPIC from the beginning (no consumer group) until COUNT
      messages arrived or nothing new came for TIMEOUT seconds; prints one JSON line per
      message: {"key", "partition", "offset", "value"} (key and value as UTF-8 text).

  kafka_client.py partitions BOOTSTRAP TOPIC
      Prints the number of partitions of TOPIC (0 when it does not exist).
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING


def produce(args):
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
    })
    counts = {"delivered": 0, "failed": 0}

    def report(err, _msg):
        counts["failed" if err is not None else "delivered"] += 1
        if err is not None:
            print(json.dumps({"error": str(err)}), file=sys.stderr)

    started = time.monotonic()
    for i in range(args.count):
        seq = args.start + i
        app = f"app{seq % args.apps}"
        value = json.dumps({"app": app, "seq": seq, "message": f"event {seq} of {app}"})
        while True:
            try:
                producer.produce(args.topic, value=value, key=app, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if args.rate:
            # Paced production, for tests that act while the stream is still flowing.
            due = started + (i + 1) / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                producer.poll(delay)
    producer.flush(60)
    print(json.dumps(counts), flush=True)
    return 0 if counts["failed"] == 0 and counts["delivered"] == args.count else 1


def partitions(consumer, topic):
    metadata = consumer.list_topics(topic, timeout=10)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        return []
    return sorted(info.partitions)


def consume(args):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "sluice-test-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    assigned = partitions(consumer, args.topic)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in assigned])
    seen = 0
    last = time.monotonic()
    while seen < args.count and time.monotonic() - last < args.timeout:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            print(json.dumps({"error": str(msg.error())}), file=sys.stderr)
            continue
        last = time.monotonic()
        seen += 1
        key = msg.key()
        print(json.dumps({
            "key": key.decode("utf-8", "replace") if key is not None else None,
            "partition": msg.partition(),
            "offset": msg.offset(),
            "value": (msg.value() or b"").decode("utf-8", "replace"),
        }))
    sys.stdout.flush()
    consumer.close()
    return 0


def committed(args):
    """Prints the group's committed offset of each partition, one JSON line each."""
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group})
    wanted = [TopicPartition(args.topic, p) for p in partitions(consumer, args.topic)]
    for tp in consumer.committed(wanted, timeout=10):
        print(json.dumps({"partition": tp.partition, "offset": tp.offset}))
    consumer.close()
    return 0


def count_partitions(args):
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "sluice-test-meta"})
    try:
        print(len(partitions(consumer, args.topic)))
    except KafkaException:
        print(0)
    consumer.close()
    return 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce")
    p.add_argument("bootstrap")
    p.add_argument("topic")
    p.add_argument("count", type=int)
    p.add_argument("--apps", type=int, default=3)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--rate", type=float, default=0)
    p.set_defaults(run=produce)
    c = sub.add_parser("consume")
    c.add_argument("bootstrap")
    c.add_argument("topic")
    c.add_argument("count", type=int)
    c.add_argument("--timeout", type=float, default=10)
    c.set_defaults(run=consume)
    o = sub.add_parser("committed")
    o.add_argument("bootstrap")
    o.add_argument("topic")
    o.add_argument("group")
    o.set_defaults(run=committed)
    m = sub.add_parser("partitions")
    m.add_argument("bootstrap")
    m.add_argument("topic")
    m.set_defaults(run=count_partitions)
    args = parser.parse_args()
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
