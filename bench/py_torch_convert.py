#!/usr/bin/env python3
"""The Python route for `lbrx convert pytorch_model.bin model.safetensors`: torch.load (weights only, on the CPU;
with --mmap, torch's memory-mapped loading) and safetensors.torch.save_file.

Usage: py_torch_convert.py SRC.bin DST.safetensors [--mmap]
       py_torch_convert.py --make DST.bin GB     (a seeded Llama-shaped bf16 state dict of about GB gigabytes)
"""
import sys

import torch
from safetensors.torch import save_file

if sys.argv[1] == "--make":
    dst, gb = sys.argv[2], float(sys.argv[3])
    g = torch.Generator().manual_seed(0)
    hidden, inter = 2048, 5632
    per_layer = (4 * hidden * hidden + 3 * hidden * inter) * 2
    sd = {"model.embed_tokens.weight": torch.randn(32000, hidden, generator=g).to(torch.bfloat16)}
    i = 0
    while sum(t.numel() * 2 for t in sd.values()) + per_layer <= gb * 1e9:
        p = f"model.layers.{i}."
        for n in ["q_proj", "k_proj", "v_proj", "o_proj"]:
            sd[p + f"self_attn.{n}.weight"] = torch.randn(hidden, hidden, generator=g).to(torch.bfloat16)
        for n, shape in [("gate_proj", (inter, hidden)), ("up_proj", (inter, hidden)), ("down_proj", (hidden, inter))]:
            sd[p + f"mlp.{n}.weight"] = torch.randn(*shape, generator=g).to(torch.bfloat16)
        sd[p + "input_layernorm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
        i += 1
    torch.save(sd, dst)
    sys.exit(0)
src, dst = sys.argv[1], sys.argv[2]
sd = torch.load(src, map_location="cpu", weights_only=True, mmap="--mmap" in sys.argv)
save_file({k: v.contiguous() for k, v in sd.items()}, dst)
