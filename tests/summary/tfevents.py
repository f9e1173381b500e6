"""TensorBoard event files, read (and, for negative tests, written) with Python's standard library
only: no tensorflow, no protobuf package, and no code shared with the C++ writer (src/summary/).

- CRC-32C (Castagnoli) and TFRecord framing: uint64 length, masked CRC-32C of the length bytes,
  data, masked CRC-32C of the data; every CRC is checked.
- The protobuf wire format, decoded generically, then by the field numbers of TensorBoard's
  event.proto (Event), summary.proto (Summary, Summary.Value, Summary.Image, SummaryMetadata),
  histogram.proto (HistogramProto), tensor.proto / tensor_shape.proto (TensorProto).
- PNG: chunk CRCs, zlib, all five row filters, 8-bit grey / grey+alpha / RGB / RGBA.
- TF's histogram: its default bucket edges and its empty-bucket merging, re-derived here.
- A small encoder of the same messages, used only to build synthetic and damaged files for the
  checker's own tests (synth_logdir.py).
"""

import bisect
import math
import struct
import sys
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
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
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


def frame_record(data):
    header = struct.pack("<Q", len(data))
    return (header + struct.pack("<I", masked_crc32c(header)) + data +
            struct.pack("<I", masked_crc32c(data)))


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


def _packed(raw, code, size, what):
    if len(raw) % size:
        raise FormatError(f"packed {what} not a multiple of {size} bytes")
    return list(struct.unpack(f"<{len(raw) // size}{code}", raw))


def _expect_wire(number, wire, expected, message):
    if wire != expected:
        raise FormatError(f"{message} field {number}: wire type {wire}, expected {expected}")


def _utf8(raw, what):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{what}: not UTF-8: {e}")


# --- the messages, by the .proto field numbers -------------------------------------------------

DT_FLOAT, DT_DOUBLE, DT_STRING = 1, 2, 7


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
                h[key] += _packed(value, "d", 8, "doubles")
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


def decode_tensor(buf):  # TensorProto: the fields string and float tensors use
    tensor = {"dtype": 0, "shape": None, "string_val": [], "float_val": [], "double_val": [],
              "tensor_content": b""}
    for number, wire, value in decode_fields(buf):
        if number == 1:
            _expect_wire(number, wire, 0, "TensorProto")
            tensor["dtype"] = value
        elif number == 2:  # TensorShapeProto{repeated Dim dim = 2}, Dim{int64 size = 1}
            _expect_wire(number, wire, 2, "TensorProto")
            dims = []
            for n2, _, v2 in decode_fields(value):
                if n2 == 2:
                    size = 0
                    for n3, _, v3 in decode_fields(v2):
                        if n3 == 1:
                            size = _int64(v3)
                    dims.append(size)
            tensor["shape"] = dims
        elif number == 4:
            _expect_wire(number, wire, 2, "TensorProto")
            tensor["tensor_content"] = value
        elif number == 5:
            tensor["float_val"] += (_packed(value, "f", 4, "floats") if wire == 2
                                    else [_float(value)])
        elif number == 6:
            tensor["double_val"] += (_packed(value, "d", 8, "doubles") if wire == 2
                                     else [_double(value)])
        elif number == 8:
            _expect_wire(number, wire, 2, "TensorProto")
            tensor["string_val"].append(value)
    return tensor


def tensor_scalar(tensor):
    """The one number of a DT_FLOAT/DT_DOUBLE tensor, or None."""
    if tensor["dtype"] == DT_FLOAT:
        values = tensor["float_val"] or (_packed(tensor["tensor_content"], "f", 4, "floats")
                                         if tensor["tensor_content"] else [])
    elif tensor["dtype"] == DT_DOUBLE:
        values = tensor["double_val"] or (_packed(tensor["tensor_content"], "d", 8, "doubles")
                                          if tensor["tensor_content"] else [])
    else:
        return None
    return values[0] if len(values) == 1 else None


def decode_metadata(buf):  # SummaryMetadata{PluginData plugin_data = 1}
    metadata = {"plugin_name": "", "content": b""}
    for number, wire, value in decode_fields(buf):
        if number == 1:
            _expect_wire(number, wire, 2, "SummaryMetadata")
            for n2, _, v2 in decode_fields(value):
                if n2 == 1:
                    metadata["plugin_name"] = _utf8(v2, "plugin_name")
                elif n2 == 2:
                    metadata["content"] = v2
    return metadata


def decode_value(buf):  # Summary.Value
    value = {"tag": None, "kind": None}
    for number, wire, raw in decode_fields(buf):
        if number == 1:
            _expect_wire(number, wire, 2, "Summary.Value")
            value["tag"] = _utf8(raw, "tag")
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
        elif number in (3, 6):  # obsolete_old_style_histogram, audio
            value["kind"] = {3: "old_style_histogram", 6: "audio"}[number]
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
            event["file_version"] = _utf8(value, "file_version")
        elif number == 5:  # Summary{repeated Value value = 1}
            _expect_wire(number, wire, 2, "Event")
            event["summary"] = [decode_value(v) for n, _, v in decode_fields(value) if n == 1]
        else:
            event.setdefault("other_fields", []).append(number)
    return event


def read_events(path):
    return [decode_event(record) for record in read_records(path)]


# --- an encoder of the same messages (for synthetic test files only) ---------------------------


def _enc_varint(value):
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number, wire):
    return _enc_varint(number << 3 | wire)


def enc_varint_field(number, value):
    return _key(number, 0) + _enc_varint(value)


def enc_bytes_field(number, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return _key(number, 2) + _enc_varint(len(data)) + data


def enc_double_field(number, value):
    return _key(number, 1) + struct.pack("<d", value)


def enc_float_field(number, value):
    return _key(number, 5) + struct.pack("<f", value)


def enc_histogram(h):
    out = b"".join(enc_double_field(n, h[k]) for n, k in
                   ((1, "min"), (2, "max"), (3, "num"), (4, "sum"), (5, "sum_squares")))
    out += enc_bytes_field(6, struct.pack(f"<{len(h['bucket_limit'])}d", *h["bucket_limit"]))
    out += enc_bytes_field(7, struct.pack(f"<{len(h['bucket'])}d", *h["bucket"]))
    return out


def enc_value_scalar(tag, value):
    return enc_bytes_field(1, tag) + enc_float_field(2, value)


def enc_value_histogram(tag, h):
    return enc_bytes_field(1, tag) + enc_bytes_field(5, enc_histogram(h))


def enc_value_image(tag, png, height, width, colorspace):
    image = (enc_varint_field(1, height) + enc_varint_field(2, width) +
             enc_varint_field(3, colorspace) + enc_bytes_field(4, png))
    return enc_bytes_field(1, tag) + enc_bytes_field(4, image)


def enc_value_text(tag, text):
    tensor = (enc_varint_field(1, DT_STRING) + enc_bytes_field(2, b"") +
              enc_bytes_field(8, text))
    metadata = enc_bytes_field(1, enc_bytes_field(1, "text"))
    return enc_bytes_field(1, tag) + enc_bytes_field(9, metadata) + enc_bytes_field(8, tensor)


def enc_event(wall_time, step=None, values=None, file_version=None):
    out = enc_double_field(1, wall_time)
    if step:
        out += enc_varint_field(2, step)
    if file_version is not None:
        out += enc_bytes_field(3, file_version)
    if values is not None:
        out += enc_bytes_field(5, b"".join(enc_bytes_field(1, v) for v in values))
    return out


# --- PNG --------------------------------------------------------------------------------------


def decode_png(blob):
    """(width, height, channels, pixel bytes) of an 8-bit, non-interlaced PNG."""
    if blob[:8] != b"\x89PNG\r\n\x1a\n":
        raise FormatError("PNG: bad signature")
    pos, chunks = 8, []
    while pos < len(blob):
        if pos + 12 > len(blob):
            raise FormatError("PNG: chunk cut short")
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind = blob[pos + 4 : pos + 8]
        data = blob[pos + 8 : pos + 8 + length]
        if pos + 12 + length > len(blob):
            raise FormatError(f"PNG: chunk {kind!r} cut short")
        (crc,) = struct.unpack(">I", blob[pos + 8 + length : pos + 12 + length])
        if crc != zlib.crc32(kind + data) & 0xFFFFFFFF:
            raise FormatError(f"PNG: bad CRC in chunk {kind!r}")
        chunks.append((kind, data))
        pos += 12 + length
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise FormatError("PNG: must start with IHDR and end with IEND")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1])
    channels = {0: 1, 4: 2, 2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or compression or filtering or interlace:
        raise FormatError(f"PNG: unsupported header {chunks[0][1]!r}")
    try:
        raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    except zlib.error as e:
        raise FormatError(f"PNG: IDAT: {e}")
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


def encode_png_grey(pixels, width, height):
    """A minimal 8-bit grey PNG (filter 0 on every row), for synthetic files."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + bytes(pixels[y * width : (y + 1) * width]) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# --- TF's histogram, re-derived here ----------------------------------------------------------


def default_bucket_limits():
    positive = []
    v = 1e-12
    while v < 1e20:
        positive.append(v)
        v *= 1.1
    positive.append(sys.float_info.max)
    return [-x for x in reversed(positive)] + [0.0] + positive


DEFAULT_LIMITS = default_bucket_limits()
DEFAULT_LIMIT_INDEX = {limit: i for i, limit in enumerate(DEFAULT_LIMITS)}


def bucket_counts(values):
    """Counts per default bucket: bucket i holds [limit[i-1], limit[i])."""
    counts = [0.0] * len(DEFAULT_LIMITS)
    for v in values:
        counts[bisect.bisect_right(DEFAULT_LIMITS, v)] += 1.0
    return counts


def merge_empty_buckets(counts):
    """(bucket_limit, bucket) as TF encodes a histogram: each run of empty buckets collapsed."""
    limits_out, counts_out = [], []
    i = 0
    while i < len(counts):
        end, count = DEFAULT_LIMITS[i], counts[i]
        i += 1
        if count <= 0:
            while i < len(counts) and counts[i] <= 0:
                end, count = DEFAULT_LIMITS[i], counts[i]
                i += 1
        limits_out.append(end)
        counts_out.append(count)
    return limits_out, counts_out


def expected_histogram(values):
    """HistogramProto's fields as TF's histogram summary makes them (empty runs collapsed)."""
    limits, counts = merge_empty_buckets(bucket_counts(values))
    return {"min": min(values, default=sys.float_info.max),
            "max": max(values, default=-sys.float_info.max),
            "num": float(len(values)), "sum": math.fsum(values),
            "sum_squares": math.fsum(v * v for v in values),
            "bucket_limit": limits, "bucket": counts}


def expand_to_default_buckets(h):
    """The counts per default bucket of a histogram whose limits are default limits (merged
    runs of empty buckets spread back out); None when a limit is not one of TF's defaults."""
    counts = [0.0] * len(DEFAULT_LIMITS)
    for limit, count in zip(h["bucket_limit"], h["bucket"]):
        index = DEFAULT_LIMIT_INDEX.get(limit)
        if index is None:
            return None
        counts[index] += count
    return counts


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]
