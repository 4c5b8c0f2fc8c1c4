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
    Convert(convert::Args),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(a).map(|()| ExitCode::SUCCESS),
        Command::Convert(a) => convert::run(a).map(|()| ExitCode::SUCCESS),
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
            ExitCode::from(1)
        }
    }
}
