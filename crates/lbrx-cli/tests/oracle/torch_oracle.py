#!/usr/bin/env python3
"""PyTorch reference for the PyTorch reader tests: torch itself writes the checkpoints and loads them.

Usage:
  torch_oracle.py reference IN OUT.safetensors [--jit] [--unsafe]
      Loads IN with torch.load(map_location="cpu", weights_only=True) (--unsafe: weights_only=False, for
      protocol-4 files torch's weights-only reader refuses; --jit: torch.jit.load(IN).state_dict() plus the
      archive's constants), flattens it through dicts and lists to dotted names and writes every tensor with
      safetensors.torch.save_file (contiguous copies, no metadata).
  torch_oracle.py make OUT SEED VARIANT
      Writes a seeded random checkpoint with torch.save. VARIANT: zip2 zip4 legacy2 legacy4 (serialization and
      pickle protocol), big (zip, rewritten big-endian as torch on a big-endian machine would), deflated (zip
      with deflated members), nested (state_dict inside a checkpoint dict with lists and hyper-parameters),
      module (a whole user-defined nn.Module, as torch.save(model) writes it; read as its state_dict()).
  torch_oracle.py bin-twin SAFETENSORS_DIR OUT_DIR
      Writes the same Hugging Face model with its shards as pytorch_model-0000I-of-0000N.bin (torch.save of each
      shard's tensors) and pytorch_model.bin.index.json, other files copied.
"""
import io
import json
import os
import pickle
import shutil
import sys
import zipfile

import torch
from safetensors.torch import load_file, save_file


class Net(torch.nn.Module):
    """A user-defined module (pickled as __main__.Net) with nested children, a bias-less layer and buffers."""

    def __init__(self, g):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 6)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(6, 6, bias=i == 0) for i in range(2)])
        self.norm = torch.nn.BatchNorm1d(6)
        self.register_buffer("scale", torch.rand(6, generator=g))
        self.register_buffer("cache", torch.zeros(3), persistent=False)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))


def flatten(obj, prefix, out):
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}" if prefix else str(i), out)


def jit_constants(path):
    """The tensors of a TorchScript archive's constants.pkl, rebuilt with torch's own functions."""
    z = zipfile.ZipFile(path)
    name = next(n for n in z.namelist() if n.endswith("/constants.pkl"))
    prefix = name[: -len("constants.pkl")]

    class U(pickle.Unpickler):
        def find_class(self, module, attr):
            if module == "torch._utils" and attr == "_rebuild_tensor_v2":
                return torch._utils._rebuild_tensor_v2
            if module == "torch" and attr.endswith("Storage"):
                return getattr(torch, attr)
            if module == "collections" and attr == "OrderedDict":
                import collections
                return collections.OrderedDict
            raise pickle.UnpicklingError(f"{module}.{attr}")

        def persistent_load(self, pid):
            _, stype, key, _loc, numel = pid
            raw = z.read(f"{prefix}constants/{key}")
            dtype = stype(0).dtype
            return torch.storage.TypedStorage(
                wrap_storage=torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8), dtype=dtype, _internal=True
            )

    consts = U(io.BytesIO(z.read(name))).load()
    out = {}
    for i, c in enumerate(consts):
        flatten(c, f"CONSTANTS.c{i}", out)
    return out


def reference(src, dst, jit, unsafe):
    out = {}
    if jit:
        m = torch.jit.load(src, map_location="cpu")
        out.update(m.state_dict())
        out.update(jit_constants(src))
    else:
        flatten(torch.load(src, map_location="cpu", weights_only=not unsafe), "", out)
    save_file({k: v.detach().contiguous().clone() for k, v in out.items()}, dst)


def random_state(seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(6, 10, generator=g)
    sd = {
        "emb.weight": torch.randn(12, 8, generator=g).to(torch.bfloat16),
        "layers.0.attn.q.weight": torch.randn(8, 8, generator=g).to(torch.float16),
        "layers.0.attn.k.weight": base.t(),  # a transposed view
        "layers.0.attn.v.weight": base[2:5, 3:9],  # an offset, non-contiguous view
        "layers.0.mlp.up.weight": base[1],  # an offset row
        "layers.0.norm.weight": torch.randn(8, generator=g),
        "layers.1.q8": torch.randint(-128, 127, (4, 8), generator=g, dtype=torch.int8),
        "mask": torch.rand(3, 5, generator=g) > 0.5,
        "fp8": torch.randn(4, 16, generator=g).to(torch.float8_e4m3fn),
        "fp8b": torch.randn(16, generator=g).to(torch.float8_e5m2),
        "ids": torch.randint(0, 1000, (7,), generator=g, dtype=torch.int64),
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "expand": torch.randn(1, 4, generator=g).expand(3, 4),  # stride 0
        "empty": torch.zeros(0, 4),
    }
    sd["lm_head.weight"] = sd["emb.weight"]  # tied
    return sd


def rewrite_zip(path, transform):
    """Rewrites a torch zip archive member by member: transform(name, data) -> (data, compress_type)."""
    src = zipfile.ZipFile(path)
    items = [(i, src.read(i.filename)) for i in src.infolist()]
    src.close()
    with zipfile.ZipFile(path, "w") as z:
        for info, data in items:
            data, ct = transform(info.filename, data)
            z.writestr(zipfile.ZipInfo(info.filename), data, compress_type=ct)


def storage_dtypes(path):
    """Storage key -> element size, read from data.pkl with a recording unpickler."""
    z = zipfile.ZipFile(path)
    name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
    sizes = {}

    class U(pickle.Unpickler):
        def find_class(self, module, attr):
            if module == "torch" and attr.endswith("Storage"):
                return getattr(torch, attr)
            if module == "torch.storage" and attr == "UntypedStorage":
                return torch.UntypedStorage
            return lambda *a, **k: None

        def persistent_load(self, pid):
            _, stype, key, _loc, _numel = pid
            sizes[key] = 1 if stype is torch.UntypedStorage else stype(0).element_size()
            return None

    U(io.BytesIO(z.read(name))).load()
    return sizes


def make(out, seed, variant):
    sd = random_state(seed)
    obj = sd
    kw = {}
    if variant.startswith("legacy"):
        kw["_use_new_zipfile_serialization"] = False
        # legacy torch.save refuses the new dtypes without a typed storage
        sd.pop("fp8"), sd.pop("fp8b")
    if variant.endswith("4"):
        kw["pickle_protocol"] = 4
    if variant == "module":
        obj = {"model": Net(torch.Generator().manual_seed(seed)), "step": 7}
    if variant == "nested":
        obj = {"epoch": 3, "state_dict": sd, "optimizer": {"lr": 0.1, "betas": (0.9, 0.99)},
               "extra": [sd["layers.0.norm.weight"], {"x": torch.ones(2)}]}
    torch.save(obj, out, **kw)
    if variant == "big":
        sizes = storage_dtypes(out)

        def to_big(name, data):
            if name.endswith("/byteorder"):
                return b"big", zipfile.ZIP_STORED
            parts = name.split("/")
            if len(parts) >= 3 and parts[-2] == "data" and parts[-1] in sizes:
                n = sizes[parts[-1]]
                if n > 1:
                    data = b"".join(data[i:i + n][::-1] for i in range(0, len(data), n))
            return data, zipfile.ZIP_STORED

        rewrite_zip(out, to_big)
    if variant == "deflated":
        rewrite_zip(out, lambda name, data: (data, zipfile.ZIP_DEFLATED))


def bin_twin(src, dst):
    os.makedirs(dst, exist_ok=True)
    idx_path = os.path.join(src, "model.safetensors.index.json")
    if os.path.exists(idx_path):
        idx = json.load(open(idx_path))
        shards = sorted(set(idx["weight_map"].values()))
    else:
        idx, shards = None, ["model.safetensors"]
    n = len(shards)
    rename = {}
    for i, s in enumerate(shards):
        new = "pytorch_model.bin" if n == 1 else f"pytorch_model-{i + 1:05d}-of-{n:05d}.bin"
        rename[s] = new
        torch.save(load_file(os.path.join(src, s)), os.path.join(dst, new))
    if idx is not None:
        idx["weight_map"] = {k: rename[v] for k, v in idx["weight_map"].items()}
        json.dump(idx, open(os.path.join(dst, "pytorch_model.bin.index.json"), "w"), indent=2)
    for f in os.listdir(src):
        if not f.endswith(".safetensors") and not f.endswith(".safetensors.index.json"):
            p = os.path.join(src, f)
            if os.path.isfile(p):
                shutil.copy(p, os.path.join(dst, f))


def main():
    cmd = sys.argv[1]
    if cmd == "reference":
        reference(sys.argv[2], sys.argv[3], "--jit" in sys.argv, "--unsafe" in sys.argv)
    elif cmd == "make":
        make(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "bin-twin":
        bin_twin(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
