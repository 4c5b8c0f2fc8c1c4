"""Learned rounding against convert-to-quant's: a seeded random bf16 model with real-shaped layers
(3072x3072 and 1024x3072) to FP8 (tensor scales) by round-to-nearest, by convert-to-quant 1.3.4's learned
rounding (its default optimizer) and by lbrx --learned-rounding, with the same k and iteration budget; each
layer's error relative to ||W|| in full and in its exact top-k singular subspace (torch.linalg.svd), and the
reduction vs round-to-nearest. Usage: learned.py LBRX DIR [ITERS]"""
import contextlib
import io
import json
import os
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file, save_file

lbrx, d = sys.argv[1], sys.argv[2]
iters = sys.argv[3] if len(sys.argv) > 3 else "200"
os.makedirs(d, exist_ok=True)
src = os.path.join(d, "lr-src.safetensors")
g = torch.Generator().manual_seed(0)
layers = {"blocks.0.attn.proj.weight": (3072, 3072), "blocks.0.mlp.down.weight": (1024, 3072)}
# weights with a decaying spectrum, as trained layers have
t = {}
for k, (m, n) in layers.items():
    a = torch.randn(m, 256, generator=g) @ torch.randn(256, n, generator=g) / 256
    t[k] = (a + 0.02 * torch.randn(m, n, generator=g)).to(torch.bfloat16)
save_file(t, src)


def c2q(out, *args):
    from convert_to_quant.cli.main import main

    saved, sys.argv = sys.argv, ["convert_to_quant", "-i", src, "-o", out, "--device", "cpu", *args]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main()
    finally:
        sys.argv = saved


runs = {}
t0 = time.time()
c2q(os.path.join(d, "lr-rtn.safetensors"), "--simple")
c2q(os.path.join(d, "lr-c2q.safetensors"), "--num_iter", iters, "--manual_seed", "0")
runs["convert-to-quant"] = time.time() - t0
t0 = time.time()
subprocess.run([lbrx, "convert", src, os.path.join(d, "lr-lbrx.safetensors"), "--quant", "fp8", "--learned-rounding",
                "--rounding-iters", iters, "--force", "--quiet"], check=True)
runs["lbrx"] = time.time() - t0
w = load_file(src)
outs = {n: load_file(os.path.join(d, f"lr-{n}.safetensors")) for n in ("rtn", "c2q", "lbrx")}
print(f"FP8 tensor scales, {iters} iterations; k = clamp(0.2 min(M, N), 256, 1280) as convert-to-quant chooses;")
print(f"wall: convert-to-quant {runs['convert-to-quant']:.0f} s (round-to-nearest run included), lbrx {runs['lbrx']:.0f} s")
print()
print("| layer | k | RTN subspace err | convert-to-quant | lbrx | c2q reduction | lbrx reduction | RTN / c2q / lbrx full err |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for name, (m, n) in layers.items():
    x = w[name].float()
    k = min(1280, max(256, int(0.2 * min(m, n))), min(m, n))
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    uk, vk = u[:, :k], vh[:k, :]
    ws = torch.linalg.norm(uk.T @ x @ vk.T)
    stem = name[: -len(".weight")]
    res = {}
    for who, o in outs.items():
        q = o[name].float() * o[f"{stem}.weight_scale"].float()
        e = q - x
        res[who] = (torch.linalg.norm(uk.T @ e @ vk.T) / ws).item(), (torch.linalg.norm(e) / torch.linalg.norm(x)).item()
    r0 = res["rtn"][0]
    print(f"| {name} {m}x{n} | {k} | {r0:.5f} | {res['c2q'][0]:.5f} | {res['lbrx'][0]:.5f} | "
          f"{(1 - res['c2q'][0] / r0) * 100:.1f}% | {(1 - res['lbrx'][0] / r0) * 100:.1f}% | "
          f"{res['rtn'][1]:.5f} / {res['c2q'][1]:.5f} / {res['lbrx'][1]:.5f} |")
