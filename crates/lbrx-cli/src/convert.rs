//! `lbrx convert`: plan, show (`--dry-run`) or run a conversion with a progress bar.

use crate::util::{out, out_json, parse_size, CliResult, WriteArgs};
use indicatif::{ProgressBar, ProgressStyle};
use lbrx_convert::plan::{Input, Step};
use lbrx_convert::request::QuantChoice;
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
    #[arg(long, value_parser = parse_dtype, help = crate::util::dtype_help())]
    dtype: Option<Auto>,
    #[arg(long, value_parser = parse_quant, help = crate::util::quant_help())]
    quant: Option<QuantChoice>,
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(lbrx_quant::scaled::GRANULARITIES), help = crate::util::scaling_help())]
    scaling: Option<String>,
    /// Tile size of --scaling block for fp8 and int8 (default 128).
    #[arg(long)]
    block_size: Option<u32>,
    #[arg(long = "filter", value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(crate::util::filter_names()), help = crate::util::filter_help())]
    filters: Vec<String>,
    /// Scaled --quant: quantize only the 2-D weights whose names match this regex.
    #[arg(long, value_name = "REGEX")]
    include: Option<String>,
    /// Scaled --quant: keep the 2-D weights whose names match this regex in high precision.
    #[arg(long, value_name = "REGEX")]
    exclude: Option<String>,
    /// Scaled --quant: keep layers whose dimensions are smaller than or not divisible by the block size
    /// (16 for nvfp4, 32 for mxfp8, 128 for int8, 64 or --block-size for fp8) in high precision.
    #[arg(long)]
    heur: bool,
    /// Scaled --quant fp8: give each layer a unit input_scale.
    #[arg(long)]
    input_scale: bool,
    /// Scaled --quant fp8/int8: record full_precision_matrix_mult in each layer's comfy_quant.
    #[arg(long)]
    full_precision_mm: bool,
    /// Scaled --quant fp8/int8: round each weight matrix to the codes (of the two around each value) that
    /// minimize its error in its top-k singular subspace, starting from round-to-nearest; prints each
    /// layer's error before and after.
    #[arg(long)]
    learned_rounding: bool,
    /// --learned-rounding: iteration budget per layer.
    #[arg(long, default_value_t = 200)]
    rounding_iters: u32,
    /// --learned-rounding: seed of the randomized SVD.
    #[arg(long, default_value_t = 0)]
    rounding_seed: u64,
    /// --learned-rounding: the subspace keeps this fraction of min(rows, cols) singular vectors ...
    #[arg(long, default_value_t = 0.2)]
    rounding_top_p: f32,
    /// ... but at least this many ...
    #[arg(long, default_value_t = 256)]
    rounding_min_k: usize,
    /// ... and at most this many (convert-to-quant's defaults).
    #[arg(long, default_value_t = 1280)]
    rounding_max_k: usize,
    /// Rewrite a legacy scaled_fp8 SafeTensors model (scale_weight / scale_input) in the comfy_quant
    /// layout ComfyUI's current loader reads.
    #[arg(long)]
    migrate: bool,
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
    /// MLX quantization mode: affine (default), or a float mode (implies -q).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::util::mlx_modes()))]
    q_mode: Option<String>,
    /// MLX mixed-precision recipe, as mlx_lm's `--quant-predicate` (implies -q).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::util::mlx_recipes()))]
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
            "'{s}' is not a target dtype (use auto, {})",
            crate::util::cast_dtypes()
        )),
    }
}

fn parse_quant(s: &str) -> Result<QuantChoice, String> {
    lbrx_convert::request::parse_quant(s).map_err(|e| e.to_string())
}

fn transform_name(j: &lbrx_convert::Job) -> String {
    let via = j.steps.iter().find_map(|s| match s {
        Step::Round { via } => Some(*via),
        _ => None,
    });
    let mut t = match &j.transform {
        Transform::Copy if matches!(j.input, Input::Inline { .. }) => "computed".into(),
        Transform::Copy => "copy".into(),
        Transform::Cast { from, to } => format!("cast {from}->{to}"),
        Transform::Dequant { from, to } => format!("dequantize {from}->{to}"),
        Transform::Quant { from, to } => match via {
            Some(v) => format!("quantize {from}->{v}->{to}"),
            None => format!("quantize {from}->{to}"),
        },
        Transform::MlxQuant {
            from,
            to,
            bits,
            group,
            ..
        } => format!("quantize {from}->{to} (MLX {bits}-bit, groups of {group})"),
        Transform::Scaled { from, scheme, .. } => {
            format!(
                "quantize {from}->{} ({})",
                scheme.name(),
                scheme.comfy_format()
            )
        }
        Transform::WrittenBy { .. } => "written with its weight".into(),
    };
    for s in &j.steps {
        match s {
            Step::Permute { heads, .. } => t += &format!(", rotary rows permuted ({heads} heads)"),
            Step::Shift { add } => t += &format!(", {add:+} added"),
            Step::Round { .. } => {}
        }
    }
    if let Input::Stack { parts } = &j.input {
        t += &format!(", {} tensors stacked", parts.len());
    }
    t
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
    if !plan.layers.is_empty() {
        s += "\nlayers:\n";
        for l in &plan.layers {
            let what = match l.action {
                lbrx_convert::scaled::Action::Quantize => format!("quantize -> {}", l.to),
                lbrx_convert::scaled::Action::Keep => format!("keep {}", l.to),
                lbrx_convert::scaled::Action::Remove => "remove".into(),
            };
            s += &format!("  {:<56} {:<32} {}\n", l.name, what, l.reason);
        }
    }
    for w in &plan.warnings {
        s += &format!("\nwarning: {w}\n");
    }
    out(&s)
}

pub(crate) fn run(a: Args) -> CliResult {
    use lbrx_convert::Target;
    let req = lbrx_convert::request::ConvertArgs {
        src: a.src,
        dst: a.dst,
        dtype: a.dtype.and_then(|d| d.0),
        quant: a.quant,
        recipe: a.recipe,
        imatrix: a.imatrix,
        to: a
            .to
            .as_deref()
            .map(|t| if t == "hf" { Target::Hf } else { Target::Mlx }),
        quantize: a.quantize,
        q_bits: a.q_bits,
        q_group_size: a.q_group_size,
        q_mode: a.q_mode,
        quant_predicate: a.quant_predicate,
        dequantize: a.dequantize,
        max_shard_size: a.max_shard_size,
        overwrite: a.write.force,
        sync: a.write.sync,
        no_space_check: a.write.no_space_check,
        skip_health: a.write.skip_health,
        verify: a.write.verify,
        dry_run: a.dry_run,
        scaling: a.scaling,
        block_size: a.block_size,
        filters: a.filters,
        include: a.include,
        exclude: a.exclude,
        heur: a.heur,
        input_scale: a.input_scale,
        full_precision_mm: a.full_precision_mm,
        migrate: a.migrate,
        learned: a
            .learned_rounding
            .then_some(lbrx_quant::scaled::learned::Params {
                iters: a.rounding_iters,
                seed: a.rounding_seed,
                top_p: a.rounding_top_p,
                min_k: a.rounding_min_k,
                max_k: a.rounding_max_k,
            }),
    }
    .resolve()?;
    let src = lbrx_convert::route::open_source(&req)?;
    crate::util::print_source_warnings(&*src);
    let plan = plan(&*src, &req.dst, &req.options)?;
    if req.dry_run {
        return print_plan(&plan, a.json);
    }
    execute_plan(&plan, &*src, &req.options, a.threads, a.quiet, a.json)
}

/// The learned-rounding errors of a run as JSON (per layer and total), if there were any.
fn rounding_json(r: &lbrx_convert::exec::RunReport) -> Option<serde_json::Value> {
    if r.rounding.is_empty() {
        return None;
    }
    let layers: Vec<_> = r
        .rounding
        .iter()
        .map(|(name, l)| {
            json!({"tensor": name, "k": l.k, "iterations": l.iters, "flips": l.flips,
                "rel_error": {"before": l.rel()[0], "after": l.rel()[1]},
                "subspace_rel_error": {"before": l.rel_sub()[0], "after": l.rel_sub()[1]}})
        })
        .collect();
    let t = total(r);
    Some(json!({"layers": layers, "total": {
        "rel_error": {"before": t.rel()[0], "after": t.rel()[1]},
        "subspace_rel_error": {"before": t.rel_sub()[0], "after": t.rel_sub()[1]}}}))
}

/// All layers' errors summed.
fn total(r: &lbrx_convert::exec::RunReport) -> lbrx_quant::scaled::learned::Report {
    let mut t = lbrx_quant::scaled::learned::Report::default();
    for (_, l) in &r.rounding {
        t.w_norm2 += l.w_norm2;
        t.w_sub2 += l.w_sub2;
        for i in 0..2 {
            t.err2[i] += l.err2[i];
            t.sub2[i] += l.sub2[i];
        }
    }
    t
}

/// The learned-rounding errors of a run, one line per layer and the total.
fn rounding_table(r: &lbrx_convert::exec::RunReport) -> String {
    let mut rows: Vec<_> = r.rounding.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = format!(
        "learned rounding ({} layers): relative error, and in the top-k subspace, round-to-nearest -> learned\n",
        rows.len()
    );
    let line = |name: &str, l: &lbrx_quant::scaled::learned::Report, k: String| {
        let (a, b) = (l.rel_sub()[0], l.rel_sub()[1]);
        format!(
            "  {name:<48} {k:>6}  {:.5} -> {:.5}   subspace {:.5} -> {:.5} ({:+.1}%)\n",
            l.rel()[0],
            l.rel()[1],
            a,
            b,
            (b / a.max(f64::MIN_POSITIVE) - 1.0) * 100.0
        )
    };
    for (name, l) in rows {
        s += &line(name, l, format!("k={}", l.k));
    }
    s += &line("total", &total(r), String::new());
    s
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
    let report = result?;
    let secs = start.elapsed().as_secs_f64();
    let rounding = rounding_json(&report);
    if json {
        let mut v = json!({
            "dst": plan.dst, "tensors": plan.jobs.len(), "files": plan.files.iter().map(|f| &f.name).collect::<Vec<_>>(),
            "tensor_bytes": plan.data_bytes, "seconds": secs,
        });
        if let Some(r) = rounding {
            v["rounding"] = r;
        }
        return out_json(&v);
    }
    if !quiet && !report.rounding.is_empty() {
        out(&rounding_table(&report))?;
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
