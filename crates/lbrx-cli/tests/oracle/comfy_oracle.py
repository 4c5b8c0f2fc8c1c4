"""ComfyUI-style scaled SafeTensors, for lbrx's tests, with convert-to-quant 1.3.4 and comfy-kitchen as the
oracles.

make OUT SEED DTYPE         a seeded random bias-free model: 2-D weights of several shapes (some not
                            multiples of 16, 32, 64 or 128, one with a zero row and a tiny row), a norm vector, a
                            4-D conv weight, names the model filters know; metadata {"foo": "bar"}
legacy OUT SEED             a legacy scaled_fp8 model: FP8 weights with scalar and per-row scale_weight, a
                            scale_input, a bf16 layer and the scaled_fp8 marker
c2q SRC OUT ARGS...         convert-to-quant --simple on CPU (with --save-quant-metadata) writes OUT
compare REF OURS [KEPT...]  every tensor of REF equals OURS (dtype, shape, bytes), so do the metadata
                            (_quantization_metadata as a string); the layers named KEPT are instead kept in
                            high precision in OURS (BF16, no scales, not in the metadata)
dequant REF OURS DEQ [KEPT...]  comfy-kitchen's eager dequantization (convert-to-quant's loader for its own row-
                            and block-wise layouts) of every layer gives the same tensors on REF and OURS, and
                            DEQ (lbrx's --dtype bf16 of OURS) holds exactly those tensors
suite LBRX DIR SEED DTYPE   all of the above for every mode lbrx and convert-to-quant share, on a fresh model
migrate LBRX DIR SEED       lbrx --migrate of a legacy model equals convert-to-quant --convert-fp8-scaled
subspace SRC RTN OURS MIN_K learned rounding (OURS) below round-to-nearest (RTN) in W's exact top-k subspace
damage SRC OUT scale|json|shape  SRC with its first scaled layer's weight_scale short, its comfy_quant not
                            JSON, or an orig_shape of 2^64 - 1 rows
e5m2 SRC OURS               every quantized layer of OURS equals ComfyUI's TensorCoreFP8Layout.quantize with
                            scale="recalculate" to float8_e5m2 on SRC's weight
"""
import json
import struct
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file


def raw(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8 : 8 + n])
    meta = h.pop("__metadata__", None) or {}
    out = {}
    for k, v in h.items():
        s, e = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], b[8 + n + s : 8 + n + e])
    return out, meta


def make(out, seed, dtype):
    g = torch.Generator().manual_seed(int(seed))
    dt = {"bf16": torch.bfloat16, "f32": torch.float32, "f16": torch.float16}[dtype]
    shapes = {
        "blocks.0.attn.qkv.weight": (384, 256),
        "blocks.0.mlp.fc1.weight": (200, 136),
        "blocks.1.mlp.fc2.weight": (256, 512),
        "blocks.1.attn.proj.weight": (96, 200),
        "final_layer.linear.weight": (64, 256),
        "img_in.weight": (128, 128),
        "time_in.in_layer.weight": (128, 256),
        "blocks.0.tiny.weight": (3, 5),
        "decoder.block.0.layer.weight": (64, 128),
    }
    t = {}
    for k, s in shapes.items():
        scale = 10.0 ** float(torch.randint(-3, 2, (1,), generator=g))
        w = torch.randn(*s, generator=g) * torch.rand(s[0], 1, generator=g) * scale
        t[k] = w
    w = t["blocks.1.mlp.fc2.weight"]
    w[5] = 0
    w[9] = torch.randn(512, generator=g) * 1e-30
    t = {k: v.to(dt) for k, v in t.items()}
    t["blocks.0.norm.weight"] = torch.randn(256, generator=g).to(dt)
    t["blocks.0.conv.weight"] = torch.randn(8, 4, 3, 3, generator=g).to(dt)
    save_file(t, out, metadata={"foo": "bar"})


def legacy(out, seed):
    g = torch.Generator().manual_seed(int(seed))
    t = {}
    for name, (r, c), per_row in [("blocks.0.attn.qkv", (64, 32), False), ("blocks.0.mlp.fc1", (48, 32), True)]:
        w = torch.randn(r, c, generator=g)
        amax = w.abs().amax(dim=1, keepdim=True) if per_row else w.abs().amax()
        s = amax / 448.0
        t[f"{name}.weight"] = (w / s).clamp(-448, 448).to(torch.float8_e4m3fn)
        t[f"{name}.scale_weight"] = s.reshape(-1) if per_row else s.reshape(1)
    t["blocks.0.attn.qkv.scale_input"] = torch.ones(1)
    t["blocks.0.norm.weight"] = torch.randn(32, generator=g).to(torch.bfloat16)
    t["head.weight"] = torch.randn(16, 32, generator=g).to(torch.bfloat16)
    t["scaled_fp8"] = torch.empty(2, dtype=torch.float8_e4m3fn)
    save_file(t, out, metadata={"format": "pt"})


def damage(src, out, how):
    """SRC's first scaled layer broken: its weight_scale one value short, or its comfy_quant not JSON."""
    t = load_file(src)
    stem = sorted(k for k in t if k.endswith(".comfy_quant"))[0][: -len(".comfy_quant")]
    if how == "scale":
        s = t[f"{stem}.weight_scale"]
        t[f"{stem}.weight_scale"] = s.reshape(-1)[:-1].clone() if s.numel() > 1 else torch.ones(2)
    elif how == "shape":
        cfg = json.loads(bytes(t[f"{stem}.comfy_quant"].tolist()))
        cfg["orig_shape"] = [2**64 - 1, 3]
        t[f"{stem}.comfy_quant"] = torch.tensor(list(json.dumps(cfg).encode()), dtype=torch.uint8)
    else:
        t[f"{stem}.comfy_quant"] = torch.tensor(list(b"{not json"), dtype=torch.uint8)
    save_file(t, out)


def subspace(src, rtn, ours, min_k):
    """Every layer of OURS has a smaller error than RTN's in W's exact top-k singular subspace (no larger where k
    covers its smaller side)
    (k = clamp(floor(0.2 min(M, N)), MIN_K, 1280)), each code is one of the two grid points around its value,
    and the scales are RTN's."""
    w, a, b = load_file(src), load_file(rtn), load_file(ours)
    n = 0
    for k_, x in w.items():
        stem = k_[: -len(".weight")]
        if f"{stem}.comfy_quant" not in b:
            continue
        x = x.float()
        m_, n_ = x.shape
        k = min(1280, max(int(min_k), int(0.2 * min(m_, n_))), min(m_, n_))
        u, _, vh = torch.linalg.svd(x, full_matrices=False)
        uk, vk = u[:, :k], vh[:k, :]
        s = b[f"{stem}.weight_scale"]
        assert torch.equal(a[f"{stem}.weight_scale"], s), f"{stem}: scales changed"
        full = s.reshape(-1, 1) if s.dim() == 1 else s  # a row scale of [M] or [M, 1]
        err = lambda o: torch.linalg.norm(uk.T @ (o[k_].float() * full - x) @ vk.T).item()
        ra, rb = err(a), err(b)
        # where the subspace is the whole of W's smaller side (a 3x5 layer), round-to-nearest can already be
        # the best rounding and learned rounding keeps it: not worse is all that can be asked there
        if k < min(m_, n_):
            assert rb < ra, f"{stem}: subspace error {rb} not below round-to-nearest's {ra}"
        else:
            assert rb <= ra, f"{stem}: subspace error {rb} above round-to-nearest's {ra}"
        # every value stays between the grid points around it
        qa, qb = a[k_].float(), b[k_].float()
        scaled = x / full
        lo, hi = torch.minimum(qa, qb), torch.maximum(qa, qb)
        moved = qa != qb
        # (x / scale and the encoder's x * multiplier may differ in the last bit at a grid point)
        tol = 1e-6 * scaled.abs() + 1e-30
        inside = (scaled >= lo - tol) & (scaled <= hi + tol)
        out = moved & ~inside
        if bool(out.any()):
            r, c = out.nonzero()[0].tolist()
            sys.exit(f"{stem}: code at {r},{c} left its bracket: {scaled[r, c].item()} not in "
                     f"[{lo[r, c].item()}, {hi[r, c].item()}]")
        n += 1
        print(f"{stem}: {ra:.4g} -> {rb:.4g} ({(rb / ra - 1) * 100:+.1f}%)")
    assert n > 0


def c2q(src, out, *args):
    """convert-to-quant's command line, run in this process (one torch import for many runs)."""
    import contextlib
    import io
    import os

    from convert_to_quant.cli.main import main

    argv = ["convert_to_quant", "-i", src, "-o", out]
    if "--convert-fp8-scaled" not in args:
        argv += ["--simple", "--device", "cpu", "--save-quant-metadata"]
    saved = sys.argv
    sys.argv = argv + list(args)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            main()
    finally:
        sys.argv = saved
    if not os.path.exists(out):
        sys.exit(f"convert-to-quant wrote nothing: {log.getvalue()[-3000:]}")


def lbrx(binary, *args):
    r = subprocess.run([binary, "convert", *args, "--force", "--quiet"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"lbrx convert {' '.join(args)} failed: {r.stderr}")


# (lbrx's --quant arguments, convert-to-quant's, the layers convert-to-quant would write broken that lbrx keeps)
MODES = [
    ("fp8", "", ""),
    ("fp8 --scaling row", "--scaling_mode row", ""),
    ("fp8 --scaling block", "--scaling_mode block", "blocks.0.mlp.fc1 blocks.1.attn.proj final_layer.linear blocks.0.tiny decoder.block.0.layer"),
    ("fp8 --input-scale --exclude attn --heur", "--input_scale --exclude-layers attn --heur", ""),
    ("fp8 --filter flux2", "--flux2", ""),
    ("fp8 --filter t5xxl", "--t5xxl", ""),
    ("int8", "--int8", ""),
    ("int8 --scaling row --filter qwen_vlm", "--int8 --scaling_mode row --qwen_vlm", ""),
    ("int8 --scaling block --block-size 64 --heur", "--int8 --scaling_mode block --block_size 64 --heur", ""),
    ("nvfp4", "--nvfp4", ""),
    ("nvfp4 --heur --filter wan", "--nvfp4 --heur --wan", ""),
    ("mxfp8", "--mxfp8", ""),
]


def suite(binary, d, seed, dtype):
    """Every mode of MODES on a fresh model: the file, its ComfyUI dequantization and lbrx's own."""
    import os

    src = os.path.join(d, f"src-{dtype}.safetensors")
    make(src, seed, dtype)
    for i, (ours, theirs, kept) in enumerate(MODES):
        ref, out, deq = (os.path.join(d, f"{n}-{dtype}-{i}.safetensors") for n in ("ref", "ours", "deq"))
        c2q(src, ref, *theirs.split())
        lbrx(binary, src, out, "--quant", *ours.split())
        lbrx(binary, out, deq, "--dtype", "bf16")
        print(f"{dtype} --quant {ours}: ", end="")
        compare(ref, out, *kept.split())
        dequant(ref, out, deq, *kept.split())
        for p in (ref, out, deq):
            os.remove(p)
    out = os.path.join(d, f"e5m2-{dtype}.safetensors")
    lbrx(binary, src, out, "--quant", "fp8_e5m2")
    e5m2(src, out)
    deq = os.path.join(d, f"e5m2-deq-{dtype}.safetensors")
    lbrx(binary, out, deq, "--dtype", "bf16")
    dequant(out, out, deq)


def migrate(binary, d, seed):
    """The legacy layout: lbrx --migrate equals convert-to-quant --convert-fp8-scaled, and lbrx reads the
    legacy file to the tensors ComfyUI reads from the migrated one."""
    import os

    src, ref, out, deq = (os.path.join(d, f"{n}.safetensors") for n in ("legacy", "ref", "ours", "deq"))
    legacy(src, seed)
    c2q(src, ref, "--convert-fp8-scaled")
    lbrx(binary, src, out, "--migrate")
    compare(ref, out)
    lbrx(binary, src, deq, "--dtype", "bf16")
    dequant(ref, ref, deq)


def compare(ref, ours, *kept):
    a, ma = raw(ref)
    b, mb = raw(ours)
    kept = set(kept)
    skip = {k for k in a if any(k == f"{s}.weight" or k.startswith(f"{s}.") for s in kept)}
    bad = []
    for k in sorted(set(a) - skip):
        if k not in b:
            bad.append(f"{k}: missing")
        elif a[k] != b[k]:
            (da, sa, xa), (db, sb, xb) = a[k], b[k]
            n = sum(x != y for x, y in zip(xa, xb)) if len(xa) == len(xb) else "all"
            bad.append(f"{k}: {da}{sa} vs {db}{sb}, {n} bytes differ")
    extra = set(b) - set(a)
    for s in kept:
        w = f"{s}.weight"
        if b.get(w, ("",))[0] != "BF16":
            bad.append(f"{w}: kept layer is {b.get(w, ('missing',))[0]}, not BF16")
        extra.discard(w)
    if extra:
        bad.append(f"unexpected tensors {sorted(extra)}")
    qa = ma.pop("_quantization_metadata", None)
    qb = mb.pop("_quantization_metadata", None)
    if qa is not None and kept:
        d = json.loads(qa)
        for s in kept:
            d["layers"].pop(s, None)
        qa = json.dumps(d) if d["layers"] else None
    if qa != qb:
        bad.append(f"_quantization_metadata: {qa!r} vs {qb!r}")
    if ma != mb:
        bad.append(f"metadata: {ma} vs {mb}")
    if bad:
        sys.exit("\n".join(bad[:40]))
    print(f"{len(set(a) - skip)} tensors agree")


def dequant_all(path, skip=()):
    """Every quantized layer of PATH (but those in SKIP) dequantized to bf16 as ComfyUI / comfy-kitchen do it."""
    from comfy_kitchen.backends.eager import quantization as ck
    from convert_to_quant.comfy import quant_ops as q

    t = load_file(path)
    out = {}
    for k in t:
        if not k.endswith(".comfy_quant"):
            continue
        stem = k[: -len(".comfy_quant")]
        if stem in skip:
            continue
        cfg = json.loads(bytes(t[k].tolist()))
        w, s = t[f"{stem}.weight"], t[f"{stem}.weight_scale"]
        fmt = cfg["format"]
        bf = torch.bfloat16
        if fmt in ("float8_e4m3fn", "float8_e5m2"):
            d = ck.dequantize_per_tensor_fp8(w, s, bf)
        elif fmt == "float8_e4m3fn_rowwise":
            d = q.RowWiseFP8Layout.dequantize(w, s, bf).to(bf)
        elif fmt == "float8_e4m3fn_blockwise":
            d = q.BlockWiseFP8Layout.dequantize(w, s, cfg["group_size"], bf).to(bf)
        elif fmt == "int8_tensorwise":
            d = ck.dequantize_int8_simple(w, s).to(bf)
        elif fmt == "int8_blockwise":
            d = q.BlockWiseINT8Layout.dequantize(w, s, cfg["group_size"], is_weight=True, orig_dtype=bf).to(bf)
        elif fmt == "nvfp4":
            d = ck.dequantize_nvfp4(w, t[f"{stem}.weight_scale_2"], s, bf)
        elif fmt == "mxfp8":
            d = ck.dequantize_mxfp8(w, s.view(torch.float8_e8m0fnu), bf)
        else:
            sys.exit(f"{stem}: unknown format {fmt}")
        if "orig_shape" in cfg:
            r, c = cfg["orig_shape"]
            d = d[:r, :c]
        out[f"{stem}.weight"] = d.contiguous()
    return out


def dequant(ref, ours, deq, *kept):
    a, b = dequant_all(ref, set(kept)), dequant_all(ours)
    got = load_file(deq)
    bad = []
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            bad.append(f"{k}: dequantized on one side only")
            continue
        if not torch.equal(a[k].view(torch.int16), b[k].view(torch.int16)):
            bad.append(f"{k}: ComfyUI dequantizes convert-to-quant's and lbrx's layers differently")
        g = got.get(k)
        if g is None or g.dtype != torch.bfloat16 or g.shape != b[k].shape:
            bad.append(f"{k}: lbrx's dequantized tensor is {None if g is None else (g.dtype, g.shape)}")
        elif not torch.equal(g.view(torch.int16), b[k].view(torch.int16)):
            n = (g.view(torch.int16) != b[k].view(torch.int16)).sum().item()
            bad.append(f"{k}: lbrx's dequantization differs from comfy-kitchen's in {n} values")
    hidden = [k for k in got if k.endswith((".weight_scale", ".weight_scale_2", ".comfy_quant", ".input_scale"))]
    if hidden:
        bad.append(f"scale tensors left in the dequantized output: {hidden}")
    if bad:
        sys.exit("\n".join(bad[:40]))
    print(f"{len(a)} layers dequantize alike")


def e5m2(src, ours):
    from convert_to_quant.comfy.quant_ops import TensorCoreFP8Layout

    a, b = load_file(src), load_file(ours)
    n = 0
    for k, w in a.items():
        stem = k[: -len(".weight")]
        if f"{stem}.comfy_quant" not in b:
            continue
        qd, p = TensorCoreFP8Layout.quantize(w.clone(), scale="recalculate", dtype=torch.float8_e5m2)
        got = b[k]
        assert got.dtype == torch.float8_e5m2, f"{k}: {got.dtype}"
        diff = (got.view(torch.uint8) != qd.view(torch.uint8)).sum().item()
        assert diff == 0, f"{k}: {diff} values differ from ComfyUI's"
        s = b[f"{stem}.weight_scale"]
        assert torch.equal(s.view(torch.int32), p["scale"].reshape(s.shape).view(torch.int32)), f"{k}: scale"
        cfg = json.loads(bytes(b[f"{stem}.comfy_quant"].tolist()))
        assert cfg["format"] == "float8_e5m2", cfg
        n += 1
    assert n > 0, "no e5m2 layers"
    print(f"{n} e5m2 layers agree")


if __name__ == "__main__":
    cmds = {
        "make": make,
        "legacy": legacy,
        "c2q": c2q,
        "compare": compare,
        "dequant": dequant,
        "e5m2": e5m2,
        "suite": suite,
        "damage": damage,
        "subspace": subspace,
        "migrate": migrate,
    }
    cmds[sys.argv[1]](*sys.argv[2:])
