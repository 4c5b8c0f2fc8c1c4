#!/usr/bin/env python3
"""Writes a small Hugging Face model directory of one architecture family with the real `transformers` class.

The model is built with `XForCausalLM(XConfig(...))` from a tiny config, every parameter then overwritten with
seeded random values (norm weights near 1, so a norm mapped to the wrong tensor shows), and saved with
`save_pretrained` (safetensors, the given dtype, small shards). The tokenizer is a real one rebuilt from one of
llama.cpp's vocabulary files, as make_hf_model.py does.

Usage: make_hf_family.py FAMILY OUT_DIR --vocab-dir LLAMA_CPP/models [--dtype bfloat16]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_hf_model import dump, read_vocab, write_tokenizer  # noqa: E402

# The sizes every family shares (two blocks, GQA 4/2); each family adds its own config fields.
BASE = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False)

MOE = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64)

# family: (transformers class, vocabulary, config fields)
FAMILIES = {
    "smollm3": ("SmolLM3ForCausalLM", "gpt-2",
                dict(rope_theta=2000000.0, tie_word_embeddings=True)),
    "granite": ("GraniteForCausalLM", "gpt-2",
                dict(attention_multiplier=0.015625, embedding_multiplier=12.0, residual_multiplier=0.22,
                     logits_scaling=8.0, rope_theta=10000000.0, tie_word_embeddings=True)),
    "olmo2": ("Olmo2ForCausalLM", "gpt-2", dict(rope_theta=500000.0, rms_norm_eps=1e-6)),
    "qwen2moe": ("Qwen2MoeForCausalLM", "gpt-2",
                 dict(MOE, shared_expert_intermediate_size=96, rope_theta=1000000.0, decoder_sparse_step=1,
                      mlp_only_layers=[])),
    # OLMoE has no grouped-query attention (llama.cpp sizes its K norm by the embedding)
    "olmoe": ("OlmoeForCausalLM", "gpt-2", dict(MOE, num_key_value_heads=4, intermediate_size=64, rope_theta=10000.0,
                                               rms_norm_eps=1e-6)),
    "starcoder2": ("Starcoder2ForCausalLM", "gpt-2",
                   dict(rope_theta=100000.0, norm_epsilon=1e-5, use_bias=True, sliding_window=None,
                        tie_word_embeddings=True)),
    "cohere": ("CohereForCausalLM", "gpt-2",
               dict(logit_scale=0.0625, layer_norm_eps=1e-5, rope_theta=8000000.0, tie_word_embeddings=True)),
    "cohere2": ("Cohere2ForCausalLM", "gpt-2",
                dict(logit_scale=0.25, layer_norm_eps=1e-5, rope_theta=50000.0, sliding_window=4096, rotary_pct=1.0,
                     layer_types=["sliding_attention", "full_attention"], tie_word_embeddings=True)),
    "exaone4": ("Exaone4ForCausalLM", "gpt-2",
                dict(rope_theta=1000000.0, rms_norm_eps=1e-5, sliding_window=4096, head_dim=32,
                     layer_types=["sliding_attention", "full_attention"], sliding_window_pattern="LG",
                     rope_scaling={"rope_type": "llama3", "factor": 16.0, "high_freq_factor": 4.0,
                                   "low_freq_factor": 1.0, "original_max_position_embeddings": 8192})),
    # Phi-2's feed-forward is 4 x the embedding (llama.cpp assumes it)
    "phi2": ("PhiForCausalLM", "gpt-2",
             dict(num_key_value_heads=4, intermediate_size=512, partial_rotary_factor=0.5, layer_norm_eps=1e-5, hidden_act="gelu_new",
                  rope_theta=10000.0)),
    "stablelm": ("StableLmForCausalLM", "gpt-2",
                 dict(partial_rotary_factor=0.25, layer_norm_eps=1e-5, use_parallel_residual=False,
                      use_qkv_bias=True, rope_theta=10000.0)),
    # GraniteMoe with a shared expert: gate and up fused in one input_linear per expert stack
    "granitemoe": ("GraniteMoeSharedForCausalLM", "gpt-2",
                   dict(num_local_experts=4, num_experts_per_tok=2, intermediate_size=64,
                        shared_intermediate_size=96, attention_multiplier=0.015625, embedding_multiplier=12.0,
                        residual_multiplier=0.22, logits_scaling=6.0, rope_theta=10000.0,
                        tie_word_embeddings=True)),
    # GLM-4 looks its special tokens up by name: the tokenizer gets <|user|> added after <|endoftext|>
    "glm4": ("Glm4ForCausalLM", "gpt-2",
             dict(head_dim=32, partial_rotary_factor=0.5, rope_theta=10000.0, rms_norm_eps=1e-5,
                  attention_bias=True, max_position_embeddings=32768, added=["<|user|>"])),
    # a vision-language model: the text model converts, the vision tower and projector are left out
    "mistral3": ("Mistral3ForConditionalGeneration", "llama-spm",
                 dict(text_config=dict(model_type="mistral", head_dim=32, rope_theta=1000000000.0,
                                       sliding_window=None, max_position_embeddings=131072),
                      vision_config=dict(model_type="pixtral", hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, image_size=32,
                                         patch_size=16, head_dim=16))),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("out")
    ap.add_argument("--vocab-dir", required=True)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--sizes", help="override config fields: hidden_size=256,num_hidden_layers=12,...")
    a = ap.parse_args()
    import torch
    import transformers

    cls_name, vocab, fields = FAMILIES[a.family]
    v = read_vocab(os.path.join(a.vocab_dir, f"ggml-vocab-{vocab}.gguf"))
    fields = dict(fields)
    for t in fields.pop("added", []):
        v["tokens"] = list(v["tokens"]) + [t]
        v["types"] = list(v["types"]) + [3]
    cls = getattr(transformers, cls_name)
    ids = dict(vocab_size=len(v["tokens"]), bos_token_id=v["bos"], eos_token_id=v["eos"])
    if a.sizes:
        fields = dict(fields, **{k: int(x) for k, x in (kv.split("=") for kv in a.sizes.split(","))})
    if "text_config" in fields:
        text = dict(BASE, **fields["text_config"], **ids)
        config = cls.config_class(**dict(fields, text_config=text), torch_dtype=a.dtype)
        config.max_position_embeddings = text["max_position_embeddings"]
    else:
        config = cls.config_class(**dict(BASE, **fields, **ids), pad_token_id=v["eos"], torch_dtype=a.dtype)
    config.architectures = [cls_name]
    torch.manual_seed(0)
    model = cls(config)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            p.copy_(1.0 + 0.1 * r if "norm" in name and name.endswith("weight") else 0.05 * r)
    model = model.to(getattr(torch, a.dtype))
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True, max_shard_size="200KB")
    spec = {"vocab": vocab, "extra": {"max_position_embeddings": config.max_position_embeddings}}
    write_tokenizer(a.out, a.family, spec, v)
    dump(a.out, "generation_config.json", {"bos_token_id": v["bos"], "eos_token_id": v["eos"]})
    print(vocab)  # the tests read the vocabulary's name from the last line


if __name__ == "__main__":
    main()
