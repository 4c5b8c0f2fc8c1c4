#!/usr/bin/env python3
"""Writes a small Hugging Face model directory of a given architecture, for the HF -> GGUF tests.

Weights come from the same seeded generator as examples/make_tiny_llama.py. The tokenizer is a real one: it is
rebuilt from one of llama.cpp's vocabulary files (models/ggml-vocab-*.gguf, read with the `gguf` package) and
written the way the original model ships it: a `tokenizer.json` (written by the `tokenizers` package) for BPE
vocabularies, a `tokenizer.model` (SentencePiece's own protobuf module) for SentencePiece ones. Whether the
rebuilt BPE tokenizer tokenizes like the original is checked by convert_hf_to_gguf.py itself, which refuses a
pre-tokenizer whose token hash it does not know.

Usage: make_hf_model.py ARCH OUT_DIR --vocab-dir LLAMA_CPP/models [--dtype bfloat16]
ARCH: llama3 llama2 mistral mixtral qwen2 qwen3 qwen3moe gemma2 gemma3 phi3
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "examples"))
from make_tiny_llama import dump, split_shards, tensor  # noqa: E402

LLAMA3_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
QWEN2_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Per architecture: HF class, vocabulary file, config extras, and the tensor layout switches.
ARCHS = {
    "llama3": dict(cls="LlamaForCausalLM", model_type="llama", vocab="llama-bpe", hidden=128, inter=344, heads=4,
                   kv=2, extra={"rope_theta": 500000.0, "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0,
                   "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                   "max_position_embeddings": 131072}),
    "llama2": dict(cls="LlamaForCausalLM", model_type="llama", vocab="llama-spm", hidden=128, inter=344, heads=4,
                   kv=4, extra={"rope_theta": 10000.0, "max_position_embeddings": 4096}),
    "mistral": dict(cls="MistralForCausalLM", model_type="mistral", vocab="llama-spm", hidden=128, inter=344,
                    heads=4, kv=2, extra={"rope_theta": 1000000.0, "sliding_window": None,
                    "max_position_embeddings": 32768}),
    "qwen2": dict(cls="Qwen2ForCausalLM", model_type="qwen2", vocab="qwen2", hidden=128, inter=352, heads=4, kv=2,
                  qkv_bias=True, tie=True, extra={"rope_theta": 1000000.0, "max_position_embeddings": 32768,
                  "sliding_window": 32768, "use_sliding_window": False, "max_window_layers": 21}),
    "mixtral": dict(cls="MixtralForCausalLM", model_type="mixtral", vocab="llama-spm", hidden=128, inter=256,
                    heads=4, kv=2, moe="mixtral", experts=4, experts_used=2,
                    extra={"rope_theta": 1000000.0, "max_position_embeddings": 32768, "sliding_window": None,
                           "num_local_experts": 4, "num_experts_per_tok": 2, "router_aux_loss_coef": 0.02}),
    "qwen3moe": dict(cls="Qwen3MoeForCausalLM", model_type="qwen3_moe", vocab="qwen2", hidden=128, inter=384,
                     heads=4, kv=2, head_dim=64, qk_norm=True, moe="qwen", experts=4, experts_used=2,
                     extra={"rope_theta": 1000000.0, "max_position_embeddings": 40960, "attention_bias": False,
                            "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 96,
                            "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": []}),
    "gemma2": dict(cls="Gemma2ForCausalLM", model_type="gemma2", vocab="llama-spm", hidden=128, inter=256, heads=4,
                   kv=2, head_dim=64, tie=True, gemma=True,
                   extra={"rope_theta": 10000.0, "max_position_embeddings": 8192, "attn_logit_softcapping": 50.0,
                          "final_logit_softcapping": 30.0, "sliding_window": 4096, "query_pre_attn_scalar": 64,
                          "hidden_activation": "gelu_pytorch_tanh", "cache_implementation": "hybrid"}),
    "gemma3": dict(cls="Gemma3ForCausalLM", model_type="gemma3_text", vocab="llama-spm", hidden=128, inter=256,
                   heads=4, kv=1, head_dim=64, tie=True, gemma=True, qk_norm=True,
                   extra={"rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "max_position_embeddings": 32768,
                          "sliding_window": 512, "sliding_window_pattern": 6, "query_pre_attn_scalar": 64,
                          "final_logit_softcapping": None, "attn_logit_softcapping": None,
                          "rope_scaling": None, "hidden_activation": "gelu_pytorch_tanh"}),
    "phi3": dict(cls="Phi3ForCausalLM", model_type="phi3", vocab="phi-3", hidden=128, inter=256, heads=4, kv=4,
                 phi3=True, spm_size=32000,
                 extra={"rope_theta": 10000.0, "max_position_embeddings": 131072,
                        "original_max_position_embeddings": 4096, "sliding_window": 262144,
                        "rope_scaling": {"type": "longrope",
                                         "long_factor": [1.0 + 0.25 * i for i in range(16)],
                                         "short_factor": [1.0 + 0.01 * i for i in range(16)]},
                        "partial_rotary_factor": 1.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0}),
    "qwen3": dict(cls="Qwen3ForCausalLM", model_type="qwen3", vocab="qwen2", hidden=128, inter=384, heads=4, kv=2,
                  head_dim=64, qk_norm=True, tie=True, extra={"rope_theta": 1000000.0,
                  "max_position_embeddings": 40960, "attention_bias": False}),
}


def read_vocab(path):
    from gguf import GGUFReader

    r = GGUFReader(path)

    def field(name, default=None):
        f = r.fields.get(name)
        if f is None:
            return default
        return f.contents()

    return {
        "model": field("tokenizer.ggml.model"),
        "tokens": field("tokenizer.ggml.tokens"),
        "types": field("tokenizer.ggml.token_type"),
        "scores": field("tokenizer.ggml.scores"),
        "merges": field("tokenizer.ggml.merges"),
        "bos": field("tokenizer.ggml.bos_token_id"),
        "eos": field("tokenizer.ggml.eos_token_id"),
        "unk": field("tokenizer.ggml.unknown_token_id"),
        "pad": field("tokenizer.ggml.padding_token_id"),
        "chat_template": field("tokenizer.chat_template"),
    }


def write_bpe(out, v, split_regex, bos_template, ignore_merges, nfc):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tokens, types = v["tokens"], v["types"]
    vocab = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 1}
    merges = [tuple(m.split(" ", 1)) for m in v["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=ignore_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    if split_regex is None:
        # GPT-2's own: the byte-level pre-tokenizer with its built-in split
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(split_regex_pattern(split_regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    added = [(i, t, ty) for i, (t, ty) in enumerate(zip(tokens, types)) if ty != 1]
    for i, t, ty in added:
        assert len(vocab) <= i, "added tokens must follow the base vocabulary"
    # add in id order so each gets its original id
    tok.add_tokens([AddedToken(t, special=(ty == 3), normalized=False) for _, t, ty in added])
    for i, t, _ in added:
        assert tok.token_to_id(t) == i, (t, i, tok.token_to_id(t))
    if bos_template is not None:
        bos = tokens[bos_template]
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                          special_tokens=[(bos, bos_template)]),
        ])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.save(os.path.join(out, "tokenizer.json"))
    return {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                     "special": ty == 3} for i, t, ty in added}


def split_regex_pattern(regex):
    from tokenizers import Regex

    return Regex(regex)


def write_spm(out, v, size=None, dummy_prefix=True):
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    size = size or len(v["tokens"])
    unk = v["unk"] if v["unk"] is not None else 0
    for i, (t, s, ty) in enumerate(list(zip(v["tokens"], v["scores"], v["types"]))[:size]):
        p = m.pieces.add()
        p.piece = t
        p.score = float(s)
        # exactly one UNKNOWN piece; other "unknown" entries of a llama.cpp vocab are padding
        p.type = 2 if i == unk else (5 if ty == 2 else int(ty))
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.vocab_size = size
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id = v["unk"] if v["unk"] is not None else 0
    m.trainer_spec.bos_id = v["bos"]
    m.trainer_spec.eos_id = v["eos"]
    m.trainer_spec.pad_id = -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = dummy_prefix
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    with open(os.path.join(out, "tokenizer.model"), "wb") as f:
        f.write(m.SerializeToString())


def write_tokenizer(out, arch, spec, v):
    """Writes the tokenizer files and tokenizer_config.json of `spec` (its vocab, gemma flag, spm size)."""
    n_vocab = len(v["tokens"])
    tok_config = {"clean_up_tokenization_spaces": False, "model_max_length": spec["extra"]["max_position_embeddings"]}
    if v["model"] == "gpt2" and spec["vocab"] == "gpt-2":
        tok_config["added_tokens_decoder"] = write_bpe(out, v, None, None, ignore_merges=False, nfc=False)
        tok_config["tokenizer_class"] = "GPT2Tokenizer"
        tok_config["bos_token"] = tok_config["eos_token"] = tok_config["unk_token"] = "<|endoftext|>"
    elif v["model"] == "gpt2":
        llama3 = spec["vocab"] == "llama-bpe"
        added = write_bpe(out, v, LLAMA3_SPLIT if llama3 else QWEN2_SPLIT, v["bos"] if llama3 else None,
                          ignore_merges=llama3, nfc=not llama3)
        tok_config["added_tokens_decoder"] = added
        tok_config["tokenizer_class"] = "PreTrainedTokenizerFast" if llama3 else "Qwen2Tokenizer"
        if llama3:
            tok_config["bos_token"] = v["tokens"][v["bos"]]
            tok_config["eos_token"] = v["tokens"][v["eos"]]
            tok_config["chat_template"] = v["chat_template"] or (
                "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n'"
                " + m['content'] + '<|eot_id|>' }}{% endfor %}")
        else:
            tok_config["bos_token"] = None
            tok_config["eos_token"] = "<|im_end|>" if arch.startswith("qwen3") else "<|endoftext|>"
            tok_config["pad_token"] = "<|endoftext|>"
            tok_config["errors"] = "replace"
            tok_config["chat_template"] = CHATML
    else:
        write_spm(out, v, spec.get("spm_size"), dummy_prefix=not spec.get("gemma"))
        tok_config["tokenizer_class"] = "GemmaTokenizer" if spec.get("gemma") else "LlamaTokenizer"
        tok_config["add_bos_token"] = True
        tok_config["add_eos_token"] = False
        tok_config["bos_token"] = "<s>"
        tok_config["eos_token"] = "</s>"
        tok_config["unk_token"] = "<unk>"
        tok_config["legacy"] = False
        spm_size = spec.get("spm_size", n_vocab)
        extra_ids = [i for i, ty in enumerate(v["types"]) if i >= 3 and ty in (3, 4)]
        tok_config["added_tokens_decoder"] = {
            str(i): {"content": v["tokens"][i], "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": i < 3 or v["types"][i] == 3} for i in [0, 1, 2] + extra_ids}
        if v["chat_template"]:
            tok_config["chat_template"] = v["chat_template"]
    dump(out, "tokenizer_config.json", tok_config)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch", choices=sorted(ARCHS))
    ap.add_argument("out")
    ap.add_argument("--vocab-dir", required=True)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--max-shard-size", type=int, default=20_000_000)
    ap.add_argument("--hidden", type=int, help="override the architecture's small default sizes (benchmarks)")
    ap.add_argument("--inter", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--kv-heads", type=int)
    a = ap.parse_args()
    spec = dict(ARCHS[a.arch])
    for k, v in (("hidden", a.hidden), ("inter", a.inter), ("heads", a.heads), ("kv", a.kv_heads)):
        if v is not None:
            spec[k] = v
    os.makedirs(a.out, exist_ok=True)
    v = read_vocab(os.path.join(a.vocab_dir, f"ggml-vocab-{spec['vocab']}.gguf"))
    n_vocab = len(v["tokens"])

    write_tokenizer(a.out, a.arch, spec, v)

    h, inter, L, heads, kv = spec["hidden"], spec["inter"], a.layers, spec["heads"], spec["kv"]
    head_dim = spec.get("head_dim", h // heads)
    state = {"model.embed_tokens.weight": tensor("model.embed_tokens.weight", (n_vocab, h))}
    for i in range(L):
        p = f"model.layers.{i}."
        if spec.get("phi3"):
            state[p + "self_attn.qkv_proj.weight"] = tensor(p + "qkv", ((heads + 2 * kv) * head_dim, h))
        else:
            state[p + "self_attn.q_proj.weight"] = tensor(p + "q", (heads * head_dim, h))
            state[p + "self_attn.k_proj.weight"] = tensor(p + "k", (kv * head_dim, h))
            state[p + "self_attn.v_proj.weight"] = tensor(p + "v", (kv * head_dim, h))
        if spec.get("qkv_bias"):
            state[p + "self_attn.q_proj.bias"] = tensor(p + "qb", (heads * head_dim,))
            state[p + "self_attn.k_proj.bias"] = tensor(p + "kb", (kv * head_dim,))
            state[p + "self_attn.v_proj.bias"] = tensor(p + "vb", (kv * head_dim,))
        if spec.get("qk_norm"):
            state[p + "self_attn.q_norm.weight"] = tensor(p + "qn", (head_dim,), scale=0.1) + 1.0
            state[p + "self_attn.k_norm.weight"] = tensor(p + "kn", (head_dim,), scale=0.1) + 1.0
        state[p + "self_attn.o_proj.weight"] = tensor(p + "o", (h, heads * head_dim))
        if spec.get("moe") == "mixtral":
            state[p + "block_sparse_moe.gate.weight"] = tensor(p + "router", (spec["experts"], h))
            for x in range(spec["experts"]):
                e = p + f"block_sparse_moe.experts.{x}."
                state[e + "w1.weight"] = tensor(e + "w1", (inter, h))
                state[e + "w2.weight"] = tensor(e + "w2", (h, inter))
                state[e + "w3.weight"] = tensor(e + "w3", (inter, h))
        elif spec.get("phi3"):
            state[p + "mlp.gate_up_proj.weight"] = tensor(p + "gate_up", (2 * inter, h))
            state[p + "mlp.down_proj.weight"] = tensor(p + "down", (h, inter))
        elif spec.get("moe") == "qwen":
            mi = spec["extra"]["moe_intermediate_size"]
            state[p + "mlp.gate.weight"] = tensor(p + "router", (spec["experts"], h))
            for x in range(spec["experts"]):
                e = p + f"mlp.experts.{x}."
                state[e + "gate_proj.weight"] = tensor(e + "gate", (mi, h))
                state[e + "up_proj.weight"] = tensor(e + "up", (mi, h))
                state[e + "down_proj.weight"] = tensor(e + "down", (h, mi))
        else:
            state[p + "mlp.gate_proj.weight"] = tensor(p + "gate", (inter, h))
            state[p + "mlp.up_proj.weight"] = tensor(p + "up", (inter, h))
            state[p + "mlp.down_proj.weight"] = tensor(p + "down", (h, inter))
        state[p + "input_layernorm.weight"] = tensor(p + "ln1", (h,), scale=0.1) + 1.0
        state[p + "post_attention_layernorm.weight"] = tensor(p + "ln2", (h,), scale=0.1) + 1.0
        if spec.get("gemma"):
            state[p + "pre_feedforward_layernorm.weight"] = tensor(p + "ln3", (h,), scale=0.1)
            state[p + "post_feedforward_layernorm.weight"] = tensor(p + "ln4", (h,), scale=0.1)
    state["model.norm.weight"] = tensor("model.norm.weight", (h,), scale=0.1) + 1.0
    if not spec.get("tie"):
        state["lm_head.weight"] = tensor("lm_head.weight", (n_vocab, h))

    import ml_dtypes
    from safetensors.numpy import save_file

    np_dtype = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16, "float32": np.float32}[a.dtype]
    state = {k: v_.astype(np_dtype) for k, v_ in state.items()}
    sizes = {k: t.nbytes for k, t in state.items()}
    shards = split_shards(list(state), sizes, a.max_shard_size)
    weight_map = {}
    for i, names in enumerate(shards, 1):
        fname = "model.safetensors" if len(shards) == 1 else f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: state[k] for k in names}, os.path.join(a.out, fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in names})
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")

    config = {
        "architectures": [spec["cls"]],
        "attention_dropout": 0.0,
        "bos_token_id": v["bos"],
        "eos_token_id": v["eos"],
        "hidden_act": "gelu_pytorch_tanh" if spec.get("gemma") else "silu",
        "hidden_size": h,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "model_type": spec["model_type"],
        "num_attention_heads": heads,
        "num_hidden_layers": L,
        "num_key_value_heads": kv,
        "rms_norm_eps": 1e-06 if spec["model_type"].startswith("qwen") else 1e-05,
        "tie_word_embeddings": bool(spec.get("tie")),
        "torch_dtype": a.dtype,
        "transformers_version": "4.57.6",
        "use_cache": True,
        "vocab_size": n_vocab,
    }
    if "head_dim" in spec:
        config["head_dim"] = head_dim
    config.update(spec["extra"])
    dump(a.out, "config.json", config)
    gen = {"bos_token_id": v["bos"], "eos_token_id": v["eos"], "transformers_version": "4.57.6"}
    dump(a.out, "generation_config.json", gen)


if __name__ == "__main__":
    main()
