#!/usr/bin/env python3
"""Regenerates the real stack traces in java/, python/ and nodejs/ by running the programs
in programs/ (javac + java, python3, node). Each trace goes to its own NN.txt, exactly as the
runtime printed it. go/, ruby/ and dotnet/ are not generated: see README.md.

    python3 tests/corpus/multiline/generate.py
"""
import pathlib
import shutil
import subprocess
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
MARK = "--8<--"


def write(lang, stderr):
    out = HERE / lang
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    traces = [t.strip("\n") for t in stderr.split(MARK + "\n")]
    traces = [t for t in traces if t.strip()]
    for n, trace in enumerate(traces, 1):
        (out / f"{n:02}.txt").write_text(trace + "\n")
    print(f"{lang}: {len(traces)} traces")


def run(cmd, cwd):
    # The uncaught cases exit non-zero on purpose.
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True).stderr


with tempfile.TemporaryDirectory() as tmp:
    shutil.copy(PROGRAMS / "Traces.java", tmp)
    subprocess.run(["javac", "Traces.java"], cwd=tmp, check=True)
    write("java", run(["java", "-cp", tmp, "Traces"], tmp))
write("python", run(["python3", str(PROGRAMS / "traces.py")], PROGRAMS))
write("nodejs", run(["node", str(PROGRAMS / "traces.js")], PROGRAMS))
