#!/usr/bin/env python3
"""Reference side of lbrx's SafeTensors tests: files written and checked by the Python `safetensors` package,
numpy, ml_dtypes and huggingface_hub (never by lbrx). Run from the reference venv.

  all-dtypes OUT.safetensors MANIFEST.json   every dtype numpy/ml_dtypes offer, incl. empty and 0-dim tensors
  verify FILE MANIFEST.json                  the reference reads FILE; tensors must equal the manifest
  casts DIR                                  src-<D>.safetensors and the reference's x.astype(T) as exp-<D>-<T>.safetensors
  shard SRC.safetensors MAX_BYTES OUT_DIR    transformers-style sharding of SRC's tensors (huggingface_hub's split)
  npz OUT_DIR                                numpy-written a.npz (savez), c.npz (savez_compressed), v.npy,
                                             f.npy (Fortran order) and manifest.json (little-endian bytes)
  index-tensors DIR OUT.json                 load every tensor the way transformers follows the index; sha256 each
  shard-tensors DIR OUT.json                 sha256 of every tensor in every *.safetensors of DIR, ignoring any index
"""
import hashlib
import os
import json
import sys

import ml_dtypes
import numpy as np
import safetensors
from huggingface_hub.serialization import split_state_dict_into_shards_factory
from safetensors.numpy import save_file

ST_NAMES = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16", "uint32": "U32",
    "int32": "I32", "uint64": "U64", "int64": "I64", "float16": "F16", "float32": "F32", "float64": "F64",
    "bfloat16": "BF16", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}
NP_DTYPES = {v: (np.dtype(k) if k not in ("bfloat16", "float8_e4m3fn", "float8_e5m2") else np.dtype(getattr(ml_dtypes, k)))
             for k, v in ST_NAMES.items()}
FLOATS = ["F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"]


def all_dtypes(out, manifest):
    rng = np.random.default_rng(7)
    tensors = {}
    for np_name, st in ST_NAMES.items():
        dt = NP_DTYPES[st]
        if st == "BOOL":
            a = rng.integers(0, 2, (3, 5)).astype(bool)
        elif dt.kind in "iu":
            info = np.iinfo(dt)
            a = rng.integers(info.min, info.max, (3, 5), dtype=dt, endpoint=True)
        else:
            a = (rng.standard_normal((3, 5)) * 4).astype(dt)
        tensors[f"t_{np_name}"] = a
        tensors[f"scalar_{np_name}"] = np.array(a.reshape(-1)[0], dtype=dt)
        tensors[f"empty_{np_name}"] = np.zeros((0, 4), dt)
    tensors["big.layer.0.weight"] = rng.standard_normal((64, 33)).astype(np.float32)
    save_file(tensors, out, metadata={"format": "pt"})
    with open(manifest, "w") as f:
        json.dump({k: {"dtype": ST_NAMES[v.dtype.name], "shape": list(v.shape), "hex": v.tobytes().hex()}
                   for k, v in tensors.items()}, f)


def verify(path, manifest):
    want = json.load(open(manifest))
    data = open(path, "rb").read()
    got = dict(safetensors.deserialize(data))  # the reference parser validates the whole file
    errors = []
    if set(got) != set(want):
        errors.append(f"names differ: {sorted(set(got) ^ set(want))}")
    for name, w in want.items():
        g = got.get(name)
        if g is None:
            continue
        if g["dtype"].upper() not in (w["dtype"], {"F8_E4M3": "FLOAT8_E4M3FN"}.get(w["dtype"], "")) and \
                ST_NAMES.get(g["dtype"], g["dtype"]) != w["dtype"]:
            errors.append(f"{name}: dtype {g['dtype']} != {w['dtype']}")
        if list(g["shape"]) != w["shape"]:
            errors.append(f"{name}: shape {g['shape']} != {w['shape']}")
        if bytes(g["data"]).hex() != w["hex"]:
            errors.append(f"{name}: bytes differ")
    # numpy-native dtypes also through the high-level loader
    from safetensors.numpy import load_file
    try:
        loaded = load_file(path)
        for name, arr in loaded.items():
            if arr.tobytes().hex() != want[name]["hex"]:
                errors.append(f"{name}: load_file bytes differ")
    except Exception as e:  # load_file rejects dtypes numpy lacks (BF16, F8): check those via deserialize only
        if not any(w["dtype"] in ("BF16", "F8_E4M3", "F8_E5M2") for w in want.values()):
            errors.append(f"load_file failed: {e}")
    if errors:
        print("\n".join(errors[:20]), file=sys.stderr)
        sys.exit(1)
    print(f"ok: {len(want)} tensors")


def cast_values():
    rng = np.random.default_rng(11)
    parts = [
        rng.standard_normal(4096) * 0.02,
        rng.standard_normal(4096) * 3,
        rng.standard_normal(1024) * 1e4,
        rng.standard_normal(1024) * 1e-6,
        np.exp(rng.uniform(-120, 100, 4096)) * rng.choice([-1, 1], 4096),
    ]
    edges = [0.0, -0.0, 1.0, -1.0, 448.0, 464.0, 465.0, 480.0, 500.0, 57344.0, 61439.0, 61440.0, 65504.0, 65519.0,
             65520.0, 1e9, -1e9, 3.4e38, 2.0 ** -9, 2.0 ** -10, 2.0 ** -16, 2.0 ** -17, 2.0 ** -24, 2.0 ** -25,
             2.0 ** -126, 2.0 ** -133, 2.0 ** -149, 1e-45, np.inf, -np.inf, np.nan, -np.nan,
             1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11]
    x = np.concatenate(parts + [np.array(edges)])
    return x.astype(np.float32).astype(np.float64)  # f32-representable values, so every route agrees


def casts(out_dir):
    x = cast_values()
    ints = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    with np.errstate(all="ignore"):
        for d in FLOATS:
            src = x.astype(NP_DTYPES[d])
            save_file({"x": src, "i": ints}, f"{out_dir}/src-{d}.safetensors", metadata={"format": "pt"})
            for t in FLOATS:
                if t != d:
                    save_file({"x": src.astype(NP_DTYPES[t]), "i": ints},
                              f"{out_dir}/exp-{d}-{t}.safetensors", metadata={"format": "pt"})


def shard(src, max_bytes, out_dir):
    data = open(src, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    order = sorted(header, key=lambda k: (header[k]["data_offsets"][0], header[k]["data_offsets"][1]))
    raw = dict(safetensors.deserialize(data))
    state = {}
    for k in order:
        t = raw[k]
        dt = NP_DTYPES[ST_NAMES.get(t["dtype"], t["dtype"].upper())]
        state[k] = np.frombuffer(bytes(t["data"]), dtype=dt).reshape(t["shape"])
    split = split_state_dict_into_shards_factory(state, get_storage_size=lambda a: a.nbytes,
                                                 filename_pattern="model{suffix}.safetensors", max_shard_size=int(max_bytes))
    for fname, names in split.filename_to_tensors.items():
        save_file({k: state[k] for k in names}, f"{out_dir}/{fname}", metadata=meta)
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        with open(f"{out_dir}/model.safetensors.index.json", "w") as f:
            f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


def npz(out):
    rng = np.random.default_rng(5)
    arrays = {}
    for np_name in ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
                    "float16", "float32", "float64"]:
        dt = np.dtype(np_name)
        a = (rng.standard_normal((3, 7)) * 50).astype(dt) if np_name != "bool" else rng.integers(0, 2, (3, 7)).astype(bool)
        arrays[f"t_{np_name}"] = a
    arrays["big_endian"] = rng.standard_normal((4, 5)).astype(">f4")
    arrays["scalar"] = np.array(3.5, np.float32)
    arrays["empty"] = np.zeros((0, 3), np.float32)
    arrays["layers.0.weight"] = rng.standard_normal((64, 130)).astype(np.float32)
    np.savez(f"{out}/a.npz", **arrays)
    np.savez_compressed(f"{out}/c.npz", **arrays)
    np.save(f"{out}/v.npy", arrays["layers.0.weight"])
    np.save(f"{out}/f.npy", np.asfortranarray(rng.standard_normal((3, 4))))
    st = {"float16": "F16", "float32": "F32", "float64": "F64"}
    man = {k: {"dtype": ST_NAMES.get(v.dtype.name, st.get(v.dtype.newbyteorder("<").name)), "shape": list(v.shape),
               "hex": v.astype(v.dtype.newbyteorder("<")).tobytes().hex()} for k, v in arrays.items()}
    json.dump(man, open(f"{out}/manifest.json", "w"))


def _tensors(path):
    return dict(safetensors.deserialize(open(path, "rb").read()))


def index_tensors(d, out):
    """Mirrors transformers' sharded loading: read the index, open each shard it names, take each tensor from the
    shard the index says; fail on a missing shard, a tensor absent from its shard, or a shard tensor not indexed."""
    names = [n for n in os.listdir(d) if n.endswith(".safetensors.index.json")]
    assert len(names) == 1, f"expected one index, found {names}"
    wm = json.load(open(os.path.join(d, names[0])))["weight_map"]
    result, problems = {}, []
    for shard in sorted(set(wm.values())):
        p = os.path.join(d, shard)
        if not os.path.exists(p):
            problems.append(f"missing shard {shard}")
            continue
        got = _tensors(p)
        for name in [n for n, s in wm.items() if s == shard]:
            if name not in got:
                problems.append(f"{name} not in {shard}")
            else:
                result[name] = hashlib.sha256(bytes(got[name]["data"])).hexdigest()
        for name in got:
            if wm.get(name) != shard:
                problems.append(f"{name} in {shard} but the index says {wm.get(name)}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    json.dump(result, open(out, "w"), sort_keys=True)


def shard_tensors(d, out):
    result = {}
    for shard in sorted(n for n in os.listdir(d) if n.endswith(".safetensors")):
        for name, t in _tensors(os.path.join(d, shard)).items():
            result[name] = hashlib.sha256(bytes(t["data"])).hexdigest()
    json.dump(result, open(out, "w"), sort_keys=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"all-dtypes": all_dtypes, "verify": verify, "casts": casts, "shard": shard,
     "npz": npz, "index-tensors": index_tensors, "shard-tensors": shard_tensors}[cmd](*args)
