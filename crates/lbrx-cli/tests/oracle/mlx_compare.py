#!/usr/bin/env python3
"""Compares two MLX model directories with mlx itself: every tensor (name, dtype, shape, raw bytes), the index
metadata and weight map, the safetensors header metadata, and config.json (as JSON values).

Usage: mlx_compare.py OURS REFERENCE [--ignore-config-key K ...]   prints a JSON report of the differences.
"""
import argparse
import glob
import json
import os

import mlx.core as mx
import numpy as np


def load(d):
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        index = json.load(f)
    tensors, metas = {}, []
    for path in sorted(glob.glob(os.path.join(d, "model*.safetensors"))):
        w, meta = mx.load(path, return_metadata=True)
        tensors.update(w)
        metas.append(meta)
    with open(os.path.join(d, "config.json")) as f:
        config = json.load(f)
    return index, tensors, metas, config


def raw(x):
    if x.dtype == mx.bfloat16:
        x = x.view(mx.uint16)
    return np.array(x).tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("reference")
    ap.add_argument("--ignore-config-key", action="append", default=[])
    a = ap.parse_args()
    ia, ta, ma, ca = load(a.ours)
    ib, tb, mb, cb = load(a.reference)
    report = {"tensors": [], "config": [], "index": [], "header_metadata": []}
    for k in sorted(set(ta) | set(tb)):
        if k not in ta or k not in tb:
            report["tensors"].append({"name": k, "only_in": "ours" if k in ta else "reference"})
            continue
        x, y = ta[k], tb[k]
        if x.dtype != y.dtype or x.shape != y.shape or raw(x) != raw(y):
            report["tensors"].append({"name": k, "ours": [str(x.dtype), list(x.shape)], "reference": [str(y.dtype), list(y.shape)]})
    for k in sorted(set(ca) | set(cb)):
        if k not in a.ignore_config_key and ca.get(k) != cb.get(k):
            report["config"].append({"key": k, "ours": ca.get(k), "reference": cb.get(k)})
    if ia != ib:
        report["index"].append({"ours": ia["metadata"], "reference": ib["metadata"], "weight_map_equal": ia["weight_map"] == ib["weight_map"]})
    if ma != mb:
        report["header_metadata"].append({"ours": ma, "reference": mb})
    report["count"] = len(ta)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
