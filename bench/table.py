#!/usr/bin/env python3
"""One table of the training step: mnist-train's backends (--benchmark_out JSON) beside its peers
(bench/peers.py --out JSON), grouped by precision and batch.

    python3 bench/table.py OURS.json PEERS.json [MORE_PEERS.json ...]

"ours x" is how many times faster mnist-train's cuda backend (the step kernel it picks by default)
is than the row's: the row's median over ours, at the same precision and batch. Every row times
the same work, one whole training step (gather, forward, loss, backward, Adam) on resident data;
the spread is p10..p90 for the peers and min..p90 for mnist-train (what --benchmark_out keeps).
Exits 1 when a peer's row records an error (after printing the table), 2 on unreadable input.
"""
import json
import sys

PRECISIONS = ("fp32", "tf32", "bf16")


def our_rows(ours):
    rows, default = [], {}
    for r in ours.get("steps", []):
        if r.get("device") != "GPU":
            continue
        key = (r["precision"], r["batch"])
        kind = r["backend"]
        if kind == "cuda":
            # The first cuda row of a configuration is the step kernel auto picks; a forced tiled
            # row may follow it.
            variant = f"cuda, {r['step_kernel']} step" + ("" if key not in default else " (forced)")
            default.setdefault(key, r["median_us"])
        elif kind == "cublas":
            variant = "cublas: cuBLASLt baseline"
        else:
            variant = kind
        rows.append({"framework": "mnist-train " + ours.get("version", ""), "variant": variant,
                     "precision": r["precision"], "batch": r["batch"],
                     "median_us": r["median_us"], "images_per_s": r["images_per_s"],
                     "spread": f"{r['min_us']:.1f}..{r['p90_us']:.1f}"})
    return rows, default


def peer_rows(peers):
    rows, errors = [], []
    for r in peers.get("rows", []):
        if "error" in r:
            errors.append(r)
            continue
        rows.append({"framework": r["framework"], "variant": r["variant"],
                     "precision": r["precision"], "batch": r["batch"],
                     "median_us": r["median_us"], "images_per_s": r["images_per_s"],
                     "spread": f"{r['p10_us']:.1f}..{r['p90_us']:.1f}"})
    return rows, errors


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            ours = json.load(f)
        runs = []
        for path in argv[2:]:
            with open(path) as f:
                runs.append(json.load(f))
    except (OSError, ValueError) as e:
        print(f"bench/table.py: {e}", file=sys.stderr)
        return 2
    mine, default = our_rows(ours)
    theirs, errors = [], []
    for peers in runs:
        rows, failed = peer_rows(peers)
        theirs += rows
        errors += failed
    rows = mine + theirs
    order = {p: i for i, p in enumerate(PRECISIONS)}
    rows.sort(key=lambda r: (order.get(r["precision"], 9), r["batch"]))
    header = (f"{'framework':<22} {'variant':<58} {'prec':<5} {'batch':>6} {'median_us':>10} "
              f"{'images/s':>13} {'spread_us':>17} {'ours x':>7}")
    print(header)
    print("-" * len(header))
    last = None
    for r in rows:
        key = (r["precision"], r["batch"])
        if last is not None and key != last:
            print()
        last = key
        ours_us = default.get(key)
        ratio = f"{r['median_us'] / ours_us:.2f}" if ours_us else "-"
        print(f"{r['framework']:<22} {r['variant']:<58} {r['precision']:<5} {r['batch']:>6} "
              f"{r['median_us']:>10.1f} {r['images_per_s']:>13.0f} {r['spread']:>17} {ratio:>7}")
    for e in errors:
        where = " ".join(str(e[k]) for k in ("precision", "batch") if k in e)
        print(f"FAILED {e['framework']} {where}: {e['error'][:300]}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
