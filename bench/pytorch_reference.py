#!/usr/bin/env python3
"""The same model, batch sizes and timing method as `mnist-train --benchmark`, in PyTorch.

784-500-10 MLP, ReLU, inverted dropout (keep 0.9), mean softmax cross-entropy, Adam (lr 1e-3,
betas 0.9/0.999, eps 1e-8, fused), fp32 with TF32 off, the dataset resident on the GPU as bytes
and gathered + scaled to [0, 1] on the GPU. Each configuration: warm-up steps, then timed steps
with CUDA events around each one (eager) or around each replay of a captured CUDA graph; medians
and p90 in microseconds.

    python3 bench/pytorch_reference.py [--batches 100,1024,8192] [--steps 200] [--out FILE]

Uses real MNIST if --data_dir holds the four .gz files (as mnist-train caches them), else random
bytes of the same shape (the timing does not depend on the pixel values' meaning).
"""
import argparse
import gzip
import json
import os
import statistics

import torch


def load_images(data_dir):
    path = os.path.join(data_dir, "train-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        return torch.randint(0, 256, (55000, 784), dtype=torch.uint8)
    with gzip.open(path) as f:
        raw = f.read()
    images = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).view(-1, 784)
    return images[5000:].clone()  # the 55,000 training images, as mnist-train uses


def load_labels(data_dir, count):
    path = os.path.join(data_dir, "train-labels-idx1-ubyte.gz")
    if not os.path.exists(path):
        return torch.randint(0, 10, (count,), dtype=torch.uint8)
    with gzip.open(path) as f:
        raw = f.read()
    return torch.frombuffer(bytearray(raw[8:]), dtype=torch.uint8)[5000:].clone()


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 500)
        self.fc2 = torch.nn.Linear(500, 10)
        for layer in (self.fc1, self.fc2):
            torch.nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2)
            torch.nn.init.constant_(layer.bias, 0.1)

    def forward(self, x):
        return self.fc2(torch.nn.functional.dropout(torch.relu(self.fc1(x)), p=0.1, training=True))


def summarise(times):
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, len(times) * 9 // 10)]


def bench(images, labels, batch, steps, graph):
    dev = images.device
    model = Mlp().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, fused=True,
                           capturable=graph)
    idx = torch.randint(0, images.shape[0], (batch,), device=dev)

    def step():
        x = images[idx].float().div_(255.0)
        loss = torch.nn.functional.cross_entropy(model(x), labels[idx].long())
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        idx.random_(0, images.shape[0])  # the next batch's samples, on the GPU
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(20):
            step()
    torch.cuda.current_stream().wait_stream(side)
    run = step
    if graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step()
        run = g.replay
    for _ in range(20):
        run()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(steps)]
    for start, end in events:
        start.record()
        run()
        end.record()
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) * 1000.0 for s, e in events]
    median, p90 = summarise(times)
    return {"backend": "pytorch-graph" if graph else "pytorch-eager", "batch": batch, "steps": steps,
            "median_us": median, "p90_us": p90, "images_per_s": batch / median * 1e6}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="100,1024,8192")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--data_dir", default="/tmp/tensorflow/input_data")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    images = load_images(args.data_dir).cuda()
    labels = load_labels(args.data_dir, images.shape[0]).cuda()
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}")
    print(f"{'backend':<14} {'batch':>6} {'median_us':>10} {'p90_us':>10} {'images/s':>12}")
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        for graph in (False, True):
            r = bench(images, labels, batch, args.steps, graph)
            rows.append(r)
            print(f"{r['backend']:<14} {batch:>6} {r['median_us']:>10.1f} {r['p90_us']:>10.1f} {r['images_per_s']:>12.0f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(), "steps": rows}, f, indent=2)


if __name__ == "__main__":
    main()
