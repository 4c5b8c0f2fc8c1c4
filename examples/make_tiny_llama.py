#!/usr/bin/env python3
"""Writes examples/tiny-llama: a small, deterministic Llama-style Hugging Face model directory.

Random bf16 weights (seeded per tensor), a byte-level BPE tokenizer trained on text in this script, and the
files transformers writes: config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
special_tokens_map.json, two safetensors shards and model.safetensors.index.json.

Run with the reference venv (scripts/setup-python.sh): numpy, ml_dtypes, safetensors, tokenizers.
Usage: make_tiny_llama.py [OUT_DIR] [--arch llama] [--layers N] [--hidden N] ...
"""
import argparse
import json
import os
import zlib

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

TEXT = """lbrx reads, checks, converts and quantizes machine-learning model weights.
A model directory holds a config, a tokenizer and the weights in safetensors shards.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
Once upon a time there was a little model that wanted to run on a laptop, fast and without running out of memory.
It learned to stream its tensors one chunk at a time, to write every header before any data, and never to
leave a half-written file behind. Numbers like 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 42, 100 and 2048 appear too.
"""


def train_tokenizer(vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    special = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|pad|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(special),
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    lines = TEXT.splitlines() * 4
    tok.train_from_iterator(lines, trainer=trainer)
    tok.add_special_tokens(special)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)],
    )
    return tok


def tensor(name, shape, scale=0.02, ones=False):
    if ones:
        return np.ones(shape, np.float32)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)


def split_shards(names, sizes, max_size):
    """huggingface_hub's split: greedy in order; an oversized tensor alone in its own shard."""
    shards, cur, cur_size = [], [], 0
    for n in names:
        s = sizes[n]
        if s > max_size:
            shards.append([n])
            continue
        if cur and cur_size + s > max_size:
            shards.append(cur)
            cur, cur_size = [], 0
        cur.append(n)
        cur_size += s
    if cur:
        shards.append(cur)
    return shards


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny-llama"))
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=688)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--max-shard-size", type=int, default=2_000_000)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    tok = train_tokenizer(a.vocab)
    vocab = tok.get_vocab_size()
    tok.save(os.path.join(a.out, "tokenizer.json"))
    bos, eos, eot = (tok.token_to_id(t) for t in ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"))

    h, inter, L = a.hidden, a.intermediate, a.layers
    head_dim = h // a.heads
    state = {"model.embed_tokens.weight": tensor("model.embed_tokens.weight", (vocab, h))}
    for i in range(L):
        p = f"model.layers.{i}."
        state[p + "self_attn.q_proj.weight"] = tensor(p + "q", (a.heads * head_dim, h))
        state[p + "self_attn.k_proj.weight"] = tensor(p + "k", (a.kv_heads * head_dim, h))
        state[p + "self_attn.v_proj.weight"] = tensor(p + "v", (a.kv_heads * head_dim, h))
        state[p + "self_attn.o_proj.weight"] = tensor(p + "o", (h, a.heads * head_dim))
        state[p + "mlp.gate_proj.weight"] = tensor(p + "gate", (inter, h))
        state[p + "mlp.up_proj.weight"] = tensor(p + "up", (inter, h))
        state[p + "mlp.down_proj.weight"] = tensor(p + "down", (h, inter))
        state[p + "input_layernorm.weight"] = tensor(p + "ln1", (h,), ones=True)
        state[p + "post_attention_layernorm.weight"] = tensor(p + "ln2", (h,), ones=True)
    state["model.norm.weight"] = tensor("model.norm.weight", (h,), ones=True)
    state["lm_head.weight"] = tensor("lm_head.weight", (vocab, h))

    np_dtype = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16, "float32": np.float32}[a.dtype]
    state = {k: v.astype(np_dtype) for k, v in state.items()}
    sizes = {k: v.nbytes for k, v in state.items()}
    shards = split_shards(list(state), sizes, a.max_shard_size)
    n = len(shards)
    weight_map = {}
    for i, names in enumerate(shards, 1):
        fname = "model.safetensors" if n == 1 else f"model-{i:05d}-of-{n:05d}.safetensors"
        path = os.path.join(a.out, fname)
        save_file({k: state[k] for k in names}, path, metadata={"format": "pt"})
        for k in names:
            weight_map[k] = fname
    for f in os.listdir(a.out):
        if f.endswith(".safetensors") and f not in weight_map.values():
            os.remove(os.path.join(a.out, f))
    if n > 1:
        index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")

    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": h,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 2048,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": a.heads,
        "num_hidden_layers": L,
        "num_key_value_heads": a.kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": a.dtype,
        "transformers_version": "4.46.0",
        "use_cache": True,
        "vocab_size": vocab,
    }
    dump(a.out, "config.json", config)
    dump(a.out, "generation_config.json", {"_from_model_config": True, "bos_token_id": bos, "eos_token_id": [eos, eot], "transformers_version": "4.46.0"})
    dump(a.out, "special_tokens_map.json", {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "pad_token": "<|pad|>"})
    added = {str(tok.token_to_id(t)): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
             for t in ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|pad|>")}
    dump(a.out, "tokenizer_config.json", {
        "added_tokens_decoder": added,
        "bos_token": "<|begin_of_text|>",
        "chat_template": "{{ bos_token }}{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|end_of_text|>",
        "model_max_length": 2048,
        "pad_token": "<|pad|>",
        "tokenizer_class": "PreTrainedTokenizerFast",
    })


def dump(out, name, obj):
    with open(os.path.join(out, name), "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
