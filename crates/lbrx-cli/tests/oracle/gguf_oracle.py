#!/usr/bin/env python3
"""Reference side of lbrx's GGUF tests: the Python `gguf` package (llama.cpp's gguf-py) reads and writes.

  dump FILE OUT.json      what GGUFReader reports: every key, value type and value; every tensor's name, type,
                          ne (as stored), absolute data offset and size
  write OUT.gguf [--floats] [--big]   a file written by GGUFWriter: every value type, F32/F16/BF16 tensors
                          and (without flags) Q8_0/Q4_0 ones; --big writes a big-endian file
  values FILE OUT.json    every tensor's values as float lists (F32/F16/BF16 via numpy, block types via
                          gguf.quants.dequantize), row-major
  golden-gguf GOLDEN_DIR OUT.gguf   a GGUF (GGUFWriter) of ggml's golden quantized tensors, one per case whose
                          type gguf.quants can dequantize
"""
import os
import json
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as T


def dump(path, out):
    r = gguf.GGUFReader(path)
    kv = []
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        types = [t.name for t in f.types]
        e = {"key": name, "type": types[0], "value": f.contents()}
        if types[0] == "ARRAY":
            e["array_type"] = types[1]
        kv.append(e)
    tensors = [{"name": t.name, "type_id": int(t.tensor_type), "ne": [int(x) for x in t.shape],
                "data_offset": int(t.data_offset), "n_bytes": int(t.n_bytes)} for t in r.tensors]
    json.dump({"kv": kv, "tensors": tensors, "alignment": r.alignment, "data_start": r.data_offset}, open(out, "w"))


def write(out, *flags):
    rng = np.random.default_rng(3)
    endian = gguf.GGUFEndian.BIG if "--big" in flags else gguf.GGUFEndian.LITTLE
    w = gguf.GGUFWriter(out, arch="llama", endianess=endian)
    w.add_name("tiny")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float32("t.f32", 0.1)
    w.add_float64("t.f64", 1e300)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ✓")
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "", "ccc"])
    w.add_array("t.arr_f32", [0.5, -1.25])
    w.add_array("t.arr_empty", [])
    w.add_uint32("general.file_type", 1)
    w.add_tensor("a.f32", rng.standard_normal((3, 64)).astype(np.float32))
    w.add_tensor("b.f16", rng.standard_normal((2, 4, 32)).astype(np.float16))
    w.add_tensor("c.vec", rng.standard_normal(7).astype(np.float32))
    x = rng.standard_normal((4, 64)).astype(np.float32)
    if "--floats" in flags or "--big" in flags:
        x = None
    if x is not None:
        w.add_tensor("d.q8_0", gguf.quants.quantize(x, Q.Q8_0), raw_dtype=Q.Q8_0)
    if x is not None:
        w.add_tensor("e.q4_0", gguf.quants.quantize(x, Q.Q4_0), raw_dtype=Q.Q4_0)
    bf = (rng.standard_normal((2, 32)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    w.add_tensor("f.bf16", bf, raw_shape=bf.shape, raw_dtype=Q.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def values(path, out):
    r = gguf.GGUFReader(path)
    res = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]
        if t.tensor_type == Q.BF16:
            a = (np.asarray(t.data).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif t.tensor_type in (Q.F32, Q.F16):
            a = np.asarray(t.data).astype(np.float32)
        else:
            a = gguf.quants.dequantize(t.data, t.tensor_type)
        res[t.name] = {"shape": shape, "values": a.reshape(-1).astype(np.float64).tolist()}
    json.dump(res, open(out, "w"))


def golden_gguf(golden, out):
    m = json.load(open(os.path.join(golden, "manifest.json")))
    w = gguf.GGUFWriter(out, arch="llama")
    for c in m["cases"]:
        try:
            qt = Q(c["ggml_type_id"])
        except ValueError:
            continue
        if qt not in gguf.quants._type_traits and qt not in (Q.F16,):
            continue
        raw = np.fromfile(os.path.join(golden, c["quantized"]), dtype=np.uint8)
        if qt == Q.F16:
            w.add_tensor(c["quantized"], raw.view(np.float16).reshape(c["rows"], c["cols"]))
        else:
            w.add_tensor(c["quantized"], raw.reshape(c["rows"], -1), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    {"dump": dump, "write": write, "values": values, "golden-gguf": golden_gguf}[sys.argv[1]](*sys.argv[2:])
