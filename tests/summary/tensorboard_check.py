#!/usr/bin/env python3
"""Reads a log folder with TensorBoard's own loaders (needs the `tensorboard` package, which CI
does not have: run it where it is installed, e.g. the GPU machine) and prints, per run and tag,
what each loader found.

  tensorboard_check.py LOGDIR            counts per tag from both loaders
  tensorboard_check.py --sample LOGDIR   also check write_sample_events' values

Two loaders: event_accumulator (the classic one: scalars, histograms, images, tensors as
written) and plugin_event_accumulator (what `tensorboard --logdir` serves from: every legacy
value migrated by data_compat into a tensor for its plugin), so a file both accept is one the
dashboards show.
"""

import argparse
import os
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import plugin_event_accumulator as pea
from tensorboard.util import tensor_util


def runs(logdir):
    for root, _, files in sorted(os.walk(logdir)):
        if any("tfevents" in f for f in files):
            yield root


def classic(run):
    acc = ea.EventAccumulator(run, size_guidance={k: 0 for k in ea.DEFAULT_SIZE_GUIDANCE})
    acc.Reload()
    return acc


def plugin(run):
    acc = pea.EventAccumulator(run, size_guidance={k: 0 for k in pea.DEFAULT_SIZE_GUIDANCE},
                               tensor_size_guidance={})
    acc.Reload()
    return acc


def report(logdir):
    total = 0
    for run in runs(logdir):
        acc = classic(run)
        tags = acc.Tags()
        print(f"run {os.path.relpath(run, logdir) or '.'}:")
        for kind, read in (("scalars", acc.Scalars), ("histograms", acc.Histograms),
                           ("images", acc.Images), ("tensors", acc.Tensors)):
            for tag in sorted(tags.get(kind, [])):
                steps = [e.step for e in read(tag)]
                total += len(steps)
                print(f"  classic {kind:10} {tag}: {len(steps)} (steps {steps[0]}..{steps[-1]})")
        pacc = plugin(run)
        for name in sorted(pacc.ActivePlugins()):
            for tag in sorted(pacc.PluginTagToContent(name)):
                print(f"  plugin  {name:10} {tag}: {len(pacc.Tensors(tag))}")
    print(f"{total} values")
    return total


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
    parser = argparse.ArgumentParser()
    parser.add_argument("logdir")
    parser.add_argument("--sample", action="store_true")
    args = parser.parse_args()
    if report(args.logdir) == 0:
        print("no values found", file=sys.stderr)
        return 1
    if args.sample:
        check_sample(args.logdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
