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
    /// GLM-4: a BPE `tokenizer.json` whose end, turn-end, unknown and begin tokens are looked up by name
    /// ([`GLM4_SPECIALS`]) when the tokenizer's files leave them unset.
    Glm4,
}

/// GLM-4's special tokens by name (llama.cpp's Glm4Model.set_vocab), set where the files leave a type unset.
pub(crate) const GLM4_SPECIALS: &[(&str, &str)] = &[
    ("eos", "<|endoftext|>"),
    ("eot", "<|user|>"),
    ("unk", "<|endoftext|>"),
    ("bos", "<|endoftext|>"),
];

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
    /// The generic keys; the reverse config normalizes the top-k routing weights, as Qwen3-MoE does.
    Qwen3Moe,
    /// Llama's keys without `head_dim`, then Granite's attention, embedding, residual and logit scales.
    Granite,
    /// The generic keys; the reverse config has StarCoder 2's bias switch, LayerNorm epsilon and GELU.
    Starcoder2,
    /// Command-R: context from `model_max_length`, the logit scale, no RoPE scaling.
    Cohere,
    /// Command-R7B: the logit scale, sliding window, vocabulary size, rotary dimensions; biases dropped.
    Cohere2,
    /// EXAONE 4: the vocabulary size and the sliding-window layer pattern.
    Exaone4,
    /// Phi-2's own list (feed-forward 4 x embedding, rotary fraction, no BOS).
    Phi2,
    /// StableLM's own list (rotary fraction, parallel residual).
    StableLm,
    /// The generic keys; converts back as the text-only `MistralForCausalLM` (the vision tower is not in a GGUF).
    Mistral3,
    /// The generic keys, then the rotary dimensions (`head_dim x partial_rotary_factor`).
    Glm4,
    /// Granite's keys and the shared expert's width; the fused expert and shared gate/up projections cut in two.
    GraniteMoe,
    /// The generic keys with OLMoE's fixed RMS epsilon (1e-5).
    Olmoe,
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
    /// Computes Llama 3's `rope_freqs` when the config's RoPE type is `llama3` (LlamaModel, EXAONE 4).
    pub rope_freqs: bool,
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
        "blk.{bid}.ffn_gate_shexp",
        &["model.layers.{bid}.mlp.shared_expert.gate_proj"],
    ),
    (
        "blk.{bid}.ffn_up_shexp",
        &["model.layers.{bid}.mlp.shared_expert.up_proj"],
    ),
    (
        "blk.{bid}.ffn_down_shexp",
        &["model.layers.{bid}.mlp.shared_expert.down_proj"],
    ),
    (
        "blk.{bid}.ffn_gate_inp_shexp",
        &["model.layers.{bid}.mlp.shared_expert_gate"],
    ),
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
pub(crate) const ALWAYS_F32: &[&str] = &[
    "ffn_gate_inp",
    "ffn_gate_inp_shexp",
    "position_embd",
    "token_types",
];

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
}
