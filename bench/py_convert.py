#!/usr/bin/env python3
"""The Python route for the same job as `lbrx convert`: the `safetensors` package (torch backend) loads each
shard, optionally casts, and saves it; the index and other files are copied.

Usage: py_convert.py SRC_DIR DST_DIR [--dtype float16]
"""
import argparse
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("dst")
ap.add_argument("--dtype")
a = ap.parse_args()
os.makedirs(a.dst, exist_ok=True)
for name in sorted(os.listdir(a.src)):
    p = os.path.join(a.src, name)
    if name.endswith(".safetensors"):
        from safetensors import safe_open
        with safe_open(p, "pt") as f:
            meta = f.metadata()
        t = load_file(p)
        if a.dtype:
            t = {k: v.to(getattr(torch, a.dtype)) if v.is_floating_point() else v for k, v in t.items()}
        save_file(t, os.path.join(a.dst, name), metadata=meta)
        del t
    else:
        shutil.copy(p, os.path.join(a.dst, name))
