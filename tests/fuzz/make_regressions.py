#!/usr/bin/env python3
"""Writes tests/fuzz/regressions/TARGET/NAME: hand-made inputs for the classes of bug each parser
defends against (sizes that overflow or exceed the data, lengths past the end, bombs past the
cap, identity fields out of range), each named for what it tests. The fuzzers have found nothing
to add here so far; a real finding goes in beside these, named after what it found.

  make_regressions.py [DIR]           (default: the regressions folder beside this script)
  make_regressions.py --check [DIR]   exit 1 unless each of these inputs is in DIR, byte for byte

The files are checked in; this script is how they were made, and makes them again byte for byte.
"""

import hashlib
import json
import os
import struct
import sys
import zlib


def idx(magic_type, dims, body=b""):
    return bytes([0, 0, 8, magic_type]) + b"".join(struct.pack(">I", d) for d in dims) + body


IDX = {
    # count * rows * cols overflows 64 bits: the size check must not wrap to a small number.
    "images-dims-product-overflows-64-bits": idx(3, [0x10000, 0x10000, 0x10000], b"\0" * 16),
    # 2^32 - 1 images declared, one pixel present: refused before any allocation.
    "images-count-far-beyond-the-body": idx(3, [0xFFFFFFFF, 28, 28], b"\x7f"),
    "images-zero-rows": idx(3, [2, 0, 28]),
    "images-zero-count": idx(3, [0, 28, 28]),
    "images-one-byte-short": idx(3, [1, 2, 2], b"\0\0\0"),
    "labels-count-far-beyond-the-body": idx(1, [0xFFFFFFFF], b"\x01\x02"),
    "labels-value-255": idx(1, [2], b"\x03\xff"),
    "header-cut-inside-a-dimension": bytes([0, 0, 8, 3, 0, 0]),
    # A labels magic (one dimension) followed by an images file's three dimensions and pixels.
    "labels-magic-with-images-dims": idx(1, [1, 28, 28], b"\0" * 784),
    # An images file whose pixels contain the labels magic: the harness splits there.
    "pair-labels-magic-inside-the-pixels": idx(3, [1, 2, 2], b"\0\0\x08\x01") + idx(1, [1], b"\x05"),
    "pair-counts-disagree-by-one": idx(3, [2, 1, 1], b"\1\2") + idx(1, [1], b"\x07"),
}


def gz_member(raw, isize=None, flags=0, extra=b"", crc=None):
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = comp.compress(raw) + comp.flush()
    header = b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\x00\x03" + extra
    crc = zlib.crc32(raw) if crc is None else crc
    isize = len(raw) & 0xFFFFFFFF if isize is None else isize
    return header + deflated + struct.pack("<II", crc, isize)


GZIP = {
    # 1 MiB of zeros in about a kilobyte: the output cap (64 KiB in the harness) stops it.
    "bomb-past-the-output-cap": gz_member(b"\0" * (1 << 20)),
    # ISIZE claims 4 GiB - 1: never trusted for an allocation.
    "isize-claims-4-gib": gz_member(b"hello", isize=0xFFFFFFFF),
    "isize-zero-for-five-bytes": gz_member(b"hello", isize=0),
    # FEXTRA with XLEN 65535 and two bytes of extra field: a length past the end.
    "fextra-length-past-the-end": b"\x1f\x8b\x08\x04\0\0\0\0\x00\x03\xff\xff\xab\xcd",
    # FNAME set, the name never terminated.
    "fname-without-terminator": b"\x1f\x8b\x08\x08\0\0\0\0\x00\x03" + b"a" * 40,
    "cut-inside-the-trailer": gz_member(b"hello world")[:-3],
    "second-member-truncated": gz_member(b"one") + gz_member(b"two")[:12],
    "trailing-garbage-after-a-member": gz_member(b"hello") + b"\x00junk",
    "deflate-method-not-8": b"\x1f\x8b\x07\x00" + gz_member(b"x")[4:],
    "stored-block-length-mismatch": b"\x1f\x8b\x08\0\0\0\0\0\x00\x03" + b"\x01\x05\x00\x00\x00hello"
    + struct.pack("<II", zlib.crc32(b"hello"), 5),
}


def checkpoint(header, floats=b"", length=None):
    text = json.dumps(header, separators=(",", ":")).encode()
    length = len(text) if length is None else length
    body = b"MNISTCK2" + struct.pack("<I", length) + text + floats
    return body + hashlib.sha256(body).digest()


GOOD = {"batch_size": 100, "dataset": "mnist", "fake_data": True, "format": 2, "hidden_units": 1,
        "iteration": 0, "last_loss": 2.3, "model": "mlp", "parameters": 805, "seed": 1, "step": 0}


def good(**changes):
    h = dict(GOOD)
    h.update(changes)
    return h


CHECKPOINT = {
    # Each has a valid digest, so the header and size checks themselves are reached.
    "parameters-2-to-the-62": checkpoint(good(parameters=1 << 62)),
    "parameters-negative": checkpoint(good(parameters=-1)),
    "parameters-more-than-the-body-holds": checkpoint(good(parameters=805), b"\0" * 12),
    "header-length-4-gib": checkpoint(good(), length=0xFFFFFFFF),
    "header-length-past-the-end": checkpoint(good(), length=4096),
    "header-is-a-json-array": b"MNISTCK2" + struct.pack("<I", 5) + b"[1,2]" + b"",
    "header-not-json": checkpoint(good(), length=3),
    "format-from-a-newer-version": checkpoint(good(format=3)),
    "format-zero": checkpoint(good(format=0)),
    "step-beyond-iteration": checkpoint(good(iteration=5, step=9)),
    "iteration-negative": checkpoint(good(iteration=-1)),
    "hidden-units-zero": checkpoint(good(hidden_units=0)),
    "hidden-units-too-many": checkpoint(good(hidden_units=1 << 31)),
    "batch-size-float": checkpoint(good(batch_size=1.5)),
    "model-name-with-control-characters": checkpoint(good(model="mlp\n\x1b[31m")),
    "dataset-name-10-kib": checkpoint(good(dataset="x" * 10240)),
    "seed-negative": checkpoint(good(seed=-1)),
    "last-loss-a-string": checkpoint(good(last_loss="nan")),
}
# The header-is-a-json-array input needs its digest too.
_array = CHECKPOINT["header-is-a-json-array"]
CHECKPOINT["header-is-a-json-array"] = _array + hashlib.sha256(_array).digest()


def argv(*args):
    return "\n".join(args).encode()


CLI = {
    "max-steps-1e999": argv("--max_steps", "1e999"),
    "max-steps-beyond-int64": argv("--max_steps=99999999999999999999999"),
    "batch-size-negative": argv("--batch_size=-1"),
    "learning-rate-nan": argv("--learning_rate", "nan"),
    "learning-rate-negative-zero": argv("--learning_rate=-0"),
    "dropout-above-one": argv("--dropout", "1.0000001"),
    "gpus-repeated-ordinal": argv("--backend", "cuda", "--gpus", "0,0"),
    "gpus-empty-item": argv("--gpus", "0,,1"),
    "rendezvous-port-99999": argv("--world_size", "2", "--rendezvous", "127.0.0.1:99999"),
    "rendezvous-without-port": argv("--world_size", "2", "--rendezvous", "host"),
    "mirror-empty": argv("--mirror", ""),
    "flag-given-twice": argv("--seed", "1", "--seed", "2"),
    "unknown-flag-after-double-dash": argv("--", "--max_steps", "5"),
    "value-with-nul-byte": b"--log_dir\n/tmp/a\0b",
    "eval-every-zero": argv("--eval_every", "0"),
}


def main():
    args = sys.argv[1:]
    check = bool(args) and args[0] == "--check"
    args = args[1:] if check else args
    root = args[0] if args else os.path.join(os.path.dirname(__file__), "regressions")
    # The gzip members are built by hand with mtime 0, so the files come out the same each run.
    missing = []
    for target, inputs in (("idx", IDX), ("gzip", GZIP), ("checkpoint", CHECKPOINT), ("cli", CLI)):
        folder = os.path.join(root, target)
        for name, data in inputs.items():
            path = os.path.join(folder, name)
            if check:
                if not os.path.isfile(path) or open(path, "rb").read() != data:
                    missing.append(path)
                continue
            os.makedirs(folder, exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        print(f"{folder}: {len(inputs)} inputs")
    for path in missing:
        print(f"FAIL: {path} is missing or differs (make_regressions.py writes it)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
