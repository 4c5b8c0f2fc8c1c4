"""A seeded random bf16 diffusion-transformer-shaped checkpoint in one SafeTensors file (Flux-like widths:
3072 hidden, 12288 MLP), for the scaled-weights benchmark. Usage: make_dit.py OUT [--blocks N]"""
import argparse

import torch
from safetensors.torch import save_file

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--blocks", type=int, default=9)
a = p.parse_args()
g = torch.Generator().manual_seed(0)
h, m = 3072, 12288
t = {"img_in.weight": torch.randn(h, 64, generator=g), "time_in.in_layer.weight": torch.randn(h, 256, generator=g)}
for i in range(a.blocks):
    b = f"double_blocks.{i}"
    t[f"{b}.img_attn.qkv.weight"] = torch.randn(3 * h, h, generator=g) * 0.02
    t[f"{b}.img_attn.proj.weight"] = torch.randn(h, h, generator=g) * 0.02
    t[f"{b}.img_mlp.0.weight"] = torch.randn(m, h, generator=g) * 0.02
    t[f"{b}.img_mlp.2.weight"] = torch.randn(h, m, generator=g) * 0.02
    t[f"{b}.img_mod.lin.weight"] = torch.randn(6 * h // 4, h, generator=g) * 0.02
    t[f"{b}.img_norm.scale"] = torch.ones(128)
t["final_layer.linear.weight"] = torch.randn(64, h, generator=g)
save_file({k: v.to(torch.bfloat16) for k, v in t.items()}, a.out)
