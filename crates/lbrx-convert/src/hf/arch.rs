//! Architecture maps, as data: which Hugging Face classes lbrx converts, the GGUF architecture each becomes,
//! the tensor-name table (HF module path -> GGUF tensor name) and the config defaults `transformers` fills in
//! when `config.json` leaves a field out.

/// How an architecture's tokenizer is looked for, in llama.cpp's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VocabOrder {
    /// Llama family: `add_prefix_space` from tokenizer_config, then `tokenizer.model` (SentencePiece), else a
    /// BPE `tokenizer.json`.
    Llama,
    /// `tokenizer.model` (SentencePiece), else a BPE `tokenizer.json`.
    SpmThenBpe,
    /// A BPE `tokenizer.json` only.
    Bpe,
    /// Gemma: `tokenizer.model` (then `add_space_prefix = false`), else a BPE `tokenizer.json`.
    Gemma,
    /// Phi-3: its own SentencePiece reading (added tokens from tokenizer_config and tokenizer.json), or BPE
    /// when `tokenizer_class` is `GPT2Tokenizer` (Phi-4).
    Phi3,
    /// BERT: WordPiece from `tokenizer.json`, tokens in llama.cpp's phantom-space form.
    Bert,
}

/// Which hook set (`hooks.rs`: llama.cpp's `set_gguf_parameters`, computed tensors, tensor filters, the
/// reverse config) an architecture uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Params {
    /// `TextModel`: the generic keys.
    Text,
    /// Gemma 2's own list (no RoPE base; soft-capping and sliding window).
    Gemma2,
    /// The generic keys, then Gemma 3's overrides.
    Gemma3,
    /// Phi-3's own list (original context, rotary dimensions, sliding window) and LongRoPE factors.
    Phi3,
    /// The generic keys; the reverse config records whether Q has a bias.
    Qwen2,
    /// The generic keys; BERT's tensor filter (no `bert.` prefix, `gamma`/`beta` renamed, heads dropped).
    Bert,
}

/// A default `transformers` gives a config field that `config.json` omits.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ConfigDefault {
    /// A fixed integer.
    Int(i64),
    /// A fixed float.
    Float(f64),
    /// The value of another field.
    Same(&'static str),
    /// `hidden_size / num_attention_heads`.
    HeadDim,
}

/// One supported architecture.
#[derive(Debug)]
pub(crate) struct ArchSpec {
    /// `architectures[0]` values in `config.json`.
    pub hf: &'static [&'static str],
    /// `general.architecture`.
    pub gguf: &'static str,
    /// `model_type` in the `config.json` of a GGUF converted back.
    pub model_type: &'static str,
    /// Q/K rows are permuted from HF's rotary layout to ggml's (Llama family, normal RoPE).
    pub permute_qk: bool,
    /// Where the tokenizer comes from.
    pub vocab: VocabOrder,
    /// Writes `{arch}.vocab_size` and `{arch}.rope.dimension_count` (llama.cpp's LlamaModel does).
    pub llama_params: bool,
    /// Config defaults, applied in order.
    pub defaults: &'static [(&'static str, ConfigDefault)],
    /// Per-expert tensors stacked into one 3-D tensor per projection (MoE).
    pub experts: Option<&'static Experts>,
    /// Extra `{arch}.KEY` (u32) written after `general.file_type`: (key, config fields tried in order).
    pub extra_u32: &'static [(&'static str, &'static [&'static str])],
    /// Hyper-parameter recipe.
    pub params: Params,
    /// Added to every `*norm.weight` (Gemma stores norm weights as offsets from 1).
    pub norm_shift: f32,
    /// HF tensors this architecture leaves out.
    pub skip: &'static [&'static str],
    /// Name mappings that take precedence over [`TENSOR_MAP`] for this architecture.
    pub tensor_overrides: &'static [(&'static str, &'static [&'static str])],
    /// Writes `{arch}.pooling_type` from a sentence-transformers `modules.json` (llama.cpp's
    /// `_try_set_pooling_type`); BERT also marks attention non-causal.
    pub pooling: Pooling,
}

/// Whether an architecture records its pooling (embedding models).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pooling {
    /// No pooling keys.
    None,
    /// `pooling_type` when `modules.json` names a pooling module.
    IfPresent,
    /// `attention.causal = false`, then `pooling_type` when present (encoders).
    Encoder,
}

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

/// How an MoE architecture names its experts.
#[derive(Debug)]
pub(crate) struct Experts {
    /// One expert's projection: `{bid}` block, `{xid}` expert, `{w}` projection.
    pub pattern: &'static str,
    /// Projections, in the order llama.cpp emits the stacked tensors.
    pub projections: &'static [&'static str],
    /// The stacked tensor's HF-style name, looked up in [`TENSOR_MAP`].
    pub merged: &'static str,
    /// Config fields holding the expert count.
    pub count_keys: &'static [&'static str],
}

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

/// Every architecture lbrx converts to GGUF.
pub(crate) const ARCHS: &[ArchSpec] = &[
    ArchSpec {
        hf: &["LlamaForCausalLM", "LLaMAForCausalLM", "LlamaModel"],
        gguf: "llama",
        model_type: "llama",
        permute_qk: true,
        vocab: VocabOrder::Llama,
        llama_params: true,
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(2048)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
            ("head_dim", HeadDim),
        ],
        experts: None,
        extra_u32: &[],
        params: Params::Text,
        norm_shift: 0.0,
        skip: &[],
        tensor_overrides: &[],
        pooling: Pooling::None,
    },
    ArchSpec {
        hf: &["MistralForCausalLM"],
        gguf: "llama",
        model_type: "mistral",
        permute_qk: true,
        vocab: VocabOrder::Llama,
        llama_params: true,
        defaults: &[
            ("num_key_value_heads", Int(8)),
            ("max_position_embeddings", Int(131072)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
        ],
        experts: None,
        extra_u32: &[],
        params: Params::Text,
        norm_shift: 0.0,
        skip: &[],
        tensor_overrides: &[],
        pooling: Pooling::None,
    },
    ArchSpec {
        hf: &["MixtralForCausalLM"],
        gguf: "llama",
        model_type: "mixtral",
        permute_qk: true,
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
        extra_u32: &[],
        params: Params::Text,
        norm_shift: 0.0,
        skip: &[],
        tensor_overrides: &[],
        pooling: Pooling::None,
    },
    ArchSpec {
        hf: &["Qwen2ForCausalLM", "Qwen2Model"],
        gguf: "qwen2",
        model_type: "qwen2",
        permute_qk: false,
        vocab: VocabOrder::SpmThenBpe,
        llama_params: false,
        defaults: &[
            ("num_key_value_heads", Int(32)),
            ("max_position_embeddings", Int(32768)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
        ],
        experts: None,
        extra_u32: &[],
        params: Params::Qwen2,
        norm_shift: 0.0,
        skip: &[],
        tensor_overrides: &[],
        pooling: Pooling::IfPresent,
    },
    ArchSpec {
        hf: &["Qwen3ForCausalLM", "Qwen3Model"],
        gguf: "qwen3",
        model_type: "qwen3",
        permute_qk: false,
        vocab: VocabOrder::SpmThenBpe,
        llama_params: false,
        defaults: &[
            ("num_key_value_heads", Int(32)),
            ("max_position_embeddings", Int(32768)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(10000.0)),
            ("head_dim", Int(128)),
        ],
        experts: None,
        extra_u32: &[],
        params: Params::Text,
        norm_shift: 0.0,
        skip: &[],
        tensor_overrides: &[],
        pooling: Pooling::IfPresent,
    },
    ArchSpec {
        hf: &["Qwen3MoeForCausalLM"],
        gguf: "qwen3moe",
        model_type: "qwen3_moe",
        permute_qk: false,
        vocab: VocabOrder::Bpe,
        llama_params: false,
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
        extra_u32: &[
            ("expert_feed_forward_length", &["moe_intermediate_size"]),
            (
                "expert_shared_feed_forward_length",
                &["shared_expert_intermediate_size"],
            ),
        ],
        params: Params::Text,
        norm_shift: 0.0,
        skip: &[],
        tensor_overrides: &[],
        pooling: Pooling::None,
    },
    ArchSpec {
        hf: &["Gemma2ForCausalLM"],
        gguf: "gemma2",
        model_type: "gemma2",
        permute_qk: false,
        vocab: VocabOrder::Gemma,
        llama_params: false,
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
        experts: None,
        extra_u32: &[],
        params: Params::Gemma2,
        norm_shift: 1.0,
        skip: &["lm_head.weight"],
        tensor_overrides: GEMMA_NORMS,
        pooling: Pooling::None,
    },
    ArchSpec {
        hf: &["Gemma3ForCausalLM"],
        gguf: "gemma3",
        model_type: "gemma3_text",
        permute_qk: false,
        vocab: VocabOrder::Gemma,
        llama_params: false,
        defaults: &[
            ("num_key_value_heads", Int(4)),
            ("max_position_embeddings", Int(131072)),
            ("rms_norm_eps", Float(1e-6)),
            ("rope_theta", Float(1e6)),
            ("rope_local_base_freq", Float(10000.0)),
            ("head_dim", Int(256)),
            ("sliding_window", Int(4096)),
        ],
        experts: None,
        extra_u32: &[],
        params: Params::Gemma3,
        norm_shift: 1.0,
        skip: &[],
        tensor_overrides: GEMMA_NORMS,
        pooling: Pooling::None,
    },
    ArchSpec {
        hf: &["Phi3ForCausalLM"],
        gguf: "phi3",
        model_type: "phi3",
        permute_qk: false,
        vocab: VocabOrder::Phi3,
        llama_params: false,
        defaults: &[
            ("num_key_value_heads", Same("num_attention_heads")),
            ("max_position_embeddings", Int(4096)),
            ("original_max_position_embeddings", Int(4096)),
            ("rms_norm_eps", Float(1e-5)),
            ("rope_theta", Float(10000.0)),
        ],
        experts: None,
        extra_u32: &[],
        params: Params::Phi3,
        norm_shift: 0.0,
        skip: &[],
        tensor_overrides: &[("blk.{bid}.ffn_up", &["model.layers.{bid}.mlp.gate_up_proj"])],
        pooling: Pooling::None,
    },
    ArchSpec {
        hf: &["BertModel", "BertForMaskedLM"],
        gguf: "bert",
        model_type: "bert",
        permute_qk: false,
        vocab: VocabOrder::Bert,
        llama_params: false,
        defaults: &[
            ("max_position_embeddings", Int(512)),
            ("layer_norm_eps", Float(1e-12)),
            ("type_vocab_size", Int(2)),
        ],
        experts: None,
        extra_u32: &[],
        params: Params::Bert,
        norm_shift: 0.0,
        skip: &[
            "embeddings.position_ids",
            "pooler.dense.weight",
            "pooler.dense.bias",
        ],
        tensor_overrides: BERT_MAP,
        pooling: Pooling::Encoder,
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

/// HF module paths (`{bid}` = block number) and the GGUF tensor each becomes (the `.weight`/`.bias` suffix
/// carries over). One table for every architecture, as gguf-py's `TensorNameMap`.
pub(crate) const TENSOR_MAP: &[(&str, &[&str])] = &[
    ("token_embd", &["model.embed_tokens", "embed_tokens"]),
    ("output", &["lm_head"]),
    ("output_norm", &["model.norm", "norm"]),
    ("rope_freqs", &["rope.freqs"]),
    (
        "blk.{bid}.attn_norm",
        &["model.layers.{bid}.input_layernorm"],
    ),
    ("blk.{bid}.attn_q", &["model.layers.{bid}.self_attn.q_proj"]),
    ("blk.{bid}.attn_k", &["model.layers.{bid}.self_attn.k_proj"]),
    ("blk.{bid}.attn_v", &["model.layers.{bid}.self_attn.v_proj"]),
    (
        "blk.{bid}.attn_output",
        &["model.layers.{bid}.self_attn.o_proj"],
    ),
    (
        "blk.{bid}.attn_qkv",
        &["model.layers.{bid}.self_attn.qkv_proj"],
    ),
    (
        "blk.{bid}.attn_q_norm",
        &["model.layers.{bid}.self_attn.q_norm"],
    ),
    (
        "blk.{bid}.attn_k_norm",
        &["model.layers.{bid}.self_attn.k_norm"],
    ),
    (
        "blk.{bid}.ffn_norm",
        &["model.layers.{bid}.post_attention_layernorm"],
    ),
    ("blk.{bid}.ffn_gate", &["model.layers.{bid}.mlp.gate_proj"]),
    ("blk.{bid}.ffn_up", &["model.layers.{bid}.mlp.up_proj"]),
    ("blk.{bid}.ffn_down", &["model.layers.{bid}.mlp.down_proj"]),
    (
        "blk.{bid}.ffn_gate_inp",
        &[
            "model.layers.{bid}.block_sparse_moe.gate",
            "model.layers.{bid}.mlp.gate",
        ],
    ),
    (
        "blk.{bid}.ffn_gate_exps",
        &[
            "model.layers.{bid}.block_sparse_moe.experts.w1",
            "model.layers.{bid}.mlp.experts.gate_proj",
        ],
    ),
    (
        "blk.{bid}.ffn_down_exps",
        &[
            "model.layers.{bid}.block_sparse_moe.experts.w2",
            "model.layers.{bid}.mlp.experts.down_proj",
        ],
    ),
    (
        "blk.{bid}.ffn_up_exps",
        &[
            "model.layers.{bid}.block_sparse_moe.experts.w3",
            "model.layers.{bid}.mlp.experts.up_proj",
        ],
    ),
];

/// Names that llama.cpp keeps in F32 whatever the output type (besides vectors and norms).
pub(crate) const ALWAYS_F32: &[&str] = &["ffn_gate_inp", "position_embd", "token_types"];

/// Maps an HF tensor name to its GGUF name through `overrides`, then [`TENSOR_MAP`] (`None`: in neither).
/// `blocks` bounds the block number.
pub(crate) fn map_name_for(
    name: &str,
    blocks: u64,
    overrides: &[(&str, &[&str])],
) -> Option<String> {
    map_in(name, blocks, overrides).or_else(|| map_in(name, blocks, TENSOR_MAP))
}

/// Maps an HF tensor name through [`TENSOR_MAP`] alone.
#[cfg(test)]
pub(crate) fn map_name(name: &str, blocks: u64) -> Option<String> {
    map_in(name, blocks, TENSOR_MAP)
}

/// Splits `name.weight` / `name.bias` into (base, suffix); other names have an empty suffix.
pub(crate) fn split_suffix(name: &str) -> (&str, &str) {
    match name.rsplit_once('.') {
        Some((b, s)) if s == "weight" || s == "bias" => (b, s),
        _ => (name, ""),
    }
}

/// Matches `base` against a name template with an optional `{bid}`: `None` no match, `Some(None)` a match
/// without a block number, `Some(Some(digits))` the block number's digits.
pub(crate) fn match_template<'a>(tmpl: &str, base: &'a str) -> Option<Option<&'a str>> {
    match tmpl.split_once("{bid}") {
        None => (tmpl == base).then_some(None),
        Some((pre, post)) => base
            .strip_prefix(pre)
            .and_then(|r| r.strip_suffix(post))
            .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
            .map(Some),
    }
}

fn map_in(name: &str, blocks: u64, table: &[(&str, &[&str])]) -> Option<String> {
    let (base, suffix) = split_suffix(name);
    for (gguf, hfs) in table {
        for hf in *hfs {
            let bid = match match_template(hf, base) {
                Some(None) => None,
                Some(Some(mid)) => match mid.parse::<u64>() {
                    Ok(b) if b < blocks => Some(b),
                    _ => continue,
                },
                None => continue,
            };
            let mut out = match bid {
                Some(b) => gguf.replace("{bid}", &b.to_string()),
                None => gguf.to_string(),
            };
            if !suffix.is_empty() {
                out.push('.');
                out.push_str(suffix);
            }
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_with_block_and_suffix() {
        assert_eq!(
            map_name("model.layers.3.self_attn.q_proj.weight", 4).as_deref(),
            Some("blk.3.attn_q.weight")
        );
        assert_eq!(
            map_name("model.layers.3.self_attn.q_proj.bias", 4).as_deref(),
            Some("blk.3.attn_q.bias")
        );
        assert_eq!(map_name("model.layers.4.mlp.up_proj.weight", 4), None);
        assert_eq!(map_name("model.layers.x.mlp.up_proj.weight", 4), None);
        assert_eq!(
            map_name("lm_head.weight", 1).as_deref(),
            Some("output.weight")
        );
        assert_eq!(map_name("model.vision.weight", 1), None);
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
