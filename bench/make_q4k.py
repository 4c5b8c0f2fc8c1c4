#!/usr/bin/env python3
"""Writes a GGUF holding Q4_K tensors (random quants with sane f16 scales) via the `gguf` package's GGUFWriter,
and times gguf.quants.dequantize of it to float16 (the reference for lbrx's throughput).

Usage: make_q4k.py OUT.gguf MIB      writes ~MIB MiB of Q4_K data
       make_q4k.py --time FILE.gguf  prints "seconds elements" for dequantizing every tensor to float16
"""
import sys
import time

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

if sys.argv[1] == "--time":
    r = gguf.GGUFReader(sys.argv[2])
    t0, n = time.perf_counter(), 0
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, Q.Q4_K).astype(np.float16)
        n += a.size
    print(f"{time.perf_counter() - t0:.3f} {n}")
    sys.exit(0)

out, mib = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(1)
w = gguf.GGUFWriter(out, arch="llama")
rows, cols = 4096, 4096  # 4096x4096 Q4_K = 9 MiB per tensor
per = rows * cols // 256 * 144
for i in range(max(1, mib * (1 << 20) // per)):
    b = rng.integers(0, 256, (rows * cols // 256, 144), dtype=np.uint8)
    b[:, 0:2] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)
    b[:, 2:4] = np.frombuffer(np.float16(0.001).tobytes(), np.uint8)
    w.add_tensor(f"blk.{i}.weight", b.reshape(rows, -1), raw_dtype=Q.Q4_K)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
