#!/usr/bin/env python3
"""Times the Python `gguf` package's quantizer (gguf.quants.quantize, numpy) on every tensor of an F16 GGUF:
the reference for lbrx's quantization throughput where gguf-py implements the type.
Usage: quant_py.py FILE.gguf TYPE [MAX_WEIGHTS]   prints "seconds weights"
"""
import sys
import time

import numpy as np
import gguf

path, qtype = sys.argv[1], gguf.GGMLQuantizationType[sys.argv[2]]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 62
r = gguf.GGUFReader(path)
t0, n = time.perf_counter(), 0
for t in r.tensors:
    if len(t.shape) < 2 or n >= limit:
        continue
    a = np.asarray(t.data, dtype=np.float32)
    gguf.quants.quantize(a, qtype)
    n += a.size
print(f"{time.perf_counter() - t0:.3f} {n}")
