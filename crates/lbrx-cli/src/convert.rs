//! `lbrx convert`: plan, show (`--dry-run`) or run a conversion with a progress bar.

use crate::util::{out, out_json, parse_size, CliResult, WriteArgs};
use indicatif::{ProgressBar, ProgressStyle};
use lbrx_convert::{plan, ConvertOptions, ExecOptions, Plan, Transform};
use lbrx_core::{human_bytes, DType};
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `lbrx convert`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Source model file or directory.
    src: PathBuf,
    /// Destination: a `.gguf` file, a `.safetensors` file, a `.npz` archive, or a directory (SafeTensors
    /// shards + index; an MLX model with `--to mlx`).
    dst: PathBuf,
    /// Cast float tensors to this dtype: f32, f16, bf16, f8_e4m3, f8_e5m2; quantized (GGUF) tensors are
    /// dequantized to it; integer tensors are kept. `auto` (the default) keeps the source's type (for a Hugging
    /// Face model going to GGUF: BF16 stays BF16, anything else becomes F16, as llama.cpp's `--outtype auto`).
    #[arg(long, value_parser = parse_dtype)]
    dtype: Option<Auto>,
    /// Quantize weight matrices to this ggml type (GGUF output): Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K,
    /// Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, IQ3_S, IQ3_XXS, IQ2_S, IQ1_M, TQ1_0, TQ2_0, MXFP4, NVFP4, Q1_0, Q2_0
    /// (every matrix the same type; ggml's reference quantizers). Vectors, norms and biases stay float (F32
    /// for a Hugging Face model, as llama.cpp writes them). A llama.cpp file type that is not a plain ggml type
    /// (Q4_K_M, Q5_K_S, Q3_K_L, IQ3_M, MXFP4_MOE ...), and IQ2_XXS, IQ2_XS, IQ1_S (which need an importance
    /// matrix), mean `--recipe` with that name.
    #[arg(long, value_parser = parse_quant)]
    quant: Option<Quant>,
    /// GGUF output: llama-quantize's per-tensor type choices of this file type (Q4_K_M, Q6_K, IQ4_XS ...),
    /// in one pass: the same file as converting to an F16 GGUF (or `--dtype`) and running llama-quantize on it.
    #[arg(long, value_name = "TYPE")]
    recipe: Option<String>,
    /// Importance matrix (llama-imatrix output) for `--recipe`.
    #[arg(long, value_name = "FILE")]
    imatrix: Option<PathBuf>,
    /// Write this model layout: `hf` turns a GGUF into a Hugging Face model directory (transformers names,
    /// config.json, tokenizer files); `mlx` writes an MLX model directory as `mlx_lm.convert` does (from a
    /// Hugging Face directory, an MLX directory or a GGUF). By default the destination's extension decides and
    /// names are kept.
    #[arg(long, value_parser = ["hf", "mlx"])]
    to: Option<String>,
    /// Quantize the weight matrices of an MLX output (`--to mlx`), as `mlx_lm.convert -q` (GGUF: `--quant`).
    #[arg(short = 'q', long = "quantize")]
    quantize: bool,
    /// MLX quantization bits: 2, 3, 4, 5, 6 or 8 (default 4; implies -q).
    #[arg(long)]
    q_bits: Option<u32>,
    /// MLX quantization group size: 32, 64 or 128 (default 64; implies -q).
    #[arg(long)]
    q_group_size: Option<u32>,
    /// MLX quantization mode: affine (default), or the float modes mxfp4, mxfp8, nvfp4 (implies -q).
    #[arg(long, value_parser = ["affine", "mxfp4", "mxfp8", "nvfp4"])]
    q_mode: Option<String>,
    /// MLX mixed-precision recipe: mixed_2_6, mixed_3_4, mixed_3_6 or mixed_4_6 (as mlx_lm; implies -q).
    #[arg(long, value_parser = ["mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6"])]
    quant_predicate: Option<String>,
    /// Dequantize a quantized MLX model (an MLX directory by default, as `mlx_lm.convert -d`). Quantized MLX
    /// sources going to GGUF are dequantized without it.
    #[arg(short = 'd', long)]
    dequantize: bool,
    /// Largest output shard, e.g. 5GB or 2GiB: SafeTensors shards of a directory output, or GGUF split files
    /// (NAME-00001-of-0000N.gguf); by default a directory keeps the source's sharding and a .gguf is one file.
    #[arg(long, value_parser = parse_size)]
    max_shard_size: Option<u64>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the plan (every output file and tensor) and write nothing.
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

/// A `--dtype` value: a dtype, or `auto`.
#[derive(Clone, Copy)]
struct Auto(Option<DType>);

fn parse_dtype(s: &str) -> Result<Auto, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(Auto(None));
    }
    match DType::parse_user(s) {
        Some(d) if d.is_castable_float() => Ok(Auto(Some(d))),
        _ => Err(format!(
            "'{s}' is not a target dtype (use auto, f32, f16, bf16, f8_e4m3, f8_e5m2, f64)"
        )),
    }
}

/// A `--quant` value: one ggml type for every matrix, or a llama.cpp recipe.
#[derive(Clone)]
enum Quant {
    Type(DType),
    Recipe(String),
}

fn parse_quant(s: &str) -> Result<Quant, String> {
    match DType::from_name(s.trim()) {
        Some(d)
            if lbrx_quant::ggml_quant::can_quantize(d)
                && d.info().block_size > 1
                && d != DType::Q8K
                // IQ2_XXS, IQ2_XS, IQ1_S exist only with an importance matrix: their llama.cpp recipes
                && !(lbrx_quant::ggml_quant::requires_imatrix(d)
                    && lbrx_convert::request::Recipe::named(s).is_ok()) =>
        {
            Ok(Quant::Type(d))
        }
        _ if lbrx_convert::request::Recipe::named(s).is_ok() => Ok(Quant::Recipe(s.to_string())),
        _ => Err(format!(
            "'{s}' is not a quantization type lbrx writes yet (use Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, \
             Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, IQ3_S, IQ3_XXS, IQ2_S, IQ1_M, TQ1_0, TQ2_0, MXFP4, NVFP4, Q1_0, \
             Q2_0, or a llama.cpp recipe such as Q4_K_M or IQ2_XXS)"
        )),
    }
}

fn transform_name(j: &lbrx_convert::Job) -> String {
    let t = match &j.transform {
        Transform::Copy => "copy".into(),
        Transform::Cast { from, to } => format!("cast {from}->{to}"),
        Transform::Dequant { from, to } => format!("dequantize {from}->{to}"),
        Transform::Quant { from, to, via } => match via {
            Some(v) => format!("quantize {from}->{v}->{to}"),
            None => format!("quantize {from}->{to}"),
        },
        Transform::Inline { .. } => "computed".into(),
        Transform::MlxQuant {
            from,
            to,
            bits,
            group,
            ..
        } => format!("quantize {from}->{to} (MLX {bits}-bit, groups of {group})"),
        Transform::WrittenBy { .. } => "written with its weight".into(),
    };
    match j.permute_heads {
        Some(h) => format!("{t}, rotary rows permuted ({h} heads)"),
        None => t,
    }
}

pub(crate) fn print_plan(plan: &Plan, json: bool) -> CliResult {
    if json {
        return out_json(&serde_json::to_value(plan)?);
    }
    let mut s = format!(
        "plan: {} -> {} ({}, {} file{}, {} of tensor data)\n",
        plan.jobs.len(),
        plan.dst.display(),
        match plan.kind {
            lbrx_convert::OutputKind::File => "file",
            lbrx_convert::OutputKind::Files => "files",
            lbrx_convert::OutputKind::Dir => "directory",
        },
        plan.files.len(),
        if plan.files.len() == 1 { "" } else { "s" },
        human_bytes(plan.data_bytes)
    );
    for (fi, f) in plan.files.iter().enumerate() {
        s += &format!(
            "\n{} ({}, header {} bytes)\n",
            f.name,
            human_bytes(f.size),
            f.header.len()
        );
        let mut jobs: Vec<_> = plan.jobs.iter().filter(|j| j.file == fi).collect();
        jobs.sort_by_key(|j| j.offset);
        for j in jobs {
            s += &format!(
                "  {:>14}  {:<48} {:<8} {:<18} {:>12}  {}\n",
                j.offset,
                j.name,
                j.dtype.name(),
                format!("{:?}", j.shape),
                j.len,
                transform_name(j)
            );
        }
    }
    for (name, _) in &plan.small_files {
        s += &format!("\n{name} (index)\n");
    }
    for (name, p) in &plan.assets {
        s += &format!("{name} (copied from {})\n", p.display());
    }
    for w in &plan.warnings {
        s += &format!("\nwarning: {w}\n");
    }
    out(&s)
}

pub(crate) fn run(a: Args) -> CliResult {
    use lbrx_convert::Target;
    let is_file = a
        .dst
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf") || e.eq_ignore_ascii_case("safetensors"));
    let target = match a.to.as_deref() {
        Some("hf") => Some(Target::Hf),
        Some(_) => Some(Target::Mlx),
        None if a.dequantize && !is_file => Some(Target::Mlx),
        None => None,
    };
    let mlx = target == Some(Target::Mlx);
    let wants_quant = a.q_bits.is_some() || a.q_group_size.is_some() || a.quant_predicate.is_some();
    if wants_quant && !mlx {
        return Err(
            "--q-bits, --q-group-size and --quant-predicate are MLX options: add --to mlx \
                    (for GGUF use --quant TYPE)"
                .into(),
        );
    }
    if a.quantize && !mlx {
        return Err(
            "-q/--quantize quantizes an MLX output (as mlx_lm.convert -q): add --to mlx; for GGUF \
                    use --quant TYPE (Q8_0, Q4_K_M ...); --quiet silences the progress bar"
                .into(),
        );
    }
    let mlx_quant = if mlx && (a.quantize || wants_quant) {
        Some(lbrx_convert::mlx::MlxQuant::new(
            a.q_bits,
            a.q_group_size,
            a.quant_predicate.as_deref(),
            a.q_mode.as_deref(),
        )?)
    } else {
        None
    };
    let quiet = a.quiet;
    let mut src = lbrx_formats::open(&a.src)?;
    crate::util::print_source_warnings(&*src);
    let to_gguf = a
        .dst
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if a.dequantize || mlx_quant.is_some() || to_gguf {
        src = lbrx_convert::mlx::source::DequantSource::wrap(src)?;
    }
    let (quant, recipe_name) = match (a.quant.clone(), a.recipe.clone()) {
        (Some(_), Some(_)) => return Err("give --quant or --recipe, not both".into()),
        (Some(Quant::Type(d)), None) => (Some(d), None),
        (Some(Quant::Recipe(r)), None) | (None, Some(r)) => (None, Some(r)),
        (None, None) => (None, None),
    };
    let recipe = match recipe_name {
        Some(r) => {
            if !to_gguf {
                return Err("--recipe (a llama.cpp file type) needs a .gguf destination".into());
            }
            let mut r = lbrx_convert::request::Recipe::named(&r)?;
            r.dry_run = a.dry_run;
            Some(r)
        }
        None => None,
    };
    let imatrix = match &a.imatrix {
        Some(_) if recipe.is_none() => {
            return Err("--imatrix goes with --recipe (or a recipe name in --quant)".into())
        }
        Some(p) => Some(lbrx_convert::request::ImatrixInput {
            data: lbrx_formats::imatrix::read_imatrix(p)?,
            file: p.to_string_lossy().into_owned(),
        }),
        None => None,
    };
    let opts = ConvertOptions {
        dtype: a.dtype.and_then(|d| d.0),
        quant,
        recipe,
        imatrix,
        target,
        mlx_quant,
        dequantize: a.dequantize,
        max_shard_size: a.max_shard_size,
        ..a.write.options()
    };
    let plan = plan(&*src, &a.dst, &opts)?;
    if a.dry_run {
        return print_plan(&plan, a.json);
    }
    execute_plan(&plan, &*src, &opts, a.threads, quiet, a.json)
}

/// Runs a plan with a progress bar (on a terminal) and prints the summary.
pub(crate) fn execute_plan(
    plan: &Plan,
    src: &dyn lbrx_core::Source,
    opts: &ConvertOptions,
    threads: usize,
    quiet: bool,
    json: bool,
) -> CliResult {
    let bar = if !quiet && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(plan.data_bytes);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let start = Instant::now();
    let exec = ExecOptions {
        threads,
        ..ExecOptions::default()
    };
    let progress = |n: u64| {
        if let Some(b) = &bar {
            b.inc(n);
        }
    };
    let result = lbrx_convert::run(plan, src, opts, exec, &progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    result?;
    let secs = start.elapsed().as_secs_f64();
    if json {
        return out_json(&json!({
            "dst": plan.dst, "tensors": plan.jobs.len(), "files": plan.files.iter().map(|f| &f.name).collect::<Vec<_>>(),
            "tensor_bytes": plan.data_bytes, "seconds": secs,
        }));
    }
    if !quiet {
        let rate = plan.data_bytes as f64 / secs.max(1e-9);
        out(&format!(
            "wrote {}: {} tensors in {} file{}, {} in {:.2}s ({}/s)\n",
            match plan.kind {
                lbrx_convert::OutputKind::Files => {
                    let names: Vec<&str> = plan.files.iter().map(|f| f.name.as_str()).collect();
                    format!("{} in {}", names.join(", "), plan.dst.display())
                }
                _ => plan.dst.display().to_string(),
            },
            plan.jobs.len(),
            plan.files.len(),
            if plan.files.len() == 1 { "" } else { "s" },
            human_bytes(plan.data_bytes),
            secs,
            human_bytes(rate as u64)
        ))?;
    }
    Ok(())
}
