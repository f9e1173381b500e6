"""Checks a training run's --log_dir against the summaries spec, with the independent
reader in tfevents.py: which tags each folder holds at which steps, their kinds and values, the
histograms' internal consistency, the images (decoded; compared with the MNIST idx files when
given), the text summary of the flags, the step traces and result.json.

The schedule of one process that ran iterations [start, end) with eval_every E, summary_every S:
  evaluations   i % E == 0                      test/, validation/ scalars; train/images_per_second
  training      i % E != 0                      train/ cross_entropy, accuracy
  cadence       every S-th training step of the process, from its first
                                                train/ statistics, histograms, images, lr, dropout
  flags         i == start                      train/flags (text)
  traces        training i with i % 100 == 99   traces/step_<i>.trace.json
A resumed run is one more process (its own event file in each folder), given by --starts.
"""

import json
import math
import os
import re
import struct
import sys
import time

from tfevents import (DEFAULT_LIMITS, DT_STRING, FormatError, decode_png, expand_to_default_buckets,
                      f32, read_events, tensor_scalar)

DBL_MAX = sys.float_info.max
IMAGE_TAGS = [f"input_reshape/input/image/{k}" for k in range(10)]
FILE_NAME = re.compile(r"events\.out\.tfevents\.(\d{10})\.[A-Za-z0-9._-]+")


# --- the schedule --------------------------------------------------------------------------------


class Process:
    """The iterations one process ran and what it writes at each."""

    def __init__(self, start, end, eval_every, summary_every, validation_every=None):
        self.start, self.end = start, end
        self.evals = [i for i in range(start, end) if i % eval_every == 0]
        # The validation split: at every evaluation (the spec), or, with validation_every K, at
        # the process's first evaluation and those with i % K == 0.
        self.validation = [i for n, i in enumerate(self.evals)
                           if not validation_every or n == 0 or i % validation_every == 0]
        self.train = [i for i in range(start, end) if i % eval_every != 0]
        self.cadence = self.train[::summary_every]
        self.traces = [i for i in self.train if i % 100 == 99]
        self.images_per_second = []
        trained = False
        for i in range(start, end):
            if i % eval_every == 0:
                if i > start and trained:
                    self.images_per_second.append(i)
                trained = False
            else:
                trained = True


def processes(starts, max_steps, eval_every, summary_every, validation_every=None):
    ends = list(starts[1:]) + [max_steps]
    return [Process(s, e, eval_every, summary_every, validation_every)
            for s, e in zip(starts, ends)]


def layers(model, hidden):
    """[(layer, inputs, outputs)] of the model."""
    if model == "softmax":
        return [("layer1", 784, 10)]
    return [("layer1", 784, hidden), ("layer2", hidden, 10)]


def expected_tags(config, process):
    """{folder: {tag: (kind, [steps])}} for one process; kind: scalar, histo, image, text."""
    cadence = process.cadence
    train = {"cross_entropy": ("scalar", process.train), "accuracy": ("scalar", process.train),
             "dropout/dropout_keep_probability": ("scalar", cadence),
             "learning_rate": ("scalar", cadence),
             "flags": ("text", [process.start]),
             "images_per_second": ("scalar", process.images_per_second)}
    for layer, _, _ in layers(config.model, config.hidden):
        for kind in ("weights", "biases"):
            base = f"{layer}/{kind}/summaries/"
            for stat in ("mean", "stddev", "max", "min"):
                train[base + stat] = ("scalar", cadence)
            train[base + "histogram"] = ("histo", cadence)
        train[f"{layer}/Wx_plus_b/pre_activations"] = ("histo", cadence)
        train[f"{layer}/activations"] = ("histo", cadence)
    for tag in IMAGE_TAGS:
        train[tag] = ("image", cadence)
    evals = process.evals
    test = {"accuracy": ("scalar", evals), "cross_entropy": ("scalar", evals),
            "dropout/dropout_keep_probability": ("scalar", evals)}
    for tag in IMAGE_TAGS:
        test[tag] = ("image", evals[:1])
    validation = {"accuracy": ("scalar", process.validation),
                  "cross_entropy": ("scalar", process.validation)}
    return {"train": train, "test": test, "validation": validation}


# Tags the spec allows but does not require (the softmax model's layer1/activations).
def optional_tags(config):
    return {"layer1/activations"} if config.model == "softmax" else set()


# --- reporting -----------------------------------------------------------------------------------


class Report:
    def __init__(self, root):
        self.root = root
        self.failures = []
        self.warnings = []
        self.counts = {}  # (folder, tag) -> [kind, count, min step, max step]

    def fail(self, where, message):
        self.failures.append(f"{where}: {message}")

    def warn(self, where, message):
        self.warnings.append(f"{where}: {message}")

    def rel(self, path):
        return os.path.relpath(path, self.root)

    def count(self, folder, tag, kind, step):
        entry = self.counts.setdefault((folder, tag), [kind, 0, step, step])
        entry[1] += 1
        entry[2] = min(entry[2], step)
        entry[3] = max(entry[3], step)

    def print(self, out=sys.stdout, limit=80):
        print(f"{'folder':10} {'tag':42} {'kind':7} {'count':>5}  steps", file=out)
        for (folder, tag), (kind, count, first, last) in sorted(self.counts.items()):
            print(f"{folder:10} {tag:42} {kind:7} {count:5}  {first}..{last}", file=out)
        for w in self.warnings:
            print(f"WARNING {w}", file=out)
        for f in self.failures[:limit]:
            print(f"FAIL {f}", file=out)
        if len(self.failures) > limit:
            print(f"FAIL ... and {len(self.failures) - limit} more failures", file=out)


def ranges(steps):
    """'1..9, 11..19' for a sorted list of ints."""
    out, run = [], []
    for s in steps:
        if run and s != run[-1] + 1:
            out.append(run)
            run = []
        run.append(s)
    if run:
        out.append(run)
    text = ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in out[:12])
    return text + (f", ... ({len(steps)} steps)" if len(out) > 12 else "")


# --- MNIST idx files -----------------------------------------------------------------------------


def read_idx_images(idx_dir, name):
    import gzip
    path = os.path.join(idx_dir, name)
    if os.path.exists(path):
        with open(path, "rb") as f:
            blob = f.read()
    else:
        with gzip.open(path + ".gz", "rb") as f:
            blob = f.read()
    magic, count, rows, cols = struct.unpack(">IIII", blob[:16])
    if magic != 2051 or rows != 28 or cols != 28 or len(blob) != 16 + count * 784:
        raise FormatError(f"{path}: not an idx image file of 28x28 images")
    return [blob[16 + k * 784 : 16 + (k + 1) * 784] for k in range(count)]


class MnistImages:
    def __init__(self, idx_dir, validation_count):
        self.test = read_idx_images(idx_dir, "t10k-images-idx3-ubyte")[:10]
        train = read_idx_images(idx_dir, "train-images-idx3-ubyte")
        self.training = {}
        self.validation = set(train[:validation_count])
        for index in range(validation_count, len(train)):
            self.training.setdefault(train[index], index)


# --- checks of single values ---------------------------------------------------------------------


def scalar_of(value):
    """The float of a scalar value: simple_value, or a one-element float tensor."""
    if value["kind"] == "simple_value":
        return value["simple_value"]
    if value["kind"] == "tensor":
        return tensor_scalar(value["tensor"])
    return None


def finite(x):
    return x is not None and math.isfinite(x)


def check_histogram(report, where, h, num):
    """HistogramProto consistency; returns False when it is too broken for further checks."""
    limits, counts = h["bucket_limit"], h["bucket"]
    ok = True
    if h["num"] != num:
        report.fail(where, f"num {h['num']:g}, expected {num}")
        ok = False
    if not limits or len(limits) != len(counts):
        report.fail(where, f"{len(limits)} bucket limits for {len(counts)} buckets")
        return False
    if any(b <= a for a, b in zip(limits, limits[1:])):
        report.fail(where, "bucket limits do not ascend strictly")
        ok = False
    if any(c < 0 or c != math.floor(c) for c in counts):
        report.fail(where, "a bucket count is negative or not a whole number")
        ok = False
    if sum(counts) != h["num"]:
        report.fail(where, f"bucket counts add up to {sum(counts):g}, num is {h['num']:g}")
        ok = False
    if expand_to_default_buckets(h) is None:
        odd = [x for x in limits if x not in set(DEFAULT_LIMITS)][:3]
        report.fail(where, f"bucket limits are not TF's default edges (e.g. {odd})")
        ok = False
    elif limits[-1] != DBL_MAX:
        report.fail(where, f"the last bucket limit is {limits[-1]!r}, not DBL_MAX (TF)")
    for key in ("min", "max", "sum", "sum_squares"):
        if not math.isfinite(h[key]):
            report.fail(where, f"{key} is {h[key]}")
            return False
    if h["num"] <= 0:
        return ok
    if h["min"] > h["max"]:
        report.fail(where, f"min {h['min']!r} > max {h['max']!r}")
        return False
    # min lies in the first non-empty bucket [previous limit, limit), max in the last one.
    nonempty = [k for k, c in enumerate(counts) if c > 0]
    if nonempty:
        first, last = nonempty[0], nonempty[-1]
        low = limits[first - 1] if first else -DBL_MAX
        if not low <= h["min"] < limits[first]:
            report.fail(where, f"min {h['min']!r} is not in the first non-empty bucket "
                               f"[{low!r}, {limits[first]!r})")
            ok = False
        low = limits[last - 1] if last else -DBL_MAX
        if not low <= h["max"] < limits[last]:
            report.fail(where, f"max {h['max']!r} is not in the last non-empty bucket "
                               f"[{low!r}, {limits[last]!r})")
            ok = False
    n = h["num"]
    mean_square = h["sum_squares"] / n
    if h["sum_squares"] < 0:
        report.fail(where, f"sum_squares {h['sum_squares']!r} < 0")
        ok = False
    slack = 1e-5 * max(abs(h["min"]), abs(h["max"])) + 1e-30
    if not h["min"] - slack <= h["sum"] / n <= h["max"] + slack:
        report.fail(where, f"mean sum/num = {h['sum'] / n!r} outside [min, max]")
        ok = False
    if mean_square - (h["sum"] / n) ** 2 < -1e-4 * mean_square - 1e-30:
        report.fail(where, "sum_squares/num < (sum/num)^2: negative variance")
        ok = False
    return ok


def check_statistics(report, where, stats, h):
    """L/T/summaries/{mean,stddev,max,min} against the histogram of the same step."""
    n = h["num"]
    if n <= 0:
        return
    mean = h["sum"] / n
    mean_square = h["sum_squares"] / n
    variance = max(mean_square - mean * mean, 0.0)
    rms = math.sqrt(mean_square)
    if "mean" in stats and not abs(stats["mean"] - mean) <= 1e-4 * rms + 1e-9:
        report.fail(where + "mean", f"{stats['mean']!r}, histogram sum/num = {mean!r}")
    if "stddev" in stats:
        sd = stats["stddev"]
        if not (sd >= 0 and abs(sd * sd - variance) <= 2e-4 * mean_square + 1e-12):
            report.fail(where + "stddev", f"{sd!r}, histogram sqrt(sum_squares/num - mean^2) = "
                                          f"{math.sqrt(variance)!r}")
    if "min" in stats and f32(stats["min"]) != f32(h["min"]):
        report.fail(where + "min", f"{stats['min']!r}, histogram min = {h['min']!r}")
    if "max" in stats and f32(stats["max"]) != f32(h["max"]):
        report.fail(where + "max", f"{stats['max']!r}, histogram max = {h['max']!r}")


def check_relu(report, where, act, pre):
    """layer1/activations is relu(layer1/Wx_plus_b/pre_activations) of the same step (the sample
    histograms the activations before dropout)."""
    a_counts, p_counts = expand_to_default_buckets(act), expand_to_default_buckets(pre)
    if a_counts is None or p_counts is None or act["num"] != pre["num"]:
        return
    z = DEFAULT_LIMITS.index(0.0)  # bucket z: [-1e-12, 0); bucket z + 1: [0, 1e-12)
    want = [0.0] * (z + 1) + [sum(p_counts[: z + 2])] + p_counts[z + 2 :]
    problems = []
    if a_counts != want:
        k = next(i for i in range(len(want)) if a_counts[i] != want[i])
        problems.append(f"bucket <{DEFAULT_LIMITS[k]!r}: {a_counts[k]:g} values, "
                        f"relu(pre_activations) has {want[k]:g}")
    if f32(act["max"]) != f32(max(pre["max"], 0.0)):
        problems.append(f"max {act['max']!r}, pre_activations max {pre['max']!r}")
    if f32(act["min"]) != f32(max(pre["min"], 0.0)):
        problems.append(f"min {act['min']!r}, pre_activations min {pre['min']!r}")
    if problems:
        report.fail(where, "not relu(layer1/Wx_plus_b/pre_activations) of the same step "
                           "(the sample's histogram is before dropout): " + "; ".join(problems))


def check_identity(report, where, act, pre):
    """layer2/activations is layer2/Wx_plus_b/pre_activations (the sample's act=tf.identity)."""
    problems = [k for k in ("min", "max", "num", "bucket_limit", "bucket") if act[k] != pre[k]]
    problems += [k for k in ("sum", "sum_squares")
                 if not math.isclose(act[k], pre[k], rel_tol=1e-5, abs_tol=1e-6)]
    if problems:
        report.fail(where, "differs from layer2/Wx_plus_b/pre_activations of the same step in "
                           + ", ".join(problems) + " (the sample's layer2 activation is identity)")


def check_image(report, where, value, images, want=None):
    """A 28x28 grey PNG; returns its pixels (or None)."""
    image = value["image"]
    if (image["height"], image["width"], image["colorspace"]) != (28, 28, 1):
        report.fail(where, f"Summary.Image is {image['height']}x{image['width']} colorspace "
                           f"{image['colorspace']}, expected 28x28 colorspace 1")
    try:
        width, height, channels, pixels = decode_png(image["encoded_image_string"])
    except FormatError as e:
        report.fail(where, str(e))
        return None
    if (width, height, channels) != (28, 28, 1):
        report.fail(where, f"the PNG is {width}x{height} with {channels} channels, expected 28x28 grey")
        return None
    if want is not None and pixels != want:
        diff = max(abs(a - b) for a, b in zip(pixels, want))
        report.fail(where, f"pixels differ from the idx file's image (largest difference {diff})")
    if images is not None and want is None and pixels not in images.training:
        what = ("a validation image (the first 5000 training images), not a training one"
                if pixels in images.validation else "not a training image of the idx file")
        report.fail(where, what)
    return pixels


# --- one folder ----------------------------------------------------------------------------------


def read_folder(report, folder_path, count):
    """[(path, events)] of the folder's event files, oldest first; failures for framing."""
    if not os.path.isdir(folder_path):
        report.fail(report.rel(folder_path), "missing")
        return []
    names = sorted(f for f in os.listdir(folder_path) if "tfevents" in f)
    others = sorted(f for f in os.listdir(folder_path) if "tfevents" not in f)
    if others:
        report.warn(report.rel(folder_path), f"other files beside the event files: {others}")
    files = []
    for name in names:
        path = os.path.join(folder_path, name)
        where = report.rel(path)
        if not FILE_NAME.fullmatch(name):
            report.fail(where, "not named events.out.tfevents.<10-digit seconds>.<host>[.NNN]")
        try:
            events = read_events(path)
        except (FormatError, UnicodeDecodeError, struct.error) as e:
            report.fail(where, f"unreadable: {e}")
            continue
        files.append((path, events))
    files.sort(key=lambda f: (f[1][0]["wall_time"] if f[1] else 0.0, f[0]))
    if len(names) != count:
        report.fail(report.rel(folder_path), f"{len(names)} event files, expected {count} "
                                             f"(one per process)")
    return files


def check_file_framing(report, path, events, now):
    """Version event first, wall times, one value per (tag, step); returns {(tag, step): value}."""
    where = report.rel(path)
    values = {}
    if not events:
        report.fail(where, "empty file")
        return values
    first = events[0]
    if first.get("file_version") != "brain.Event:2" or "summary" in first:
        report.fail(where, "the first record is not Event{file_version: brain.Event:2}: "
                           + repr(first)[:200])
    match = FILE_NAME.fullmatch(os.path.basename(path))
    if match and abs(int(match.group(1)) - first["wall_time"]) > 2:
        report.fail(where, f"the name's seconds {match.group(1)} are not the version event's "
                           f"wall_time {first['wall_time']:.3f}")
    previous = 0.0
    for index, e in enumerate(events):
        if not 1e9 < e["wall_time"] <= now + 5:
            report.fail(where, f"record {index}: wall_time {e['wall_time']!r}")
        if e["wall_time"] < previous:
            report.fail(where, f"record {index} (step {e['step']}): wall_time goes backwards")
        previous = max(previous, e["wall_time"])
        if e.get("other_fields"):
            report.fail(where, f"record {index}: unexpected Event fields {e['other_fields']}")
        if index == 0:
            continue
        if "file_version" in e:
            report.fail(where, f"record {index}: a second file_version")
        if "summary" not in e or not e["summary"]:
            report.fail(where, f"record {index} (step {e['step']}): no summary values")
            continue
        for v in e["summary"]:
            if not v["tag"]:
                report.fail(where, f"step {e['step']}: a value without a tag")
                continue
            key = (v["tag"], e["step"])
            if key in values:
                report.fail(where, f"{v['tag']} @ step {e['step']}: written twice")
            values[key] = v
    return values


KIND_OF = {"simple_value": "scalar", "histo": "histo", "image": "image"}


def value_kind(v):
    if v["kind"] == "tensor":
        plugin = v.get("metadata", {}).get("plugin_name", "")
        if plugin == "text" or v["tensor"]["dtype"] == DT_STRING:
            return "text"
        return "scalar" if tensor_scalar(v["tensor"]) is not None else "tensor"
    return KIND_OF.get(v["kind"], str(v["kind"]))


def check_steps(report, where, tag, got, want):
    got, want = sorted(got), sorted(set(want))
    if got != want:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        text = []
        if missing:
            text.append(f"missing at steps {ranges(missing)}")
        if extra:
            text.append(f"unexpected at steps {ranges(extra)}")
        report.fail(where, f"{tag}: " + "; ".join(text))


def check_process_folder(report, config, folder, path, values, process, images, context):
    """Tags, steps, kinds and values of one folder's file of one process."""
    where = report.rel(path)
    spec = expected_tags(config, process)[folder]
    optional = optional_tags(config) if folder == "train" else set()
    by_tag = {}
    for (tag, step), v in values.items():
        by_tag.setdefault(tag, {})[step] = v
        report.count(folder, tag, value_kind(v), step)
    for tag in sorted(set(by_tag) - set(spec)):
        report.fail(where, f"{tag}: not in the spec (steps {ranges(sorted(by_tag[tag]))})")
    for tag, (kind, steps) in spec.items():
        got = by_tag.get(tag, {})
        if tag in optional and not got:
            continue
        check_steps(report, where, tag, got.keys(), steps)
        for step, v in got.items():
            if value_kind(v) != kind:
                report.fail(where, f"{tag} @ step {step}: a {value_kind(v)}, expected a {kind}")
    get = lambda tag, step: by_tag.get(tag, {}).get(step)  # noqa: E731

    def scalar(tag, step):
        v = get(tag, step)
        return scalar_of(v) if v is not None and value_kind(v) == "scalar" else None

    def histo(tag, step):
        v = get(tag, step)
        return v["histo"] if v is not None and v["kind"] == "histo" else None

    at = lambda tag, step: f"{where}: {tag} @ step {step}"  # noqa: E731
    if folder == "train":
        check_train(report, config, process, by_tag, scalar, histo, at, images, where)
    else:
        check_eval(report, config, folder, process, by_tag, scalar, at, images, context)


def check_train(report, config, process, by_tag, scalar, histo, at, images, where):
    b = config.batch
    for step in process.train:
        loss, acc = scalar("cross_entropy", step), scalar("accuracy", step)
        if loss is not None and not (finite(loss) and loss > 0):
            report.fail(at("cross_entropy", step), f"{loss!r}: not finite and > 0")
        if acc is not None and not (0 <= acc <= 1 and abs(acc * b - round(acc * b)) < 1e-3):
            report.fail(at("accuracy", step), f"{acc!r}: not k/{b} in [0, 1]")
    losses = [scalar("cross_entropy", s) for s in process.train]
    losses = [x for x in losses if finite(x)]
    if process.start == 0 and losses and not 0.5 < losses[0] < 10:
        report.fail(at("cross_entropy", process.train[0]),
                    f"{losses[0]!r}: a fresh model's loss on 10 classes is near ln 10 = 2.30")
    if len(losses) >= 100 and not sum(losses[-20:]) < sum(losses[:20]):
        report.fail(f"{where}: cross_entropy", "the mean of the last 20 training losses is not "
                                               "below the mean of the first 20")
    keep = 1.0 if config.model == "softmax" else config.dropout
    for step in process.cadence:
        v = scalar("dropout/dropout_keep_probability", step)
        if v is not None and v != f32(keep):
            report.fail(at("dropout/dropout_keep_probability", step), f"{v!r}, expected {f32(keep)!r}")
        v = scalar("learning_rate", step)
        if v is not None and v != f32(config.learning_rate):
            report.fail(at("learning_rate", step), f"{v!r}, expected {f32(config.learning_rate)!r}")
    for step in process.images_per_second:
        v = scalar("images_per_second", step)
        if v is not None and not (finite(v) and v > 0):
            report.fail(at("images_per_second", step), f"{v!r}: not finite and > 0")

    # Parameters: statistics against their histograms, sizes, the initial values, change.
    first_cadence = process.cadence[0] if process.cadence else None
    for layer, fan_in, fan_out in layers(config.model, config.hidden):
        for kind, num in (("weights", fan_in * fan_out), ("biases", fan_out)):
            base = f"{layer}/{kind}/summaries/"
            for step in process.cadence:
                h = histo(base + "histogram", step)
                if h is None:
                    continue
                if not check_histogram(report, at(base + "histogram", step), h, num):
                    continue
                stats = {s: scalar(base + s, step) for s in ("mean", "stddev", "max", "min")}
                stats = {s: x for s, x in stats.items() if x is not None}
                for s, x in stats.items():
                    if not finite(x):
                        report.fail(at(base + s, step), f"{x!r}")
                check_statistics(report, f"{where}: @ step {step}: {base}",
                                 {s: x for s, x in stats.items() if finite(x)}, h)
            h = histo(base + "histogram", first_cadence) if first_cadence is not None else None
            if process.start == 0 and h is not None and h["num"] > 0:
                check_initial(report, at(base + "histogram", first_cadence), kind, h, config)
            if len(process.cadence) >= 2 and h is not None:
                last = histo(base + "histogram", process.cadence[-1])
                if last is not None and (last["sum"], last["bucket"]) == (h["sum"], h["bucket"]):
                    report.fail(at(base + "histogram", process.cadence[-1]),
                                f"identical to step {first_cadence}'s: the parameters never changed")
        for step in process.cadence:
            pre = histo(f"{layer}/Wx_plus_b/pre_activations", step)
            act = histo(f"{layer}/activations", step)
            if pre is not None:
                check_histogram(report, at(f"{layer}/Wx_plus_b/pre_activations", step), pre,
                                b * fan_out)
            if act is not None:
                if check_histogram(report, at(f"{layer}/activations", step), act, b * fan_out):
                    if layer == "layer1" and config.model == "mlp":
                        if act["num"] > 0 and act["min"] < 0:
                            report.fail(at(f"{layer}/activations", step),
                                        f"min {act['min']!r} < 0 after ReLU")
                        if pre is not None:
                            check_relu(report, at(f"{layer}/activations", step), act, pre)
                    elif layer == "layer2" and pre is not None:
                        check_identity(report, at(f"{layer}/activations", step), act, pre)

    # Images: the first ten of each cadence step's batch.
    previous = None
    seen = {}  # training image index -> the step it was shown at
    for step in process.cadence:
        batch = []
        for tag in IMAGE_TAGS:
            v = by_tag.get(tag, {}).get(step)
            if v is not None and v["kind"] == "image":
                batch.append(check_image(report, at(tag, step), v, images))
        if images is not None and previous is not None and batch == previous and len(batch) == 10:
            report.fail(at("input_reshape/input/image/*", step),
                        "the same ten images as the previous summary step: the batch did not change")
        previous = batch
        # Within an epoch (the training images reshuffled, each drawn once) no image comes twice.
        if images is not None and len(process.train) * b <= len(images.training):
            for k, pixels in enumerate(batch):
                index = images.training.get(pixels) if pixels is not None else None
                if index is None:
                    continue
                if index in seen:
                    report.fail(at(IMAGE_TAGS[k], step),
                                f"training image {index} again (first at step {seen[index]}), "
                                f"within one epoch: the batches are not drawn without replacement")
                seen.setdefault(index, step)

    # The flags.
    v = by_tag.get("flags", {}).get(process.start)
    if v is not None and v["kind"] == "tensor":
        tensor = v["tensor"]
        if v.get("metadata", {}).get("plugin_name") != "text":
            report.fail(at("flags", process.start), "plugin_name is not \"text\"")
        if tensor["dtype"] != DT_STRING or len(tensor["string_val"]) != 1:
            report.fail(at("flags", process.start),
                        f"not one DT_STRING value (dtype {tensor['dtype']}, "
                        f"{len(tensor['string_val'])} strings)")
        else:
            try:
                text = tensor["string_val"][0].decode("utf-8")
            except UnicodeDecodeError:
                report.fail(at("flags", process.start), "not UTF-8")
                text = ""
            # A process ends at its --max_steps, or earlier when it was stopped (SIGTERM) and
            # resumed: its flags say the --max_steps it was given; the last process's is the run's.
            m = re.search(r"max_steps\W{0,16}(\d+)\b", text)
            given = int(m.group(1)) if m else None
            last = process.end == config.max_steps
            if given is None or given < process.end or (last and given != config.max_steps):
                want = str(config.max_steps) if last else f">= {process.end}"
                report.fail(at("flags", process.start),
                            f"does not list max_steps {want}: {text[:300]!r}")


def check_initial(report, where, kind, h, config):
    """The first summary of a fresh model: weights ~ truncated normal(0, 0.1) beyond 2 sigma
    redrawn, biases 0.1; at most one Adam step (each parameter moves <= ~lr) taken."""
    slack = 2 * config.learning_rate + 1e-6
    n = h["num"]
    mean = h["sum"] / n
    sd = math.sqrt(max(h["sum_squares"] / n - mean * mean, 0.0))
    if kind == "weights":
        ok = (h["min"] >= -0.2 - slack and h["max"] <= 0.2 + slack and abs(mean) < 0.01 and
              (0.07 < sd < 0.1 if n >= 1000 else True))
        what = "truncated normal(0, 0.1) within +-0.2"
    else:
        ok = h["min"] >= 0.1 - slack and h["max"] <= 0.1 + slack
        what = "0.1"
    if not ok:
        report.fail(where, f"min {h['min']:.5g} max {h['max']:.5g} mean {mean:.5g} stddev {sd:.5g}:"
                           f" a fresh model's {kind} are {what}")


def check_eval(report, config, folder, process, by_tag, scalar, at, images, context):
    count = config.test_count if folder == "test" else config.validation_count
    for step in (process.evals if folder == "test" else process.validation):
        acc = scalar("accuracy", step)
        if acc is not None:
            if not (0 <= acc <= 1 and abs(acc * count - round(acc * count)) < 1e-2):
                report.fail(at("accuracy", step), f"{acc!r}: not k/{count} in [0, 1]")
            context.setdefault(folder, {})[step] = acc
            printed = context.get("printed", {}).get(step)
            if folder == "test" and "printed" in context:
                if printed is None:
                    report.fail(at("accuracy", step), "no 'Accuracy at step' line printed for it")
                elif f32(float(printed)) != acc:
                    report.fail(at("accuracy", step), f"{acc!r}, printed {printed}")
        loss = scalar("cross_entropy", step)
        if loss is not None and not (finite(loss) and loss >= 0):
            report.fail(at("cross_entropy", step), f"{loss!r}: not finite and >= 0")
        if folder == "test" and loss is not None:
            context.setdefault("test_loss", {})[step] = loss
        if folder == "test":
            keep = scalar("dropout/dropout_keep_probability", step)
            if keep is not None and keep != 1.0:
                report.fail(at("dropout/dropout_keep_probability", step), f"{keep!r}, expected 1.0")
    if folder == "test" and process.evals:
        step = process.evals[0]
        for k, tag in enumerate(IMAGE_TAGS):
            v = by_tag.get(tag, {}).get(step)
            if v is not None and v["kind"] == "image":
                check_image(report, at(tag, step), v, None, images.test[k] if images else None)


# --- traces, result.json, stdout -----------------------------------------------------------------


def check_trace(report, path, kernels_per_step):
    where = report.rel(path)
    try:
        with open(path, encoding="utf-8") as f:
            trace = json.load(f)
    except (OSError, ValueError) as e:
        report.fail(where, f"not JSON: {e}")
        return 0
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        report.fail(where, "not an object with a traceEvents list")
        return 0
    complete = []
    for index, e in enumerate(trace["traceEvents"]):
        if not isinstance(e, dict):
            report.fail(where, f"traceEvents[{index}] is not an object")
            continue
        if e.get("ph") == "M":
            if not isinstance(e.get("name"), str) or not isinstance(e.get("args"), dict):
                report.fail(where, f"traceEvents[{index}]: a metadata event without name/args: {e}")
            continue
        if e.get("ph") != "X":
            report.fail(where, f"traceEvents[{index}]: ph {e.get('ph')!r}, expected X or M")
            continue
        problems = []
        if not isinstance(e.get("name"), str) or not e["name"]:
            problems.append("no name")
        for key in ("ts", "dur"):
            x = e.get(key)
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                problems.append(f"{key} {x!r} is not a number")
        if isinstance(e.get("dur"), (int, float)) and e["dur"] < 0:
            problems.append(f"dur {e['dur']} < 0")
        for key in ("pid", "tid"):
            if key not in e or isinstance(e[key], bool) or not isinstance(e[key], (int, str)):
                problems.append(f"{key} missing")
        if not isinstance(e.get("args"), dict):
            problems.append("args is not an object")
        if problems:
            report.fail(where, f"traceEvents[{index}] ({e.get('name')!r}): " + ", ".join(problems))
        else:
            complete.append(e)
    if not complete:
        report.fail(where, "no complete (ph X) events")
    times = [e["ts"] for e in complete]
    if times != sorted(times):
        report.fail(where, "the complete events are not sorted by ts")
    kernels = innermost(complete)
    if kernels_per_step is not None and len(kernels) != kernels_per_step:
        report.fail(where, f"{len(kernels)} kernels ({[e['name'] for e in kernels]}), "
                           f"expected {kernels_per_step}")
    return len(kernels)


def innermost(complete):
    """The complete events that enclose no other one of the same thread: the kernels (or the
    host's phases), where a trace also has ranges for the ops around them."""
    def encloses(e, f):
        return (e is not f and (e.get("pid"), e.get("tid")) == (f.get("pid"), f.get("tid"))
                and e["ts"] - 1e-3 <= f["ts"] and f["ts"] + f["dur"] <= e["ts"] + e["dur"] + 1e-3
                and (f["dur"], id(f)) < (e["dur"], id(e)))
    return [e for e in complete if not any(encloses(e, f) for f in complete)]


def check_traces(report, log_dir, procs, kernels_per_step):
    want = sorted(i for p in procs for i in p.traces)
    folder = os.path.join(log_dir, "traces")
    if not os.path.isdir(folder):
        if want:
            report.fail("traces", f"missing (expected step_<i>.trace.json for {want})")
        return
    names = sorted(os.listdir(folder))
    expected = [f"step_{i}.trace.json" for i in want]
    for name in sorted(set(names) - set(expected)):
        report.fail(f"traces/{name}", "not expected (traces only at training steps i % 100 == 99)")
    for name in sorted(set(expected) - set(names)):
        report.fail(f"traces/{name}", "missing")
    for name in expected:
        if name in names:
            n = check_trace(report, os.path.join(folder, name), kernels_per_step)
            report.counts[("traces", name)] = ["kernel", n, int(name[5:-11]), int(name[5:-11])]


def check_result_json(report, log_dir):
    path = os.path.join(log_dir, "result.json")
    if not os.path.exists(path):
        report.warn("result.json", "absent")
        return
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, ValueError) as e:
        report.fail("result.json", f"not JSON: {e}")
        return
    if not isinstance(result, dict) or result.get("exit_code") != 0:
        report.fail("result.json", f"exit_code is {result.get('exit_code') if isinstance(result, dict) else result!r}, expected 0")


def parse_stdout(report, paths, procs):
    """{step: printed accuracy text}; checks the Accuracy and run-metadata lines."""
    printed, metadata = {}, []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.fullmatch(r"Accuracy at step (\d+): (\S+)\n?", line)
                if m:
                    step = int(m.group(1))
                    if step in printed:
                        report.fail("stdout", f"two 'Accuracy at step {step}' lines")
                    printed[step] = m.group(2)
                m = re.fullmatch(r"Adding run metadata for (\d+)\n?", line)
                if m:
                    metadata.append(int(m.group(1)))
    check_steps(report, "stdout", "Accuracy at step", printed.keys(),
                [i for p in procs for i in p.evals])
    check_steps(report, "stdout", "Adding run metadata for", metadata,
                [i for p in procs for i in p.traces])
    return printed


# --- the whole log_dir ---------------------------------------------------------------------------


def check_log_dir(config, out=sys.stdout):
    """Checks config.log_dir; prints the per-tag table and failures; returns the Report."""
    report = Report(config.log_dir)
    procs = processes(config.starts, config.max_steps, config.eval_every, config.summary_every,
                      getattr(config, "validation_every", None))
    now = time.time()
    images = MnistImages(config.idx_dir, config.validation_count) if config.idx_dir else None
    context = {}
    if config.stdout:
        context["printed"] = parse_stdout(report, config.stdout, procs)
    for folder in ("train", "test", "validation"):
        files = read_folder(report, os.path.join(config.log_dir, folder), len(procs))
        for (path, events), process in zip(files, procs):
            values = check_file_framing(report, path, events, now)
            for (tag, step) in values:
                if not process.start <= step < process.end:
                    report.fail(report.rel(path), f"{tag} @ step {step}: outside this process's "
                                                  f"iterations [{process.start}, {process.end})")
            check_process_folder(report, config, folder, path, values, process, images, context)
        if len(files) >= 2:
            ends = [events[-1]["wall_time"] for _, events in files[:-1] if events]
            starts = [events[0]["wall_time"] for _, events in files[1:] if events]
            if any(b < a for a, b in zip(ends, starts)):
                report.fail(report.rel(os.path.join(config.log_dir, folder)),
                            "a later process's file starts before the earlier one's last event")
    if images is not None:
        check_plausible(report, procs, context)
    check_traces(report, config.log_dir, procs, config.kernels_per_step)
    check_result_json(report, config.log_dir)
    report.print(out)
    return report


def check_plausible(report, procs, context):
    """On real MNIST: validation and test accuracy agree after 100 steps, and validation is not a
    copy of the test accuracy."""
    test, validation = context.get("test", {}), context.get("validation", {})
    both = sorted(set(test) & set(validation))
    late = [s for s in both if s >= 100]
    if late:
        s = late[-1]
        if not (test[s] > 0.8 and validation[s] > 0.8 and abs(test[s] - validation[s]) < 0.05):
            report.fail(f"validation: accuracy @ step {s}",
                        f"{validation[s]!r} vs test {test[s]!r}: expected both > 0.8 and within 0.05")
    if len([s for s in both if s > 0]) >= 3 and all(test[s] == validation[s] for s in both):
        report.fail("validation: accuracy", "equal to the test accuracy at every step")
    losses = context.get("test_loss", {})
    if 0 in losses and late and not losses[late[-1]] < losses[0]:
        report.fail(f"test: cross_entropy @ step {late[-1]}",
                    f"{losses[late[-1]]!r}, not below step 0's {losses[0]!r}")


# --- another backend's run of the same flags -------------------------------------------------------


def folder_values(log_dir, folder):
    """{(tag, step): value} over all event files of one folder (framing errors ignored here)."""
    scratch = Report(log_dir)
    values = {}
    path = os.path.join(log_dir, folder)
    if not os.path.isdir(path):
        return values
    for file_path, events in read_folder(scratch, path, 0):
        values.update(check_file_framing(scratch, file_path, events, time.time()))
    return values


def compare_tolerance(folder, tag, batch):
    """(absolute, relative) tolerance for a scalar of two backends' runs of the same flags, or
    None for values that are not expected to agree (timings, the flags text)."""
    if tag in ("images_per_second", "flags"):
        return None
    if tag in ("dropout/dropout_keep_probability", "learning_rate"):
        return (0.0, 0.0)
    if tag == "accuracy":
        return (3.0 / batch, 0.0) if folder == "train" else (0.005, 0.0)
    if tag == "cross_entropy":
        return (0.02, 0.02)
    if "/summaries/" in tag:
        return (2e-4, 1e-2)
    return (1e-3, 1e-2)


def compare_log_dirs(report, config, other_dir, out):
    """The same run on another backend (--compare_to): the same values at the same steps, within
    float tolerances; images pixel for pixel (the batches are the same by the seed)."""
    worst = {}  # (folder, tag) -> (deviation / tolerance, text)
    for folder in ("train", "test", "validation"):
        mine, theirs = folder_values(config.log_dir, folder), folder_values(other_dir, folder)
        missing = sorted(set(theirs) - set(mine))
        if missing:
            report.fail(f"compare {folder}", f"{len(missing)} values of {other_dir} absent here, "
                                            f"e.g. {missing[:3]}")
        for (tag, step), v in sorted(mine.items()):
            w = theirs.get((tag, step))
            if w is None:
                report.fail(f"compare {folder}", f"{tag} @ step {step} absent from {other_dir}")
                continue
            where = f"compare {folder}/{tag} @ step {step}"
            kind = value_kind(v)
            if kind != value_kind(w):
                report.fail(where, f"a {kind} here, a {value_kind(w)} there")
                continue
            if kind == "scalar":
                tol = compare_tolerance(folder, tag, config.batch)
                if tol is None:
                    continue
                a, b = scalar_of(v), scalar_of(w)
                limit = tol[0] + tol[1] * abs(b)
                deviation = abs(a - b)
                ratio = deviation / limit if limit else (0.0 if deviation == 0 else math.inf)
                if ratio > worst.get((folder, tag), (-1.0,))[0]:
                    worst[(folder, tag)] = (ratio, f"step {step}: {a!r} vs {b!r}")
                if ratio > 1:
                    report.fail(where, f"{a!r} here, {b!r} there (tolerance {limit:.3g})")
            elif kind == "histo":
                h, g = v["histo"], w["histo"]
                if h["num"] != g["num"]:
                    report.fail(where, f"num {h['num']:g} here, {g['num']:g} there")
                    continue
                if h["num"] <= 0:
                    continue
                scale = max(math.sqrt(g["sum_squares"] / g["num"]), 1e-6)
                ratios = []
                for key, value_here, value_there in (
                        ("mean", h["sum"] / h["num"], g["sum"] / g["num"]),
                        ("min", h["min"], g["min"]), ("max", h["max"], g["max"])):
                    limit = 1e-3 * scale + 1e-2 * abs(value_there) + 1e-6
                    ratios.append((abs(value_here - value_there) / limit, key, value_here,
                                   value_there))
                ratio, key, a, b = max(ratios)
                if ratio > worst.get((folder, tag), (-1.0,))[0]:
                    worst[(folder, tag)] = (ratio, f"step {step}: {key} {a!r} vs {b!r}")
                if ratio > 1:
                    report.fail(where, f"{key} {a!r} here, {b!r} there")
            elif kind == "image":
                try:
                    same = (decode_png(v["image"]["encoded_image_string"])
                            == decode_png(w["image"]["encoded_image_string"]))
                except FormatError:
                    continue  # reported by the checks of each folder
                if not same:
                    report.fail(where, "a different image (the same seed draws the same batches)")
    print(f"compared with {other_dir}: the largest deviation per tag, as a fraction of its "
          f"tolerance", file=out)
    for (folder, tag), (ratio, text) in sorted(worst.items()):
        print(f"  {folder:10} {tag:42} {ratio:6.3f}  {text}", file=out)
