//! `lbrx`: read, check and convert machine-learning model weights.

mod convert;
mod inspect;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Convert(a) => convert::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if util::is_broken_pipe(&*e) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("error: {e}");
            let mut src = std::error::Error::source(&*e);
            while let Some(s) = src {
                let text = s.to_string();
                if !msg.contains(&text) {
                    msg.push_str(&format!(": {text}"));
                }
                src = s.source();
            }
            let _ = writeln!(std::io::stderr(), "{msg}");
            ExitCode::from(1)
        }
    }
}
