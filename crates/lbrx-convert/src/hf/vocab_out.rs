//! GGUF `tokenizer.ggml.*` keys -> Hugging Face tokenizer files: `tokenizer.json` (byte-level BPE with the
//! pre-tokenizer llama.cpp names) or `tokenizer.model` (SentencePiece protobuf), and `tokenizer_config.json`
//! with the special tokens, add-BOS/EOS flags and the chat template. Converting the result back gives the
//! same tokenizer keys.

use super::arch::{ArchSpec, VocabOrder};
use crate::writer::pretty;
use lbrx_core::{Error, Metadata, Result, Value};
use lbrx_formats::sentencepiece::{ModelProto, NormalizerSpec, SentencePiece, TrainerSpec};
use serde_json::{json, Map, Value as Json};

/// Pre-tokenizer splitting of llama.cpp's BPE pre-tokenizer names, as the original `tokenizer.json` has it:
/// (name, split regex or `None` for GPT-2's built-in byte-level regex, NFC normalizer, ignore_merges).
const BPE_PRE: &[(&str, Option<&str>, bool, bool)] = &[
    (
        "llama-bpe",
        Some("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"),
        false,
        true,
    ),
    (
        "qwen2",
        Some("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"),
        true,
        false,
    ),
    ("gpt-2", None, false, false),
    ("default", None, false, false),
];

fn strings(m: &Metadata, key: &str) -> Vec<String> {
    match m.get(key) {
        Some(Value::Array(_, a)) => a
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect(),
        _ => Vec::new(),
    }
}

fn numbers(m: &Metadata, key: &str) -> Vec<f64> {
    match m.get(key) {
        Some(Value::Array(_, a)) => a
            .iter()
            .map(|v| match v {
                Value::F32(x) => f64::from(*x),
                Value::I32(x) => f64::from(*x),
                other => other.as_u64().map_or(0.0, |u| u as f64),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn id(m: &Metadata, name: &str) -> Option<u64> {
    m.get(&format!("tokenizer.ggml.{name}"))
        .and_then(Value::as_u64)
}

fn flag(m: &Metadata, name: &str) -> Option<bool> {
    match m.get(&format!("tokenizer.ggml.{name}")) {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    }
}

fn added_entry(content: &str, special: bool) -> Json {
    json!({"content": content, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": special})
}

/// The tokenizer files for a GGUF's tokenizer keys.
pub(crate) fn tokenizer_files(m: &Metadata, spec: &ArchSpec) -> Result<Vec<(String, Vec<u8>)>> {
    let model = m
        .get("tokenizer.ggml.model")
        .and_then(Value::as_str)
        .unwrap_or("");
    let tokens = strings(m, "tokenizer.ggml.tokens");
    let types: Vec<i64> = numbers(m, "tokenizer.ggml.token_type")
        .iter()
        .map(|&t| t as i64)
        .collect();
    if tokens.is_empty() || types.len() != tokens.len() {
        return Err(Error::Invalid(
            "GGUF has no usable tokenizer.ggml.tokens / token_type".into(),
        ));
    }
    let content = |name: &str| id(m, name).and_then(|i| tokens.get(i as usize).cloned());
    let mut tc = Map::new();
    let mut decoder = Map::new();
    let mut files = Vec::new();
    match model {
        "gpt2" => {
            let pre = m
                .get("tokenizer.ggml.pre")
                .and_then(Value::as_str)
                .unwrap_or("default");
            let &(_, regex, nfc, ignore_merges) = BPE_PRE.iter().find(|p| p.0 == pre).ok_or_else(|| Error::Unsupported {
                path: "tokenizer.ggml.pre".into(),
                what: format!(
                    "rebuilding a tokenizer.json for the '{pre}' pre-tokenizer is not supported yet (supported: {})",
                    BPE_PRE.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
                ),
            })?;
            let mut vocab = Map::new();
            let mut added = Vec::new();
            for (i, (t, &ty)) in tokens.iter().zip(&types).enumerate() {
                match ty {
                    3 | 4 => {
                        added.push(json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": ty == 3}));
                        decoder.insert(i.to_string(), added_entry(t, ty == 3));
                    }
                    5 => {}
                    _ => {
                        vocab.insert(t.clone(), json!(i));
                    }
                }
            }
            let merges: Vec<Json> = strings(m, "tokenizer.ggml.merges")
                .iter()
                .map(|s| {
                    let (a, b) = s.split_once(' ').unwrap_or((s, ""));
                    json!([a, b])
                })
                .collect();
            let byte_level = |regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": !regex, "use_regex": regex});
            let pre_tok = match regex {
                Some(r) => json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": false},
                    byte_level(false)
                ]}),
                None => byte_level(true),
            };
            let bl_post = json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true});
            let post = match (flag(m, "add_bos_token"), content("bos_token_id")) {
                (Some(true), Some(bos)) => {
                    let bid = id(m, "bos_token_id").unwrap_or(0);
                    json!({"type": "Sequence", "processors": [bl_post, {
                        "type": "TemplateProcessing",
                        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                        "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                 {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                        "special_tokens": {bos.clone(): {"id": bos, "ids": [bid], "tokens": [bos]}}
                    }]})
                }
                _ => bl_post,
            };
            let tj = json!({
                "version": "1.0",
                "truncation": null,
                "padding": null,
                "added_tokens": added,
                "normalizer": if nfc { json!({"type": "NFC"}) } else { Json::Null },
                "pre_tokenizer": pre_tok,
                "post_processor": post,
                "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
                "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                          "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                          "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges},
            });
            files.push((
                "tokenizer.json".to_string(),
                serde_json::to_vec(&tj).unwrap_or_default(),
            ));
            tc.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
        }
        "llama" => {
            let scores = numbers(m, "tokenizer.ggml.scores");
            // drop the [PADn] entries llama.cpp appends up to the config's vocab size
            let n = (0..tokens.len())
                .rev()
                .find(|&i| !(types[i] == 5 && tokens[i] == format!("[PAD{i}]")))
                .map_or(0, |i| i + 1);
            // SentencePiece needs exactly one UNKNOWN piece: the GGUF's unknown token, else its first
            // UNKNOWN-typed token, else `<unk>` at id 0 (llama.cpp may have retyped it as control).
            let unk = id(m, "unknown_token_id")
                .map(|u| u as usize)
                .or_else(|| types.iter().position(|&t| t == 2))
                .or_else(|| (tokens.first().map(String::as_str) == Some("<unk>")).then_some(0))
                .unwrap_or(0);
            let mut pieces = Vec::with_capacity(n);
            for i in 0..n {
                let ty = types[i];
                let score = scores.get(i).copied().unwrap_or(0.0) as f32;
                let kind = if i == unk {
                    2
                } else if ty == 2 || !(1..=6).contains(&ty) {
                    1
                } else {
                    ty as i32
                };
                pieces.push(SentencePiece {
                    piece: Some(tokens[i].clone()),
                    score: Some(score),
                    kind: Some(kind),
                });
                // tokens llama.cpp took from tokenizer_config (score -1000) or marked user-defined go back there
                if ty == 4 || (ty == 3 && score == -1000.0) {
                    decoder.insert(i.to_string(), added_entry(&tokens[i], ty == 3));
                }
            }
            let sid = |name: &str| id(m, name).map(|v| v as i32);
            let proto = ModelProto {
                pieces,
                trainer_spec: Some(TrainerSpec {
                    model_type: Some(2),
                    vocab_size: Some(n as i32),
                    byte_fallback: Some(types.contains(&6)),
                    unk_id: Some(unk as i32),
                    bos_id: sid("bos_token_id").or(Some(-1)),
                    eos_id: sid("eos_token_id").or(Some(-1)),
                    pad_id: sid("padding_token_id").or(Some(-1)),
                }),
                normalizer_spec: Some(NormalizerSpec {
                    name: Some("identity".into()),
                    add_dummy_prefix: Some(
                        flag(m, "add_space_prefix").unwrap_or(spec.vocab != VocabOrder::Gemma),
                    ),
                    remove_extra_whitespaces: Some(false),
                    escape_whitespaces: Some(true),
                }),
            };
            use prost::Message;
            files.push(("tokenizer.model".to_string(), proto.encode_to_vec()));
            tc.insert(
                "tokenizer_class".into(),
                json!(if spec.vocab == VocabOrder::Gemma {
                    "GemmaTokenizer"
                } else {
                    "LlamaTokenizer"
                }),
            );
            tc.insert("legacy".into(), json!(false));
            tc.insert(
                "unk_token".into(),
                json!(tokens.get(unk).cloned().unwrap_or_default()),
            );
        }
        "bert" => {
            // undo llama.cpp's phantom-space form: "▁x" starts a word, anything else continues one
            let mut vocab = Map::new();
            let mut added = Vec::new();
            for (i, (t, &ty)) in tokens.iter().zip(&types).enumerate() {
                let word = if ty == 3 {
                    added.push(json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}));
                    decoder.insert(i.to_string(), added_entry(t, true));
                    t.clone()
                } else if let Some(w) = t.strip_prefix('\u{2581}') {
                    w.to_string()
                } else {
                    format!("##{t}")
                };
                vocab.insert(word, json!(i));
            }
            let lower = flag(m, "normalizer.lowercase").unwrap_or(true);
            let strip = match m.get("tokenizer.ggml.normalizer.strip_accents") {
                Some(Value::Bool(b)) => json!(b),
                _ => Json::Null,
            };
            let cls = content("bos_token_id").unwrap_or_else(|| "[CLS]".into());
            let sep = content("seperator_token_id")
                .or_else(|| content("eos_token_id"))
                .unwrap_or_else(|| "[SEP]".into());
            let cls_id = tokens.iter().position(|t| *t == cls).unwrap_or(0);
            let sep_id = tokens.iter().position(|t| *t == sep).unwrap_or(0);
            let unk = content("unknown_token_id").unwrap_or_else(|| "[UNK]".into());
            let tj = json!({
                "version": "1.0",
                "truncation": null,
                "padding": null,
                "added_tokens": added,
                "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                               "strip_accents": strip, "lowercase": lower},
                "pre_tokenizer": {"type": "BertPreTokenizer"},
                "post_processor": {
                    "type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": cls, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                               {"SpecialToken": {"id": sep, "type_id": 0}}],
                    "pair": [{"SpecialToken": {"id": cls, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                             {"SpecialToken": {"id": sep, "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                             {"SpecialToken": {"id": sep, "type_id": 1}}],
                    "special_tokens": {
                        cls.clone(): {"id": cls, "ids": [cls_id], "tokens": [cls]},
                        sep.clone(): {"id": sep, "ids": [sep_id], "tokens": [sep]}
                    }
                },
                "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
                "model": {"type": "WordPiece", "unk_token": unk, "continuing_subword_prefix": "##",
                          "max_input_chars_per_word": 100, "vocab": vocab},
            });
            files.push(("tokenizer.json".to_string(), serde_json::to_vec(&tj).unwrap_or_default()));
            tc.insert("tokenizer_class".into(), json!("BertTokenizer"));
            tc.insert("do_lower_case".into(), json!(lower));
            tc.insert("cls_token".into(), json!(cls));
            tc.insert("sep_token".into(), json!(sep));
            if let Some(mask) = content("mask_token_id") {
                tc.insert("mask_token".into(), json!(mask));
            }
        }
        other => {
            return Err(Error::Unsupported {
                path: "tokenizer.ggml.model".into(),
                what: format!(
                "rebuilding a '{other}' tokenizer is not supported yet (supported: gpt2, llama, bert)"
            ),
            })
        }
    }
    tc.insert("added_tokens_decoder".into(), Json::Object(decoder));
    for (key, name) in [
        ("bos_token", "bos_token_id"),
        ("eos_token", "eos_token_id"),
        ("unk_token", "unknown_token_id"),
        ("pad_token", "padding_token_id"),
    ] {
        // a padding id on an ordinary token (a config's `pad_token_id: 0` on "!") stays in config.json: as
        // the tokenizer's pad token it would become special and change how text splits
        if key == "pad_token" && id(m, name).is_some_and(|i| types.get(i as usize) == Some(&1)) {
            continue;
        }
        if let Some(c) = content(name) {
            tc.insert(key.into(), Json::String(c));
        }
    }
    if model == "llama" {
        for name in ["bos", "eos"] {
            if let Some(b) = flag(m, &format!("add_{name}_token")) {
                tc.insert(format!("add_{name}_token"), json!(b));
            }
        }
    }
    tc.insert("clean_up_tokenization_spaces".into(), json!(false));
    if let Some(t) = m.get("tokenizer.chat_template").and_then(Value::as_str) {
        tc.insert("chat_template".into(), json!(t));
    }
    files.push((
        "tokenizer_config.json".to_string(),
        pretty(&Json::Object(tc)),
    ));
    Ok(files)
}
