"""Scaled FP8 weights computed by torch, for lbrx's tests.

make OUT SEED DTYPE   a seeded random model: 2-D weights of several shapes (some not multiples of 128), a
                      bias, a 3-D tensor, a weight with an all-zero row, an inf and a NaN
check SRC OURS SCALING BLOCK
                      every 2-D *.weight of SRC scaled as convert-to-quant defines FP8 e4m3fn
                      (s = 448 / clamp(amax, 1e-12), q = e4m3(clamp(w * s, -448, 448)), weight_scale = 1 / s,
                      amax over the tensor, each row or each BLOCK x BLOCK tile) must equal OURS bit for bit,
                      and every other tensor must be unchanged
"""
import sys

import torch
from safetensors.torch import load_file, save_file


def make(out, seed, dtype):
    g = torch.Generator().manual_seed(int(seed))
    dt = {"bf16": torch.bfloat16, "f32": torch.float32}[dtype]
    t = {}
    for i, (r, c) in enumerate([(256, 384), (130, 256), (128, 200), (64, 64)]):
        scale = 10.0 ** float(torch.randint(-4, 3, (1,), generator=g))
        t[f"blocks.{i}.proj.weight"] = (torch.randn(r, c, generator=g) * scale).to(dt)
    w = torch.randn(128, 256, generator=g)
    w[5] = 0
    w[7, 3] = float("inf")
    w[9, 11] = float("nan")
    w[10, :] = torch.randn(256, generator=g) * 1e-30
    t["blocks.9.odd.weight"] = w.to(dt)
    t["blocks.0.proj.bias"] = torch.randn(256, generator=g).to(dt)
    t["blocks.0.conv.weight"] = torch.randn(8, 4, 3, generator=g).to(dt)
    save_file(t, out)


def expected(w, scaling, block):
    x = w.float()
    r, c = x.shape
    if scaling == "tensor":
        amax = x.abs().amax()
        full = amax
    elif scaling == "row":
        amax = x.abs().amax(dim=1)
        full = amax[:, None]
    else:
        tiles = x.abs().reshape(r // block, block, c // block, block)
        amax = tiles.amax(dim=(1, 3))
        full = amax.repeat_interleave(block, 0).repeat_interleave(block, 1)
    s = 448.0 / full.clamp(min=1e-12)
    q = (x * s).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    sc = 448.0 / amax.clamp(min=1e-12)
    return q, (1.0 / sc).float()


def check(src, ours, scaling, block):
    block = int(block)
    a, b = load_file(src), load_file(ours)
    seen = set()
    for name, w in a.items():
        fits = name.endswith(".weight") and w.dim() == 2
        if fits and scaling == "block":
            fits = w.shape[0] % block == 0 and w.shape[1] % block == 0
        if not fits:
            assert torch.equal(b[name].view(torch.uint8), w.view(torch.uint8)) if w.dtype == b[name].dtype \
                else False, f"{name}: changed"
            seen.add(name)
            continue
        q, sc = expected(w, scaling, block)
        stem = name[: -len(".weight")]
        got_q, got_s = b[name], b[f"{stem}.weight_scale"]
        assert got_q.dtype == torch.float8_e4m3fn, f"{name}: {got_q.dtype}"
        assert got_q.shape == q.shape, f"{name}: {got_q.shape} vs {q.shape}"
        diff = (got_q.view(torch.uint8) != q.view(torch.uint8)).sum().item()
        assert diff == 0, f"{name}: {diff} values differ"
        assert got_s.dtype == torch.float32 and got_s.shape == sc.shape, f"{name}: scale {got_s.shape}"
        assert torch.equal(got_s.view(torch.int32), sc.view(torch.int32)), f"{name}: scales differ"
        seen.update([name, f"{stem}.weight_scale"])
    extra = set(b) - seen
    assert not extra, f"unexpected tensors {sorted(extra)}"
    print(f"{len(seen)} tensors agree")


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](*sys.argv[2:])
