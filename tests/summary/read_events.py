#!/usr/bin/env python3
"""An independent reader of TensorBoard event files, for the tests: it shares no code with the
C++ writer (src/summary/) and needs only Python's standard library (no tensorflow or protobuf).
The format itself (CRC-32C, TFRecord framing, protobuf wire format, PNG, TF's histogram buckets)
is in tfevents.py; the spec of a training run's --log_dir in logdir_check.py.

  read_events.py FILE_OR_DIR...          print every event as one JSON line
  read_events.py --check-sample DIR      check the files write_sample_events wrote there
  read_events.py --writer EXE            run EXE twice into a fresh folder, then --check-sample it
  read_events.py --log_dir DIR --max_steps N [--eval_every E] [--summary_every S] [--batch B]
                 [--hidden H] [--starts 0,120] [--idx_dir RAW_IDX_DIR] [--stdout FILE]...
                                         check a training run's log folder against the spec
                                         (every tag, step, value; histograms; images; traces);
                                         prints a table of counts per tag, exit 1 on any failure
"""

import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tfevents import (FormatError, decode_png, expected_histogram, f32,  # noqa: E402
                      read_events, read_records)
import logdir_check  # noqa: E402

# --- the sample run (write_sample_events.cpp) -------------------------------------------------


def sample_histogram_values(step):
    values = [(i - 500) / 64.0 * (step + 1) for i in range(1000)]
    return values + [f32(1e-13), f32(-1e-13), f32(1e25), -3.5]


SAMPLE_TEXT = "--max_steps 500\n**bold** \u00fcnicode"


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def check_histogram(tag, step, got, want):
    for key in ("min", "max", "num", "bucket_limit", "bucket"):
        expect(got[key] == want[key], f"{tag}@{step}: {key} {got[key]!r} != {want[key]!r}")
    for key in ("sum", "sum_squares"):  # summed in another order: equal to rounding
        expect(math.isclose(got[key], want[key], rel_tol=1e-12, abs_tol=1e-12),
               f"{tag}@{step}: {key} {got[key]!r} != {want[key]!r}")
    expect(sum(got["bucket"]) == got["num"], f"{tag}@{step}: bucket counts do not add up to num")


def check_sample_file(path, started, finished):
    events = read_events(path)
    expect(re.fullmatch(r"events\.out\.tfevents\.\d{10}\.[A-Za-z0-9._-]+", os.path.basename(path)),
           f"{path}: not a TensorBoard event file name")
    expect(events and events[0].get("file_version") == "brain.Event:2",
           f"{path}: the first record is not the brain.Event:2 version event")
    times = [e["wall_time"] for e in events]
    expect(all(started - 1 <= t <= finished + 1 for t in times), f"{path}: wall_time out of range")
    expect(times == sorted(times), f"{path}: wall_time goes backwards")
    seconds = int(os.path.basename(path).split(".")[3])
    expect(seconds == int(times[0]), f"{path}: the name's seconds are not the version event's")

    values = {}  # (tag, step) -> Summary.Value
    for e in events[1:]:
        expect("summary" in e, f"{path}: an event without a summary")
        for v in e["summary"]:
            key = (v["tag"], e["step"])
            expect(key not in values, f"{path}: {key} written twice")
            values[key] = v

    for step in range(10):
        v = values.pop(("cross_entropy", step))
        expect(v["kind"] == "simple_value" and v["simple_value"] == f32(1.0 / (step + 1)),
               f"cross_entropy@{step}: {v}")
    v = values.pop(("zero", 3))
    expect(v["kind"] == "simple_value" and v["simple_value"] == 0.0, f"zero@3: {v}")
    expect(values.pop(("accuracy", 20))["simple_value"] == 0.5, "accuracy@20")
    expect(values.pop(("dropout/dropout_keep_probability", 20))["simple_value"] == f32(0.9),
           "dropout/dropout_keep_probability@20")

    buckets = {}
    for step in (0, 10):
        tag = "layer1/weights/summaries/histogram"
        v = values.pop((tag, step))
        expect(v["kind"] == "histo", f"{tag}@{step}: not a histogram")
        check_histogram(tag, step, v["histo"], expected_histogram(sample_histogram_values(step)))
        buckets[f"{tag}@{step}"] = len(v["histo"]["bucket"])
    v = values.pop(("precomputed", 5))
    want = expected_histogram([0.5] * 3 + [-2.0] * 2)
    check_histogram("precomputed", 5, v["histo"], want)
    v = values.pop(("empty", 5))
    check_histogram("empty", 5, v["histo"], expected_histogram([]))
    expect(v["histo"]["bucket_limit"] == [sys.float_info.max], "empty: one bucket up to DBL_MAX")

    v = values.pop(("input_reshape/input/image/0", 0))
    image = v["image"]
    expect((image["height"], image["width"], image["colorspace"]) == (28, 28, 1),
           f"image/0: {image['height']}x{image['width']}x{image['colorspace']}")
    width, height, channels, pixels = decode_png(image["encoded_image_string"])
    expect((width, height, channels) == (28, 28, 1), "image/0: PNG header")
    expect(pixels == bytes((x * 9 + y * 5) % 256 for y in range(28) for x in range(28)),
           "image/0: pixels")
    image = values.pop(("rgb", 1))["image"]
    expect((image["height"], image["width"], image["colorspace"]) == (2, 3, 3), "rgb: size")
    expect(decode_png(image["encoded_image_string"]) ==
           (3, 2, 3, bytes(i * 13 % 256 for i in range(18))), "rgb: PNG")

    v = values.pop(("flags", 0))
    expect(v["kind"] == "tensor" and v["tensor"]["dtype"] == 7, "flags: not a DT_STRING tensor")
    expect(v["tensor"]["shape"] == [] and v["tensor"]["string_val"] == [SAMPLE_TEXT.encode()],
           f"flags: {v['tensor']}")
    expect(v.get("metadata", {}).get("plugin_name") == "text", "flags: not for the text plugin")

    expect(not values, f"unexpected values: {sorted(values)}")
    return len(events), buckets


def check_sample(directory, runs, started, finished):
    files = sorted(f for f in os.listdir(directory) if "tfevents" in f)
    expect(len(files) == runs, f"{directory}: {len(files)} event files, expected {runs}")
    for name in files:
        count, buckets = check_sample_file(os.path.join(directory, name), started, finished)
        print(f"ok {name}: {count} events, histogram buckets {buckets}")


def run_writer(executable):
    with tempfile.TemporaryDirectory(prefix="summary_events_") as directory:
        started = time.time()
        written = []
        for _ in range(2):  # a second writer in the same folder (a resumed run): a second file
            out = subprocess.run([executable, directory], check=True, capture_output=True,
                                 text=True).stdout.strip()
            written.append(out)
        finished = time.time()
        expect(len(set(written)) == 2, f"both writers wrote {written[0]}")
        check_sample(directory, 2, started, finished)
        check_detects_damage(written[0])


def check_detects_damage(path):
    """This reader must refuse a flipped bit in a length, in data, and a record cut short."""
    with open(path, "rb") as f:
        blob = f.read()
    first = 12 + struct.unpack("<Q", blob[:8])[0] + 4  # the second record starts here
    damaged_path = path + ".damaged"
    for what, damaged in (("length", blob[:first] + bytes([blob[first] ^ 1]) + blob[first + 1:]),
                          ("data", blob[:first + 20] + bytes([blob[first + 20] ^ 0x80]) +
                           blob[first + 21:]),
                          ("cut", blob[:-1])):
        with open(damaged_path, "wb") as f:
            f.write(damaged)
        try:
            read_records(damaged_path)
        except FormatError as e:
            print(f"ok damage ({what}) detected: {e}")
        else:
            raise CheckFailed(f"damage ({what}) not detected")
    os.unlink(damaged_path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--check-sample", metavar="DIR")
    parser.add_argument("--writer", metavar="EXE")
    run = parser.add_argument_group("checking a training run's --log_dir")
    run.add_argument("--log_dir", metavar="DIR")
    run.add_argument("--max_steps", type=int)
    run.add_argument("--eval_every", type=int, default=10)
    run.add_argument("--summary_every", type=int, default=10)
    run.add_argument("--batch", type=int, default=100)
    run.add_argument("--hidden", type=int, default=500)
    run.add_argument("--model", choices=("mlp", "softmax"), default="mlp")
    run.add_argument("--dropout", type=float, default=0.9, help="the run's --dropout (keep)")
    run.add_argument("--learning_rate", type=float, default=0.001)
    run.add_argument("--starts", default="0", metavar="I,J,...",
                     help="the first iteration of each process that wrote into the log_dir "
                          "(a resumed run: 0,120); each ends where the next starts")
    run.add_argument("--idx_dir", metavar="DIR",
                     help="the raw (or .gz) MNIST idx files: test images compared pixel by pixel, "
                          "training images looked up, accuracies checked for plausibility")
    run.add_argument("--fake_data", action="store_true",
                     help="the run used --fake_data: 2000 test and 1000 validation images")
    run.add_argument("--stdout", action="append", default=[], metavar="FILE",
                     help="the trainer's output (repeat for each process): accuracy lines compared")
    run.add_argument("--validation_every", type=int, metavar="K",
                     help="validation/ only at each process's first evaluation and at the "
                          "evaluations with i %% K == 0 (default: at every evaluation)")
    run.add_argument("--kernels_per_step", type=int,
                     help="each trace must hold exactly this many kernels (complete events of "
                          "category kernel; all complete events when none has a category)")
    run.add_argument("--compare_to", metavar="OTHER_LOG_DIR",
                     help="a run of the same flags on another backend: the same values at the "
                          "same steps within float tolerances, the same images")
    args = parser.parse_args(argv)
    if args.log_dir:
        if args.max_steps is None:
            parser.error("--log_dir needs --max_steps")
        args.starts = [int(s) for s in args.starts.split(",")]
        if args.starts != sorted(set(args.starts)) or args.starts[-1] >= args.max_steps:
            parser.error("--starts must ascend and stay below --max_steps")
        args.test_count, args.validation_count = (2000, 1000) if args.fake_data else (10000, 5000)
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.log_dir:
            report = logdir_check.check_log_dir(args)
            if args.compare_to:
                failures = len(report.failures)
                logdir_check.compare_log_dirs(report, args, args.compare_to, sys.stdout)
                for f in report.failures[failures:][:40]:
                    print(f"FAIL {f}")
            if report.failures:
                print(f"FAIL: {len(report.failures)} failures in {args.log_dir}", file=sys.stderr)
                return 1
            print(f"ok {args.log_dir}: every tag, step and value as specified")
        elif args.writer:
            run_writer(args.writer)
        elif args.check_sample:
            check_sample(args.check_sample, 1, 0, time.time())
        else:
            for path in args.paths:
                names = ([os.path.join(path, f) for f in sorted(os.listdir(path)) if "tfevents" in f]
                         if os.path.isdir(path) else [path])
                for name in names:
                    for event in read_events(name):
                        print(json.dumps(event, default=lambda b: f"<{len(b)} bytes>"))
    except (CheckFailed, FormatError, subprocess.CalledProcessError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
