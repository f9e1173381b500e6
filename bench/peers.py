#!/usr/bin/env python3
"""mnist-train's training step in JAX and PyTorch, timed side by side, for `bench/run_all.sh`.

The step of `mnist-train --benchmark` (src/train/model.cpp, src/train/config.h): a 784-500-10 MLP,
ReLU, inverted dropout keeping 0.9, mean softmax cross-entropy, Adam (lr 1e-3, betas 0.9/0.999,
eps 1e-8), weights truncated normal (stddev 0.1, within 2 stddev) and biases 0.1; the training set
resident on the GPU as bytes, each step gathering its batch on the GPU and scaling it to [0, 1].

    python3 bench/peers.py [--batches 100,1024,8192] [--steps 200] [--precisions fp32,tf32,bf16]
                           [--peers jax,torch-eager,torch-graph,torch-compile-max-autotune,
                                    torch-compile-reduce-overhead] [--data_dir DIR] [--out FILE]

Precisions, matched to mnist-train's --precision:
  fp32  true fp32: JAX precision=HIGHEST; PyTorch with TF32 off
  tf32  fp32 storage, TF32 products: JAX precision=DEFAULT (TF32 on Ampere and later); PyTorch
        with allow_tf32 on
  bf16  fp32 parameters, bf16 products with fp32 accumulation: JAX operands cast to bf16
        (preferred_element_type float32); PyTorch autocast to bf16
Peers:
  jax                            the whole step (gather, forward, backward, Adam) in one jax.jit;
                                 optax's Adam where optax is installed, else TF's Adam by hand
  torch-eager                    PyTorch eager, fused Adam
  torch-graph                    the same step captured into one CUDA graph, replayed
  torch-compile-max-autotune     torch.compile(mode="max-autotune-no-cudagraphs") of the forward
                                 and loss (its backward compiled with it), compiled Adam step
  torch-compile-reduce-overhead  the same with mode="reduce-overhead" (CUDA graphs)
Timing, after warm-up: PyTorch with CUDA events around each step (as mnist-train times its own
steps); JAX (no events) with the wall clock around blocks of --jax_block steps ended by
block_until_ready, per step. Each row: the median and the nearest-rank p10 and p90 of the samples.
A peer that fails (a missing package, a compile error) gives a row with its error and the rest go
on (the exit status is then 1); the JSON is rewritten after every row, so a run cut short keeps
what it measured.

Uses real MNIST if --data_dir holds train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz (as
mnist-train caches them), else random bytes of the same shape: the timing does not depend on the
pixels' values.
"""
import argparse
import gzip
import json
import math
import os
import platform
import sys
import time
import traceback

TRAIN_IMAGES = 55000  # the training split mnist-train uses (the first 5,000 are validation)
PIXELS, HIDDEN, CLASSES = 784, 500, 10
LEARNING_RATE, BETA1, BETA2, EPSILON = 1e-3, 0.9, 0.999, 1e-8
KEEP_PROB = 0.9
INIT_STDDEV, INIT_BIAS = 0.1, 0.1
WARMUP_STEPS = 20
PEERS = ("jax", "torch-eager", "torch-graph", "torch-compile-max-autotune",
         "torch-compile-reduce-overhead")
PRECISIONS = ("fp32", "tf32", "bf16")


def load_mnist_bytes(data_dir):
    """(images uint8 [55000 x 784], labels uint8 [55000]) as numpy arrays."""
    import numpy as np
    images_path = os.path.join(data_dir or "", "train-images-idx3-ubyte.gz")
    labels_path = os.path.join(data_dir or "", "train-labels-idx1-ubyte.gz")
    if data_dir and os.path.exists(images_path) and os.path.exists(labels_path):
        with gzip.open(images_path) as f:
            images = np.frombuffer(f.read()[16:], dtype=np.uint8).reshape(-1, PIXELS)[5000:]
        with gzip.open(labels_path) as f:
            labels = np.frombuffer(f.read()[8:], dtype=np.uint8)[5000:]
        return images.copy(), labels.copy(), "MNIST from " + data_dir
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(TRAIN_IMAGES, PIXELS), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, size=TRAIN_IMAGES, dtype=np.uint8)
    return images, labels, "random bytes"


def summarise(samples):
    """median, p10, p90 (nearest rank: the ceil(q n)-th smallest), like mnist-train's."""
    s = sorted(samples)
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    rank = lambda q: s[max(0, math.ceil(q * n) - 1)]
    return median, rank(0.1), rank(0.9)


def row(peer, variant, precision, batch, samples, timing, **extra):
    median, p10, p90 = summarise(samples)
    r = {"framework": peer, "variant": variant, "precision": precision, "batch": batch,
         "samples": len(samples), "median_us": median, "p10_us": p10, "p90_us": p90,
         "images_per_s": batch / median * 1e6, "timing": timing}
    r.update(extra)
    return r


# ---- JAX ----

def jax_runner(images_np, labels_np, args):
    import jax
    import jax.numpy as jnp
    try:
        import optax
    except ImportError:
        optax = None
    images = jax.device_put(images_np)
    labels = jax.device_put(labels_np)

    def init(key):
        k1, k2 = jax.random.split(key)
        normal = lambda k, shape: INIT_STDDEV * jax.random.truncated_normal(k, -2.0, 2.0, shape,
                                                                            jnp.float32)
        return {"w1": normal(k1, (PIXELS, HIDDEN)), "b1": jnp.full((HIDDEN,), INIT_BIAS),
                "w2": normal(k2, (HIDDEN, CLASSES)), "b2": jnp.full((CLASSES,), INIT_BIAS)}

    # TF's Adam (what mnist-train runs) where optax is missing; the arithmetic per parameter is
    # the same as optax.adam's but for where epsilon sits.
    def tf_adam_init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return (zeros, zeros, jnp.zeros((), jnp.int32))

    def tf_adam_apply(grads, state, params):
        m, v, t = state
        t = t + 1
        tf = t.astype(jnp.float32)
        lr_t = LEARNING_RATE * jnp.sqrt(1 - BETA2 ** tf) / (1 - BETA1 ** tf)
        m = jax.tree_util.tree_map(lambda m_, g: BETA1 * m_ + (1 - BETA1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v_, g: BETA2 * v_ + (1 - BETA2) * g * g, v, grads)
        params = jax.tree_util.tree_map(lambda p, m_, v_: p - lr_t * m_ / (jnp.sqrt(v_) + EPSILON),
                                        params, m, v)
        return params, (m, v, t)

    if optax is not None:
        optimizer = optax.adam(LEARNING_RATE, b1=BETA1, b2=BETA2, eps=EPSILON)
        opt_init = optimizer.init

        def opt_apply(grads, state, params):
            updates, state = optimizer.update(grads, state, params)
            return optax.apply_updates(params, updates), state
        adam = "optax.adam"
    else:
        opt_init, opt_apply, adam = tf_adam_init, tf_adam_apply, "TF Adam by hand (no optax)"

    def dense(x, w, b, precision):
        if precision == "bf16":
            return jnp.dot(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16),
                           preferred_element_type=jnp.float32) + b
        p = jax.lax.Precision.HIGHEST if precision == "fp32" else jax.lax.Precision.DEFAULT
        return jnp.dot(x, w, precision=p) + b

    def make_step(batch, precision):
        def loss_fn(params, x, y, key):
            a = jax.nn.relu(dense(x, params["w1"], params["b1"], precision))
            keep = jax.random.bernoulli(key, KEEP_PROB, a.shape)
            h = jnp.where(keep, a / KEEP_PROB, 0.0)
            logits = dense(h, params["w2"], params["b2"], precision)
            logp = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        def step(state, images, labels):
            params, opt_state, key = state
            key, k_batch, k_drop = jax.random.split(key, 3)
            idx = jax.random.randint(k_batch, (batch,), 0, images.shape[0])
            x = images[idx].astype(jnp.float32) * (1.0 / 255.0)
            y = labels[idx].astype(jnp.int32)
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y, k_drop)
            params, opt_state = opt_apply(grads, opt_state, params)
            return (params, opt_state, key), loss

        return jax.jit(step, donate_argnums=(0,))

    def run(batch, precision):
        key = jax.random.PRNGKey(1)
        params = init(key)
        state = (params, opt_init(params), key)
        step = make_step(batch, precision)
        for _ in range(WARMUP_STEPS):
            state, loss = step(state, images, labels)
        jax.block_until_ready(state)
        samples = []
        blocks = max(1, args.steps // args.jax_block)
        for _ in range(blocks):
            start = time.perf_counter()
            for _ in range(args.jax_block):
                state, loss = step(state, images, labels)
            jax.block_until_ready((state, loss))
            samples.append((time.perf_counter() - start) * 1e6 / args.jax_block)
        variant = "jit" + (" precision=HIGHEST" if precision == "fp32" else
                           " precision=DEFAULT" if precision == "tf32" else " bf16 operands")
        return [row("jax " + jax.__version__, variant, precision, batch, samples,
                    f"wall clock over blocks of {args.jax_block} steps, block_until_ready",
                    adam=adam, device=str(jax.devices()[0]), final_loss=float(loss))]

    return run


# ---- PyTorch ----

def torch_runner(images_np, labels_np, args, peer):
    import torch
    import torch.nn.functional as F
    dev = torch.device("cuda")
    images = torch.from_numpy(images_np).to(dev)
    labels = torch.from_numpy(labels_np).to(dev)

    class Mlp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(PIXELS, HIDDEN)
            self.fc2 = torch.nn.Linear(HIDDEN, CLASSES)
            for layer in (self.fc1, self.fc2):
                torch.nn.init.trunc_normal_(layer.weight, std=INIT_STDDEV, a=-2 * INIT_STDDEV,
                                            b=2 * INIT_STDDEV)
                torch.nn.init.constant_(layer.bias, INIT_BIAS)

        def forward(self, x):
            h = F.dropout(torch.relu(self.fc1(x)), p=1 - KEEP_PROB, training=True)
            return self.fc2(h)

    def set_precision(precision):
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")

    def timed(run, steps):
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(steps)]
        torch.cuda.synchronize()
        for start, end in events:
            start.record()
            run()
            end.record()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) * 1000.0 for s, e in events]

    def run(batch, precision):
        set_precision(precision)
        torch._dynamo.reset()  # each configuration compiles afresh (no recompilation limits)
        torch.manual_seed(1)
        model = Mlp().to(dev)
        graph = peer == "torch-graph"
        compiled = peer.startswith("torch-compile")
        opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=(BETA1, BETA2),
                               eps=EPSILON, fused=not compiled, capturable=graph)
        idx = torch.randint(0, images.shape[0], (batch,), device=dev)
        bf16 = precision == "bf16"

        def forward_loss(idx):
            x = images[idx].float().div(255.0)
            # Autocast's cache must be off inside CUDA graphs (captured or compiled).
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
                logits = model(x)
            return F.cross_entropy(logits.float(), labels[idx].long())

        if compiled:
            mode = ("max-autotune-no-cudagraphs" if peer == "torch-compile-max-autotune"
                    else "reduce-overhead")
            forward_loss = torch.compile(forward_loss, mode=mode)

            @torch.compile(fullgraph=False)
            def opt_step():
                opt.step()

            variant = f"torch.compile(mode={mode!r}), compiled Adam"
        else:
            opt_step = opt.step
            variant = "CUDA graph of the step, fused Adam" if graph else "eager, fused Adam"

        def step():
            loss = forward_loss(idx)
            opt.zero_grad(set_to_none=compiled)
            loss.backward()
            opt_step()
            idx.random_(0, images.shape[0])  # the next batch's samples, drawn on the GPU
            return loss

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                step()
        torch.cuda.current_stream().wait_stream(side)
        replay = step
        if graph:
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                step()
            replay = g.replay
        for _ in range(WARMUP_STEPS):
            replay()
        samples = timed(replay, args.steps)
        return [row("pytorch " + torch.__version__, variant, precision, batch, samples,
                    "CUDA events around each step", device=torch.cuda.get_device_name())]

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="100,1024,8192")
    parser.add_argument("--steps", type=int, default=200,
                        help="timed steps per configuration (after %d warm-up steps)" % WARMUP_STEPS)
    parser.add_argument("--jax_block", type=int, default=10,
                        help="JAX steps per wall-clock sample")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--data_dir", default="")
    parser.add_argument("--out")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    precisions = args.precisions.split(",")
    peers = args.peers.split(",")
    for p in precisions:
        if p not in PRECISIONS:
            parser.error(f"--precisions: {p!r} is not one of {', '.join(PRECISIONS)}")
    for p in peers:
        if p not in PEERS:
            parser.error(f"--peers: {p!r} is not one of {', '.join(PEERS)}")
    if args.steps < 1 or args.jax_block < 1 or any(b < 1 or b > TRAIN_IMAGES for b in batches):
        parser.error("--steps, --jax_block and every batch must be positive (batches at most "
                     f"{TRAIN_IMAGES})")

    report = {"program": "bench/peers.py", "python": platform.python_version(),
              "host": platform.node(), "steps": args.steps, "rows": []}
    try:
        images, labels, report["data"] = load_mnist_bytes(args.data_dir)
    except ImportError as e:  # numpy: every peer needs it
        images = labels = None
        report["data"] = f"unavailable: {e}"

    def save():
        if args.out:
            with open(args.out + ".tmp", "w") as f:
                json.dump(report, f, indent=2)
            os.replace(args.out + ".tmp", args.out)

    header = (f"{'framework':<16} {'variant':<58} {'prec':<5} {'batch':>6} {'median_us':>10} "
              f"{'images/s':>13} {'p10..p90 us':>19}")
    print(header)
    print("-" * len(header), flush=True)
    for peer in peers:
        try:
            if images is None:
                raise ImportError("numpy is missing (" + report["data"] + ")")
            run = (jax_runner(images, labels, args) if peer == "jax"
                   else torch_runner(images, labels, args, peer))
        except Exception as e:  # the framework is missing or cannot start: say so, go on
            report["rows"].append({"framework": peer, "error": f"{type(e).__name__}: {e}"})
            print(f"{peer:<16} unavailable: {type(e).__name__}: {e}", flush=True)
            save()
            continue
        for precision in precisions:
            for batch in batches:
                try:
                    rows = run(batch, precision)
                except Exception as e:
                    rows = [{"framework": peer, "precision": precision, "batch": batch,
                             "error": f"{type(e).__name__}: {e}"}]
                    traceback.print_exc(file=sys.stderr)
                for r in rows:
                    report["rows"].append(r)
                    if "error" in r:
                        print(f"{peer:<16} {precision:<5} {batch:>6} failed: {r['error'][:200]}",
                              flush=True)
                    else:
                        spread = f"{r['p10_us']:.1f}..{r['p90_us']:.1f}"
                        print(f"{r['framework']:<16} {r['variant']:<58} {precision:<5} {batch:>6} "
                              f"{r['median_us']:>10.1f} {r['images_per_s']:>13.0f} {spread:>19}",
                              flush=True)
                save()
    save()
    return 1 if any("error" in r for r in report["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
