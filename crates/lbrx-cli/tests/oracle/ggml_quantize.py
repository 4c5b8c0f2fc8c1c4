"""ggml's own quantizers as an oracle: calls `ggml_quantize_chunk` in llama.cpp's libggml-base (the build the
tests use) through ctypes on random and edge-case rows, with and without an importance matrix.

Usage: ggml_quantize.py LIBDIR OUTDIR TYPE_ID...
Writes OUTDIR/input.f32 (ROWS x COLS), OUTDIR/imatrix.f32 (COLS), OUTDIR/<type_id>[.imatrix].bin and
OUTDIR/manifest.json ({"rows", "cols", "cases": [{"type", "imatrix", "file", "input"}]}); and, for the types
whose reference code takes them without asserting (the legacy, ternary and FP4 types), rows with infinities
(OUTDIR/inf.f32, OUTDIR/<type_id>.inf.bin).
"""

import ctypes
import json
import os
import sys

import numpy as np

COLS = 512


def rows():
    """Rows that stress the quantizers: ordinary, zero, constant, huge, tiny, subnormal, outliers, mixed."""
    rng = np.random.default_rng(20261124)
    out = []
    for scale in (1.0, 0.02, 300.0):
        out.append(rng.standard_normal(COLS) * scale)
    out.append(np.zeros(COLS))
    out.append(np.full(COLS, 0.75))
    out.append(np.full(COLS, -3.0))
    out.append(rng.standard_normal(COLS) * 1e4)
    out.append(rng.standard_normal(COLS) * 1e-6)
    out.append(rng.standard_normal(COLS) * 1e-30)
    out.append(rng.standard_normal(COLS) * 1e-39)  # subnormal f32
    r = rng.standard_normal(COLS) * 0.01
    r[::37] = 50.0
    out.append(r)
    r = rng.uniform(0, 1, COLS)  # one-signed
    out.append(r)
    out.append(-rng.uniform(0, 1, COLS))
    r = np.zeros(COLS)
    r[::64] = 1.0  # mostly zero groups
    out.append(r)
    r = rng.standard_normal(COLS)
    r[256:] = 0.0  # a zero super-block after a live one
    out.append(r)
    out.append(np.round(rng.standard_normal(COLS) * 4) / 4)  # many ties
    r = rng.standard_normal(COLS) * 60000.0  # near the F16 limit
    out.append(r)
    out.append(rng.laplace(size=COLS) * 0.05)
    return np.array(out, dtype=np.float32)


# ggml type ids whose quantizers take infinite values without an assertion: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
# TQ1_0, TQ2_0, MXFP4, NVFP4, Q1_0, Q2_0
INF_TYPES = {2, 3, 6, 7, 8, 34, 35, 39, 40, 41, 42}


def inf_rows():
    rng = np.random.default_rng(99)
    out = []
    r = rng.standard_normal(COLS)
    r[::17] = np.inf
    out.append(r)
    r = rng.standard_normal(COLS)
    r[5::29] = -np.inf
    out.append(r)
    out.append(np.full(COLS, np.inf))
    r = rng.standard_normal(COLS) * 3e38
    out.append(r)
    return np.array(out, dtype=np.float32)


def main():
    libdir, outdir, types = sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3:]]
    lib = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [
        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
        ctypes.c_void_p,
    ]
    lib.ggml_row_size.restype = ctypes.c_size_t
    lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
    lib.ggml_quantize_init.argtypes = [ctypes.c_int]

    x = rows()
    rng = np.random.default_rng(7)
    im = (rng.gamma(0.5, 1.0, COLS) * (rng.uniform(0, 1, COLS) > 0.05)).astype(np.float32)
    os.makedirs(outdir, exist_ok=True)
    x.tofile(os.path.join(outdir, "input.f32"))
    im.tofile(os.path.join(outdir, "imatrix.f32"))
    cases = []
    for t in types:
        lib.ggml_quantize_init(t)
        size = lib.ggml_row_size(t, COLS) * x.shape[0]
        for with_im in (False, True):
            if not with_im and lib.ggml_quantize_requires_imatrix(t):
                continue
            out = np.zeros(size, dtype=np.uint8)
            n = lib.ggml_quantize_chunk(t, x.ctypes.data, out.ctypes.data, 0, x.shape[0], COLS,
                                        im.ctypes.data if with_im else None)
            assert n == size, (t, n, size)
            name = f"{t}{'.imatrix' if with_im else ''}.bin"
            out.tofile(os.path.join(outdir, name))
            cases.append({"type": t, "imatrix": with_im, "file": name, "input": "input.f32"})
        if t in INF_TYPES:
            xi = inf_rows()
            xi.tofile(os.path.join(outdir, "inf.f32"))
            out = np.zeros(lib.ggml_row_size(t, COLS) * xi.shape[0], dtype=np.uint8)
            lib.ggml_quantize_chunk(t, xi.ctypes.data, out.ctypes.data, 0, xi.shape[0], COLS, None)
            name = f"{t}.inf.bin"
            out.tofile(os.path.join(outdir, name))
            cases.append({"type": t, "imatrix": False, "file": name, "input": "inf.f32"})
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump({"rows": int(x.shape[0]), "cols": COLS, "cases": cases}, f)


if __name__ == "__main__":
    main()
