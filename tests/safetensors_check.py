#!/usr/bin/env python3
"""Cross-checks nabla's safetensors files against an independent reader and
writer that use only the standard library and numpy (not the safetensors
package, and not nabla).

    safetensors_check.py check FILE   verify a file written by tests/test_io.c
    safetensors_check.py write FILE   write the file tests/test_io.c reads

Both sides compute the tensor values from the same formula, chosen so that
every value is exactly representable (a multiple of 2^-10 below 1 in
magnitude, plus for f64 a multiple of 2^-40), so the comparison is exact:

    base(k, i) = ((i * 7919 + k * 104729) % 2001 - 1000) / 1024
    f32 value  = base(k, i)
    f64 value  = base(k, i) + (i % 97) * 2^-40

Exit status: 0 on success, 1 on a mismatch (with a message), 77 when numpy
is missing (the meson convention for a skipped test).
"""
import json
import struct
import sys

try:
    import numpy as np
except ImportError:  # pragma: no cover - depends on the machine
    print("safetensors_check: numpy is not installed; skipping")
    sys.exit(77)

DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8",
          "U8": "u1", "BOOL": "?"}

# What test_io.c writes: (name, dtype, shape, k). Header order is the order
# given, and the data is packed in that order.
C_SPEC = [
    ("layer1.W", "F32", [3, 5], 0),
    ("layer1.b", "F32", [5], 1),
    ("scalar", "F64", [], 2),
    ("deep", "F64", [2, 3, 4], 3),
    ("empty", "F32", [0, 3], 4),
    ('na\u00efve "quoted"\\name\n\t/', "F64", [7], 5),
]
C_METADATA = {"author": "nabla test", "\u00fcn\u00efc\u00f6d\u00e9": 'v\u00e4rde "q"\n'}


def expected(k, count, dtype):
    i = np.arange(count, dtype=np.int64)
    base = ((i * 7919 + k * 104729) % 2001 - 1000).astype(np.float64) / 1024.0
    if dtype == "F64":
        return base + (i % 97).astype(np.float64) * 2.0 ** -40
    return base.astype(np.float32)


def fail(msg):
    print("safetensors_check: FAIL: " + msg)
    sys.exit(1)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        fail("duplicate keys in a header object")
    return dict(pairs)


def check(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail("file too short")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        fail("header length %d exceeds the file" % n)
    if (8 + n) % 8 != 0:
        fail("data does not start at a multiple of 8 (header length %d)" % n)
    raw = blob[8:8 + n]
    text = raw.decode("utf-8")
    stripped = text.rstrip(" ")
    if not stripped.endswith("}") or text.lstrip() != text:
        fail("header padding is not trailing spaces")
    # object_pairs_hook keeps the file's key order and refuses duplicates.
    header = json.loads(text, object_pairs_hook=no_duplicates)
    data = blob[8 + n:]
    meta = header.pop("__metadata__", None)
    if meta != C_METADATA:
        fail("metadata %r, expected %r" % (meta, C_METADATA))
    names = list(header.keys())
    if names != [s[0] for s in C_SPEC]:
        fail("tensor names/order %r" % names)
    pos = 0
    for name, dtype, shape, k in C_SPEC:
        info = header[name]
        if set(info) != {"dtype", "shape", "data_offsets"}:
            fail("keys of %r: %r" % (name, sorted(info)))
        if info["dtype"] != dtype or info["shape"] != shape:
            fail("%r: dtype %s shape %r" % (name, info["dtype"], info["shape"]))
        begin, end = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64))
        width = np.dtype(DTYPES[dtype]).itemsize
        if begin != pos or end - begin != count * width:
            fail("%r: data_offsets %r, expected [%d, %d]" %
                 (name, info["data_offsets"], pos, pos + count * width))
        pos = end
        got = np.frombuffer(data[begin:end], dtype=DTYPES[dtype])
        want = expected(k, count, dtype)
        if got.tobytes() != want.astype(DTYPES[dtype]).tobytes():
            bad = int(np.argmax(got != want))
            fail("%r: element %d is %r, expected %r" %
                 (name, bad, got[bad], want[bad]))
    if pos != len(data):
        fail("data section is %d bytes, tensors cover %d" % (len(data), pos))
    print("safetensors_check: %s: %d tensors match" % (path, len(C_SPEC)))


def write(path):
    """Writes a file the way another tool might: 2-space indented header
    with \\u escapes, __metadata__ last, no padding, data packed in an order
    different from the header's."""
    tensors = [
        ("w_f32", "F32", [4, 3], expected(10, 12, "F32")),
        ("w_f64", "F64", [2, 2, 2], expected(11, 8, "F64")),
        ("s", "F64", [], expected(12, 1, "F64")),
        ("\u00fc/name \U0001F600", "F32", [2], expected(13, 2, "F32")),
        ("i64", "I64", [5], np.array([-3, 0, 7, 2 ** 40, -(2 ** 50)])),
        ("f16", "F16", [4], np.array([1.5, -2.0, 2.0 ** -14, 65504.0])),
        ("u8", "U8", [3], np.array([0, 200, 255])),
        ("bool", "BOOL", [2], np.array([True, False])),
        ("none", "F64", [3, 0], np.zeros(0)),
    ]
    header = {}
    chunks = []
    pos = 0
    for name, dtype, shape, values in reversed(tensors):
        b = np.asarray(values).astype(DTYPES[dtype]).tobytes()
        chunks.append(b)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [pos, pos + len(b)]}
        pos += len(b)
    ordered = {name: header[name] for name, _, _, _ in tensors}
    ordered["__metadata__"] = {"source": "python", "note": "tab\there"}
    text = json.dumps(ordered, indent=2, ensure_ascii=True).encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)
    print("safetensors_check: wrote %s" % path)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "write"):
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        write(sys.argv[2])


if __name__ == "__main__":
    main()
