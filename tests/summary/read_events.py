#!/usr/bin/env python3
"""An independent reader of TensorBoard event files, for the tests: it shares no code with the
C++ writer (src/summary/) and needs only Python's standard library (no tensorflow or protobuf).

It parses the TFRecord framing (checking both masked CRC-32Cs, with its own CRC-32C), decodes the
protobuf wire format generically and then by the field numbers of event.proto, summary.proto,
histogram.proto and tensor.proto, and decodes PNG images itself (chunk CRCs, zlib, all five row
filters).

  read_events.py FILE_OR_DIR...          print every event as one JSON line
  read_events.py --check-sample DIR      check the files write_sample_events wrote there
  read_events.py --writer EXE            run EXE twice into a fresh folder, then --check-sample it
"""

import argparse
import bisect
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import zlib

# --- CRC-32C (Castagnoli), reflected polynomial 0x82F63B78 --------------------------------------


def _crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --- TFRecord framing -----------------------------------------------------------------------


class FormatError(Exception):
    pass


def read_records(path):
    """The data of every record in the file; FormatError on a bad CRC or a cut record."""
    with open(path, "rb") as f:
        blob = f.read()
    records = []
    offset = 0
    while offset < len(blob):
        if len(blob) - offset < 12:
            raise FormatError(f"{path}: record header cut short at byte {offset}")
        header = blob[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", blob[offset + 8 : offset + 12])
        if header_crc != masked_crc32c(header):
            raise FormatError(f"{path}: bad length CRC at byte {offset}")
        start = offset + 12
        end = start + length
        if end + 4 > len(blob):
            raise FormatError(f"{path}: record at byte {offset} cut short")
        data = blob[start:end]
        (data_crc,) = struct.unpack("<I", blob[end : end + 4])
        if data_crc != masked_crc32c(data):
            raise FormatError(f"{path}: bad data CRC in the record at byte {offset}")
        records.append(data)
        offset = end + 4
    return records


# --- protobuf wire format ---------------------------------------------------------------------


def _varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise FormatError("varint cut short")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise FormatError("varint too long")


def decode_fields(buf):
    """[(field number, wire type, value)]: an int for varints, bytes for the rest."""
    fields = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise FormatError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise FormatError(f"wire type {wire}")
        if pos > len(buf):
            raise FormatError("field cut short")
        fields.append((number, wire, value))
    return fields


def _int64(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _double(raw):
    return struct.unpack("<d", raw)[0]


def _float(raw):
    return struct.unpack("<f", raw)[0]


def _packed_doubles(raw):
    if len(raw) % 8:
        raise FormatError("packed doubles not a multiple of 8 bytes")
    return list(struct.unpack(f"<{len(raw) // 8}d", raw))


def _expect_wire(number, wire, expected, message):
    if wire != expected:
        raise FormatError(f"{message} field {number}: wire type {wire}, expected {expected}")


# --- the messages, by the .proto field numbers -------------------------------------------------


def decode_histogram(buf):  # HistogramProto
    h = {"min": 0.0, "max": 0.0, "num": 0.0, "sum": 0.0, "sum_squares": 0.0,
         "bucket_limit": [], "bucket": []}
    names = {1: "min", 2: "max", 3: "num", 4: "sum", 5: "sum_squares"}
    for number, wire, value in decode_fields(buf):
        if number in names:
            _expect_wire(number, wire, 1, "HistogramProto")
            h[names[number]] = _double(value)
        elif number in (6, 7):
            key = "bucket_limit" if number == 6 else "bucket"
            if wire == 2:
                h[key] += _packed_doubles(value)
            else:  # a parser must accept the unpacked form too
                _expect_wire(number, wire, 1, "HistogramProto")
                h[key].append(_double(value))
    return h


def decode_image(buf):  # Summary.Image
    image = {"height": 0, "width": 0, "colorspace": 0, "encoded_image_string": b""}
    names = {1: "height", 2: "width", 3: "colorspace"}
    for number, wire, value in decode_fields(buf):
        if number in names:
            _expect_wire(number, wire, 0, "Summary.Image")
            image[names[number]] = _int64(value)
        elif number == 4:
            _expect_wire(number, wire, 2, "Summary.Image")
            image["encoded_image_string"] = value
    return image


def decode_tensor(buf):  # TensorProto: the fields a string tensor uses
    tensor = {"dtype": 0, "shape": None, "string_val": []}
    for number, wire, value in decode_fields(buf):
        if number == 1:
            _expect_wire(number, wire, 0, "TensorProto")
            tensor["dtype"] = value
        elif number == 2:  # TensorShapeProto{repeated Dim dim = 2}, Dim{int64 size = 1}
            _expect_wire(number, wire, 2, "TensorProto")
            dims = []
            for n2, w2, v2 in decode_fields(value):
                if n2 == 2:
                    size = 0
                    for n3, _, v3 in decode_fields(v2):
                        if n3 == 1:
                            size = _int64(v3)
                    dims.append(size)
            tensor["shape"] = dims
        elif number == 8:
            _expect_wire(number, wire, 2, "TensorProto")
            tensor["string_val"].append(value)
    return tensor


def decode_metadata(buf):  # SummaryMetadata{PluginData plugin_data = 1}
    metadata = {"plugin_name": "", "content": b""}
    for number, wire, value in decode_fields(buf):
        if number == 1:
            _expect_wire(number, wire, 2, "SummaryMetadata")
            for n2, _, v2 in decode_fields(value):
                if n2 == 1:
                    metadata["plugin_name"] = v2.decode("utf-8")
                elif n2 == 2:
                    metadata["content"] = v2
    return metadata


def decode_value(buf):  # Summary.Value
    value = {"tag": None, "kind": None}
    for number, wire, raw in decode_fields(buf):
        if number == 1:
            _expect_wire(number, wire, 2, "Summary.Value")
            value["tag"] = raw.decode("utf-8")
        elif number == 2:
            _expect_wire(number, wire, 5, "Summary.Value")
            value["kind"], value["simple_value"] = "simple_value", _float(raw)
        elif number == 4:
            _expect_wire(number, wire, 2, "Summary.Value")
            value["kind"], value["image"] = "image", decode_image(raw)
        elif number == 5:
            _expect_wire(number, wire, 2, "Summary.Value")
            value["kind"], value["histo"] = "histo", decode_histogram(raw)
        elif number == 8:
            _expect_wire(number, wire, 2, "Summary.Value")
            value["kind"], value["tensor"] = "tensor", decode_tensor(raw)
        elif number == 9:
            _expect_wire(number, wire, 2, "Summary.Value")
            value["metadata"] = decode_metadata(raw)
    return value


def decode_event(buf):  # Event
    event = {"wall_time": 0.0, "step": 0}
    for number, wire, value in decode_fields(buf):
        if number == 1:
            _expect_wire(number, wire, 1, "Event")
            event["wall_time"] = _double(value)
        elif number == 2:
            _expect_wire(number, wire, 0, "Event")
            event["step"] = _int64(value)
        elif number == 3:
            _expect_wire(number, wire, 2, "Event")
            event["file_version"] = value.decode("utf-8")
        elif number == 5:  # Summary{repeated Value value = 1}
            _expect_wire(number, wire, 2, "Event")
            event["summary"] = [decode_value(v) for n, _, v in decode_fields(value) if n == 1]
    return event


def read_events(path):
    return [decode_event(record) for record in read_records(path)]


# --- PNG --------------------------------------------------------------------------------------


def decode_png(blob):
    """(width, height, channels, pixel bytes) of an 8-bit, non-interlaced PNG."""
    if blob[:8] != b"\x89PNG\r\n\x1a\n":
        raise FormatError("PNG: bad signature")
    pos, chunks = 8, []
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind = blob[pos + 4 : pos + 8]
        data = blob[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", blob[pos + 8 + length : pos + 12 + length])
        if crc != zlib.crc32(kind + data) & 0xFFFFFFFF:
            raise FormatError(f"PNG: bad CRC in chunk {kind!r}")
        chunks.append((kind, data))
        pos += 12 + length
    if chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise FormatError("PNG: must start with IHDR and end with IEND")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1])
    channels = {0: 1, 4: 2, 2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or compression or filtering or interlace:
        raise FormatError(f"PNG: unsupported header {chunks[0][1]!r}")
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise FormatError(f"PNG: {len(raw)} bytes of rows for {width}x{height}x{channels}")
    pixels = bytearray()
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 0:
                predictor = 0
            elif kind == 1:
                predictor = a
            elif kind == 2:
                predictor = b
            elif kind == 3:
                predictor = (a + b) // 2
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                raise FormatError(f"PNG: filter type {kind}")
            row[i] = (row[i] + predictor) & 0xFF
        pixels += row
        previous = row
    return width, height, channels, bytes(pixels)


# --- TF's histogram, re-derived here for the check --------------------------------------------


def default_bucket_limits():
    positive = []
    v = 1e-12
    while v < 1e20:
        positive.append(v)
        v *= 1.1
    positive.append(sys.float_info.max)
    return [-x for x in reversed(positive)] + [0.0] + positive


def expected_histogram(values):
    """HistogramProto's fields as TF's histogram summary makes them (empty runs collapsed)."""
    limits = default_bucket_limits()
    counts = [0.0] * len(limits)
    for v in values:
        counts[bisect.bisect_right(limits, v)] += 1.0
    h = {"min": min(values, default=sys.float_info.max),
         "max": max(values, default=-sys.float_info.max),
         "num": float(len(values)), "sum": math.fsum(values),
         "sum_squares": math.fsum(v * v for v in values), "bucket_limit": [], "bucket": []}
    i = 0
    while i < len(counts):
        end, count = limits[i], counts[i]
        i += 1
        if count <= 0:
            while i < len(counts) and counts[i] <= 0:
                end, count = limits[i], counts[i]
                i += 1
        h["bucket_limit"].append(end)
        h["bucket"].append(count)
    return h


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--check-sample", metavar="DIR")
    parser.add_argument("--writer", metavar="EXE")
    args = parser.parse_args()
    try:
        if args.writer:
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
