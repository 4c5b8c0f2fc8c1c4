#!/usr/bin/env python3
"""Writes a synthetic Llama-shaped bf16 model directory (random N(0, 0.02) weights), sharded the way
transformers shards (huggingface_hub's split, model.safetensors.index.json), for benchmarks.

Usage: make_synthetic.py OUT_DIR --layers N [--hidden 2048 --intermediate 5632 --vocab 32000 --max-shard-size 1000000000]
"""
import argparse
import json
import os

import ml_dtypes
import numpy as np
from huggingface_hub.serialization import split_state_dict_into_shards_factory
from safetensors.numpy import save_file


def shapes(a):
    h, i, kv = a.hidden, a.intermediate, a.hidden // 8
    yield "model.embed_tokens.weight", (a.vocab, h)
    for l in range(a.layers):
        p = f"model.layers.{l}."
        for n, s in [("self_attn.q_proj", (h, h)), ("self_attn.k_proj", (kv, h)), ("self_attn.v_proj", (kv, h)),
                     ("self_attn.o_proj", (h, h)), ("mlp.gate_proj", (i, h)), ("mlp.up_proj", (i, h)),
                     ("mlp.down_proj", (h, i)), ("input_layernorm", (h,)), ("post_attention_layernorm", (h,))]:
            yield p + n + ".weight", s
    yield "model.norm.weight", (h,)
    yield "lm_head.weight", (a.vocab, h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=5632)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--max-shard-size", type=int, default=1_000_000_000)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(0)
    # A pool of random bf16 values reused with offsets keeps generation fast and the values realistic.
    pool = (rng.standard_normal(1 << 24, dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)
    specs = list(shapes(a))
    lazy = {n: s for n, s in specs}
    sizes = {n: int(np.prod(s)) * 2 for n, s in specs}
    class Spec:  # stands in for a tensor: the split needs only its size (a str would be skipped)
        def __init__(self, name):
            self.name = name

    split = split_state_dict_into_shards_factory(
        {n: Spec(n) for n, _ in specs}, get_storage_size=lambda t: sizes[t.name],
        filename_pattern="model{suffix}.safetensors", max_shard_size=a.max_shard_size)
    k = 0
    for fname, names in split.filename_to_tensors.items():
        tensors = {}
        for n in names:
            count = sizes[n] // 2
            reps = -(-count // len(pool))
            arr = np.tile(np.roll(pool, k), reps)[:count].reshape(lazy[n])
            k += 7919
            tensors[n] = arr
        save_file(tensors, os.path.join(a.out, fname), metadata={"format": "pt"})
        del tensors
    if split.is_sharded:
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            f.write(json.dumps({"metadata": split.metadata, "weight_map": split.tensor_to_filename}, indent=2, sort_keys=True) + "\n")
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": a.hidden,
           "intermediate_size": a.intermediate, "num_hidden_layers": a.layers, "num_attention_heads": 16,
           "num_key_value_heads": 2, "vocab_size": a.vocab, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-5}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
