"""Prints real Python tracebacks to stderr, each followed by a line "--8<--"."""
import json
import logging
import sys
import traceback

logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("billing")


def mark():
    print("--8<--", file=sys.stderr, flush=True)


def divide(a, b):
    return a / b


def load(text):
    return json.loads(text)


try:
    divide(1, 0)
except ZeroDivisionError:
    traceback.print_exc()
mark()

try:
    try:
        {}["missing"]
    except KeyError:
        load("{not json")
except ValueError:
    traceback.print_exc()
mark()

try:
    try:
        int("x1")
    except ValueError as e:
        raise RuntimeError("cannot read the invoice number") from e
except RuntimeError:
    traceback.print_exc()
mark()

try:
    divide(2, 0)
except ZeroDivisionError:
    log.exception("charge failed for customer 42")
mark()

# Uncaught: the interpreter prints the traceback and exits 1.
load("[1, 2")
