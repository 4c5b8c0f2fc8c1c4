//! Small helpers shared by the subcommands: output, size parsing, number formatting.

use std::io::{self, Write};

/// A boxed error for the CLI layer.
pub(crate) type CliResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Whether an error is a closed stdout (`lbrx inspect x | head`), which is not a failure.
pub(crate) fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The options of every command that writes a model.
#[derive(clap::Args)]
pub(crate) struct WriteArgs {
    /// Replace the destination if it exists.
    #[arg(long, short = 'f')]
    pub(crate) force: bool,
    /// fsync the output before moving it into place, so it survives a power loss (slower: waits for the disk).
    #[arg(long)]
    pub(crate) sync: bool,
    /// Write even when the destination's filesystem reports less free space than the output needs.
    #[arg(long)]
    pub(crate) no_space_check: bool,
    /// Skip the check that the written output reads back with exactly the planned files, sizes and tensors.
    #[arg(long)]
    pub(crate) skip_health: bool,
    /// Also hash every byte as it is written and read it all back before moving the output into place.
    #[arg(long)]
    pub(crate) verify: bool,
}

impl WriteArgs {
    /// Conversion options carrying these flags.
    pub(crate) fn options(&self) -> lbrx_convert::ConvertOptions {
        lbrx_convert::ConvertOptions {
            overwrite: self.force,
            sync: self.sync,
            no_space_check: self.no_space_check,
            skip_health: self.skip_health,
            verify: self.verify,
            ..Default::default()
        }
    }
}

/// Names joined for help text and error lists.
fn names<'a>(it: impl IntoIterator<Item = &'a str>) -> String {
    it.into_iter().collect::<Vec<_>>().join(", ")
}

/// `--quant`'s help, from the quantizer and file-type tables.
pub(crate) fn quant_help() -> String {
    let types: Vec<&str> = lbrx_convert::request::plain_quant_types()
        .iter()
        .map(|d| d.name())
        .collect();
    format!(
        "Quantize weight matrices to one ggml type (GGUF output): {} (ggml's quantizers, bit-exact). Vectors, \
         norms and biases stay float (F32 for a Hugging Face model, as llama.cpp writes them). A llama.cpp file \
         type that is not a plain type means --recipe with that name: {}. SafeTensors output: {} (every 2-D \
         *.weight with its weight_scale; see --scaling)",
        names(types),
        names(lbrx_convert::request::recipe_names()),
        lbrx_quant::codec::scaled_families()
            .iter()
            .filter_map(|n| lbrx_quant::scaled::family_named(n))
            .map(|f| format!("{} = {}", f.name, f.doc))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// `--scaling`'s help, from the scaled families' table.
pub(crate) fn scaling_help() -> String {
    format!(
        "Scales of a scaled --quant: {}",
        lbrx_quant::scaled::SCHEMES
            .iter()
            .map(|f| format!("{} takes {}", f.name, f.granularities.join("|")))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// The model filters' names.
pub(crate) fn filter_names() -> Vec<&'static str> {
    lbrx_convert::scaled::filters::FILTERS
        .iter()
        .map(|f| f.name)
        .collect()
}

/// `--filter`'s help, from the model filter table.
pub(crate) fn filter_help() -> String {
    format!(
        "Scaled --quant: keep the layers a model family needs in high precision, as convert-to-quant's filter \
         of that name does (repeatable): {}",
        lbrx_convert::scaled::filters::FILTERS
            .iter()
            .map(|f| format!("{} ({})", f.name, f.help))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// The llama.cpp file types `lbrx quantize` takes, from the file-type table.
pub(crate) fn recipe_help() -> String {
    format!(
        "llama.cpp file type: {} (Q3_K, Q4_K, Q5_K: the _M recipe). IQ1_*, IQ2_*, IQ3_XXS and Q2_K_S need \
         --imatrix, as in llama.cpp",
        names(lbrx_convert::request::recipe_names())
    )
}

/// The float dtypes `--dtype` casts to, from the dtype table.
pub(crate) fn cast_dtypes() -> String {
    names(lbrx_quant::codec::cast_types())
}

/// `--dtype`'s help, from the dtype table.
pub(crate) fn dtype_help() -> String {
    format!(
        "Cast float tensors to this dtype: {} (any case); quantized (GGUF) tensors are dequantized to it; integer \
         tensors are kept. `auto` (the default) keeps the source's type (for a Hugging Face model going to GGUF: \
         BF16 stays BF16, anything else becomes F16, as llama.cpp's `--outtype auto`)",
        cast_dtypes()
    )
}

/// The MLX modes, from the codec registry.
pub(crate) fn mlx_modes() -> Vec<&'static str> {
    lbrx_quant::codec::mlx_modes()
}

/// mlx_lm's mixed recipes, from lbrx-convert's table.
pub(crate) fn mlx_recipes() -> Vec<&'static str> {
    lbrx_convert::mlx::RECIPES.iter().map(|r| r.0).collect()
}

/// Writes text to stdout.
pub(crate) fn out(text: &str) -> CliResult {
    let mut o = io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

/// Writes JSON (pretty) to stdout.
pub(crate) fn out_json(v: &serde_json::Value) -> CliResult {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    out(&s)
}

/// Parses a size: `5GB` (10^9), `2GiB` (2^30), `500MB`, `64KiB`, `1000` (bytes).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (try 5GB, 500MB, 2GiB)"))?;
    let mult: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" | "K" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "TB" | "T" => 1e12,
        "KIB" => 1024.0,
        "MIB" => 1048576.0,
        "GIB" => 1073741824.0,
        "TIB" => 1099511627776.0,
        _ => {
            return Err(format!(
                "'{s}': unknown size unit (use B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    let bytes = v * mult;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(format!("'{s}': size out of range"));
    }
    Ok(bytes as u64)
}

/// Groups digits: 1234567 -> "1,234,567".
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Short parameter count: 3.71M, 7.24B.
pub(crate) fn short_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}K", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", n as f64 / 1e6),
        _ => format!("{:.2}B", n as f64 / 1e9),
    }
}

/// Prints what the source's reader skipped, one `warning:` line each, to stderr.
pub(crate) fn print_source_warnings(src: &dyn lbrx_core::Source) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    for w in src.warnings() {
        let _ = writeln!(err, "warning: {w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5GB"), Ok(5_000_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("5XB").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(short_count(3_712_000), "3.71M");
    }
}
