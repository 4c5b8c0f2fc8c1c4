//! `lbrx health`, `lbrx repair-index` and `lbrx clone`: checking models, rebuilding shard indexes, workspaces.

use crate::util::{out, out_json, CliResult, WriteArgs};
use lbrx_convert::health::{check, HealthReport, Severity};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `lbrx health`.
#[derive(clap::Args)]
pub(crate) struct HealthArgs {
    /// Model directory or file.
    path: PathBuf,
    /// Also read every byte and count NaN/Inf in float tensors.
    #[arg(long)]
    deep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lbrx repair-index`.
#[derive(clap::Args)]
pub(crate) struct RepairArgs {
    /// Model directory whose index is damaged or missing.
    src: PathBuf,
    /// New workspace to write (shards linked or copied, index rebuilt).
    dst: PathBuf,
    #[command(flatten)]
    write: WriteArgs,
    /// Print the summary and the health report as JSON.
    #[arg(long)]
    json: bool,
    /// Print nothing; the exit code tells.
    #[arg(long)]
    quiet: bool,
}

/// Arguments of `lbrx clone`.
#[derive(clap::Args)]
pub(crate) struct CloneArgs {
    /// Model directory, or a repo id in the Hugging Face cache (`org/name`, `org/name@revision`).
    src: String,
    /// New workspace directory.
    ws: PathBuf,
    #[command(flatten)]
    write: WriteArgs,
    /// Print nothing.
    #[arg(long)]
    quiet: bool,
}

/// Exit code of a report: 0 healthy, 1 unhealthy.
fn code(r: &HealthReport) -> ExitCode {
    if r.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn human(r: &HealthReport) -> String {
    let mut s = String::new();
    let errors = r
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = r.findings.len() - errors;
    let _ = writeln!(
        s,
        "{}: {} ({} shard{}, {} tensors{}; managed: {})",
        r.path.display(),
        if r.healthy { "healthy" } else { "UNHEALTHY" },
        r.shards,
        if r.shards == 1 { "" } else { "s" },
        r.tensors,
        if r.deep { ", every byte read" } else { "" },
        r.managed
    );
    for f in &r.findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut loc = String::new();
        if let Some(p) = &f.file {
            loc.push_str(&p.display().to_string());
        }
        if let Some(t) = &f.tensor {
            let _ = write!(
                loc,
                "{}tensor '{t}'",
                if loc.is_empty() { "" } else { ", " }
            );
        }
        let _ = writeln!(s, "  {sev} [{}] {loc}: {}", f.code, f.message);
    }
    if !r.findings.is_empty() {
        let _ = writeln!(
            s,
            "{errors} error{}, {warnings} warning{}",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
    s
}

pub(crate) fn run_health(a: HealthArgs) -> CliResult<ExitCode> {
    let report = match check(&a.path, a.deep) {
        Ok(r) => r,
        Err(e) => {
            crate::print_error(&e);
            return Ok(ExitCode::from(2));
        }
    };
    if a.json {
        out_json(&serde_json::to_value(&report)?)?;
    } else {
        out(&human(&report))?;
    }
    Ok(code(&report))
}

pub(crate) fn run_repair(a: RepairArgs) -> CliResult<ExitCode> {
    let opts = a.write.options();
    let summary = lbrx_convert::repair_index(&a.src, &a.dst, &opts)?;
    let report = check(&a.dst, false)?;
    if a.json {
        out_json(&serde_json::json!({ "repair": summary, "health": report }))?;
    } else if !a.quiet {
        let strays: String = summary
            .strays
            .iter()
            .map(|(s, of)| {
                format!("left out {s}: its tensors are byte-equal copies of those in {of} (a stray file)\n")
            })
            .collect();
        out(&format!(
            "{strays}wrote {}: {} with {} tensors from {} shard{} (total_size {})\n{}",
            a.dst.display(),
            summary.index,
            summary.tensors,
            summary.shards.len(),
            if summary.shards.len() == 1 { "" } else { "s" },
            summary.total_size,
            human(&report)
        ))?;
    }
    Ok(code(&report))
}

pub(crate) fn run_clone(a: CloneArgs) -> CliResult<ExitCode> {
    let opts = a.write.options();
    let src = lbrx_convert::clone_model(&a.src, &a.ws, &opts)?;
    if !a.quiet {
        out(&format!(
            "cloned {} into workspace {}\n",
            src.display(),
            a.ws.display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
