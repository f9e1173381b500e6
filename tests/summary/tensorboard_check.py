#!/usr/bin/env python3
"""Reads a training run's --log_dir with TensorBoard's own loaders and checks it against the
summaries spec. Needs the `tensorboard` package (2.x; CI does not have it: run it where it is
installed, e.g. the GPU machine). Exits 1 on any mismatch, 77 (CTest's SKIP_RETURN_CODE: reported
as skipped, never as passed) when TensorBoard is missing.

  tensorboard_check.py LOGDIR --max_steps N [--eval_every 10] [--summary_every 10] [--batch 100]
                       [--hidden 500] [--model mlp] [--starts 0,120] [--kernels-per-step K]
        every tag of the spec in train/, test/, validation/ with exactly the expected steps, as
        TensorBoard's classic EventAccumulator (size guidance 0: keep everything) reads them; the
        same tags through the plugin accumulator (what `tensorboard --logdir` serves); histogram
        sizes; one image decoded; the flags text; each trace JSON (complete events with name, ts,
        dur; exactly K of them with --kernels-per-step). Prints "tag: count" per run.
  tensorboard_check.py LOGDIR            counts per run and tag only (fails when there are none)
  tensorboard_check.py --sample LOGDIR   write_sample_events' values (tests/summary)
  tensorboard_check.py --writer EXE      run write_sample_events EXE into a fresh folder, then
                                         --sample it

The expected schedule is logdir_check.py's (the stdlib checker's), so both checkers agree on what
the spec means; the reading here is all TensorBoard's.
"""

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea
    from tensorboard.util import tensor_util
    import tensorboard
except ImportError as e:  # pragma: no cover
    print(f"SKIP: tensorboard_check needs the tensorboard package: {e}", file=sys.stderr)
    sys.exit(77)

import logdir_check  # noqa: E402
from tfevents import decode_png  # noqa: E402

# The plugin each kind of value is served by.
PLUGIN_OF = {"scalar": "scalars", "histo": "histograms", "image": "images", "text": "text"}
# The classic accumulator's Tags() key for each kind.
CLASSIC_KEY = {"scalar": "scalars", "histo": "histograms", "image": "images", "text": "tensors"}


def keep_everything(guidance):
    return {k: 0 for k in guidance}


def classic(run):
    acc = ea.EventAccumulator(run, size_guidance=keep_everything(ea.DEFAULT_SIZE_GUIDANCE))
    acc.Reload()
    return acc


def plugin(run):
    acc = pea.EventAccumulator(run, size_guidance=keep_everything(pea.DEFAULT_SIZE_GUIDANCE),
                               tensor_size_guidance={})
    acc.Reload()
    return acc


def classic_read(acc, kind):
    return {"scalar": acc.Scalars, "histo": acc.Histograms, "image": acc.Images,
            "text": acc.Tensors}[kind]


def runs(logdir):
    for root, _, files in sorted(os.walk(logdir)):
        if any("tfevents" in f for f in files):
            yield root


class Failures:
    def __init__(self):
        self.items = []

    def __call__(self, message):
        self.items.append(message)
        print(f"FAIL {message}")


def report(logdir):
    """Counts per run and tag from both loaders; the number of values."""
    total = 0
    for run in runs(logdir):
        acc = classic(run)
        tags = acc.Tags()
        print(f"run {os.path.relpath(run, logdir) or '.'}:")
        for kind, key in (("scalar", "scalars"), ("histo", "histograms"), ("image", "images"),
                          ("text", "tensors")):
            for tag in sorted(tags.get(key, [])):
                steps = [e.step for e in classic_read(acc, kind)(tag)]
                total += len(steps)
                print(f"  {tag}: {len(steps)} ({key}, steps {min(steps)}..{max(steps)})")
        pacc = plugin(run)
        for name in sorted(pacc.ActivePlugins()):
            tags = pacc.PluginTagToContent(name)
            print(f"  plugin {name}: {len(tags)} tags, "
                  f"{sum(len(pacc.Tensors(t)) for t in tags)} values")
    print(f"{total} values")
    return total


def check_run(fail, logdir, folder, want, config):
    """One run folder (train, test, validation) against {tag: (kind, [steps])}."""
    run = os.path.join(logdir, folder)
    if not os.path.isdir(run):
        fail(f"{folder}: missing")
        return
    files = sorted(glob.glob(os.path.join(run, "*tfevents*")))
    if len(files) != len(config.starts):
        fail(f"{folder}: {len(files)} event files, expected {len(config.starts)}")
    acc = classic(run)
    tags = acc.Tags()
    optional = logdir_check.optional_tags(config) if folder == "train" else set()
    print(f"run {folder}:")
    known = set()
    for tag, (kind, steps) in sorted(want.items()):
        known.add(tag)
        if tag not in tags.get(CLASSIC_KEY[kind], []):
            if tag in optional:
                continue
            others = [k for k, v in tags.items() if isinstance(v, list) and tag in v]
            fail(f"{folder}/{tag}: not among TensorBoard's {CLASSIC_KEY[kind]}"
                 + (f" (found as {others})" if others else ""))
            continue
        events = classic_read(acc, kind)(tag)
        got = sorted(e.step for e in events)
        print(f"  {tag}: {len(events)}")
        if got != sorted(steps):
            missing = sorted(set(steps) - set(got))
            extra = sorted(set(got) - set(steps))
            dup = len(got) - len(set(got))
            fail(f"{folder}/{tag}: steps differ: missing {logdir_check.ranges(missing) or '-'}; "
                 f"unexpected {logdir_check.ranges(extra) or '-'}; {dup} duplicates")
        check_values(fail, folder, tag, kind, events, config)
    for kind, key in CLASSIC_KEY.items():
        for tag in tags.get(key, []):
            if tag not in known:
                fail(f"{folder}/{tag}: {len(classic_read(acc, kind)(tag))} {key} "
                     f"not in the spec")

    # What `tensorboard --logdir` serves: every tag under its plugin, with as many values.
    pacc = plugin(run)
    active = set(pacc.ActivePlugins())
    for tag, (kind, steps) in sorted(want.items()):
        if not steps or (tag in optional and tag not in tags.get(CLASSIC_KEY[kind], [])):
            continue
        name = PLUGIN_OF[kind]
        if name not in active or tag not in pacc.PluginTagToContent(name):
            fail(f"{folder}/{tag}: not served by the {name} plugin (active: {sorted(active)})")
            continue
        n = len(pacc.Tensors(tag))
        if n != len(steps):
            fail(f"{folder}/{tag}: the {name} plugin has {n} values, expected {len(steps)}")


def check_values(fail, folder, tag, kind, events, config):
    where = f"{folder}/{tag}"
    if kind == "scalar":
        for e in events:
            if not math.isfinite(e.value):
                fail(f"{where} @ step {e.step}: {e.value}")
        if tag == "accuracy":
            bad = [(e.step, e.value) for e in events if not 0 <= e.value <= 1]
            if bad:
                fail(f"{where}: outside [0, 1]: {bad[:5]}")
    elif kind == "histo":
        num = expected_num(tag, config)
        for e in events:
            h = e.histogram_value
            if num is not None and h.num != num:
                fail(f"{where} @ step {e.step}: num {h.num}, expected {num}")
            if sum(h.bucket) != h.num or len(h.bucket) != len(h.bucket_limit):
                fail(f"{where} @ step {e.step}: {len(h.bucket)} buckets adding up to "
                     f"{sum(h.bucket)} for num {h.num} ({len(h.bucket_limit)} limits)")
    elif kind == "image":
        e = events[0]
        try:
            width, height, channels, _ = decode_png(e.encoded_image_string)
        except Exception as error:  # noqa: BLE001
            fail(f"{where} @ step {e.step}: the PNG does not decode: {error}")
            return
        if (e.width, e.height, width, height, channels) != (28, 28, 28, 28, 1):
            fail(f"{where} @ step {e.step}: {e.width}x{e.height}, PNG {width}x{height}x{channels}")
    elif kind == "text":
        for e in events:
            value = tensor_util.make_ndarray(e.tensor_proto)
            text = value.item() if value.size == 1 else b""
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            if "max_steps" not in text:
                fail(f"{where} @ step {e.step}: does not list max_steps: {text[:200]!r}")


def expected_num(tag, config):
    for layer, fan_in, fan_out in logdir_check.layers(config.model, config.hidden):
        sizes = {f"{layer}/weights/summaries/histogram": fan_in * fan_out,
                 f"{layer}/biases/summaries/histogram": fan_out,
                 f"{layer}/Wx_plus_b/pre_activations": config.batch * fan_out,
                 f"{layer}/activations": config.batch * fan_out}
        if tag in sizes:
            return sizes[tag]
    return None


def trace_order(name):
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits) if digits else -1, name)


def check_traces(fail, logdir, procs, kernels):
    want = sorted(i for p in procs for i in p.traces)
    found = glob.glob(os.path.join(logdir, "traces", "*.trace.json"))
    names = sorted((os.path.basename(f) for f in found), key=trace_order)
    expected = [f"step_{i}.trace.json" for i in want]
    if names != expected:
        fail(f"traces: {names}, expected {expected}")
    for path in sorted(found, key=lambda p: trace_order(os.path.basename(p))):
        try:
            with open(path, encoding="utf-8") as f:
                trace = json.load(f)
            events = trace["traceEvents"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            fail(f"traces/{os.path.basename(path)}: not a Chrome trace: {e}")
            continue
        complete = [e for e in events if isinstance(e, dict) and e.get("ph") == "X"]
        broken = [e for e in complete
                  if not (isinstance(e.get("name"), str) and e["name"]
                          and isinstance(e.get("ts"), (int, float))
                          and isinstance(e.get("dur"), (int, float)) and e["dur"] >= 0)]
        print(f"traces/{os.path.basename(path)}: {len(complete)} complete events "
              f"({len(logdir_check.innermost(complete)) if not broken else '?'} innermost): "
              + ", ".join(f"{e.get('name')} {e.get('dur')} us" for e in complete))
        if not complete:
            fail(f"traces/{os.path.basename(path)}: no complete (ph X) events")
        if broken:
            fail(f"traces/{os.path.basename(path)}: events without name/ts/dur >= 0: {broken[:3]}")
        launched = logdir_check.innermost(complete) if not broken else complete
        if kernels is not None and len(launched) != kernels:
            fail(f"traces/{os.path.basename(path)}: {len(launched)} kernels "
                 f"({[e.get('name') for e in launched]}), expected {kernels} (one event per kernel)")


def check_spec(args):
    fail = Failures()
    procs = logdir_check.processes(args.starts, args.max_steps, args.eval_every,
                                   args.summary_every, args.validation_every)
    want = {}
    for p in procs:
        for folder, tags in logdir_check.expected_tags(args, p).items():
            for tag, (kind, steps) in tags.items():
                want.setdefault(folder, {}).setdefault(tag, (kind, []))[1].extend(steps)
    for folder in ("train", "test", "validation"):
        check_run(fail, args.logdir, folder, want[folder], args)
    check_traces(fail, args.logdir, procs, args.kernels_per_step)
    print(f"tensorboard {tensorboard.__version__}: "
          + ("ok, TensorBoard's loaders read every tag at every expected step"
             if not fail.items else f"{len(fail.items)} failures"))
    return 1 if fail.items else 0


def check_sample(logdir):
    acc = classic(logdir)
    loss = [(e.step, e.value) for e in acc.Scalars("cross_entropy")]
    assert [s for s, _ in loss] == list(range(10)), loss
    assert all(abs(v - 1 / (s + 1)) < 1e-7 for s, v in loss), loss
    assert [e.value for e in acc.Scalars("zero")] == [0.0]
    histo = acc.Histograms("layer1/weights/summaries/histogram")
    assert [h.step for h in histo] == [0, 10], histo
    assert histo[0].histogram_value.num == 1004, histo[0]
    images = acc.Images("input_reshape/input/image/0")
    assert (images[0].width, images[0].height) == (28, 28), images[0]
    pacc = plugin(logdir)
    assert "text" in pacc.ActivePlugins(), pacc.ActivePlugins()
    text = pacc.Tensors("flags")[0]
    got = tensor_util.make_ndarray(text.tensor_proto).item().decode()
    assert got == "--max_steps 500\n**bold** \u00fcnicode", got
    for name in ("scalars", "histograms", "images"):
        assert name in pacc.ActivePlugins(), (name, pacc.ActivePlugins())
    for tag in ("cross_entropy", "layer1/weights/summaries/histogram", "precomputed", "rgb"):
        assert pacc.Tensors(tag), tag
    print("sample ok: TensorBoard's loaders read every value")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", nargs="?")
    parser.add_argument("--sample", action="store_true")
    parser.add_argument("--writer", metavar="EXE")
    parser.add_argument("--max_steps", "--max-steps", type=int)
    parser.add_argument("--eval_every", "--eval-every", type=int, default=10)
    parser.add_argument("--summary_every", "--summary-every", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--model", choices=("mlp", "softmax"), default="mlp")
    parser.add_argument("--starts", default="0", help="first iteration of each process: 0,120")
    parser.add_argument("--kernels_per_step", "--kernels-per-step", type=int)
    parser.add_argument("--validation_every", "--validation-every", type=int,
                        help="validation only at the first evaluation and at i % K == 0")
    args = parser.parse_args()
    args.starts = [int(s) for s in args.starts.split(",")]
    if args.writer:
        with tempfile.TemporaryDirectory() as directory:
            subprocess.run([args.writer, directory], check=True)
            if report(directory) == 0:
                print("no values found", file=sys.stderr)
                return 1
            check_sample(directory)
        return 0
    if args.logdir is None:
        parser.error("LOGDIR or --writer is needed")
    if args.max_steps is not None:
        return check_spec(args)
    if report(args.logdir) == 0:
        print("no values found", file=sys.stderr)
        return 1
    if args.sample:
        check_sample(args.logdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
