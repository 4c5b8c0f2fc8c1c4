//! `general.*` naming keys as llama.cpp's converter derives them (gguf-py `Metadata`): the model id
//! (`_name_or_path`, else the directory name) split into name, organization, basename, finetune, version and
//! size label; the size label from the parameter count when the name has none; the model card's license,
//! tags and languages; sampling defaults from `generation_config.json`.

use lbrx_core::{Metadata, Value, ValueKind};
use regex::Regex;
use serde_json::{Map, Value as Json};
use std::path::Path;
use std::sync::LazyLock;

static VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^(v|iter)?\d+([.]\d+)*$").expect("regex"));
static QTYPE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^(i?q\d(_\w)*|b?fp?(16|32))$").expect("regex"));
static SIZE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)$")
        .expect("regex")
});
static FINETUNE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^(chat|instruct|vision|lora)$").expect("regex"));
static TITLE_KEEP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(v\d+(?:\.\d+)*|\d.*)$").expect("regex"));

/// Python's `str.title()`.
fn py_title(w: &str) -> String {
    let mut out = String::with_capacity(w.len());
    let mut prev_cased = false;
    for c in w.chars() {
        let cased = c.is_lowercase() || c.is_uppercase();
        if cased {
            if prev_cased {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
        } else {
            out.push(c);
        }
        prev_cased = cased;
    }
    out
}

/// Python's `str.islower()`.
fn py_islower(w: &str) -> bool {
    w.chars().any(char::is_lowercase) && !w.chars().any(char::is_uppercase)
}

/// gguf-py's `Metadata.id_to_title`.
pub(crate) fn id_to_title(s: &str) -> String {
    s.trim()
        .replace('-', " ")
        .split_whitespace()
        .map(|w| {
            if py_islower(w) && !TITLE_KEEP.is_match(w) {
                py_title(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The parts of a model id.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct IdParts {
    pub name: Option<String>,
    pub org: Option<String>,
    pub basename: Option<String>,
    pub finetune: Option<String>,
    pub version: Option<String>,
    pub size_label: Option<String>,
}

/// gguf-py's `Metadata.get_model_id_components`.
pub(crate) fn id_components(model_id: &str, total_params: i64) -> IdParts {
    if model_id.contains(' ') {
        return IdParts {
            name: Some(model_id.to_string()),
            ..IdParts::default()
        };
    }
    let (mut org, full) = match model_id.split_once('/') {
        Some((o, n)) => (Some(o.to_string()), n.to_string()),
        None => (None, model_id.to_string()),
    };
    if org.as_deref().is_some_and(|o| o.starts_with('.')) {
        org = None;
    }
    let mut parts: Vec<String> = full
        .split('-')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let mut types: Vec<Vec<&str>> = vec![Vec::new(); parts.len()];
    let add = |t: &mut Vec<&'static str>, x: &'static str| {
        if !t.contains(&x) {
            t.push(x);
        }
    };
    for i in 0..parts.len() {
        let part = parts[i].clone();
        if VERSION.is_match(&part) {
            add(&mut types[i], "version");
        } else if QTYPE.is_match(&part) {
            add(&mut types[i], "type");
            parts[i] = part.to_uppercase();
        } else if i > 0 && SIZE.is_match(&part) {
            let mut p: Vec<char> = part.replace('_', ".").chars().collect();
            let n = p.len();
            if p[n - 1].is_ascii_digit() && n >= 2 {
                // bloom-7b1 -> 7.1b
                let last = p[n - 1];
                let second = p[n - 2];
                p.truncate(n - 2);
                p.push('.');
                p.push(last);
                p.push(second);
            }
            let n = p.len();
            if n > 1 && p[n - 2].is_ascii_digit() && "kmbt".contains(p[n - 1]) {
                p[n - 1] = p[n - 1].to_ascii_uppercase();
            }
            let mut s: String = p.iter().collect();
            if total_params != 0 {
                let (num, suf) = s.split_at(s.len() - s.chars().last().map_or(0, char::len_utf8));
                if let (Ok(v), Some(scale)) = (num.parse::<f64>(), " KMBT".find(suf)) {
                    let label = v * 1000f64.powi(scale as i32);
                    let tp = total_params as f64;
                    let far = (total_params < 0 && label < (total_params.abs() / 8) as f64)
                        || (total_params > 0 && (label - tp).abs() > (7 * total_params / 8) as f64);
                    if far {
                        add(&mut types[i], "finetune");
                        s = format!("{num}{}", suf.to_lowercase());
                    }
                }
            }
            if types[i].is_empty() {
                add(&mut types[i], "size_label");
            }
            parts[i] = s;
        } else if i > 0 && FINETUNE.is_match(&part) {
            if total_params < 0 && part.eq_ignore_ascii_case("lora") {
                add(&mut types[i], "type");
            } else {
                add(&mut types[i], "finetune");
            }
        }
    }
    let numeric_size = parts
        .iter()
        .zip(&types)
        .any(|(n, t)| t.contains(&"size_label") && n.chars().any(|c| c.is_ascii_digit()));
    if numeric_size {
        for (n, t) in parts.iter().zip(types.iter_mut()) {
            if t.contains(&"size_label") && n.chars().all(char::is_alphabetic) {
                t.retain(|x| *x != "size_label");
            }
        }
    }
    let mut at_start = true;
    for (part, t) in parts.iter().zip(types.iter_mut()) {
        let alpha0 = part.chars().next().is_some_and(char::is_alphabetic);
        if at_start && ((t.is_empty() && alpha0) || t.contains(&"version")) {
            add(t, "basename");
        } else {
            at_start = false;
            if t.is_empty() {
                add(t, "finetune");
            }
        }
    }
    for t in types.iter_mut().rev() {
        if t.contains(&"basename") && t.len() > 1 {
            t.retain(|x| *x != "basename");
        } else {
            break;
        }
    }
    let join = |want: &str, skip: Option<&str>| -> Option<String> {
        let mut seen: Vec<&str> = Vec::new();
        for (n, t) in parts.iter().zip(&types) {
            if t.contains(&want) && skip.is_none_or(|s| !t.contains(&s)) {
                if want == "size_label" && seen.contains(&n.as_str()) {
                    continue;
                }
                seen.push(n);
            }
        }
        (!seen.is_empty()).then(|| seen.join("-"))
    };
    let mut basename = join("basename", None);
    let size_label = join("size_label", None);
    let finetune = join("finetune", None);
    let version = join("version", Some("basename"));
    if size_label.is_none() && finetune.is_none() && version.is_none() {
        basename = None;
    }
    IdParts {
        name: Some(full),
        org,
        basename,
        finetune,
        version,
        size_label,
    }
}

/// gguf-py's `model_weight_count_rounded_notation`.
pub(crate) fn rounded_count(n: u64, min_digits: usize) -> String {
    let n = n as f64;
    let (scaled, suffix) = if n > 1e12 {
        (n * 1e-12, "T")
    } else if n > 1e9 {
        (n * 1e-9, "B")
    } else if n > 1e6 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    let rounded = scaled.round_ties_even() as u64;
    let digits = rounded.to_string().trim_start_matches('0').len();
    let fix = min_digits.saturating_sub(digits);
    format!("{scaled:.fix$}{suffix}")
}

/// gguf-py's `size_label`.
pub(crate) fn size_label(total: u64, shared: u64, expert: u64, expert_count: u64) -> String {
    if expert_count > 0 {
        format!("{expert_count}x{}", rounded_count(shared + expert, 2))
    } else {
        rounded_count(total, 2)
    }
}

/// The model card's YAML front matter (`README.md` between `---` lines), as gguf-py reads it; `{}` when there
/// is none or it does not parse.
pub(crate) fn model_card(dir: &Path) -> Map<String, Json> {
    let Ok(text) = std::fs::read_to_string(dir.join("README.md")) else {
        return Map::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some("---") {
        return Map::new();
    }
    let mut yaml = String::new();
    for l in lines {
        if l == "---" {
            break;
        }
        yaml.push_str(l);
        yaml.push('\n');
    }
    // gguf-py's fixes: the "Norway problem" and tabs
    let yaml = yaml.replace("- no\n", "- \"no\"\n").replace('\t', "  ");
    match serde_yaml_ng::from_str::<Json>(&yaml) {
        Ok(Json::Object(m)) => m,
        _ => Map::new(),
    }
}

/// gguf-py's scalar `general.*` fields, in `set_gguf_meta_model`'s order.
const GENERAL_KEYS: [&str; 20] = [
    "name",
    "author",
    "version",
    "organization",
    "finetune",
    "basename",
    "description",
    "quantized_by",
    "size_label",
    "license",
    "license_name",
    "license_link",
    "url",
    "doi",
    "uuid",
    "repo_url",
    "source_url",
    "source_doi",
    "source_uuid",
    "source_repo_url",
];

/// The text of a scalar card value (strings as they are, numbers and booleans printed).
fn text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        _ => None,
    }
}

/// A base model or dataset entry from a model card id, URL or mapping (gguf-py's heuristics).
fn source_entry(v: &Json, total_params: i64) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    match v {
        Json::String(id) => {
            let from_id = |id: &str, out: &mut Vec<(String, String)>, repo: bool| {
                let p = id_components(id, total_params);
                if let Some(n) = &p.name {
                    out.push(("name".into(), id_to_title(n)));
                }
                if let Some(o) = &p.org {
                    out.push(("organization".into(), id_to_title(o)));
                }
                if let Some(v) = p.version {
                    out.push(("version".into(), v));
                }
                if repo {
                    if let (Some(o), Some(n)) = (&p.org, &p.name) {
                        out.push(("repo_url".into(), format!("https://huggingface.co/{o}/{n}")));
                    }
                }
            };
            if id.starts_with("http://") || id.starts_with("https://") || id.starts_with("ssh://") {
                out.push(("repo_url".into(), id.clone()));
                if id.contains("huggingface.co") {
                    static HF: LazyLock<Regex> = LazyLock::new(|| {
                        Regex::new(r"^https?://huggingface.co/([^/]+/[^/]+)$").expect("regex")
                    });
                    if let Some(c) = HF.captures(id) {
                        let mut parts = Vec::new();
                        from_id(&c[1], &mut parts, false);
                        // the repo_url stays first, as gguf-py builds the dict
                        out.extend(parts);
                    }
                }
            } else {
                from_id(id, &mut out, true);
            }
        }
        Json::Object(m) => {
            for (k, v) in m {
                if let Some(t) = text(v) {
                    out.push((k.clone(), t));
                }
            }
        }
        _ => {}
    }
    out
}

fn list(v: Option<&Json>) -> Vec<Json> {
    match v {
        Some(Json::Array(a)) => a.clone(),
        Some(Json::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    }
}

/// Writes the naming and provenance keys (everything from `general.sampling.*` to `general.languages`), as
/// gguf-py's `Metadata.load` + `set_gguf_meta_model` derive them from the model card, `config.json`'s
/// `_name_or_path`, the directory name and `generation_config.json`.
pub(crate) fn write_general(
    meta: &mut Metadata,
    dir: &Path,
    config: &Json,
    gen_config: Option<&Json>,
    dir_name: &str,
    total_params: i64,
    computed_size_label: Option<String>,
) {
    let card = model_card(dir);
    // scalar fields, set once (first source wins)
    let mut f: Vec<(&str, Option<String>)> = GENERAL_KEYS.iter().map(|k| (*k, None)).collect();
    fn set(f: &mut [(&str, Option<String>)], key: &str, v: Option<String>, only_if_none: bool) {
        if let Some(e) = f.iter_mut().find(|e| e.0 == key) {
            if !only_if_none || e.1.is_none() {
                e.1 = v;
            }
        }
    }
    fn get(f: &[(&str, Option<String>)], key: &str) -> Option<String> {
        f.iter().find(|e| e.0 == key).and_then(|e| e.1.clone())
    }
    let use_card = |f: &mut Vec<(&str, Option<String>)>, key: &str, card_key: &str| {
        if let Some(v) = card.get(card_key) {
            let is_none = f.iter().find(|e| e.0 == key).is_some_and(|e| e.1.is_none());
            if is_none {
                let t = match v {
                    Json::Array(a) if key == "license" => {
                        Some(a.iter().filter_map(text).collect::<Vec<_>>().join(","))
                    }
                    other => text(other),
                };
                set(f, key, t, true);
            }
        }
    };
    for (k, c) in [
        ("name", "name"),
        ("author", "author"),
        ("version", "version"),
        ("organization", "organization"),
        ("description", "description"),
        ("finetune", "finetune"),
        ("basename", "basename"),
        ("size_label", "size_label"),
        ("source_url", "url"),
        ("source_doi", "doi"),
        ("source_uuid", "uuid"),
        ("source_repo_url", "repo_url"),
        ("name", "model_name"),
        ("author", "model_author"),
        ("version", "model_version"),
        ("organization", "model_organization"),
        ("description", "model_description"),
        ("finetune", "model_finetune"),
        ("basename", "model_basename"),
        ("size_label", "model_size_label"),
        ("source_url", "model_url"),
        ("source_doi", "model_doi"),
        ("source_uuid", "model_uuid"),
        ("source_repo_url", "model_repo_url"),
        ("author", "model_creator"),
        ("basename", "model_type"),
    ] {
        use_card(&mut f, k, c);
    }
    let base_src = card
        .get("base_model")
        .or_else(|| card.get("base_models"))
        .or_else(|| card.get("base_model_sources"));
    let base_models: Option<Vec<Vec<(String, String)>>> = (card.contains_key("base_model")
        || card.contains_key("base_models")
        || card.contains_key("base_model_sources"))
    .then(|| {
        list(base_src)
            .iter()
            .map(|v| source_entry(v, total_params))
            .collect()
    });
    let ds_src = card
        .get("datasets")
        .or_else(|| card.get("dataset"))
        .or_else(|| card.get("dataset_sources"));
    let datasets: Option<Vec<Vec<(String, String)>>> = (card.contains_key("datasets")
        || card.contains_key("dataset")
        || card.contains_key("dataset_sources"))
    .then(|| {
        list(ds_src)
            .iter()
            .map(|v| source_entry(v, total_params))
            .collect()
    });
    use_card(&mut f, "license", "license");
    use_card(&mut f, "license_name", "license_name");
    use_card(&mut f, "license_link", "license_link");
    let mut tags: Option<Vec<String>> = None;
    for key in ["tags", "pipeline_tag"] {
        if let Some(v) = card.get(key).filter(|v| !v.is_null()) {
            tags.get_or_insert_with(Vec::new)
                .extend(list(Some(v)).iter().filter_map(text));
        }
    }
    let mut languages: Option<Vec<String>> = None;
    for key in ["languages", "language"] {
        if let Some(v) = card.get(key).filter(|v| !v.is_null()) {
            languages
                .get_or_insert_with(Vec::new)
                .extend(list(Some(v)).iter().filter_map(text));
        }
    }

    let mut fill = |p: IdParts| {
        if get(&f, "name").is_none() {
            set(&mut f, "name", p.name.map(|s| id_to_title(&s)), true);
        }
        if get(&f, "organization").is_none() {
            set(&mut f, "organization", p.org.map(|s| id_to_title(&s)), true);
        }
        for (k, v) in [
            ("basename", p.basename),
            ("finetune", p.finetune),
            ("version", p.version),
            ("size_label", p.size_label),
        ] {
            if v.is_some() {
                set(&mut f, k, v, true);
            }
        }
    };
    if let Some(id) = config.get("_name_or_path").and_then(Json::as_str) {
        if id.matches('/').count() <= 1 {
            fill(id_components(id, total_params));
        }
    }
    fill(id_components(dir_name, total_params));
    if get(&f, "size_label").is_none() && total_params > 0 {
        set(&mut f, "size_label", computed_size_label, true);
    }
    if let Some(g) = gen_config {
        let f32_key = |k: &str| {
            g.get(k)
                .and_then(Json::as_f64)
                .map(|v| Value::F32(v as f32))
        };
        let i32_key = |k: &str| {
            g.get(k)
                .and_then(Json::as_i64)
                .map(|v| Value::I32(v as i32))
        };
        let keys: [(&str, Option<Value>); 12] = [
            (
                "sequence",
                g.get("sequence")
                    .and_then(Json::as_str)
                    .map(|s| Value::Str(s.into())),
            ),
            ("top_k", i32_key("top_k")),
            ("top_p", f32_key("top_p")),
            ("min_p", f32_key("min_p")),
            ("xtc_probability", f32_key("xtc_probability")),
            ("xtc_threshold", f32_key("xtc_threshold")),
            ("temp", f32_key("temperature")),
            ("penalty_last_n", i32_key("penalty_last_n")),
            (
                "penalty_repeat",
                f32_key("penalty_repeat").or_else(|| f32_key("repetition_penalty")),
            ),
            ("mirostat", i32_key("mirostat")),
            ("mirostat_tau", f32_key("mirostat_tau")),
            ("mirostat_eta", f32_key("mirostat_eta")),
        ];
        for (k, v) in keys {
            if let Some(v) = v {
                meta.insert(format!("general.sampling.{k}"), v);
            }
        }
    }
    // set_gguf_meta_model's order
    for k in GENERAL_KEYS {
        if let Some(v) = get(&f, k) {
            meta.insert(format!("general.{k}"), Value::Str(v));
        }
    }
    const ENTRY_KEYS: [&str; 9] = [
        "name",
        "author",
        "version",
        "organization",
        "description",
        "url",
        "doi",
        "uuid",
        "repo_url",
    ];
    for (group, entries) in [("base_model", &base_models), ("dataset", &datasets)] {
        if let Some(entries) = entries {
            meta.insert(
                format!("general.{group}.count"),
                Value::U32(entries.len() as u32),
            );
            for (i, e) in entries.iter().enumerate() {
                for k in ENTRY_KEYS {
                    if let Some((_, v)) = e.iter().find(|(ek, _)| ek == k) {
                        meta.insert(format!("general.{group}.{i}.{k}"), Value::Str(v.clone()));
                    }
                }
            }
        }
    }
    for (key, v) in [("general.tags", tags), ("general.languages", languages)] {
        if let Some(v) = v {
            meta.insert(
                key,
                Value::Array(ValueKind::Str, v.into_iter().map(Value::Str).collect()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_like_python() {
        assert_eq!(id_to_title("llama3"), "Llama3");
        assert_eq!(id_to_title("tiny-llama"), "Tiny Llama");
        assert_eq!(
            id_to_title("Meta-Llama-3.1-8B-Instruct"),
            "Meta Llama 3.1 8B Instruct"
        );
        assert_eq!(id_to_title("v0.1"), "v0.1");
        assert_eq!(py_title("abc1def"), "Abc1Def");
    }

    #[test]
    fn id_components_like_gguf_py() {
        let p = id_components("mistralai/Mistral-7B-Instruct-v0.2", 7_000_000_000);
        assert_eq!(p.org.as_deref(), Some("mistralai"));
        assert_eq!(p.basename.as_deref(), Some("Mistral"));
        assert_eq!(p.size_label.as_deref(), Some("7B"));
        assert_eq!(p.finetune.as_deref(), Some("Instruct"));
        assert_eq!(p.version.as_deref(), Some("v0.2"));
        let p = id_components("llama3", 33_000_000);
        assert_eq!(p.basename, None);
        assert_eq!(p.name.as_deref(), Some("llama3"));
    }

    #[test]
    fn rounded_counts() {
        assert_eq!(rounded_count(33_211_520, 2), "33M");
        assert_eq!(rounded_count(8_600_000, 2), "8.6M");
        assert_eq!(rounded_count(1_240_000_000, 2), "1.2B");
    }
}
