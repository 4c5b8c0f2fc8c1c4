//! `lbrx quantize`: llama-quantize's job (GGUF in, GGUF out, a llama.cpp recipe such as Q4_K_M), streaming
//! through the executor.

use crate::convert::{execute_plan, print_plan};
use crate::util::{parse_size, CliResult, WriteArgs};
use lbrx_convert::recipe::plan_quantize;
use lbrx_convert::request::QuantizeArgs;
use lbrx_core::DType;
use std::path::PathBuf;

/// Arguments of `lbrx quantize`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Source GGUF (F32, F16, BF16 or already quantized).
    src: PathBuf,
    /// Destination `.gguf`.
    dst: PathBuf,
    #[arg(value_name = "TYPE", help = crate::util::recipe_help())]
    kind: String,
    /// Every quantizable tensor in the default type of TYPE (no per-tensor promotions).
    #[arg(long)]
    pure: bool,
    /// Keep output.weight as it is.
    #[arg(long)]
    leave_output_tensor: bool,
    /// Override the type of tensors whose name matches a regular expression: PATTERN=TYPE (repeatable; the
    /// first match wins).
    #[arg(long = "tensor-type", value_name = "PATTERN=TYPE")]
    tensor_type: Vec<String>,
    /// The type of output.weight (and of token embeddings tied to it), e.g. q8_0.
    #[arg(long, value_name = "TYPE", value_parser = parse_type)]
    output_tensor_type: Option<DType>,
    /// The type of the token embeddings, e.g. q8_0.
    #[arg(long, value_name = "TYPE", value_parser = parse_type)]
    token_embedding_type: Option<DType>,
    /// Importance matrix from llama-imatrix (GGUF or legacy .dat): quantize with it as llama-quantize does.
    #[arg(long, value_name = "FILE")]
    imatrix: Option<PathBuf>,
    /// Split the output like llama-gguf-split (e.g. 2GB).
    #[arg(long, value_parser = parse_size)]
    max_shard_size: Option<u64>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the plan (every tensor's new type) and write nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    write: WriteArgs,
    /// No progress bar and no summary.
    #[arg(long)]
    quiet: bool,
    /// Print the plan (with --dry-run) or the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: Args) -> CliResult {
    let (recipe, imatrix) = QuantizeArgs {
        kind: a.kind,
        pure: a.pure,
        leave_output: a.leave_output_tensor,
        tensor_types: a.tensor_type,
        output_type: a.output_tensor_type,
        token_embd_type: a.token_embedding_type,
        imatrix: a.imatrix,
        dry_run: a.dry_run,
    }
    .resolve()?;
    let src = lbrx_formats::open(&a.src)?;
    let plan = plan_quantize(&*src, &a.dst, &recipe, a.max_shard_size, imatrix.as_ref())?;
    if a.dry_run {
        return print_plan(&plan, a.json);
    }
    execute_plan(&plan, &*src, &a.write.options(), a.threads, a.quiet, a.json)
}

/// A ggml type lbrx quantizes to, by name (case-insensitive).
fn parse_type(s: &str) -> Result<DType, String> {
    lbrx_convert::request::parse_quantize_type(s).map_err(|e| e.to_string())
}
