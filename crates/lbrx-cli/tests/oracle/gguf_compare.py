#!/usr/bin/env python3
"""Compares two GGUF files with gguf-py's GGUFReader: every KV (value type and value) and every tensor (type,
shape, bytes). Prints a JSON report {"kv": [...], "tensors": [...], "kv_order_equal": bool,
"tensor_order_equal": bool}; empty lists mean equal.
Usage: gguf_compare.py OURS REFERENCE [--ignore-key KEY ...] [--ignore-prefix PREFIX ...]
"""
import json
import sys

import numpy as np
from gguf import GGUFReader


def kvs(r):
    out = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        types = [t.name for t in f.types]
        v = f.contents()
        out[k] = (types, v)
    return out


def main():
    a, b = sys.argv[1], sys.argv[2]
    ignore = set()
    prefixes = []
    args = sys.argv[3:]
    while args:
        if args[0] == "--ignore-key":
            ignore.add(args[1])
            args = args[2:]
        elif args[0] == "--ignore-prefix":
            prefixes.append(args[1])
            args = args[2:]
        else:
            raise SystemExit(f"unknown argument {args[0]}")
    ra, rb = GGUFReader(a), GGUFReader(b)
    for k in list(ra.fields) + list(rb.fields):
        if any(k.startswith(p) for p in prefixes):
            ignore.add(k)
    ka, kb = kvs(ra), kvs(rb)
    kv_diffs = []
    for k in sorted(set(ka) | set(kb)):
        if k in ignore:
            continue
        if k not in ka:
            kv_diffs.append({"key": k, "problem": "missing in ours", "ref": repr(kb[k])[:200]})
        elif k not in kb:
            kv_diffs.append({"key": k, "problem": "extra in ours", "ours": repr(ka[k])[:200]})
        elif ka[k] != kb[k]:
            ta, va = ka[k]
            tb, vb = kb[k]
            if ta == tb and isinstance(va, list) and isinstance(vb, list) and len(va) == len(vb):
                first = next(i for i, (x, y) in enumerate(zip(va, vb)) if x != y)
                kv_diffs.append({"key": k, "problem": f"element {first} differs", "ours": repr(va[first])[:200],
                                 "ref": repr(vb[first])[:200]})
            else:
                kv_diffs.append({"key": k, "problem": "differs", "ours": repr(ka[k])[:200], "ref": repr(kb[k])[:200]})
    ta = {t.name: t for t in ra.tensors}
    tb = {t.name: t for t in rb.tensors}
    t_diffs = []
    for n in sorted(set(ta) | set(tb)):
        if n not in ta:
            t_diffs.append({"tensor": n, "problem": "missing in ours"})
            continue
        if n not in tb:
            t_diffs.append({"tensor": n, "problem": "extra in ours"})
            continue
        x, y = ta[n], tb[n]
        if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
            t_diffs.append({"tensor": n, "problem": "type/shape", "ours": [x.tensor_type.name, [int(d) for d in x.shape]],
                            "ref": [y.tensor_type.name, [int(d) for d in y.shape]]})
            continue
        bx, by = np.asarray(x.data).tobytes(), np.asarray(y.data).tobytes()
        if bx != by:
            diff = sum(1 for i in range(0, len(bx), 1) if bx[i] != by[i]) if len(bx) < 1_000_000 else -1
            t_diffs.append({"tensor": n, "problem": "data differs", "bytes_differing": diff, "type": x.tensor_type.name})
    print(json.dumps({
        "kv": kv_diffs, "tensors": t_diffs,
        "kv_order_equal": [k for k in ka if k not in ignore] == [k for k in kb if k not in ignore],
        "tensor_order_equal": [t.name for t in ra.tensors] == [t.name for t in rb.tensors],
    }, indent=1))


if __name__ == "__main__":
    main()
