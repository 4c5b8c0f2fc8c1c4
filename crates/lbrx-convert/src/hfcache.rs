//! The Hugging Face hub cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`): lbrx reads
//! models from it (a repo id `org/name` resolves through `refs/<revision>` to `snapshots/<commit>/`) and never
//! writes inside it.
//!
//! Layout: `models--{org}--{name}/refs/{revision}` holds a commit hash; `snapshots/{commit}/...` holds the
//! files as symlinks into `blobs/`. See <https://huggingface.co/docs/huggingface_hub/guides/manage-cache>.

use lbrx_core::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// The hub cache directory as the Hugging Face libraries resolve it (it may not exist).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p).join("hub"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// `p` made absolute with every symlink in its existing part resolved (the rest appended as written).
pub fn resolve(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return normalize(&out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return normalize(&abs),
        }
    }
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Whether `p` resolves (symlinks followed) to a place inside the hub cache.
pub fn is_inside_cache(p: &Path) -> bool {
    let Some(cache) = cache_dir() else {
        return false;
    };
    let cache = resolve(&cache);
    resolve(p).starts_with(&cache)
}

/// Refuses a write destination inside the hub cache.
pub fn refuse_cache_destination(dst: &Path) -> Result<()> {
    if is_inside_cache(dst) {
        let cache = cache_dir().unwrap_or_default();
        return Err(Error::Destination {
            path: dst.to_path_buf(),
            why: format!(
                "refusing to write inside the Hugging Face cache ({}), which lbrx only reads; \
             choose a destination outside it (e.g. `lbrx clone` the model into a workspace first)",
                cache.display()
            ),
        });
    }
    Ok(())
}

/// Resolves a repo id (`org/name`, optionally `@revision`) to its snapshot directory in the hub cache.
pub fn resolve_repo(spec: &str) -> Result<PathBuf> {
    let (repo, revision) = match spec.split_once('@') {
        Some((r, v)) => (r, v),
        None => (spec, "main"),
    };
    let parts: Vec<&str> = repo.split('/').collect();
    let valid = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['\\', '\0']);
    if parts.len() != 2
        || !parts.iter().all(|s| valid(s))
        || !valid(revision)
        || revision.contains('/') && revision.contains("..")
    {
        return Err(Error::Usage(format!(
            "'{spec}' is not a repo id of the form org/name[@revision]"
        )));
    }
    let cache = cache_dir()
        .ok_or_else(|| Error::Usage("no Hugging Face cache directory (HOME is unset)".into()))?;
    let repo_dir = cache.join(format!("models--{}--{}", parts[0], parts[1]));
    if !repo_dir.is_dir() {
        return Err(Error::model(
            &repo_dir,
            format!("{spec} is not in the Hugging Face cache"),
        ));
    }
    let ref_file = repo_dir.join("refs").join(revision);
    let commit = if ref_file.is_file() {
        std::fs::read_to_string(&ref_file)
            .map_err(|e| Error::io(&ref_file, "read", e))?
            .trim()
            .to_string()
    } else {
        revision.to_string() // a commit hash given directly
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit == ".." {
        return Err(Error::Destination {
            path: ref_file.to_path_buf(),
            why: format!("invalid commit '{commit}'"),
        });
    }
    let snap = repo_dir.join("snapshots").join(&commit);
    if !snap.is_dir() {
        return Err(Error::model(
            &snap,
            format!("{spec}: this snapshot is missing from the cache"),
        ));
    }
    Ok(snap)
}
