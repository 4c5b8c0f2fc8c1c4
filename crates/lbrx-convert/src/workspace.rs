//! Workspaces: directories lbrx creates for its outputs. Each holds `.lbrx_workspace.json`, written first and
//! atomically, and marked `complete` only once everything else is in place, so an interrupted operation can
//! never pass for a finished model.

use lbrx_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// File name of the workspace sentinel.
pub const SENTINEL: &str = ".lbrx_workspace.json";

/// The sentinel's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceInfo {
    /// Always `lbrx`.
    pub tool: String,
    /// Version of lbrx that created it.
    pub version: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// What it was made from (path or repo id).
    pub source: String,
    /// The operation (`convert`, `clone`, `repair-index` ...).
    pub operation: String,
    /// Whether the operation finished.
    pub complete: bool,
}

impl WorkspaceInfo {
    /// A new sentinel for `operation` on `source`, not yet complete.
    pub fn new(source: &str, operation: &str) -> Self {
        WorkspaceInfo {
            tool: "lbrx".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            created_at: rfc3339_utc(SystemTime::now()),
            source: source.into(),
            operation: operation.into(),
            complete: false,
        }
    }

    /// The sentinel as written to disk.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s.into_bytes()
    }
}

/// Writes the sentinel into `dir` atomically (temporary file, then rename).
pub fn write_sentinel(dir: &Path, info: &WorkspaceInfo) -> Result<()> {
    let tmp = dir.join(format!("{SENTINEL}.tmp"));
    std::fs::write(&tmp, info.to_bytes()).map_err(|e| Error::io(&tmp, "write", e))?;
    std::fs::rename(&tmp, dir.join(SENTINEL))
        .map_err(|e| Error::io(dir.join(SENTINEL), "rename", e))
}

/// Reads the sentinel of the workspace that `path` is (or is inside of, for a file). `None`: not managed.
pub fn read_workspace(path: &Path) -> Option<WorkspaceInfo> {
    let dir = if path.is_dir() { path } else { path.parent()? };
    let bytes = std::fs::read(dir.join(SENTINEL)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Formats a time as RFC 3339 UTC (`2026-11-23T20:11:00Z`).
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_795_464_660)),
            "2026-11-23T20:11:00Z"
        );
    }
}
