//! The model filters: which layers of a known model family stay in high precision (or are removed) when its
//! weights are scaled, as data. The patterns are convert-to-quant 1.3.4's (`constants.py`, `MODEL_FILTERS`)
//! so that `--filter NAME` keeps the same layers `convert-to-quant --NAME` does: a layer is kept when any
//! pattern is a substring of its weight's name.

use lbrx_core::DType;

/// One model filter.
#[derive(Debug, Clone, Copy)]
pub struct ModelFilter {
    /// `--filter` name.
    pub name: &'static str,
    /// What it is for.
    pub help: &'static str,
    /// text, diffusion, video or image.
    pub category: &'static str,
    /// Substrings of layers never quantized.
    pub exclude: &'static [&'static str],
    /// Substrings of layers kept in high precision.
    pub highprec: &'static [&'static str],
    /// Substrings of tensors dropped from the output (T5's decoder).
    pub remove: &'static [&'static str],
    /// A text encoder: each FP8 / INT8 layer gets an `input_scale` equal to its weight scale.
    pub text_encoder: bool,
    /// The last `language_model.layers.N.` / `model.layers.N.` block is kept too.
    pub exclude_final_language_layer: bool,
    /// Kept 2-D weights matching a regex get this dtype (never wider than their source's).
    pub preserve_dtype: &'static [(DType, &'static str)],
    /// Another filter this one is a name for.
    pub alias_for: Option<&'static str>,
}

const BASE: ModelFilter = ModelFilter {
    name: "",
    help: "",
    category: "",
    exclude: &[],
    highprec: &[],
    remove: &[],
    text_encoder: false,
    exclude_final_language_layer: false,
    preserve_dtype: &[],
    alias_for: None,
};

const AVOID: &[&str] = &[
    "norm",
    "bias",
    "embed_tokens",
    "lm_head",
    "shared",
    "patch_embedding",
    "audio_model.patch_embedding",
    "ref_conv",
    "control_adapter",
    "motion_encoder.enc.net_app",
    "face_encoder.conv",
    "pose_patch_embedding",
    "motion_encoder.enc.fc",
    "img_emb.proj",
    "k_norm",
    "q_norm",
    "motion_encoder.dec",
    "head.modulation",
    "casual_audio_encoder",
    "cond_encoder",
    "frame_packer",
    "norm_k",
    "norm_q",
    "tekken_model",
    "multi_modal_projector",
    "patch_conv",
    "ln_pre",
    "input_layernorm",
    "attention_norm",
    "post_attention_layernorm",
    "mm_input_projection_weight",
];
const QWEN_VLM_AVOID: &[&str] = &[
    ".layers.0.",
    "lm_head",
    "embed_tokens",
    "in_proj_a",
    "in_proj_b",
    "visual.",
    "mtp.",
];
const ZIMAGE_AVOID: &[&str] = &[
    "cap_embedder.0",
    "cap_pad_token",
    "attention_norm1",
    "attention_norm2",
    "ffn_norm1",
    "ffn_norm2",
    "k_norm",
    "q_norm",
    "x_pad_token",
];

/// Every model filter, in convert-to-quant's order.
pub const FILTERS: &[ModelFilter] = &[
    ModelFilter {
        name: "gemma4",
        help: "Gemma4 text/multimodal model: skip audio, per_layer_input_gate, per_layer_projection, vision, multi_modal_projector",
        category: "text",
        exclude: &["audio", "per_layer_input_gate", "per_layer_projection", "vision", "multi_modal_projector"],
        ..BASE
    },
    ModelFilter {
        name: "qwen_vlm",
        help: "Qwen VLM family: skip first/last language layers, embeddings, MTP, and the full visual encoder",
        category: "text",
        exclude: QWEN_VLM_AVOID,
        text_encoder: true,
        exclude_final_language_layer: true,
        preserve_dtype: &[(DType::BF16, ".*")],
        ..BASE
    },
    ModelFilter {
        name: "qwen35",
        help: "Compatibility alias for qwen_vlm",
        category: "text",
        text_encoder: true,
        alias_for: Some("qwen_vlm"),
        ..BASE
    },
    ModelFilter {
        name: "t5xxl",
        help: "T5-XXL text encoder: skip norms/biases, remove decoder layers",
        category: "text",
        exclude: AVOID,
        remove: &["decoder", "lm_head"],
        text_encoder: true,
        ..BASE
    },
    ModelFilter {
        name: "mistral",
        help: "Mistral text encoder exclusions",
        category: "text",
        exclude: AVOID,
        text_encoder: true,
        ..BASE
    },
    ModelFilter {
        name: "visual",
        help: "Visual encoder: skip MLP layers (down/up/gate proj)",
        category: "text",
        exclude: &["mlp.down_proj", "mlp.up_proj", "mlp.gate_proj"],
        text_encoder: true,
        ..BASE
    },
    ModelFilter {
        name: "generic_text",
        help: "Generic text encoder: input scales equal to the weight scales",
        category: "text",
        text_encoder: true,
        ..BASE
    },
    ModelFilter {
        name: "anima",
        help: "Anima diffusion model: keep first blocks, adaln_modulation, final/embedding layers high-precision",
        category: "diffusion",
        highprec: &["net.blocks.0.", "net.blocks.1.adaln_modulation", "final_layer", "llm_adapter", "t_embedder", "x_embedder"],
        ..BASE
    },
    ModelFilter {
        name: "lens",
        help: "LENS diffusion model: keep time_text_embed, img_in, norm_out, proj_out, some mod layers high-precision",
        category: "diffusion",
        highprec: &["time_text_embed", "img_in", "norm_out", "proj_out", "img_mod.1", "txt_mod.1", "txt_in"],
        ..BASE
    },
    ModelFilter {
        name: "flux2",
        help: "Flux.2: keep modulation/guidance/time/final layers high-precision",
        category: "diffusion",
        highprec: &["stream_modulation", "guidance_in", "time_in", "final_layer", "img_in", "txt_in"],
        ..BASE
    },
    ModelFilter {
        name: "distillation_large",
        help: "Chroma/distilled (large): keep distilled_guidance, final, img/txt_in high-precision",
        category: "diffusion",
        highprec: &["distilled_guidance_layer", "final_layer", "img_in", "txt_in"],
        ..BASE
    },
    ModelFilter {
        name: "distillation_small",
        help: "Chroma/distilled (small): keep only distilled_guidance high-precision",
        category: "diffusion",
        highprec: &["distilled_guidance_layer"],
        ..BASE
    },
    ModelFilter {
        name: "nerf_large",
        help: "NeRF (large): keep nerf_blocks, distilled_guidance, txt_in high-precision",
        category: "diffusion",
        highprec: &["distilled_guidance_layer", "nerf_blocks", "nerf_image_embedder", "txt_in", "_attn.proj"],
        ..BASE
    },
    ModelFilter {
        name: "nerf_small",
        help: "NeRF (small): keep nerf_blocks, distilled_guidance high-precision",
        category: "diffusion",
        highprec: &["distilled_guidance_layer", "nerf_blocks", "nerf_image_embedder"],
        ..BASE
    },
    ModelFilter {
        name: "radiance",
        help: "Radiance model: keep img_in_patch, nerf_final_layer high-precision",
        category: "diffusion",
        highprec: &["img_in_patch", "nerf_final_layer_conv", "__x0__"],
        ..BASE
    },
    ModelFilter {
        name: "krea2",
        help: "Krea2: keep firs, las, tml, txtfusion, last.modulation, tpro layers high-precision",
        category: "diffusion",
        highprec: &["firs", "las", "tml", "txtfusion", "last.modulatio", "tpro"],
        preserve_dtype: &[(
            DType::F32,
            r"(?:^|\.)(?:first|last\.linear|tmlp\.(?:0|2)|tproj\.1|txtfusion\.projector|txtmlp\.(?:1|3))\.weight$",
        )],
        ..BASE
    },
    ModelFilter {
        name: "ideogram4",
        help: "Ideogram4: keep embed_image_indicator, t_embedding, adaln_proj, final_layer, input_proj layers high-precision",
        category: "diffusion",
        highprec: &["embed_image_indicator", "t_embedding", "llm_cond_proj", "adaln_proj", "final_layer", "input_proj"],
        ..BASE
    },
    ModelFilter {
        name: "wan",
        help: "WAN video model: skip embeddings, encoders, head",
        category: "video",
        exclude: AVOID,
        highprec: &[
            "text_embedding",
            "time_embedding",
            "audio_model.text_embedding",
            "casual_audio_encoder",
            "frame_packer",
            "trainable_cond_mask",
            "cond_encoder",
            "audio_model.time_embedding",
            "time_projection",
            "video_model.time_projection",
            "head.head",
            "face_encoder.out_proj",
            "face_adapter",
            "audio_injector",
        ],
        ..BASE
    },
    ModelFilter {
        name: "hunyuan",
        help: "Hunyuan Video 1.5: skip layernorm, attn norms, vision_in",
        category: "video",
        exclude: &[
            "layernorm",
            "img_attn_k_norm",
            "img_attn_q_norm",
            "txt_attn_k_norm",
            "txt_attn_q_norm",
            "norm1",
            "norm2",
            "vision_in.proj.0",
            "vision_in.proj.4",
            "img_in.proj",
            "cond_type_embedding",
        ],
        ..BASE
    },
    ModelFilter {
        name: "minimaxh3",
        help: "MiniMax H3: keep patch/condition/final/time and token-refiner layers high-precision",
        category: "video",
        highprec: &["audio_patch_proj", "condition_proj", "final_layer", "time_embedder", "token_refiner", "video_patch_proj"],
        ..BASE
    },
    ModelFilter {
        name: "qwen",
        help: "Qwen Image: skip added norms, keep time_text_embed high-precision",
        category: "image",
        exclude: &["norm_added_k", "norm_added_q", "norm_k", "norm_q", "txt_norm"],
        highprec: &["time_text_embed", "img_in", "norm_out", "proj_out", "transformer_blocks.0.img_mod.1", "txt_in"],
        ..BASE
    },
    ModelFilter {
        name: "zimage",
        help: "Z-Image: skip cap_embedder/norms, keep x_embedder/final high-precision",
        category: "image",
        exclude: ZIMAGE_AVOID,
        highprec: &["x_embedder", "clip_text_pooled_proj", "final_layer", "cap_embedder.1", "adaLN_modulation", "t_embedder", "time_text_embed"],
        ..BASE
    },
    ModelFilter {
        name: "zimage_refiner",
        help: "Z-Image Refiner: keep context/noise refiner high-precision",
        category: "image",
        exclude: ZIMAGE_AVOID,
        highprec: &["context_refiner", "noise_refiner"],
        ..BASE
    },
    ModelFilter {
        name: "boogu",
        help: "Boogu: keep image_index_embedding, ref_image_patch_embedder, time_caption_embed, x_embedder high-precision",
        category: "image",
        highprec: &["image_index_embedding", "ref_image_patch_embedder", "time_caption_embed", "x_embedder", "norm_out.linear_1", "norm_out.linear_2"],
        ..BASE
    },
    ModelFilter {
        name: "ltxv2",
        help: "LTXv2: keep some transformer blocks high-precision and exclude vae and vocoder",
        category: "video",
        highprec: &[
            "scale_shift_table",
            "text_embedding_projection",
            "audio_vae",
            "audio_embeddings_connector",
            "adaln_single",
            "audio_adaln_single",
            "audio_patchify_proj",
            "audio_proj_out",
            "audio_prompt_adaln_single",
            "av_ca_a2v_gate_adaln_single",
            "av_ca_audio_scale_shift_adaln_single",
            "av_ca_v2a_gate_adaln_single",
            "av_ca_video_scale_shift_adaln_single",
            "patchify_proj",
            "proj_out",
            "prompt_adaln_single",
            "transformer_blocks.0.",
            "transformer_blocks.1.",
            "transformer_blocks.46.",
            "transformer_blocks.47.",
            "video_embeddings_connector",
            "vae.decoder",
            "vae.encoder",
            "vocoder",
            "to_gate_logits",
        ],
        ..BASE
    },
];

/// The filter named `name` (its alias target resolved for patterns), or an error listing them all.
pub fn named(name: &str) -> Result<&'static ModelFilter, String> {
    FILTERS.iter().find(|f| f.name == name).ok_or_else(|| {
        format!(
            "no model filter '{name}' (there are: {})",
            FILTERS
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

impl ModelFilter {
    /// The filter whose patterns this one uses (itself, or its alias target).
    pub fn target(&'static self) -> &'static ModelFilter {
        self.alias_for
            .and_then(|a| FILTERS.iter().find(|f| f.name == a))
            .unwrap_or(self)
    }

    /// The substrings of layers it keeps out of quantization for a model with tensors `names` (the final
    /// language layer resolved), in order, without repeats.
    pub fn patterns<'a>(&'static self, names: impl Iterator<Item = &'a str>) -> Vec<String> {
        let t = self.target();
        let mut out: Vec<String> = Vec::new();
        let mut push = |p: String| {
            if !out.contains(&p) {
                out.push(p);
            }
        };
        for p in t.exclude.iter().chain(t.highprec) {
            push(p.to_string());
        }
        if t.exclude_final_language_layer {
            let re = regex::Regex::new(
                r"(?:^|\.)(?P<prefix>(?:model\.)?language_model\.layers|model\.layers)\.(?P<index>\d+)\.",
            )
            .ok();
            let mut last: Vec<(String, u64)> = Vec::new();
            for n in names {
                let Some(c) = re.as_ref().and_then(|re| re.captures(n)) else {
                    continue;
                };
                let (p, i) = (
                    c["prefix"].to_string(),
                    c["index"].parse::<u64>().unwrap_or(0),
                );
                match last.iter_mut().find(|(q, _)| *q == p) {
                    Some((_, m)) => *m = (*m).max(i),
                    None => last.push((p, i)),
                }
            }
            for (p, i) in last {
                push(format!("{p}.{i}."));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::scaled::filters::{named, FILTERS};

    #[test]
    fn names_are_unique_and_aliases_resolve() {
        for f in FILTERS {
            assert_eq!(
                FILTERS.iter().filter(|g| g.name == f.name).count(),
                1,
                "{}",
                f.name
            );
            if let Some(a) = f.alias_for {
                assert!(named(a).is_ok(), "{a}");
            }
            for (_, re) in f.preserve_dtype {
                assert!(regex::Regex::new(re).is_ok(), "{re}");
            }
        }
        assert_eq!(FILTERS.len(), 25);
        let names = [
            "model.layers.0.mlp.weight",
            "model.layers.11.mlp.weight",
            "model.layers.3.x.weight",
        ];
        let p = named("qwen35").unwrap().patterns(names.iter().copied());
        assert!(p.contains(&"model.layers.11.".to_string()), "{p:?}");
    }
}
