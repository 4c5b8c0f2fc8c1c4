//! Helpers shared by lbrx-quant's golden tests.

use std::path::PathBuf;

/// `../shared/golden/NAME` (or under `$LBRX_SHARED`); `None` when absent and references are not required.
pub(crate) fn golden(name: &str) -> Option<PathBuf> {
    let p = std::env::var_os("LBRX_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("golden")
        .join(name);
    if p.is_dir() {
        return Some(p);
    }
    assert!(
        std::env::var("LBRX_REQUIRE_REFERENCE").as_deref() != Ok("1"),
        "{} is missing",
        p.display()
    );
    None
}
