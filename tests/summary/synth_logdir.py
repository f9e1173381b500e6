#!/usr/bin/env python3
"""Synthetic training-run log folders, written by the test side's own encoder (tfevents.py), to
test the checkers themselves: a folder made to the spec must pass, and each of a list of
deliberate faults (a flipped bit, a missing step, an inconsistent statistic, a wrong pixel, ...)
must make the checker fail with a message naming it.

  synth_logdir.py --selftest [--idx_dir DIR]   the checker's own test (CTest: summary_logdir_checker)
  synth_logdir.py --out DIR [--starts 0,120 --max_steps 230 ...]
                                               one folder made to the spec (e.g. for
                                               tensorboard_check.py on a machine with TensorBoard)
"""

import argparse
import copy
import io
import json
import math
import os
import random
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import logdir_check  # noqa: E402
import read_events  # noqa: E402
from tfevents import (enc_event, enc_value_histogram, enc_value_image, enc_value_scalar,  # noqa: E402
                      enc_value_text, encode_png_grey, expected_histogram, f32, frame_record)

HOST = "synthhost"


def truncated_normal(rng, n, stddev):
    out = []
    while len(out) < n:
        z = rng.gauss(0.0, 1.0)
        if abs(z) <= 2.0:
            out.append(f32(z * stddev))
    return out


def shortest_float32(x):
    """How Python prints a float32 (what the trainer prints): shortest round-trip digits."""
    value = f32(x)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if f32(float(text)) == value:
            break
    return text if ("." in text or "e" in text) else text + ".0"


class Synth:
    """The events of a run, as data: {folder: [[(wall_time, step, [value]), ...] per process]}."""

    def __init__(self, args, images=None):
        self.args = args
        self.rng = random.Random(7)
        self.images = images  # (training images list, test images list) or None
        self.folders = {"train": [], "test": [], "validation": []}
        self.stdout = []
        self.traces = {}
        self.clock = 1_790_000_000.0
        procs = logdir_check.processes(args.starts, args.max_steps, args.eval_every,
                                       args.summary_every)
        self.layers = logdir_check.layers(args.model, args.hidden)
        self.params = {}
        self.raw = {}  # (layer, step) -> pre-activation values
        self.batches = 0  # cadence steps so far (which training images they show)
        for layer, fan_in, fan_out in self.layers:
            self.params[layer] = (truncated_normal(self.rng, fan_in * fan_out, 0.1),
                                  [f32(0.1)] * fan_out)
        self.drift = {layer: [self.rng.choice((-1.0, 1.0)) for _ in range(len(w))]
                      for layer, (w, _) in self.params.items()}
        for p in procs:
            self.process(p)

    def tick(self):
        self.clock += 0.013
        return self.clock

    def process(self, p):
        a = self.args
        train, test, validation = [], [], []
        for folder, events in (("train", train), ("test", test), ("validation", validation)):
            self.folders[folder].append(events)
        self.flags_text = (f"| flag | value |\n|---|---|\n| --max_steps | {p.end} |\n"
                           f"| --summary_every | {a.summary_every} |\n")
        train.append((self.tick(), p.start, [("flags", "text", self.flags_text)]))
        count = 0
        test_images_done = False
        for i in range(p.start, p.end):
            if i % a.eval_every == 0:
                k = min(9500, 1000 + 80 * i)
                accuracy = k / 10000
                printed = shortest_float32(accuracy)
                self.stdout.append(f"Accuracy at step {i}: {printed}")
                values = [("accuracy", "scalar", f32(accuracy)),
                          ("cross_entropy", "scalar", f32(2.3 / (1 + i / 50))),
                          ("dropout/dropout_keep_probability", "scalar", 1.0)]
                if not test_images_done:
                    test_images_done = True
                    for n in range(10):
                        values.append((f"input_reshape/input/image/{n}", "image",
                                       self.image(test=True, index=n)))
                test.append((self.tick(), i, values))
                v = min(4740, 500 + 40 * i) + (i // 10) % 3
                validation.append((self.tick(), i, [
                    ("accuracy", "scalar", f32(v / 5000)),
                    ("cross_entropy", "scalar", f32(2.3 / (1 + i / 45)))]))
                if i in p.images_per_second:
                    train.append((self.tick(), i, [("images_per_second", "scalar", 12345.5)]))
                continue
            loss = f32(2.3 * math.exp(-i / 80) + 0.05 + 0.01 * self.rng.random())
            correct = min(a.batch, int(a.batch * (0.1 + i / 150)))
            values = [("cross_entropy", "scalar", loss),
                      ("accuracy", "scalar", f32(correct / a.batch))]
            if count % a.summary_every == 0:
                # Alternately in the same event as the loss and in an event of their own.
                cadence = self.cadence_values(i)
                if count % 2:
                    values += cadence
                else:
                    train.append((self.tick(), i, cadence))
            train.append((self.tick(), i, values))
            count += 1
            if i % 100 == 99:
                self.stdout.append(f"Adding run metadata for {i}")
                ts = self.rng.randint(1000, 2000)
                events = [{"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "GPU 0"}},
                          {"name": "forward and loss", "ph": "X", "ts": ts - 1, "dur": 20.0,
                           "pid": 1, "tid": 1, "args": {}}]  # an op's range around 2 kernels
                for n, name in enumerate(("forward", "loss_and_backward", "weight_grad_1",
                                          "weight_grad_2")):
                    events.append({"name": name, "ph": "X", "ts": ts + 10 * n, "dur": 8.5,
                                   "pid": 1, "tid": 1 + n // 3, "args": {"step": i}})
                self.traces[i] = {"traceEvents": events, "displayTimeUnit": "ms"}
        self.stdout.append(f"Final test accuracy: 0.9 after {len(p.train)} training steps")

    def image(self, test=False, index=0):
        if self.images is not None:
            pixels = self.images[1][index] if test else self.images[0][index]
        else:
            pixels = bytes(self.rng.randrange(256) for _ in range(784))
        return (encode_png_grey(pixels, 28, 28), 28, 28, 1)

    def cadence_values(self, step):
        a = self.args
        values = [("dropout/dropout_keep_probability", "scalar",
                   f32(1.0 if a.model == "softmax" else a.dropout)),
                  ("learning_rate", "scalar", f32(a.learning_rate))]
        for layer, fan_in, fan_out in self.layers:
            w0, b0 = self.params[layer]
            shift = a.learning_rate * step * 0.5
            w = [f32(x + shift * d) for x, d in zip(w0, self.drift[layer])]
            b = [f32(x + shift * (1 if k % 2 else -1)) for k, x in enumerate(b0)]
            for kind, xs in (("weights", w), ("biases", b)):
                base = f"{layer}/{kind}/summaries/"
                n = len(xs)
                mean = math.fsum(xs) / n
                sd = math.sqrt(max(math.fsum(x * x for x in xs) / n - mean * mean, 0.0))
                values += [(base + "mean", "scalar", f32(mean)), (base + "stddev", "scalar", f32(sd)),
                           (base + "max", "scalar", max(xs)), (base + "min", "scalar", min(xs)),
                           (base + "histogram", "histo", expected_histogram(xs))]
            pre = [f32(self.rng.gauss(0.05, 1.0)) for _ in range(a.batch * fan_out)]
            act = [max(x, 0.0) for x in pre] if (layer == "layer1" and a.model == "mlp") else pre
            self.raw[(layer, step)] = pre
            values.append((f"{layer}/Wx_plus_b/pre_activations", "histo", expected_histogram(pre)))
            values.append((f"{layer}/activations", "histo", expected_histogram(act)))
        offset = (self.batches * 10) % 1000
        self.batches += 1
        for n in range(10):
            values.append((f"input_reshape/input/image/{n}", "image", self.image(index=offset + n)))
        return values

    # --- writing ---

    def write(self, directory):
        for folder, procs in self.folders.items():
            os.makedirs(os.path.join(directory, folder), exist_ok=True)
            for events in procs:
                if not events:
                    continue
                start = events[0][0] - 0.001
                name = f"events.out.tfevents.{int(start)}.{HOST}"
                path = os.path.join(directory, folder, name)
                suffix = 0
                while os.path.exists(path):
                    suffix += 1
                    path = os.path.join(directory, folder, f"{name}.{suffix:03d}")
                with open(path, "wb") as f:
                    f.write(frame_record(enc_event(start, file_version="brain.Event:2")))
                    for wall_time, step, values in events:
                        f.write(frame_record(enc_event(wall_time, step, [encode(v) for v in values])))
        if self.traces:
            os.makedirs(os.path.join(directory, "traces"), exist_ok=True)
        for step, trace in self.traces.items():
            with open(os.path.join(directory, "traces", f"step_{step}.trace.json"), "w") as f:
                json.dump(trace, f)
        with open(os.path.join(directory, "result.json"), "w") as f:
            json.dump({"exit_code": 0, "verdict": "passed"}, f)
        with open(os.path.join(directory, "stdout.txt"), "w") as f:
            f.write("\n".join(self.stdout) + "\n")

    # --- helpers for the faults ---

    def find(self, folder, tag, step, process=0):
        for e_index, (_, s, values) in enumerate(self.folders[folder][process]):
            if s != step:
                continue
            for v_index, v in enumerate(values):
                if v[0] == tag:
                    return e_index, v_index
        raise KeyError((folder, tag, step))

    def replace(self, folder, tag, step, data, process=0):
        e, v = self.find(folder, tag, step, process)
        values = self.folders[folder][process][e][2]
        values[v] = (tag, values[v][1], data)

    def get(self, folder, tag, step, process=0):
        e, v = self.find(folder, tag, step, process)
        return self.folders[folder][process][e][2][v][2]

    def remove(self, folder, tag, step, process=0):
        e, v = self.find(folder, tag, step, process)
        del self.folders[folder][process][e][2][v]

    def add(self, folder, step, value, process=0):
        self.folders[folder][process].append((self.tick(), step, [value]))


def encode(value):
    tag, kind, data = value
    if kind == "scalar":
        return enc_value_scalar(tag, data)
    if kind == "histo":
        return enc_value_histogram(tag, data)
    if kind == "image":
        return enc_value_image(tag, *data)
    if kind == "text":
        return enc_value_text(tag, data)
    raise ValueError(kind)


# --- the faults the checker must find --------------------------------------------------------------


def histo_with(h, **changes):
    h = copy.deepcopy(h)
    h.update(changes)
    return h


def fault_list(has_idx, args):
    """[(name, change of the Synth before writing or None, change of the files after, expected
    text in a failure)]"""
    c = logdir_check.processes(args.starts, args.max_steps, args.eval_every,
                               args.summary_every)[0].cadence  # 1, 12, 23, ... for E = S = 10
    def flip_byte(d):
        path = first_file(d, "train")
        blob = bytearray(open(path, "rb").read())
        blob[len(blob) // 2] ^= 0x10
        open(path, "wb").write(bytes(blob))

    def first_file(d, folder):
        return os.path.join(d, folder, sorted(os.listdir(os.path.join(d, folder)))[0])

    def cut_file(d):
        path = first_file(d, "test")
        blob = open(path, "rb").read()
        open(path, "wb").write(blob[:-3])

    def drop_version(d):
        path = first_file(d, "validation")
        blob = open(path, "rb").read()
        (length,) = struct.unpack("<Q", blob[:8])
        open(path, "wb").write(blob[12 + length + 4:])

    def rename(d):
        path = first_file(d, "validation")
        os.rename(path, os.path.join(d, "validation", "events.out.tfevents.123.host"))

    def trace_unsorted(d):
        path = os.path.join(d, "traces", "step_99.trace.json")
        trace = json.load(open(path))
        trace["traceEvents"][1]["ts"] += 1000
        json.dump(trace, open(path, "w"))

    def trace_negative(d):
        path = os.path.join(d, "traces", "step_99.trace.json")
        trace = json.load(open(path))
        trace["traceEvents"][2]["dur"] = -1
        del trace["traceEvents"][3]["args"]
        json.dump(trace, open(path, "w"))

    def trace_kernel_missing(d):
        path = os.path.join(d, "traces", "step_99.trace.json")
        trace = json.load(open(path))
        del trace["traceEvents"][-1]
        json.dump(trace, open(path, "w"))

    def result_failed(d):
        json.dump({"exit_code": 1}, open(os.path.join(d, "result.json"), "w"))

    def extra_trace(d):
        json.dump({"traceEvents": []}, open(os.path.join(d, "traces", "step_98.trace.json"), "w"))

    def stdout_missing_line(d):
        path = os.path.join(d, "stdout.txt")
        lines = open(path).read().splitlines()
        open(path, "w").write("\n".join(l for l in lines if l != "Accuracy at step 30: 0.34") + "\n")

    def bad_png_crc(s):
        png, h, w, c = s.get("train", "input_reshape/input/image/3", 1)
        png = bytearray(png)
        png[40] ^= 1
        s.replace("train", "input_reshape/input/image/3", 1, (bytes(png), h, w, c))

    def wrong_png_size(s):
        s.replace("train", "input_reshape/input/image/0", c[1],
                  (encode_png_grey(bytes(27 * 28), 27, 28), 28, 28, 1))

    def test_pixel(s):
        png, h, w, c = s.get("test", "input_reshape/input/image/4", 0)
        from tfevents import decode_png
        pixels = bytearray(decode_png(png)[3])
        pixels[300] ^= 0x40
        s.replace("test", "input_reshape/input/image/4", 0, (encode_png_grey(pixels, 28, 28), 28, 28, 1))

    def validation_image(s):
        s.replace("train", "input_reshape/input/image/5", c[2],
                  (encode_png_grey(s.validation_image, 28, 28), 28, 28, 1))

    def post_dropout(s):
        rng = random.Random(3)
        dropped = [f32(max(x, 0.0) / 0.9) if rng.random() < 0.9 else 0.0
                   for x in s.raw[("layer1", c[1])]]
        s.replace("train", "layer1/activations", c[1], expected_histogram(dropped))

    def layer2_act(s):
        other = [f32(x * 1.5) for x in s.raw[("layer2", c[2])]]
        s.replace("train", "layer2/activations", c[2], expected_histogram(other))

    def stddev(s):
        x = s.get("train", "layer1/weights/summaries/stddev", c[3])
        s.replace("train", "layer1/weights/summaries/stddev", c[3], f32(x * 1.01))

    def mean(s):
        s.replace("train", "layer2/biases/summaries/mean", c[4], f32(0.2))

    def minimum(s):
        x = s.get("train", "layer1/biases/summaries/min", 1)
        s.replace("train", "layer1/biases/summaries/min", 1, f32(x - 1e-4))

    def bucket_sum(s):
        h = s.get("train", "layer1/weights/summaries/histogram", c[5])
        counts = list(h["bucket"])
        counts[len(counts) // 2] += 1
        s.replace("train", "layer1/weights/summaries/histogram", c[5], histo_with(h, bucket=counts))

    def num(s):
        h = s.get("train", "layer1/Wx_plus_b/pre_activations", c[1])
        s.replace("train", "layer1/Wx_plus_b/pre_activations", c[1], histo_with(
            h, num=h["num"] - 1, bucket=h["bucket"][:-1] + [h["bucket"][-1]]))

    def odd_limits(s):
        h = s.get("train", "layer2/weights/summaries/histogram", c[6])
        limits = list(h["bucket_limit"])
        limits[3] *= 1.05
        s.replace("train", "layer2/weights/summaries/histogram", c[6], histo_with(h, bucket_limit=limits))

    def min_outside(s):
        h = s.get("train", "layer2/Wx_plus_b/pre_activations", c[7])
        s.replace("train", "layer2/Wx_plus_b/pre_activations", c[7], histo_with(h, min=h["min"] * 2))

    def not_fresh(s):
        h = s.get("train", "layer1/weights/summaries/histogram", 1)
        s.replace("train", "layer1/weights/summaries/histogram", 1,
                  histo_with(h, min=h["min"] * 3, bucket=h["bucket"]))

    def frozen(s):
        h = s.get("train", "layer2/biases/summaries/histogram", 1)
        last = logdir_check.processes(s.args.starts, s.args.max_steps, s.args.eval_every,
                                      s.args.summary_every)[0].cadence[-1]
        s.replace("train", "layer2/biases/summaries/histogram", last, copy.deepcopy(h))

    def relu_negative(s):
        s.replace("train", "layer1/activations", c[2], expected_histogram(s.raw[("layer1", c[2])]))

    def test_accuracy(s):
        s.replace("test", "accuracy", 50, f32(0.3001))

    def test_accuracy_granularity(s):
        s.replace("test", "accuracy", 60, f32(0.12345))

    def train_accuracy(s):
        s.replace("train", "accuracy", 7, f32(0.505))

    def loss_nan(s):
        s.replace("train", "cross_entropy", 13, float("nan"))

    def first_loss(s):
        s.replace("train", "cross_entropy", 1, f32(0.01))

    def keep(s):
        s.replace("train", "dropout/dropout_keep_probability", c[2], f32(0.5))

    def test_keep(s):
        s.replace("test", "dropout/dropout_keep_probability", 40, f32(0.9))

    def lr(s):
        s.replace("train", "learning_rate", c[4], f32(0.01))

    def missing_step(s):
        s.remove("train", "cross_entropy", 17)

    def missing_histogram(s):
        s.remove("train", "layer2/activations", c[3])

    def extra_step(s):
        s.add("train", 13, ("layer1/weights/summaries/mean", "scalar", 0.0))

    def extra_tag(s):
        s.add("test", 10, ("precision", "scalar", 0.5))

    def twice(s):
        s.add("validation", 20, ("accuracy", "scalar", 0.5))

    def wrong_kind(s):
        s.remove("validation", "cross_entropy", 30)
        s.add("validation", 30, ("cross_entropy", "histo", expected_histogram([1.0, 2.0])))

    def ips_first(s):
        s.add("train", 0, ("images_per_second", "scalar", 10.0))

    def ips_zero(s):
        s.replace("train", "images_per_second", 20, 0.0)

    def flags(s):
        s.replace("train", "flags", 0, "--summary_every 10")

    def flags_value(s):
        s.replace("train", "flags", 0, "--max_steps 500")

    def flags_plugin(s):
        s.remove("train", "flags", 0)
        s.add("train", 0, ("flags", "scalar", 1.0))

    def no_test_images(s):
        s.remove("test", "input_reshape/input/image/9", 0)

    def test_images_twice(s):
        s.add("test", 10, ("input_reshape/input/image/0", "image", s.image(test=True)))

    def repeated_image(s):
        s.replace("train", "input_reshape/input/image/2", c[4], s.get("train", "input_reshape/input/image/7", c[1]))

    def test_loss(s):
        s.replace("test", "cross_entropy", 120, f32(5.0))

    def same_batch(s):
        for n in range(10):
            tag = f"input_reshape/input/image/{n}"
            s.replace("train", tag, c[1], s.get("train", tag, c[0]))

    def validation_copy(s):
        for (_, step, values) in s.folders["validation"][0]:
            values[0] = ("accuracy", "scalar", s.get("test", "accuracy", step))

    def time_backwards(s):
        events = s.folders["train"][0]
        t, step, values = events[5]
        events[5] = (t - 100, step, values)

    faults = [
        ("bit flip", None, flip_byte, "bad data CRC"),
        ("cut record", None, cut_file, "cut short"),
        ("no version event", None, drop_version, "brain.Event:2"),
        ("file name", None, rename, "not named events.out.tfevents"),
        ("trace order", None, trace_unsorted, "not sorted by ts"),
        ("trace fields", None, trace_negative, "dur -1 < 0"),
        ("trace fields (args)", None, trace_negative, "args is not an object"),
        ("trace kernels", None, trace_kernel_missing, "3 kernels"),
        ("extra trace", None, extra_trace, "step_98.trace.json: not expected"),
        ("result.json", None, result_failed, "exit_code is 1"),
        ("stdout", None, stdout_missing_line, "Accuracy at step: missing at steps 30"),
        ("png crc", bad_png_crc, None, "PNG: bad CRC"),
        ("png size", wrong_png_size, None, "the PNG is 27x28"),
        ("post-dropout activations", post_dropout, None, "not relu("),
        ("layer2 activations", layer2_act, None, "differs from layer2/Wx_plus_b/pre_activations"),
        ("stddev", stddev, None, "layer1/weights/summaries/stddev"),
        ("mean", mean, None, "layer2/biases/summaries/mean"),
        ("min", minimum, None, "layer1/biases/summaries/min"),
        ("bucket sum", bucket_sum, None, "bucket counts add up"),
        ("num", num, None, "num 199"),
        ("limits", odd_limits, None, "not TF's default edges"),
        ("min outside", min_outside, None, "not in the first non-empty bucket"),
        ("not fresh", not_fresh, None, "a fresh model's weights"),
        ("frozen", frozen, None, "the parameters never changed"),
        ("relu negative", relu_negative, None, "< 0 after ReLU"),
        ("test accuracy", test_accuracy, None, "printed 0.5"),
        ("test granularity", test_accuracy_granularity, None, "not k/10000"),
        ("train accuracy", train_accuracy, None, "not k/"),
        ("nan loss", loss_nan, None, "cross_entropy @ step 13: nan"),
        ("first loss", first_loss, None, "near ln 10"),
        ("keep", keep, None, f"dropout/dropout_keep_probability @ step {c[2]}: 0.5"),
        ("test keep", test_keep, None, "expected 1.0"),
        ("lr", lr, None, f"learning_rate @ step {c[4]}"),
        ("missing step", missing_step, None, "cross_entropy: missing at steps 17"),
        ("missing histogram", missing_histogram, None, f"layer2/activations: missing at steps {c[3]}"),
        ("extra step", extra_step, None, "unexpected at steps 13"),
        ("extra tag", extra_tag, None, "precision: not in the spec"),
        ("twice", twice, None, "written twice"),
        ("kind", wrong_kind, None, "a histo, expected a scalar"),
        ("images/s first", ips_first, None, "images_per_second: unexpected at steps 0"),
        ("images/s zero", ips_zero, None, "images_per_second @ step 20"),
        ("flags", flags, None, "does not list max_steps"),
        ("flags value", flags_value, None, "does not list max_steps"),
        ("flags kind", flags_plugin, None, "flags @ step 0: a scalar, expected a text"),
        ("no test image", no_test_images, None, "image/9: missing at steps 0"),
        ("test images twice", test_images_twice, None, "image/0: unexpected at steps 10"),
        ("time", time_backwards, None, "wall_time goes backwards"),
    ]
    if has_idx:
        faults += [
            ("test pixel", test_pixel, None, "pixels differ from the idx file's image"),
            ("validation image", validation_image, None, "a validation image"),
            ("same batch", same_batch, None, "the batch did not change"),
            ("repeated image", repeated_image, None, "not drawn without replacement"),
            ("test loss", test_loss, None, "not below step 0's"),
            ("validation copy", validation_copy, None, "equal to the test accuracy at every step"),
        ]
    return faults


def check_args(directory, a, idx_dir):
    argv = ["--log_dir", directory, "--max_steps", str(a.max_steps), "--eval_every",
            str(a.eval_every), "--summary_every", str(a.summary_every), "--batch", str(a.batch),
            "--hidden", str(a.hidden), "--model", a.model, "--dropout", str(a.dropout),
            "--learning_rate", str(a.learning_rate), "--starts", ",".join(map(str, a.starts)),
            "--stdout", os.path.join(directory, "stdout.txt"), "--kernels_per_step", "4"]
    return argv + (["--idx_dir", idx_dir] if idx_dir else [])


def run_checker(argv):
    out = io.StringIO()
    args = read_events.parse_args(argv)
    report = logdir_check.check_log_dir(args, out)
    return report, out.getvalue()


def load_images(idx_dir):
    train = logdir_check.read_idx_images(idx_dir, "train-images-idx3-ubyte")
    test = logdir_check.read_idx_images(idx_dir, "t10k-images-idx3-ubyte")
    return train[5000:6100], test[:10], train[17]


def selftest(idx_dir):
    base = argparse.Namespace(max_steps=130, eval_every=10, summary_every=10, batch=10, hidden=20,
                              model="mlp", dropout=0.9, learning_rate=0.001, starts=[0])
    if idx_dir and not os.path.isfile(os.path.join(idx_dir, "t10k-images-idx3-ubyte")):
        print(f"note: no idx files in {idx_dir} (scripts/fetch-test-data.sh): pixel faults not tried")
        idx_dir = None
    loaded = load_images(idx_dir) if idx_dir else None
    images = loaded[:2] if loaded else None
    failed = 0
    with tempfile.TemporaryDirectory(prefix="synth_logdir_") as tmp:
        # Runs made to the spec pass: fresh; resumed (two processes); every step; softmax.
        variants = [
            ("fresh", base),
            ("resumed", argparse.Namespace(**{**vars(base), "starts": [0, 57], "max_steps": 215})),
            ("summary_every 1", argparse.Namespace(**{**vars(base), "summary_every": 1,
                                                      "max_steps": 23})),
            ("softmax", argparse.Namespace(**{**vars(base), "model": "softmax", "max_steps": 42})),
            ("eval_every 7", argparse.Namespace(**{**vars(base), "eval_every": 7,
                                                   "summary_every": 3, "max_steps": 30})),
        ]
        for name, a in variants:
            d = os.path.join(tmp, name.replace(" ", "_"))
            Synth(a, images).write(d)
            report, text = run_checker(check_args(d, a, idx_dir))
            if report.failures:
                failed += 1
                print(f"FAIL: the {name} folder made to the spec does not pass:\n{text}")
            else:
                print(f"ok {name}: made to the spec, passes "
                      f"({sum(c[1] for c in report.counts.values())} values)")
        clean = Synth(base, images)
        if loaded:
            clean.validation_image = loaded[2]
        for name, before, after, expected in fault_list(idx_dir is not None, base):
            s = copy.deepcopy(clean)
            if before:
                before(s)
            d = os.path.join(tmp, "fault")
            shutil.rmtree(d, ignore_errors=True)
            s.write(d)
            if after:
                after(d)
            report, text = run_checker(check_args(d, base, idx_dir))
            hits = [f for f in report.failures if expected in f]
            if hits:
                print(f"ok fault '{name}' found: {hits[0]}")
            else:
                failed += 1
                print(f"FAIL: fault '{name}' not reported as '{expected}'; failures: "
                      f"{report.failures[:5]}")
        # The resumed run: the second process's file starting over at step 0 is found.
        a = argparse.Namespace(**{**vars(base), "starts": [0, 57], "max_steps": 215})
        d = os.path.join(tmp, "resumed_fault")
        s = Synth(a, images)
        s.add("train", 3, ("cross_entropy", "scalar", 1.0), process=1)
        s.write(d)
        report, _ = run_checker(check_args(d, a, idx_dir))
        if not any("outside this process's iterations [57, 215)" in f for f in report.failures):
            failed += 1
            print(f"FAIL: a resumed file's step 3 not reported: {report.failures[:5]}")
        else:
            print("ok fault 'resumed file restarts at step 3' found")
        d = os.path.join(tmp, "resumed_one_file")
        Synth(base, images).write(d)
        report, _ = run_checker(check_args(d, a, idx_dir))
        if not any("1 event files, expected 2" in f for f in report.failures):
            failed += 1
            print(f"FAIL: one file where a resumed run needs two not reported: {report.failures[:5]}")
        else:
            print("ok fault 'one event file for two processes' found")
    print(f"{'FAIL' if failed else 'ok'}: {failed} checker self-test failures")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--selftest", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--idx_dir")
    parser.add_argument("--max_steps", type=int, default=230)
    parser.add_argument("--eval_every", type=int, default=10)
    parser.add_argument("--summary_every", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--dropout", type=float, default=0.9)
    parser.add_argument("--learning_rate", type=float, default=0.001)
    parser.add_argument("--starts", default="0")
    a = parser.parse_args()
    if a.selftest:
        return selftest(a.idx_dir)
    if not a.out:
        parser.error("--selftest or --out DIR")
    a.starts = [int(x) for x in a.starts.split(",")]
    loaded = load_images(a.idx_dir) if a.idx_dir else None
    Synth(a, loaded[:2] if loaded else None).write(a.out)
    print(" ".join(["read_events.py"] + check_args(a.out, a, a.idx_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
