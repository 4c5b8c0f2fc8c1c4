//! `lbrx`: read, check and convert machine-learning model weights.

mod convert;
mod hash;
mod health;
mod inspect;
mod quantize;
mod util;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

/// Read, check and convert machine-learning model weights.
#[derive(Parser)]
#[command(name = "lbrx", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarize a model file or directory: format, tensors, parameters, bytes per dtype, metadata.
    Inspect(inspect::Args),
    /// Convert a model to another format, dtype or sharding, streaming with bounded memory.
    Convert(Box<convert::Args>),
    /// Quantize a GGUF with a llama.cpp recipe (Q4_K_M, Q8_0 ...), as llama-quantize does.
    Quantize(quantize::Args),
    /// Check a model thoroughly and report every problem (exit 0 healthy, 1 unhealthy, 2 could not check).
    Health(health::HealthArgs),
    /// Rebuild a model's shard index from its shards' headers into a new workspace, then check it.
    RepairIndex(health::RepairArgs),
    /// Copy a model directory, or a repo from the Hugging Face cache, into a new workspace.
    Clone(health::CloneArgs),
    /// Per-tensor and whole-model hashes (xxh64, sha1, sha256, uuid) as llama-gguf-hash prints them, for any
    /// format; --check compares with a saved manifest.
    Hash(hash::Args),
}

/// Prints an error and its causes on one line to stderr.
pub(crate) fn print_error(e: &(dyn std::error::Error + 'static)) {
    let mut msg = format!("error: {e}");
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(&format!(": {text}"));
        }
        src = s.source();
    }
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// SIGINT, SIGTERM and SIGHUP stop a writing command cleanly: the first sets the library's interruption flag
/// (the run stops between work items, its unnamed output files vanish, exit 128 + signal); a second one exits
/// at once.
fn stop_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let again = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, again.clone());
        let _ = signal_hook::flag::register(sig, again.clone());
        let _ =
            signal_hook::flag::register_usize(sig, lbrx_convert::interrupt::flag(), sig as usize);
    }
}

/// A source file that shrinks (or fails to read) while it is memory-mapped raises SIGBUS on the next access
/// to the lost pages. Instead of a crash, this handler prints one error line and exits 1; unnamed output files
/// vanish with the process, and the source is only ever read.
fn fail_cleanly_on_sigbus() {
    const MSG: &[u8] =
        b"error: a source file was truncated or could not be read (I/O error) while it was being \
read; nothing was written, check the source and run again\n";
    // SAFETY: the action only makes two async-signal-safe system calls (write(2) on stderr and _exit(2)),
    // touches no lock, allocation or Rust state, and never returns into the faulting access.
    let _ = unsafe {
        signal_hook::low_level::register(signal_hook::consts::SIGBUS, || {
            let _ = rustix::io::write(rustix::stdio::stderr(), MSG);
            signal_hook::low_level::exit(1);
        })
    };
}

/// The exit code of an interrupted run (128 + the signal), if that is what `e` is.
fn interrupted(e: &(dyn std::error::Error + 'static)) -> Option<u8> {
    match e.downcast_ref::<lbrx_core::Error>() {
        Some(lbrx_core::Error::Interrupted { signal }) => Some((128 + signal) as u8),
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    fail_cleanly_on_sigbus();
    if matches!(
        cli.command,
        Command::Convert(_) | Command::Quantize(_) | Command::RepairIndex(_) | Command::Clone(_)
    ) {
        stop_on_signals();
    }
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(a).map(|()| ExitCode::SUCCESS),
        Command::Convert(a) => convert::run(*a).map(|()| ExitCode::SUCCESS),
        Command::Quantize(a) => quantize::run(a).map(|()| ExitCode::SUCCESS),
        Command::Health(a) => health::run_health(a),
        Command::RepairIndex(a) => health::run_repair(a),
        Command::Clone(a) => health::run_clone(a),
        Command::Hash(a) => hash::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) if util::is_broken_pipe(&*e) => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&*e);
            ExitCode::from(interrupted(&*e).unwrap_or(1))
        }
    }
}
