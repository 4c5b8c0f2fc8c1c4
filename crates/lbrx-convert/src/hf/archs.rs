//! The architecture table: one row per Hugging Face class family (the GGUF architecture it becomes, its
//! tensor-name overrides, config defaults, tokenizer order, expert stacking and hook set), and the lookups
//! over it. The column types and the shared tensor-name map are in `arch.rs`.

use super::arch::{ArchSpec, ConfigDefault, Experts, Params, Pooling, VocabOrder};

/// BERT's encoder names (gguf-py's TensorNameMap entries for `bert`).
const BERT_MAP: &[(&str, &[&str])] = &[
    ("token_embd", &["embeddings.word_embeddings"]),
    ("token_types", &["embeddings.token_type_embeddings"]),
    ("position_embd", &["embeddings.position_embeddings"]),
    ("token_embd_norm", &["embeddings.LayerNorm"]),
    (
        "blk.{bid}.attn_q",
        &["encoder.layer.{bid}.attention.self.query"],
    ),
    (
        "blk.{bid}.attn_k",
        &["encoder.layer.{bid}.attention.self.key"],
    ),
    (
        "blk.{bid}.attn_v",
        &["encoder.layer.{bid}.attention.self.value"],
    ),
    (
        "blk.{bid}.attn_output",
        &["encoder.layer.{bid}.attention.output.dense"],
    ),
    (
        "blk.{bid}.attn_output_norm",
        &["encoder.layer.{bid}.attention.output.LayerNorm"],
    ),
    (
        "blk.{bid}.ffn_up",
        &["encoder.layer.{bid}.intermediate.dense"],
    ),
    ("blk.{bid}.ffn_down", &["encoder.layer.{bid}.output.dense"]),
    (
        "blk.{bid}.layer_output_norm",
        &["encoder.layer.{bid}.output.LayerNorm"],
    ),
];

const GEMMA_NORMS: &[(&str, &[&str])] = &[
    (
        "blk.{bid}.post_attention_norm",
        &["model.layers.{bid}.post_attention_layernorm"],
    ),
    (
        "blk.{bid}.ffn_norm",
        &["model.layers.{bid}.pre_feedforward_layernorm"],
    ),
    (
        "blk.{bid}.post_ffw_norm",
        &["model.layers.{bid}.post_feedforward_layernorm"],
    ),
];

/// OLMo 2's norms: after attention and after the feed-forward, none before.
const OLMO2_NORMS: &[(&str, &[&str])] = &[
    (
        "blk.{bid}.post_attention_norm",
        &["model.layers.{bid}.post_attention_layernorm"],
    ),
    (
        "blk.{bid}.post_ffw_norm",
        &["model.layers.{bid}.post_feedforward_layernorm"],
    ),
];

/// StarCoder 2's feed-forward (GPT-2 style names under Llama-style blocks).
const STARCODER2_FFN: &[(&str, &[&str])] = &[
    ("blk.{bid}.ffn_up", &["model.layers.{bid}.mlp.c_fc"]),
    ("blk.{bid}.ffn_down", &["model.layers.{bid}.mlp.c_proj"]),
];

/// Phi-2's names where they are not Llama's.
const PHI2_MAP: &[(&str, &[&str])] = &[
    (
        "blk.{bid}.attn_output",
        &["model.layers.{bid}.self_attn.dense"],
    ),
    ("blk.{bid}.ffn_up", &["model.layers.{bid}.mlp.fc1"]),
    ("blk.{bid}.ffn_down", &["model.layers.{bid}.mlp.fc2"]),
    ("output_norm", &["model.final_layernorm"]),
];

/// GLM-4's norms after attention and after the MLP, and its fused gate/up projection (kept fused).
const GLM4_MAP: &[(&str, &[&str])] = &[
    (
        "blk.{bid}.post_attention_norm",
        &["model.layers.{bid}.post_self_attn_layernorm"],
    ),
    (
        "blk.{bid}.post_ffw_norm",
        &["model.layers.{bid}.post_mlp_layernorm"],
    ),
    ("blk.{bid}.ffn_up", &["model.layers.{bid}.mlp.gate_up_proj"]),
];

/// GraniteMoe's router and down projections (the gate/up halves are cut by its hooks and named as Mixtral's
/// and Qwen's stacked and shared experts).
const GRANITE_MOE_MAP: &[(&str, &[&str])] = &[
    (
        "blk.{bid}.ffn_gate_inp",
        &["model.layers.{bid}.block_sparse_moe.router.layer"],
    ),
    (
        "blk.{bid}.ffn_down_exps",
        &["model.layers.{bid}.block_sparse_moe.output_linear"],
    ),
    (
        "blk.{bid}.ffn_down_shexp",
        &["model.layers.{bid}.shared_mlp.output_linear"],
    ),
];

const MIXTRAL_EXPERTS: Experts = Experts {
    pattern: "model.layers.{bid}.block_sparse_moe.experts.{xid}.{w}.weight",
    projections: &["w1", "w2", "w3"],
    merged: "model.layers.{bid}.block_sparse_moe.experts.{w}.weight",
    count_keys: &["num_local_experts"],
};

const QWEN_MOE_EXPERTS: Experts = Experts {
    pattern: "model.layers.{bid}.mlp.experts.{xid}.{w}.weight",
    projections: &["down_proj", "gate_proj", "up_proj"],
    merged: "model.layers.{bid}.mlp.experts.{w}.weight",
    count_keys: &["num_local_experts", "num_experts"],
};

use ConfigDefault::*;

/// The columns most rows share (llama.cpp's `TextModel`: no permutation, BPE tokenizer, generic keys); a row
/// names what differs and takes the rest with `..TEXT`.
const TEXT: ArchSpec = ArchSpec {
    hf: &[],
    gguf: "",
    model_type: "",
    permute_qk: false,
    rope_freqs: false,
    vocab: VocabOrder::Bpe,
    llama_params: false,
    defaults: &[],
    experts: None,
    extra_u32: &[],
    params: Params::Text,
    norm_shift: 0.0,
    skip: &[],
    tensor_overrides: &[],
    pooling: Pooling::None,
};

/// `expert_feed_forward_length` and `expert_shared_feed_forward_length` (Qwen MoE families).
const MOE_LENGTHS: &[(&str, &[&str])] = &[
    ("expert_feed_forward_length", &["moe_intermediate_size"]),
    (
        "expert_shared_feed_forward_length",
        &["shared_expert_intermediate_size"],
    ),
];

/// Every architecture lbrx converts to GGUF.
pub(crate) const ARCHS: &[ArchSpec] = &[
    ArchSpec {
        hf: &["LlamaForCausalLM", "LLaMAForCausalLM", "LlamaModel"],
        gguf: "llama",
        model_type: "llama",
        permute_qk: true,
        rope_freqs: true,
        vocab: VocabOrder::Llama,
        llama_params: true,
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(2048)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
            ("head_dim", HeadDim),
        ],
        ..TEXT
    },
    ArchSpec {
        hf: &["MistralForCausalLM"],
        gguf: "llama",
        model_type: "mistral",
        permute_qk: true,
        rope_freqs: true,
        vocab: VocabOrder::Llama,
        llama_params: true,
        defaults: &[
            ("num_key_value_heads", Int(8)),
            ("max_position_embeddings", Int(131072)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
        ],
        ..TEXT
    },
    ArchSpec {
        hf: &["MixtralForCausalLM"],
        gguf: "llama",
        model_type: "mixtral",
        permute_qk: true,
        rope_freqs: true,
        vocab: VocabOrder::Llama,
        llama_params: true,
        defaults: &[
            ("num_key_value_heads", Int(8)),
            ("max_position_embeddings", Int(131072)),
            ("rms_norm_eps", Float(1e-5)),
            ("rope_theta", Float(1e6)),
            ("num_experts_per_tok", Int(2)),
            ("num_local_experts", Int(8)),
        ],
        experts: Some(&MIXTRAL_EXPERTS),
        ..TEXT
    },
    ArchSpec {
        hf: &["Qwen2ForCausalLM", "Qwen2Model"],
        gguf: "qwen2",
        model_type: "qwen2",
        vocab: VocabOrder::SpmThenBpe,
        defaults: &[
            ("num_key_value_heads", Int(32)),
            ("max_position_embeddings", Int(32768)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
        ],
        params: Params::Qwen2,
        pooling: Pooling::IfPresent,
        ..TEXT
    },
    ArchSpec {
        hf: &["Qwen3ForCausalLM", "Qwen3Model"],
        gguf: "qwen3",
        model_type: "qwen3",
        vocab: VocabOrder::SpmThenBpe,
        defaults: &[
            ("num_key_value_heads", Int(32)),
            ("max_position_embeddings", Int(32768)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
            ("head_dim", Int(128)),
        ],
        pooling: Pooling::IfPresent,
        ..TEXT
    },
    ArchSpec {
        hf: &["Qwen3MoeForCausalLM"],
        gguf: "qwen3moe",
        model_type: "qwen3_moe",
        defaults: &[
            ("num_key_value_heads", Int(4)),
            ("max_position_embeddings", Int(32768)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
            ("moe_intermediate_size", Int(768)),
            ("num_experts_per_tok", Int(8)),
            ("num_experts", Int(128)),
        ],
        experts: Some(&QWEN_MOE_EXPERTS),
        extra_u32: MOE_LENGTHS,
        params: Params::Qwen3Moe,
        ..TEXT
    },
    ArchSpec {
        hf: &["Gemma2ForCausalLM"],
        gguf: "gemma2",
        model_type: "gemma2",
        vocab: VocabOrder::Gemma,
        defaults: &[
            ("num_key_value_heads", Int(4)),
            ("max_position_embeddings", Int(8192)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
            ("head_dim", Int(256)),
            ("attn_logit_softcapping", Float(50.0)),
            ("final_logit_softcapping", Float(30.0)),
            ("sliding_window", Int(4096)),
        ],
        params: Params::Gemma2,
        norm_shift: 1.0,
        skip: &["lm_head.weight"],
        tensor_overrides: GEMMA_NORMS,
        ..TEXT
    },
    ArchSpec {
        hf: &["Gemma3ForCausalLM"],
        gguf: "gemma3",
        model_type: "gemma3_text",
        vocab: VocabOrder::Gemma,
        defaults: &[
            ("num_key_value_heads", Int(4)),
            ("max_position_embeddings", Int(131072)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(1e6)),
            ("rope_local_base_freq", Float(10000.0)),
            ("head_dim", Int(256)),
            ("sliding_window", Int(4096)),
        ],
        params: Params::Gemma3,
        norm_shift: 1.0,
        tensor_overrides: GEMMA_NORMS,
        ..TEXT
    },
    ArchSpec {
        hf: &["Phi3ForCausalLM"],
        gguf: "phi3",
        model_type: "phi3",
        vocab: VocabOrder::Phi3,
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(4096)),
            ("original_max_position_embeddings", Int(4096)),
            ("rms_norm_eps", Float(1e-5)),
            ("rope_theta", Float(10000.0)),
        ],
        params: Params::Phi3,
        tensor_overrides: &[("blk.{bid}.ffn_up", &["model.layers.{bid}.mlp.gate_up_proj"])],
        ..TEXT
    },
    ArchSpec {
        hf: &["BertModel", "BertForMaskedLM"],
        gguf: "bert",
        model_type: "bert",
        vocab: VocabOrder::Bert,
        defaults: &[
            ("max_position_embeddings", Int(512)),
            ("layer_norm_eps", Float(1e-12)),
            ("type_vocab_size", Int(2)),
        ],
        params: Params::Bert,
        skip: &[
            "embeddings.position_ids",
            "pooler.dense.weight",
            "pooler.dense.bias",
        ],
        tensor_overrides: BERT_MAP,
        pooling: Pooling::Encoder,
        ..TEXT
    },
    ArchSpec {
        hf: &["SmolLM3ForCausalLM"],
        gguf: "smollm3",
        model_type: "smollm3",
        permute_qk: true,
        rope_freqs: true,
        vocab: VocabOrder::Llama,
        llama_params: true,
        defaults: &[
            ("num_key_value_heads", Int(4)),
            ("max_position_embeddings", Int(32768)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(2e6)),
            ("pad_token_id", Int(128004)),
        ],
        ..TEXT
    },
    ArchSpec {
        hf: &["GraniteForCausalLM"],
        gguf: "granite",
        model_type: "granite",
        permute_qk: true,
        rope_freqs: true,
        vocab: VocabOrder::Llama,
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(2048)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
            ("attention_multiplier", Float(1.0)),
            ("embedding_multiplier", Float(1.0)),
            ("residual_multiplier", Float(1.0)),
            ("logits_scaling", Float(1.0)),
        ],
        params: Params::Granite,
        ..TEXT
    },
    ArchSpec {
        hf: &["Olmo2ForCausalLM"],
        gguf: "olmo2",
        model_type: "olmo2",
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(2048)),
            ("rms_norm_eps", Float(1e-5)),
            ("rope_theta", Float(10000.0)),
        ],
        tensor_overrides: OLMO2_NORMS,
        ..TEXT
    },
    ArchSpec {
        hf: &["Qwen2MoeForCausalLM"],
        gguf: "qwen2moe",
        model_type: "qwen2_moe",
        defaults: &[
            ("num_key_value_heads", Int(16)),
            ("max_position_embeddings", Int(32768)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
            ("num_experts", Int(60)),
            ("num_experts_per_tok", Int(4)),
            ("moe_intermediate_size", Int(1408)),
            ("shared_expert_intermediate_size", Int(5632)),
        ],
        experts: Some(&QWEN_MOE_EXPERTS),
        extra_u32: MOE_LENGTHS,
        ..TEXT
    },
    ArchSpec {
        hf: &["OlmoeForCausalLM"],
        gguf: "olmoe",
        model_type: "olmoe",
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(4096)),
            ("rms_norm_eps", Float(1e-5)),
            ("rope_theta", Float(10000.0)),
            ("num_experts", Int(64)),
            ("num_experts_per_tok", Int(8)),
        ],
        experts: Some(&QWEN_MOE_EXPERTS),
        params: Params::Olmoe,
        ..TEXT
    },
    ArchSpec {
        hf: &["Starcoder2ForCausalLM"],
        gguf: "starcoder2",
        model_type: "starcoder2",
        defaults: &[
            ("num_key_value_heads", Int(2)),
            ("max_position_embeddings", Int(4096)),
            ("norm_epsilon", Float(1e-5)),
            ("rope_theta", Float(10000.0)),
        ],
        tensor_overrides: STARCODER2_FFN,
        params: Params::Starcoder2,
        ..TEXT
    },
    ArchSpec {
        hf: &["CohereForCausalLM"],
        gguf: "command-r",
        model_type: "cohere",
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(8192)),
            ("layer_norm_eps", Float(1e-5)),
            ("rope_theta", Float(10000.0)),
            ("logit_scale", Float(0.0625)),
            ("pad_token_id", Int(0)),
        ],
        params: Params::Cohere,
        ..TEXT
    },
    ArchSpec {
        hf: &["Cohere2ForCausalLM"],
        gguf: "cohere2",
        model_type: "cohere2",
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(8192)),
            ("layer_norm_eps", Float(1e-5)),
            ("rope_theta", Float(10000.0)),
            ("logit_scale", Float(0.0625)),
            ("sliding_window", Int(4096)),
            ("head_dim", HeadDim),
            ("pad_token_id", Int(0)),
        ],
        params: Params::Cohere2,
        ..TEXT
    },
    ArchSpec {
        hf: &["Exaone4ForCausalLM"],
        gguf: "exaone4",
        model_type: "exaone4",
        rope_freqs: true,
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(2048)),
            ("rms_norm_eps", Float(1e-5)),
            ("rope_theta", Float(10000.0)),
        ],
        params: Params::Exaone4,
        tensor_overrides: OLMO2_NORMS,
        ..TEXT
    },
    ArchSpec {
        hf: &["PhiForCausalLM"],
        gguf: "phi2",
        model_type: "phi",
        defaults: &[
            ("max_position_embeddings", Int(2048)),
            ("layer_norm_eps", Float(1e-5)),
            ("partial_rotary_factor", Float(0.5)),
            ("rope_theta", Float(10000.0)),
        ],
        params: Params::Phi2,
        tensor_overrides: PHI2_MAP,
        ..TEXT
    },
    ArchSpec {
        hf: &["StableLmForCausalLM", "StableLMEpochForCausalLM"],
        gguf: "stablelm",
        model_type: "stablelm",
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(4096)),
            ("layer_norm_eps", Float(1e-5)),
            ("partial_rotary_factor", Float(0.25)),
            ("rope_theta", Float(10000.0)),
        ],
        params: Params::StableLm,
        ..TEXT
    },
    ArchSpec {
        hf: &["Mistral3ForConditionalGeneration"],
        gguf: "mistral3",
        model_type: "mistral",
        permute_qk: true,
        rope_freqs: true,
        vocab: VocabOrder::Llama,
        llama_params: true,
        defaults: &[
            ("num_key_value_heads", Int(8)),
            ("max_position_embeddings", Int(131072)),
            ("rms_norm_eps", Float(1e-5)),
            ("rope_theta", Float(1e9)),
        ],
        params: Params::Mistral3,
        ..TEXT
    },
    ArchSpec {
        hf: &["Glm4ForCausalLM"],
        gguf: "glm4",
        model_type: "glm4",
        vocab: VocabOrder::Glm4,
        defaults: &[
            ("num_key_value_heads", Int(2)),
            ("max_position_embeddings", Int(131072)),
            ("rms_norm_eps", Float(1.5625e-7)),
            ("rope_theta", Float(10000.0)),
            ("partial_rotary_factor", Float(0.5)),
            ("head_dim", Int(128)),
        ],
        params: Params::Glm4,
        tensor_overrides: GLM4_MAP,
        ..TEXT
    },
    ArchSpec {
        hf: &["GraniteMoeForCausalLM", "GraniteMoeSharedForCausalLM"],
        gguf: "granitemoe",
        model_type: "granitemoe",
        permute_qk: true,
        rope_freqs: true,
        vocab: VocabOrder::Llama,
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(2048)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
            ("attention_multiplier", Float(1.0)),
            ("embedding_multiplier", Float(1.0)),
            ("residual_multiplier", Float(1.0)),
            ("logits_scaling", Float(1.0)),
            ("num_local_experts", Int(8)),
            ("num_experts_per_tok", Int(2)),
        ],
        params: Params::GraniteMoe,
        tensor_overrides: GRANITE_MOE_MAP,
        ..TEXT
    },
];

/// The architecture for an HF class name.
pub(crate) fn find(hf_arch: &str) -> Option<&'static ArchSpec> {
    ARCHS.iter().find(|a| a.hf.contains(&hf_arch))
}

/// The HF class names lbrx converts, for error messages.
pub(crate) fn supported() -> String {
    let mut v: Vec<&str> = ARCHS.iter().flat_map(|a| a.hf.iter().copied()).collect();
    v.sort_unstable();
    v.join(", ")
}

/// The README's architecture table: each GGUF architecture with the Hugging Face classes that become it, in
/// table order.
#[cfg(test)]
pub(crate) fn markdown_table() -> String {
    let mut out = String::from("| GGUF architecture | Hugging Face classes |\n| --- | --- |\n");
    let mut seen: Vec<&str> = Vec::new();
    for a in ARCHS {
        if seen.contains(&a.gguf) {
            continue;
        }
        seen.push(a.gguf);
        let classes: Vec<String> = ARCHS
            .iter()
            .filter(|b| b.gguf == a.gguf)
            .flat_map(|b| b.hf.iter().map(|h| format!("`{h}`")))
            .collect();
        out.push_str(&format!("| `{}` | {} |\n", a.gguf, classes.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's list is the table's: between its markers it must read exactly as [`markdown_table`]
    /// renders (`LBRX_BLESS=1` rewrites it).
    #[test]
    fn readme_lists_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let text = std::fs::read_to_string(path).unwrap();
        let (begin, end) = (
            "<!-- architectures:begin -->\n",
            "<!-- architectures:end -->",
        );
        let a = text
            .find(begin)
            .expect("README has the architecture markers")
            + begin.len();
        let b = text
            .find(end)
            .expect("README has the architecture end marker");
        let want = markdown_table();
        if std::env::var("LBRX_BLESS").as_deref() == Ok("1") {
            std::fs::write(path, format!("{}{want}{}", &text[..a], &text[b..])).unwrap();
            return;
        }
        assert_eq!(
            &text[a..b],
            want,
            "README's architecture table is stale: LBRX_BLESS=1 cargo test -p lbrx-convert readme"
        );
    }

    #[test]
    fn every_arch_is_found_by_each_class() {
        for a in ARCHS {
            for h in a.hf {
                assert_eq!(find(h).map(|f| f.gguf), Some(a.gguf));
            }
        }
        assert!(supported().contains("Qwen3ForCausalLM"));
    }
}
