//! Interruption: a process-wide flag that holds the number of the signal asking a run to stop (0: none). The
//! CLI's signal handlers set it (`flag()` is what they register); the executor checks it between work items
//! and `run` before committing, so an interrupted run returns `Error::Interrupted` and its unnamed output
//! files vanish with it. The library installs no handler itself.

use lbrx_core::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

fn global() -> &'static Arc<AtomicUsize> {
    static FLAG: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// The flag a signal handler sets to the signal's number.
pub fn flag() -> Arc<AtomicUsize> {
    global().clone()
}

/// `Err(Error::Interrupted)` once a signal asked the run to stop.
pub fn check() -> Result<()> {
    match global().load(Ordering::Relaxed) {
        0 => Ok(()),
        s => Err(Error::Interrupted { signal: s as i32 }),
    }
}
