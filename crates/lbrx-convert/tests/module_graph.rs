//! The shape of the crate: no import cycle among lbrx-convert's source files (every `crate::` path and every
//! `super::` path resolved to the file that defines it), and no hand-written source file over 800 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file (`hf/mod.rs` -> `hf`, `hf/to_hf.rs` -> `hf::to_hf`, `lib.rs` -> ``).
fn module_of(rel: &Path) -> String {
    let s = rel.with_extension("").to_string_lossy().replace('/', "::");
    let s = s.strip_suffix("::mod").unwrap_or(&s).to_string();
    if s == "lib" {
        String::new()
    } else {
        s
    }
}

/// Every `crate::a::b` or `super::a` path in the file's code (comments and strings aside), as module paths.
fn referenced(text: &str, module: &str, is_mod_rs: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (kw, base) in [
            ("crate::", Vec::new()),
            ("super::", parent(module, is_mod_rs)),
        ] {
            let mut rest = code;
            while let Some(i) = rest.find(kw) {
                let before = rest[..i].chars().last();
                rest = &rest[i + kw.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let mut path = base.clone();
                let mut seg = rest;
                // `crate::a::b::{c, d}`: take the leading plain segments
                loop {
                    let n: String = seg
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if n.is_empty() {
                        break;
                    }
                    path.push(n.clone());
                    seg = &seg[n.len()..];
                    match seg.strip_prefix("::") {
                        Some(s) => seg = s,
                        None => break,
                    }
                }
                out.push(path);
            }
        }
    }
    out
}

/// The module `super` names from a file's module.
fn parent(module: &str, is_mod_rs: bool) -> Vec<String> {
    let mut parts: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let _ = is_mod_rs;
    parts.pop();
    parts
}

#[test]
fn no_import_cycle_among_source_files() {
    let dir = src_dir();
    let mut files = Vec::new();
    rs_files(&dir, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .map(|f| (module_of(f.strip_prefix(&dir).unwrap()), f.clone()))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, f) in &modules {
        let text = std::fs::read_to_string(f).unwrap();
        let is_mod = f.ends_with("mod.rs");
        for path in referenced(&text, m, is_mod) {
            // the longest prefix that is a module file
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|p| modules.contains_key(p));
            if let Some(t) = target {
                if t.is_empty()
                    && path
                        .first()
                        .is_some_and(|s| s.starts_with(char::is_uppercase))
                {
                    panic!(
                        "{m}: use the defining module, not the crate root's re-export crate::{}",
                        path[0]
                    );
                }
                if t != *m && !t.is_empty() {
                    edges.entry(m.clone()).or_default().insert(t);
                }
            }
        }
    }
    // depth-first search for a cycle
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) {
        match state.get(m) {
            Some(2) => return,
            Some(1) => {
                let at = stack.iter().position(|s| s == m).unwrap();
                panic!("import cycle: {} -> {m}", stack[at..].join(" -> "));
            }
            _ => {}
        }
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for t in edges.get(m).into_iter().flatten() {
            visit(t, edges, state, stack);
        }
        stack.pop();
        state.insert(m.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    for m in modules.keys() {
        visit(m, &edges, &mut state, &mut Vec::new());
    }
    assert!(edges.len() > 10, "the graph was not read: {edges:?}");
}

#[test]
fn the_cycle_detector_sees_cycles() {
    let refs = referenced(
        "use crate::plan::{a, b};\nuse super::arch::X; // crate::not_this",
        "hf::to_hf",
        false,
    );
    assert_eq!(
        refs,
        vec![
            vec!["plan".to_string()],
            vec!["hf".into(), "arch".into(), "X".into()]
        ]
    );
}

#[test]
fn no_source_file_over_800_lines() {
    let mut files = Vec::new();
    rs_files(&src_dir(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 800).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by concern: {long:?}");
}
