//! Tokenizer -> GGUF `tokenizer.ggml.*` keys, as llama.cpp's converter writes them: SentencePiece
//! (`tokenizer.model`), byte-level BPE (`tokenizer.json`, with the pre-tokenizer named by the hash of its token
//! ids on a check text), special token ids, add-BOS/EOS flags and the chat template (gguf-py's `SpecialVocab`).

use super::arch::VocabOrder;
use super::pre_hashes::{CHKTXT, PRE_HASHES};
use lbrx_core::{Error, Metadata, Result, Value, ValueKind};
use lbrx_formats::sentencepiece::{self, PieceType};
use serde_json::{Map, Value as Json};
use std::path::Path;

/// GGUF token types (llama.cpp's `llama_token_type`).
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

/// A JSON file, `None` when it does not exist.
pub(crate) fn read_json(path: &Path) -> Result<Option<Json>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::model(path, format!("invalid JSON: {e}")))
}

/// The token llama.cpp treats as a control token even when the tokenizer does not mark it special.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

fn str_array(v: Vec<String>) -> Value {
    Value::Array(ValueKind::Str, v.into_iter().map(Value::Str).collect())
}

fn i32_array(v: &[i32]) -> Value {
    Value::Array(ValueKind::I32, v.iter().map(|&x| Value::I32(x)).collect())
}

/// Writes the tokenizer keys for the model in `dir` into `meta`, looking for the tokenizer in `order`.
/// `vocab_size` is the config's, if any.
pub(crate) fn write_vocab(
    dir: &Path,
    vocab_size: Option<u64>,
    type_vocab_size: Option<u64>,
    order: VocabOrder,
    meta: &mut Metadata,
) -> Result<()> {
    let tok_config = read_json(&dir.join("tokenizer_config.json"))?;
    if order == VocabOrder::Bert {
        let (tokens, types, pre) = bpe_vocab(dir, vocab_size, tok_config.as_ref())?;
        meta.insert(
            "tokenizer.ggml.token_type_count",
            Value::U32(type_vocab_size.unwrap_or(1) as u32),
        );
        // llama.cpp's phantom-space form: "##x" continues a word, anything else starts one
        let tokens: Vec<String> = tokens
            .into_iter()
            .zip(&types)
            .map(|(t, &ty)| {
                if ty == CONTROL {
                    t
                } else if let Some(rest) = t.strip_prefix("##") {
                    rest.to_string()
                } else {
                    format!("\u{2581}{t}")
                }
            })
            .collect();
        let n = tokens.len() as u64;
        meta.insert("tokenizer.ggml.model", Value::Str("bert".into()));
        meta.insert("tokenizer.ggml.pre", Value::Str(pre));
        meta.insert("tokenizer.ggml.tokens", str_array(tokens));
        meta.insert("tokenizer.ggml.token_type", i32_array(&types));
        return special_vocab(dir, false, Some(n), &[], meta);
    }
    if order == VocabOrder::Llama {
        if let Some(b) = tok_config
            .as_ref()
            .and_then(|c| c.get("add_prefix_space"))
            .and_then(Json::as_bool)
        {
            meta.insert("tokenizer.ggml.add_space_prefix", Value::Bool(b));
        }
    }
    let gpt2_class = tok_config
        .as_ref()
        .and_then(|c| c.get("tokenizer_class"))
        .and_then(Json::as_str)
        == Some("GPT2Tokenizer");
    let phi3 = order == VocabOrder::Phi3 && !gpt2_class;
    if phi3 && !dir.join("tokenizer.model").is_file() {
        return Err(Error::model(dir, "Phi-3 needs tokenizer.model".to_string()));
    }
    let spm = match order {
        VocabOrder::Bpe | VocabOrder::Glm4 => false,
        VocabOrder::Phi3 => phi3,
        _ => true,
    };
    if spm && dir.join("tokenizer.model").is_file() {
        let (tokens, scores, types) = spm_vocab(dir, vocab_size, tok_config.as_ref(), phi3)?;
        meta.insert("tokenizer.ggml.model", Value::Str("llama".into()));
        meta.insert("tokenizer.ggml.pre", Value::Str("default".into()));
        let n = tokens.len() as u64;
        meta.insert("tokenizer.ggml.tokens", str_array(tokens));
        meta.insert(
            "tokenizer.ggml.scores",
            Value::Array(ValueKind::F32, scores.into_iter().map(Value::F32).collect()),
        );
        meta.insert("tokenizer.ggml.token_type", i32_array(&types));
        special_vocab(dir, false, Some(n), &[], meta)?;
        if order == VocabOrder::Gemma {
            meta.insert("tokenizer.ggml.add_space_prefix", Value::Bool(false));
        }
        Ok(())
    } else if dir.join("tokenizer.json").is_file() {
        let (tokens, types, pre) = bpe_vocab(dir, vocab_size, tok_config.as_ref())?;
        meta.insert("tokenizer.ggml.model", Value::Str("gpt2".into()));
        meta.insert("tokenizer.ggml.pre", Value::Str(pre));
        meta.insert("tokenizer.ggml.tokens", str_array(tokens));
        meta.insert("tokenizer.ggml.token_type", i32_array(&types));
        let extras = if order == VocabOrder::Glm4 {
            super::arch::GLM4_SPECIALS
        } else {
            &[]
        };
        special_vocab(dir, true, None, extras, meta)
    } else {
        Err(Error::model(
            dir,
            "no tokenizer (tokenizer.model or tokenizer.json)".to_string(),
        ))
    }
}

type SpmVocab = (Vec<String>, Vec<f32>, Vec<i32>);

/// The vocabulary size llama.cpp's Gemma 3 converter keeps rows for: the SentencePiece vocabulary (padded to
/// `vocab_size`), else the `tokenizer.json` vocabulary plus its added tokens.
pub(crate) fn real_vocab_size(dir: &Path, vocab_size: Option<u64>) -> Result<Option<u64>> {
    if dir.join("tokenizer.model").is_file() {
        let tc = read_json(&dir.join("tokenizer_config.json"))?;
        return Ok(Some(
            spm_vocab(dir, vocab_size, tc.as_ref(), false)?.0.len() as u64,
        ));
    }
    let Some(tj) = read_json(&dir.join("tokenizer.json"))? else {
        return Ok(None);
    };
    let n = |v: Option<&Json>| {
        v.map_or(0, |v| {
            v.as_object()
                .map_or(0, Map::len)
                .max(v.as_array().map_or(0, Vec::len))
        })
    };
    Ok(Some(
        (n(tj.get("model").and_then(|m| m.get("vocab"))) + n(tj.get("added_tokens"))) as u64,
    ))
}

/// llama.cpp's `_create_vocab_sentencepiece`, or with `phi3` its Phi-3 variant (added tokens taken as they
/// are, also from tokenizer.json, control only when marked special).
fn spm_vocab(
    dir: &Path,
    vocab_size: Option<u64>,
    tok_config: Option<&Json>,
    phi3: bool,
) -> Result<SpmVocab> {
    let path = dir.join("tokenizer.model");
    let model = sentencepiece::read_model(&path)?;
    let n = vocab_size.unwrap_or(model.pieces.len() as u64) as usize;
    if n > 16 << 20 {
        return Err(Error::model(
            dir.join("config.json"),
            format!("vocab_size {n} is not plausible"),
        ));
    }
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000f32; n];
    let mut types = vec![UNUSED; n];
    for (id, p) in model.pieces.iter().enumerate().take(n) {
        tokens[id] = p.piece.clone().unwrap_or_default();
        scores[id] = p.score.unwrap_or(0.0);
        types[id] = match p.piece_type() {
            PieceType::Unknown => UNKNOWN,
            PieceType::Control => CONTROL,
            PieceType::Unused => UNUSED,
            PieceType::Byte => BYTE,
            PieceType::Normal | PieceType::UserDefined => NORMAL,
        };
    }
    if let Some(Json::Object(added)) = read_json(&dir.join("added_tokens.json"))? {
        for (text, id) in added {
            let Some(id) = id.as_u64().map(|i| i as usize).filter(|&i| i < n) else {
                continue;
            };
            tokens[id] = text;
            scores[id] = -1000.0;
            types[id] = USER_DEFINED;
        }
    }
    let mut added: Vec<(usize, String, bool)> = Vec::new();
    if let Some(Json::Object(dec)) = tok_config.and_then(|c| c.get("added_tokens_decoder")) {
        for (id, data) in dec {
            if let (Ok(id), Some(content)) = (
                id.parse::<usize>(),
                data.get("content").and_then(Json::as_str),
            ) {
                let special = data.get("special").and_then(Json::as_bool).unwrap_or(false);
                added.push((id, content.to_string(), special));
            }
        }
    }
    if phi3 {
        if let Some(Json::Array(a)) =
            read_json(&dir.join("tokenizer.json"))?.and_then(|t| t.get("added_tokens").cloned())
        {
            for data in a {
                if let (Some(id), Some(content)) = (
                    data.get("id").and_then(Json::as_u64),
                    data.get("content").and_then(Json::as_str),
                ) {
                    let special = data.get("special").and_then(Json::as_bool).unwrap_or(false);
                    added.push((id as usize, content.to_string(), special));
                }
            }
        }
    }
    for (id, content, special) in added {
        if id >= n {
            continue;
        }
        if phi3 {
            types[id] = if special { CONTROL } else { USER_DEFINED };
            tokens[id] = content;
        } else if special || looks_special(&content) {
            types[id] = CONTROL;
            tokens[id] = content;
        } else {
            types[id] = USER_DEFINED;
            tokens[id] = content.replace('\u{2581}', " ");
        }
        scores[id] = -1000.0;
    }
    Ok((tokens, scores, types))
}

/// llama.cpp's `get_vocab_base` + `get_vocab_base_pre` for a `tokenizer.json`.
fn bpe_vocab(
    dir: &Path,
    vocab_size: Option<u64>,
    tok_config: Option<&Json>,
) -> Result<(Vec<String>, Vec<i32>, String)> {
    let path = dir.join("tokenizer.json");
    let mut tok = tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| Error::model(&path, format!("cannot load tokenizer: {e}")))?;
    // transformers ignores the file's padding and truncation settings unless a call asks for them
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| Error::model(&path, format!("{e}")))?;
    let terr = |e: tokenizers::Error| Error::model(&path, format!("{e}"));
    let vocab = tok.get_vocab(true);
    let max_id = vocab.values().copied().max().unwrap_or(0) as u64;
    let n = vocab_size.unwrap_or(vocab.len() as u64);
    if max_id >= n {
        return Err(Error::model(
            &path,
            format!("token id {max_id} is not below vocab_size {n}"),
        ));
    }
    let pre = pre_tokenizer_name(&tok, &path)?;
    let clean_up = tok_config
        .and_then(|c| c.get("clean_up_tokenization_spaces"))
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let mut reverse: Vec<Option<&str>> = vec![None; n as usize];
    for (t, &id) in &vocab {
        reverse[id as usize] = Some(t.as_str());
    }
    let added = tok.get_added_tokens_decoder();
    let mut tokens = Vec::with_capacity(n as usize);
    let mut types = Vec::with_capacity(n as usize);
    for (i, t) in reverse.iter().enumerate() {
        let Some(t) = t else {
            tokens.push(format!("[PAD{i}]"));
            types.push(UNUSED);
            continue;
        };
        let mut text = t.to_string();
        match added.get(&(i as u32)) {
            Some(a) => {
                if !a.normalized {
                    let enc = tok.encode(text.as_str(), false).map_err(terr)?;
                    text = tok.decode(enc.get_ids(), false).map_err(terr)?;
                    if clean_up {
                        text = clean_up_spaces(&text);
                    }
                }
                if a.special || looks_special(&text) {
                    types.push(CONTROL);
                } else {
                    text = text.replace('\u{2581}', " ");
                    types.push(USER_DEFINED);
                }
            }
            None => types.push(NORMAL),
        }
        tokens.push(text);
    }
    Ok((tokens, types, pre))
}

/// transformers' `clean_up_tokenization`.
fn clean_up_spaces(s: &str) -> String {
    [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ]
    .iter()
    .fold(s.to_string(), |acc, (a, b)| acc.replace(a, b))
}

/// Names the BPE pre-tokenizer as llama.cpp does: sha256 of the token ids of [`CHKTXT`], looked up in its
/// table. A tokenizer llama.cpp does not know is accepted only when it is plain GPT-2 byte-level splitting.
fn pre_tokenizer_name(tok: &tokenizers::Tokenizer, path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let enc = tok
        .encode(CHKTXT, true)
        .map_err(|e| Error::model(path, format!("{e}")))?;
    let ids: Vec<String> = enc.get_ids().iter().map(u32::to_string).collect();
    let text = format!("[{}]", ids.join(", "));
    let hash: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some((_, name, _)) = PRE_HASHES.iter().rev().find(|(h, _, _)| *h == hash) {
        return Ok(name.to_string());
    }
    let pre = serde_json::to_value(tok.get_pre_tokenizer()).unwrap_or(Json::Null);
    let gpt2 = pre.get("type").and_then(Json::as_str) == Some("ByteLevel")
        && pre.get("use_regex").and_then(Json::as_bool) == Some(true);
    if gpt2 {
        return Ok("gpt-2".into());
    }
    Err(Error::Unsupported {
        path: path.to_path_buf(),
        what: format!(
            "BPE pre-tokenizer not recognized (token hash {hash}); llama.cpp would not know how to split text \
             for this model"
        ),
    })
}

/// gguf-py's `SpecialVocab(...).add_to_gguf`: merges, special token ids, add_* flags, chat template and
/// normalizer flags, in its order.
fn special_vocab(
    dir: &Path,
    load_merges: bool,
    n_vocab: Option<u64>,
    by_name: &[(&str, &str)],
    meta: &mut Metadata,
) -> Result<()> {
    let mut types: Vec<&str> = vec!["bos", "eos", "unk", "sep", "pad", "cls", "mask"];
    let mut ids: Vec<(String, u64)> = Vec::new();
    let mut add: Vec<(String, bool)> = Vec::new();
    let mut merges: Vec<String> = Vec::new();
    let mut chat_template: Option<Json> = None;
    let (mut lowercase, mut strip_accents) = (None, None);

    let set_id = |ids: &mut Vec<(String, u64)>, typ: &str, id: Option<&Json>| {
        let Some(id) = id.and_then(Json::as_u64) else {
            return;
        };
        if n_vocab.is_none_or(|n| id < n) && !ids.iter().any(|(t, _)| t == typ) {
            ids.push((typ.to_string(), id));
        }
    };
    fn set_add(add: &mut Vec<(String, bool)>, typ: &str, v: bool, overwrite: bool) {
        match add.iter_mut().find(|(t, _)| t == typ) {
            Some(e) if overwrite => e.1 = v,
            Some(_) => {}
            None => add.push((typ.to_string(), v)),
        }
    }

    let tokenizer = read_json(&dir.join("tokenizer.json"))?;
    let mut tc: Option<Map<String, Json>> = match read_json(&dir.join("tokenizer_config.json"))? {
        Some(Json::Object(m)) => Some(m),
        _ => None,
    };
    let mut added_tokens: Vec<Json> = Vec::new();
    if let Some(tj) = &tokenizer {
        if load_merges {
            if let Some(Json::Array(m)) = tj.get("model").and_then(|m| m.get("merges")) {
                for e in m {
                    match e {
                        Json::String(s) => merges.push(s.clone()),
                        Json::Array(pair) if pair.len() == 2 => {
                            let enc = |p: &Json| -> String {
                                p.as_str()
                                    .unwrap_or("")
                                    .chars()
                                    .map(|c| if c == ' ' { '\u{120}' } else { c })
                                    .collect()
                            };
                            merges.push(format!("{} {}", enc(&pair[0]), enc(&pair[1])));
                        }
                        _ => {
                            return Err(Error::model(
                                dir,
                                "unknown tokenizer merges format".to_string(),
                            ))
                        }
                    }
                }
            }
        }
        if let Some(n) = tj.get("normalizer").filter(|n| !n.is_null()) {
            parse_normalizer(n, &mut lowercase, &mut strip_accents);
        }
        if let Some(Json::Array(a)) = tj.get("added_tokens") {
            added_tokens = a.clone();
        }
        let get = |tc: &Option<Map<String, Json>>, k: &str| -> Option<String> {
            tc.as_ref()
                .and_then(|m| m.get(k))
                .and_then(|v| v.as_str().map(str::to_string))
                .filter(|s| !s.is_empty())
        };
        let mut special_bos = get(&tc, "bos_token");
        let mut special_cls = get(&tc, "cls_token");
        let mut special_eos = get(&tc, "eos_token");
        let mut special_sep = get(&tc, "sep_token");
        if special_bos.is_none() && special_cls.is_some() {
            if let Some(m) = tc.as_mut() {
                m.insert("bos_token".into(), Json::from(special_cls.clone()));
                special_bos = special_cls.clone();
            }
        }
        if special_eos.is_none() && special_sep.is_some() {
            if let Some(m) = tc.as_mut() {
                m.insert("eos_token".into(), Json::from(special_sep.clone()));
                special_eos = special_sep.clone();
            }
        }
        if let Some(pp) = tj.get("post_processor").filter(|p| !p.is_null()) {
            let procs: Vec<Json> = match pp.get("processors") {
                Some(Json::Array(a)) => a.clone(),
                _ => vec![pp.clone()],
            };
            let has_tc = tc.as_ref().is_some_and(|m| !m.is_empty());
            for p in procs {
                match p.get("type").and_then(Json::as_str) {
                    Some("ByteLevel") => {
                        set_add(&mut add, "bos", false, false);
                        set_add(&mut add, "eos", false, false);
                    }
                    Some("RobertaProcessing") => {
                        set_add(&mut add, "bos", true, true);
                        set_add(&mut add, "eos", true, true);
                        set_add(&mut add, "sep", true, true);
                        if special_cls.is_none() && has_tc {
                            special_cls = p
                                .get("cls")
                                .and_then(|c| c.get(0))
                                .and_then(Json::as_str)
                                .map(str::to_string)
                                .or(special_bos.clone());
                            tc.as_mut()
                                .expect("has_tc")
                                .insert("cls_token".into(), Json::from(special_cls.clone()));
                        }
                        if special_sep.is_none() && has_tc {
                            special_sep = p
                                .get("sep")
                                .and_then(|c| c.get(0))
                                .and_then(Json::as_str)
                                .map(str::to_string)
                                .or(special_eos.clone());
                            tc.as_mut()
                                .expect("has_tc")
                                .insert("sep_token".into(), Json::from(special_sep.clone()));
                        }
                    }
                    Some("TemplateProcessing") => {
                        let single = p.get("single").and_then(Json::as_array).cloned();
                        let pair = p.get("pair").and_then(Json::as_array).cloned();
                        let single = single.unwrap_or_default();
                        let special_id = |e: &Json| -> Option<String> {
                            e.get("SpecialToken")
                                .and_then(|s| s.get("id"))
                                .and_then(Json::as_str)
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                        };
                        let mut special_first = None;
                        let mut special_last = None;
                        if single.len() > 1 {
                            special_first = special_id(&single[0]);
                            if let Some(first) = &special_first {
                                if !has_tc {
                                    special_bos = Some(first.clone());
                                } else if Some(first) != special_bos.as_ref()
                                    && Some(first) != special_cls.as_ref()
                                {
                                    let m = tc.as_mut().expect("has_tc");
                                    if special_bos.is_none() {
                                        special_bos = Some(first.clone());
                                        m.insert("bos_token".into(), Json::from(first.clone()));
                                    }
                                    if special_cls.is_none() {
                                        special_cls = Some(first.clone());
                                        m.insert("cls_token".into(), Json::from(first.clone()));
                                    }
                                }
                                let is = Some(first) == special_bos.as_ref()
                                    || Some(first) == special_cls.as_ref();
                                set_add(&mut add, "bos", is, true);
                            }
                            special_last = special_id(&single[single.len() - 1]);
                            if let Some(last) = &special_last {
                                if !has_tc {
                                    special_eos = Some(last.clone());
                                } else if Some(last) != special_eos.as_ref() {
                                    let m = tc.as_mut().expect("has_tc");
                                    if !types.contains(&"eot") {
                                        types.push("eot");
                                        m.insert(
                                            "eot_token".into(),
                                            Json::from(special_eos.clone()),
                                        );
                                    } else if !types.contains(&"eom") {
                                        types.push("eom");
                                        m.insert(
                                            "eom_token".into(),
                                            Json::from(special_eos.clone()),
                                        );
                                    }
                                    m.insert("eos_token".into(), Json::from(last.clone()));
                                    special_eos = Some(last.clone());
                                }
                                let is = Some(last) == special_eos.as_ref();
                                set_add(&mut add, "eos", is, true);
                            }
                        }
                        if let Some(pair) = pair.filter(|p| !p.is_empty()) {
                            let start = usize::from(
                                special_first.is_some() && special_id(&pair[0]) == special_first,
                            );
                            let stop = if special_last.is_some()
                                && special_id(&pair[pair.len() - 1]) == special_last
                            {
                                pair.len() - 1
                            } else {
                                pair.len()
                            };
                            let inner: Vec<Json> = if start <= stop {
                                pair[start..stop].to_vec()
                            } else {
                                Vec::new()
                            };
                            if !inner.is_empty() {
                                let seq = |e: &Json| {
                                    e.get("Sequence")
                                        .and_then(|s| s.get("id"))
                                        .and_then(Json::as_str)
                                        .map(str::to_string)
                                };
                                let a = seq(&inner[0]);
                                let b = seq(&inner[inner.len() - 1]);
                                if a.as_deref() == Some("A")
                                    && b.as_deref() == Some("B")
                                    && inner.len() > 2
                                {
                                    let mid = &inner[1..inner.len() - 1];
                                    let is_sep = |e: &Json| {
                                        special_id(e).is_some_and(|s| {
                                            Some(&s) == special_sep.as_ref()
                                                || Some(&s) == special_eos.as_ref()
                                        })
                                    };
                                    let mut add_sep = is_sep(&mid[0]) && special_last.is_none();
                                    if mid.len() == 2 && is_sep(&mid[1]) {
                                        add_sep = true;
                                    }
                                    set_add(&mut add, "sep", add_sep, true);
                                    if add_sep && special_sep.is_none() && has_tc {
                                        tc.as_mut().expect("has_tc").insert(
                                            "sep_token".into(),
                                            Json::from(special_eos.clone()),
                                        );
                                    }
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(tc) = tc.as_ref().filter(|m| !m.is_empty()) {
        let alt = if dir.join("chat_template.jinja").is_file() {
            let p = dir.join("chat_template.jinja");
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, "read", e))?;
            Some(Json::String(text))
        } else {
            read_json(&dir.join("chat_template.json"))?
                .and_then(|j| j.get("chat_template").cloned())
        };
        chat_template = tc.get("chat_template").cloned().or(alt);
        for typ in &types {
            if let Some(Json::Bool(b)) = tc.get(&format!("add_{typ}_token")) {
                set_add(&mut add, typ, *b, false);
            }
            let content = match tc.get(&format!("{typ}_token")) {
                Some(Json::String(s)) => s.clone(),
                Some(Json::Object(o)) => match o.get("content") {
                    Some(Json::String(s)) => s.clone(),
                    _ => continue,
                },
                _ => continue,
            };
            let id = added_tokens
                .iter()
                .find(|a| a.get("content").and_then(Json::as_str) == Some(content.as_str()))
                .and_then(|a| a.get("id"));
            set_id(&mut ids, typ, id);
        }
    }
    if let Some(Json::Object(config)) = read_json(&dir.join("config.json"))? {
        for typ in &types {
            let key = format!("{typ}_token_id");
            let id = config
                .get(&key)
                .or_else(|| config.get("text_config").and_then(|t| t.get(&key)));
            set_id(&mut ids, typ, id);
        }
    }

    // a family's special tokens by name (`_set_special_token`: only where still unset)
    for (typ, content) in by_name {
        let id = added_tokens
            .iter()
            .find(|a| a.get("content").and_then(Json::as_str) == Some(*content))
            .and_then(|a| a.get("id"))
            .ok_or_else(|| {
                Error::model(
                    dir.join("tokenizer.json"),
                    format!("the tokenizer has no added token {content} (the {typ} token this architecture needs)"),
                )
            })?;
        set_id(&mut ids, typ, Some(id));
    }
    if !merges.is_empty() {
        meta.insert("tokenizer.ggml.merges", str_array(merges));
    }
    for (typ, id) in ids {
        if typ == "cls" {
            continue; // gguf-py's writer has no handler for it
        }
        let key = match typ.as_str() {
            "sep" => "tokenizer.ggml.seperator_token_id".to_string(),
            "pad" => "tokenizer.ggml.padding_token_id".to_string(),
            "unk" => "tokenizer.ggml.unknown_token_id".to_string(),
            t => format!("tokenizer.ggml.{t}_token_id"),
        };
        meta.insert(key, Value::U32(id as u32));
    }
    for (typ, v) in add {
        if matches!(typ.as_str(), "bos" | "eos" | "sep") {
            meta.insert(format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(v));
        }
    }
    match chat_template {
        Some(Json::String(s)) => meta.insert("tokenizer.chat_template", Value::Str(s)),
        Some(Json::Array(list)) => {
            let mut default = None;
            let mut names = Vec::new();
            for c in &list {
                let name: String = c
                    .get("name")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .chars()
                    .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                    .collect();
                let Some(t) = c.get("template").and_then(Json::as_str) else {
                    continue;
                };
                if name.is_empty() {
                    continue;
                }
                if name == "default" {
                    default = Some(t.to_string());
                } else if !names.contains(&name) {
                    meta.insert(
                        format!("tokenizer.chat_template.{name}"),
                        Value::Str(t.into()),
                    );
                    names.push(name);
                }
            }
            if !names.is_empty() {
                names.sort();
                meta.insert("tokenizer.chat_templates", str_array(names));
            }
            if let Some(d) = default {
                meta.insert("tokenizer.chat_template", Value::Str(d));
            }
        }
        _ => {}
    }
    if let Some(b) = lowercase {
        meta.insert("tokenizer.ggml.normalizer.lowercase", Value::Bool(b));
    }
    if let Some(b) = strip_accents {
        meta.insert("tokenizer.ggml.normalizer.strip_accents", Value::Bool(b));
    }
    Ok(())
}

fn parse_normalizer(n: &Json, lowercase: &mut Option<bool>, strip: &mut Option<bool>) {
    match n.get("type").and_then(Json::as_str) {
        Some("Lowercase") => *lowercase = Some(true),
        Some("StripAccents") => *strip = Some(true),
        Some("BertNormalizer") => {
            if let Some(v) = n.get("lowercase") {
                *lowercase = v.as_bool();
            }
            if let Some(v) = n.get("strip_accents") {
                *strip = v.as_bool();
            }
        }
        Some("Sequence") => {
            if let Some(Json::Array(a)) = n.get("normalizers") {
                for x in a {
                    parse_normalizer(x, lowercase, strip);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_looking_tokens() {
        assert!(looks_special("<|im_start|>"));
        assert!(looks_special("<unused12>"));
        assert!(!looks_special("<s>"));
        assert!(!looks_special("hello"));
    }
}
