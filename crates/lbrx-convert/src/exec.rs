//! The streaming executor: one work item per row-chunk of a tensor, run on a rayon pool; each reads a
//! zero-copy view of its source bytes, transforms into a per-thread buffer and writes at its planned offset.
//! Peak memory is threads x chunk size; output bytes do not depend on the thread count or scheduling.

use crate::gather::{self, bytes_of};
use crate::plan::{Input, Job, Plan, Step, Transform};
use lbrx_core::{DType, Error, Result, Sink, Source};
use rayon::prelude::*;

/// Default output bytes per work item.
pub const DEFAULT_CHUNK: u64 = 8 << 20;

/// Bytes cast and written at a time inside a work item: small enough to stay in the CPU cache.
const PIECE_BYTES: usize = 256 << 10;

/// Executor settings.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Output bytes per work item (rounded to whole elements/blocks).
    pub chunk_bytes: u64,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            threads: 0,
            chunk_bytes: DEFAULT_CHUNK,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Item {
    job: usize,
    /// First element (a multiple of both dtypes' block sizes).
    elem: u64,
    /// Element count.
    count: u64,
}

/// The dtype a job reads: its source tensor's, or its own for bytes computed at plan time.
fn src_dtype(job: &Job, src: &dyn Source) -> DType {
    match job.input.first_src() {
        Some(i) => src.tensors()[i].dtype,
        None => job.dtype,
    }
}

/// Elements in one row (the product of all but the first dimension; 1 for vectors).
fn row_elems(shape: &[u64]) -> u64 {
    shape.iter().skip(1).product::<u64>().max(1)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The shape of the values a job reads: its own, or for an MLX quantized weight the unpacked shape.
fn logical_shape(job: &Job) -> std::borrow::Cow<'_, [u64]> {
    match job.transform {
        Transform::MlxQuant { bits, .. } => {
            let mut s = job.shape.clone();
            if let Some(last) = s.last_mut() {
                *last = *last * 32 / bits as u64;
            }
            std::borrow::Cow::Owned(s)
        }
        Transform::Scaled { logical, .. } => std::borrow::Cow::Owned(logical.to_vec()),
        _ => std::borrow::Cow::Borrowed(&job.shape),
    }
}

/// The granularity of a job's work items, in elements: whole blocks of both dtypes, whole MLX groups, and
/// whole rows where a step or the encoding needs them (a permutation, importance weights, row scales).
fn unit_of(plan: &Plan, j: usize, src: &dyn Source) -> u64 {
    let job = &plan.jobs[j];
    let sdt = src_dtype(job, src);
    let mut block = (sdt.info().block_size as u64).max(job.dtype.info().block_size as u64);
    if let Transform::MlxQuant { group, .. } = job.transform {
        let g = group as u64;
        block = block / gcd(block, g) * g;
    }
    if job.permutation().is_some()
        || plan.imatrix.contains_key(&j)
        || matches!(job.transform, Transform::Scaled { .. })
    {
        let mut cols = row_elems(&logical_shape(job));
        if let Transform::Scaled {
            scheme, logical, ..
        } = job.transform
        {
            // NVFP4 / MXFP8 items cover whole 128-row tiles of the swizzled scales; a learned rounding
            // searches the whole matrix at once
            cols *= if learns(plan, job) {
                logical[0].max(1)
            } else {
                scheme.row_unit()
            };
        }
        block = block / gcd(block, cols) * cols;
    }
    block
}

fn work_items(plan: &Plan, src: &dyn Source, chunk_bytes: u64) -> Vec<Item> {
    let mut items = Vec::new();
    for (j, job) in plan.jobs.iter().enumerate() {
        if let Transform::WrittenBy { .. } = job.transform {
            continue;
        }
        let n: u64 = logical_shape(job).iter().product();
        let block = unit_of(plan, j, src);
        let per_elem = job.len.max(1).div_ceil(n.max(1)).max(1);
        let mut step = (chunk_bytes / per_elem).max(block);
        step -= step % block;
        let mut e = 0;
        loop {
            let count = step.min(n - e);
            items.push(Item {
                job: j,
                elem: e,
                count,
            });
            e += count;
            if e >= n {
                break;
            }
        }
    }
    items
}

/// An item cut into pieces of whole units of about [`PIECE_BYTES`] of f32 values, so that the chains that
/// decode to f32 hold one piece at a time.
fn pieces(plan: &Plan, src: &dyn Source, item: &Item) -> impl Iterator<Item = Item> {
    let unit = unit_of(plan, item.job, src);
    let per = ((PIECE_BYTES as u64 / 4) / unit).max(1) * unit;
    let (job, end) = (item.job, item.elem + item.count);
    (item.elem..end).step_by(per as usize).map(move |e| Item {
        job,
        elem: e,
        count: per.min(end - e),
    })
}

/// The source row that lands at output row `r` when a Q/K projection of `rows` rows in `heads` heads is
/// permuted from Hugging Face's rotary layout (halves) to ggml's (interleaved pairs), or back (`inverse`).
pub(crate) fn permuted_row(r: u64, rows: u64, heads: u64, inverse: bool) -> u64 {
    let half = rows / heads / 2;
    let (h, rem) = (r / (2 * half), r % (2 * half));
    if inverse {
        let (j, i) = (rem / half, rem % half);
        h * 2 * half + i * 2 + j
    } else {
        let (i, j) = (rem / 2, rem % 2);
        h * 2 * half + j * half + i
    }
}

/// Source bytes for output elements `[elem, elem + count)` of `job`: a zero-copy range, the permuted rows
/// gathered into one buffer, the stacked parts' ranges concatenated, or bytes computed at plan time.
fn source_bytes<'a>(
    plan: &'a Plan,
    job: &Job,
    src: &'a dyn Source,
    elem: u64,
    count: u64,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let sdt = src_dtype(job, src);
    let shape = logical_shape(job);
    let (off, len) = (bytes_of(sdt, elem), bytes_of(sdt, count));
    let (tensor, base) = match &job.input {
        Input::Inline { index } => {
            let data = plan
                .inline
                .get(*index)
                .and_then(|d| d.get(off as usize..(off + len) as usize))
                .ok_or_else(|| Error::tensor(job.name.to_string(), "inline data out of range"))?;
            return Ok(std::borrow::Cow::Borrowed(data));
        }
        Input::Stack { parts } => {
            let per = shape.iter().skip(1).product::<u64>();
            let out = gather::stacked(src, &job.name, parts, per, sdt, elem, count)?;
            return Ok(std::borrow::Cow::Owned(out));
        }
        Input::Slices {
            src: t,
            start,
            run,
            stride,
        } => {
            let runs = gather::Runs {
                start: *start,
                run: *run,
                stride: *stride,
            };
            let out = gather::strided(src, &job.name, *t, runs, sdt, elem, count)?;
            return Ok(std::borrow::Cow::Owned(out));
        }
        Input::Tensor { src: t, start } => (*t, *start),
    };
    match job.permutation() {
        None => src.view_range(tensor, bytes_of(sdt, base) + off, len),
        Some((heads, inverse)) => {
            let rows = shape[0];
            let cols = row_elems(&shape);
            if heads == 0 || !rows.is_multiple_of(2 * heads) {
                return Err(Error::tensor(
                    job.name.to_string(),
                    format!("{rows} rows do not split into {heads} rotary heads"),
                ));
            }
            let row_bytes = bytes_of(sdt, cols);
            let mut out = Vec::with_capacity(len as usize);
            for r in elem / cols..(elem + count) / cols {
                let s = permuted_row(r, rows, heads, inverse);
                out.extend_from_slice(&src.view_range(
                    tensor,
                    bytes_of(sdt, base) + s * row_bytes,
                    row_bytes,
                )?);
            }
            Ok(std::borrow::Cow::Owned(out))
        }
    }
}

/// Whether a job's steps change values (a shift or a rounding), so that they must be decoded to f32 and
/// re-encoded whatever the encoding; a permutation only moves bytes.
fn changes_values(job: &Job) -> bool {
    job.steps
        .iter()
        .any(|s| matches!(s, Step::Shift { .. } | Step::Round { .. }))
}

/// Applies the value steps (shift, rounding) to decoded values, in order.
fn apply_steps(job: &Job, v: &mut [f32]) {
    for s in &job.steps {
        match *s {
            Step::Shift { add } => v.iter_mut().for_each(|x| *x += add),
            Step::Round { via } => round_via(via, v),
            Step::Permute { .. } => {}
        }
    }
}

/// Whether a job's values are rounded by the learned search (FP8 and INT8 scaled weights of a plan that asks).
fn learns(plan: &Plan, job: &Job) -> bool {
    matches!(job.transform, Transform::Scaled { scheme, .. }
        if plan.learned.is_some() && scheme.row_unit() == 1
            && matches!(scheme.family, lbrx_quant::scaled::Family::Fp8 | lbrx_quant::scaled::Family::Int8))
}

/// What a run measured: each learned-rounding layer's errors before and after.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// (tensor name, its errors), in the order the layers finished.
    pub rounding: Vec<(String, lbrx_quant::scaled::learned::Report)>,
}

/// Tells the source that an item's input bytes will not be read again soon (mapped pages can go).
fn release_item(plan: &Plan, src: &dyn Source, item: &Item) {
    let job = &plan.jobs[item.job];
    if let Input::Tensor { src: t, start } = job.input {
        let sdt = src_dtype(job, src);
        let info = &src.tensors()[t];
        let at = info.offset + bytes_of(sdt, start + item.elem);
        src.release(info.file, at, bytes_of(sdt, item.count));
    }
}

/// The absolute maxima of every job with a scaled encoding: the statistics pre-pass, streamed in the same
/// work items as the data (bounded memory: one value per scale).
fn statistics(
    plan: &Plan,
    src: &dyn Source,
    items: &[Item],
) -> Result<std::collections::HashMap<usize, Vec<f32>>> {
    use std::sync::Mutex;
    let mut stats: std::collections::HashMap<usize, Mutex<Vec<f32>>> = Default::default();
    for (j, job) in plan.jobs.iter().enumerate() {
        if let Transform::Scaled {
            scheme, logical, ..
        } = job.transform
        {
            stats.insert(
                j,
                Mutex::new(vec![0f32; scheme.stat_len(&logical) as usize]),
            );
        }
    }
    if stats.is_empty() {
        return Ok(Default::default());
    }
    items
        .par_iter()
        .with_max_len(1)
        .filter(|it| stats.contains_key(&it.job))
        .try_for_each(|item| {
            let job = &plan.jobs[item.job];
            let Transform::Scaled {
                from,
                scheme,
                logical,
            } = job.transform
            else {
                return Ok(());
            };
            let cols = row_elems(&logical);
            let mut local = vec![0f32; scheme.stat_len(&logical) as usize];
            for p in pieces(plan, src, item) {
                let bytes = source_bytes(plan, job, src, p.elem, p.count)?;
                // stored floats give their maxima without decoding (when no step changes them)
                if changes_values(job)
                    || !scheme.accumulate_raw(from, &bytes, cols, p.elem / cols, &mut local)
                {
                    let mut floats = vec![0f32; p.count as usize];
                    decode_values(from, &bytes, &mut floats, &job.name)?;
                    apply_steps(job, &mut floats);
                    scheme.accumulate(&floats, cols, p.elem / cols, &mut local);
                }
            }
            release_item(plan, src, item);
            let mut acc = stats[&item.job].lock().map_err(|_| {
                Error::tensor(
                    job.name.to_string(),
                    "statistics pass failed in another thread",
                )
            })?;
            for (a, l) in acc.iter_mut().zip(&local) {
                *a = lbrx_quant::scaled::nan_max(*a, *l);
            }
            Ok::<(), Error>(())
        })?;
    Ok(stats
        .into_iter()
        .map(|(j, m)| (j, m.into_inner().unwrap_or_default()))
        .collect())
}

/// Writes every planned file's header, then every tensor, into `sink`. `progress` is called with the number of
/// output bytes just completed (from worker threads).
pub fn execute(
    plan: &Plan,
    src: &dyn Source,
    sink: &dyn Sink,
    opts: ExecOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RunReport> {
    for (i, f) in plan.files.iter().enumerate() {
        sink.write_at(i, 0, &f.header)?;
    }
    for (file, offset, bytes) in &plan.fixed {
        sink.write_at(*file, *offset, bytes)?;
    }
    let items = work_items(plan, src, opts.chunk_bytes.max(4096));
    let rounding = std::sync::Mutex::new(Vec::new());
    let run = || {
        let stats = statistics(plan, src, &items)?;
        let r = Run {
            plan,
            src,
            sink,
            stats: &stats,
            rounding: &rounding,
        };
        items
            .par_iter()
            .with_max_len(1)
            .try_for_each_init(Vec::new, |buf: &mut Vec<u8>, item| {
                crate::interrupt::check()?;
                let n = run_item(&r, item, buf)?;
                release_item(plan, src, item);
                progress(n);
                Ok::<(), Error>(())
            })
    };
    if opts.threads == 0 {
        run()?;
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| Error::Usage(format!("cannot start {} threads: {e}", opts.threads)))?;
        pool.install(run)?;
    }
    Ok(RunReport {
        rounding: rounding.into_inner().unwrap_or_default(),
    })
}

/// What every work item of a run reads: the plan, the source, the sink and the statistics pass's results.
#[derive(Clone, Copy)]
struct Run<'a> {
    plan: &'a Plan,
    src: &'a dyn Source,
    sink: &'a dyn Sink,
    stats: &'a std::collections::HashMap<usize, Vec<f32>>,
    rounding: &'a std::sync::Mutex<Vec<(String, lbrx_quant::scaled::learned::Report)>>,
}

/// Where a work item reads and writes: its job, the dtype it reads, its output offset and length.
struct Place<'a> {
    job: &'a Job,
    sdt: DType,
    out_off: u64,
    out_len: u64,
}

fn place<'a>(plan: &'a Plan, src: &dyn Source, item: &Item) -> Place<'a> {
    let job = &plan.jobs[item.job];
    if let Transform::Scaled {
        scheme, logical, ..
    } = job.transform
    {
        // one stored row per source row (NVFP4 and MXFP8 rows are padded and packed)
        let cols = logical[1].max(1);
        let row_bytes = scheme.out_row_bytes(&logical);
        return Place {
            job,
            sdt: src_dtype(job, src),
            out_off: job.offset + item.elem / cols * row_bytes,
            out_len: item.count / cols * row_bytes,
        };
    }
    Place {
        job,
        sdt: src_dtype(job, src),
        out_off: job.offset + bytes_of(job.dtype, item.elem),
        out_len: bytes_of(job.dtype, item.count),
    }
}

/// One work item: the source bytes read, the steps applied, the encoding written (with its companions) at the
/// planned offsets. Returns the output bytes written. Chains without value steps take the direct paths
/// (a kernel-side copy, casts and quantizers reading the stored type); every other chain decodes to f32,
/// applies its steps and encodes.
fn run_item(r: &Run<'_>, item: &Item, buf: &mut Vec<u8>) -> Result<u64> {
    let Run {
        plan, src, sink, ..
    } = *r;
    let Place {
        job,
        sdt,
        out_off,
        out_len,
    } = place(plan, src, item);
    let name = &job.name;
    let direct = !changes_values(job);
    match job.transform {
        Transform::WrittenBy { .. } => return Ok(0),
        Transform::Copy if direct => {
            if let (Input::Tensor { src: t, start }, None) = (&job.input, job.permutation()) {
                let src_off = bytes_of(sdt, start + item.elem);
                let src_len = bytes_of(sdt, item.count);
                let info = &src.tensors()[*t];
                let copied = match src.raw_file(info.file) {
                    Some(f) => {
                        sink.copy_range(job.file, out_off, f, info.offset + src_off, src_len)?
                    }
                    None => false,
                };
                if !copied {
                    let bytes = src.view_range(*t, src_off, src_len)?;
                    sink.write_at(job.file, out_off, &bytes)?;
                }
            } else {
                let bytes = source_bytes(plan, job, src, item.elem, item.count)?;
                sink.write_at(job.file, out_off, &bytes)?;
            }
            return Ok(out_len);
        }
        Transform::Cast { from, to } if direct => {
            let bytes = source_bytes(plan, job, src, item.elem, item.count)?;
            // Cast and write in cache-sized pieces so the write copies from a hot buffer.
            let (fs, ts) = (from.info().type_size as usize, to.info().type_size as usize);
            let piece = (PIECE_BYTES / ts.max(fs)).max(1);
            let mut at = out_off;
            for s in bytes.chunks(piece * fs) {
                let n = s.len() / fs * ts;
                buf.resize(n, 0);
                lbrx_quant::cast(from, s, to, &mut buf[..n]).map_err(|e| context(e, name))?;
                sink.write_at(job.file, at, &buf[..n])?;
                at += n as u64;
            }
            return Ok(out_len);
        }
        Transform::Dequant { from, to } if direct => {
            let bytes = source_bytes(plan, job, src, item.elem, item.count)?;
            // Whole blocks at a time: dequantize to f32, then encode the output dtype.
            let (bs, bts) = (
                from.info().block_size as usize,
                from.info().type_size as usize,
            );
            let ts = to.info().type_size as usize;
            let blocks = (PIECE_BYTES / (bs * 4)).max(1);
            let mut floats = vec![0f32; blocks * bs];
            let mut at = out_off;
            for s in bytes.chunks(blocks * bts) {
                let n = s.len() / bts * bs;
                lbrx_quant::ggml::dequantize(from, s, &mut floats[..n])
                    .map_err(|e| context(e, name))?;
                buf.resize(n * ts, 0);
                lbrx_quant::cast::encode_f32_fast(to, &floats[..n], &mut buf[..n * ts]);
                sink.write_at(job.file, at, &buf[..n * ts])?;
                at += (n * ts) as u64;
            }
            return Ok(out_len);
        }
        Transform::Quant { from, to }
            if direct
                && !plan.imatrix.contains_key(&item.job)
                && matches!(from, DType::F32 | DType::F16 | DType::BF16) =>
        {
            // stored floats go straight to the quantizer (vector kernels read them as they are), whole output
            // blocks at a time
            let bytes = source_bytes(plan, job, src, item.elem, item.count)?;
            let (bs, bts) = (to.info().block_size as usize, to.info().type_size as usize);
            let fts = from.info().type_size as usize;
            let blocks = (PIECE_BYTES / (bs * 4)).max(1);
            let mut at = out_off;
            for s in bytes.chunks(blocks * bs * fts) {
                let nb = s.len() / fts / bs * bts;
                buf.resize(nb, 0);
                lbrx_quant::ggml_quant::quantize_from(from, s, to, &mut buf[..nb])
                    .map_err(|e| context(e, name))?;
                sink.write_at(job.file, at, &buf[..nb])?;
                at += nb as u64;
            }
            return Ok(out_len);
        }
        Transform::MlxQuant { from, to, .. } if direct && from == to => {
            // values already in the scales' type are quantized as stored
            let mut written = 0;
            for p in pieces(plan, src, item) {
                let bytes = source_bytes(plan, job, src, p.elem, p.count)?;
                written += mlx_quant_item(plan, job, sink, &p, &bytes, buf)?;
            }
            return Ok(written);
        }
        _ => {}
    }
    let mut written = 0;
    for p in pieces(plan, src, item) {
        written += run_chain(r, &p, buf)?;
    }
    Ok(written)
}

/// The general chain on one piece: decode to f32, apply the steps, encode (with the companions).
fn run_chain(r: &Run<'_>, item: &Item, buf: &mut Vec<u8>) -> Result<u64> {
    let Run {
        plan,
        src,
        sink,
        stats,
        rounding,
    } = *r;
    let stats = stats.get(&item.job);
    let Place {
        job,
        sdt,
        out_off,
        out_len,
    } = place(plan, src, item);
    let name = &job.name;
    let bytes = source_bytes(plan, job, src, item.elem, item.count)?;
    let n = item.count as usize;
    let mut floats = vec![0f32; n];
    decode_values(sdt, &bytes, &mut floats, name)?;
    drop(bytes);
    apply_steps(job, &mut floats);
    match job.transform {
        Transform::Quant { to, .. } if plan.imatrix.contains_key(&item.job) => {
            let im = &plan.imatrix[&item.job];
            let cols = *job.shape.last().unwrap_or(&1) as usize;
            // stacked experts [E, R, C] each have their own C weights
            let rows_per_matrix = if job.shape.len() >= 3 {
                job.shape[job.shape.len() - 2] as usize
            } else {
                usize::MAX
            };
            let row_bytes = bytes_of(to, cols as u64) as usize;
            buf.resize(n / cols * row_bytes, 0);
            let first_row = (item.elem / cols as u64) as usize;
            for (k, (x, y)) in floats
                .chunks_exact(cols)
                .zip(buf.chunks_exact_mut(row_bytes))
                .enumerate()
            {
                let m = (first_row + k) / rows_per_matrix;
                let w = im.get(m * cols..(m + 1) * cols).unwrap_or(&im[..cols]);
                lbrx_quant::ggml_quant::quantize_rows(to, x, cols, Some(w), y)
                    .map_err(|e| context(e, name))?;
            }
            sink.write_at(job.file, out_off, buf)?;
            Ok(out_len)
        }
        Transform::MlxQuant { to, .. } => {
            let mut values = vec![0u8; n * to.info().type_size as usize];
            lbrx_quant::cast::encode_f32(to, &floats, &mut values);
            mlx_quant_item(plan, job, sink, item, &values, buf)
        }
        Transform::Scaled {
            from,
            scheme,
            logical,
        } => {
            let amax = stats.ok_or_else(|| {
                Error::tensor(name.to_string(), "scaled encoding without its statistics")
            })?;
            let cols = logical[1].max(1);
            buf.resize(out_len as usize, 0);
            let mut written = out_len;
            if scheme.row_unit() > 1 {
                let (at, scales) = scheme
                    .encode_micro_rows(&floats, &logical, item.elem / cols, amax, buf)
                    .map_err(|e| context(e, name))?;
                let sj = companion(plan, job, 0)?;
                if at + scales.len() as u64 > sj.len {
                    return Err(Error::tensor(
                        sj.name.to_string(),
                        format!("scales {at}+{} past its {} bytes", scales.len(), sj.len),
                    ));
                }
                sink.write_at(sj.file, sj.offset + at, &scales)?;
                written += scales.len() as u64;
            } else {
                scheme
                    .encode_rows(from, &floats, cols, item.elem / cols, amax, buf)
                    .map_err(|e| context(e, name))?;
                if let (true, Some(params)) = (learns(plan, job), plan.learned) {
                    let (m, n) = (logical[0] as usize, cols as usize);
                    let f = |i: usize, j: usize| {
                        scheme.element_factors(from, amax, i as u64, j as u64, cols)
                    };
                    let rep = lbrx_quant::scaled::learned::refine(
                        scheme,
                        &floats,
                        m,
                        n,
                        &|i, j| f(i, j).0,
                        &|i, j| f(i, j).1,
                        buf,
                        &params,
                    );
                    if let Ok(mut v) = rounding.lock() {
                        v.push((name.to_string(), rep));
                    }
                }
            }
            sink.write_at(job.file, out_off, buf)?;
            let end = logical[0] * cols;
            let pad = scheme.pad_rows(&logical) * scheme.out_row_bytes(&logical);
            if item.elem + item.count == end && pad > 0 {
                // the padding rows after the last source row
                buf.clear();
                buf.resize(pad as usize, 0);
                sink.write_at(job.file, out_off + out_len, buf)?;
                written += pad;
            }
            if item.elem == 0 {
                // the scales are known in full after the statistics pass: the first item writes them
                let parts = scheme.companion_bytes(from, amax);
                for (k, bytes) in parts.iter().enumerate() {
                    let Some(bytes) = bytes else {
                        continue;
                    };
                    let sj = companion(plan, job, k)?;
                    if bytes.len() as u64 != sj.len {
                        return Err(Error::tensor(
                            sj.name.to_string(),
                            format!("{} scale bytes planned, {} computed", sj.len, bytes.len()),
                        ));
                    }
                    sink.write_at(sj.file, sj.offset, bytes)?;
                    written += bytes.len() as u64;
                }
            }
            Ok(written)
        }
        _ => {
            buf.resize(out_len as usize, 0);
            encode_plain(job.dtype, &floats, buf).map_err(|e| context(e, name))?;
            sink.write_at(job.file, out_off, buf)?;
            Ok(out_len)
        }
    }
}

/// Encodes f32 values as `dtype`: a float cast, or ggml's reference quantizer for a block type.
fn encode_plain(dtype: DType, v: &[f32], out: &mut [u8]) -> Result<()> {
    if dtype.is_castable_float() {
        lbrx_quant::cast::encode_f32(dtype, v, out);
        Ok(())
    } else {
        lbrx_quant::ggml_quant::quantize(dtype, v, out)
    }
}

/// The `k`-th companion of `job` (a tensor its encoding also writes).
fn companion<'a>(plan: &'a Plan, job: &Job, k: usize) -> Result<&'a Job> {
    job.companions
        .get(k)
        .and_then(|&j| plan.jobs.get(j))
        .ok_or_else(|| {
            Error::tensor(
                job.name.to_string(),
                format!("companion {k} is not planned"),
            )
        })
}

/// One piece of an MLX quantized weight: its values (in the output float dtype) quantized; the packed words and the companions (scales, and biases in the affine
/// mode) written at their planned offsets. Returns the output bytes written.
fn mlx_quant_item(
    plan: &Plan,
    job: &Job,
    sink: &dyn Sink,
    item: &Item,
    values: &[u8],
    buf: &mut Vec<u8>,
) -> Result<u64> {
    let Transform::MlxQuant {
        to,
        bits,
        group,
        mode,
        ..
    } = job.transform
    else {
        return Ok(0);
    };
    let name = &job.name;
    let (n, g) = (item.count as usize, group as usize);
    let ts = to.info().type_size as usize;
    let packed_len = n * bits as usize / 8;
    let groups = n / g;
    let first_group = item.elem / group as u64;
    let sj = companion(plan, job, 0)?;
    let packed_at = job.offset + item.elem * bits as u64 / 8;
    if mode == lbrx_quant::mlx::Mode::Affine {
        buf.resize(packed_len + 2 * groups * ts, 0);
        let (packed, rest) = buf.split_at_mut(packed_len);
        let (sc, bi) = rest.split_at_mut(groups * ts);
        lbrx_quant::mlx::quantize_affine(to, values, bits, g, packed, sc, bi)
            .map_err(|e| context(e, name))?;
        let bj = companion(plan, job, 1)?;
        sink.write_at(job.file, packed_at, packed)?;
        sink.write_at(sj.file, sj.offset + first_group * ts as u64, sc)?;
        sink.write_at(bj.file, bj.offset + first_group * ts as u64, bi)?;
    } else {
        buf.resize(packed_len + groups, 0);
        let (packed, sc) = buf.split_at_mut(packed_len);
        lbrx_quant::mlx::quantize_fp(mode, to, values, packed, sc).map_err(|e| context(e, name))?;
        sink.write_at(job.file, packed_at, packed)?;
        sink.write_at(sj.file, sj.offset + first_group, sc)?;
    }
    Ok(buf.len() as u64)
}

/// Source values as f32: a float decoded, a ggml block type dequantized.
fn decode_values(from: DType, bytes: &[u8], out: &mut [f32], name: &str) -> Result<()> {
    if from.is_castable_float() {
        lbrx_quant::cast::decode_f32(from, bytes, out);
        Ok(())
    } else {
        lbrx_quant::ggml::dequantize(from, bytes, out).map_err(|e| context(e, name))
    }
}

/// Rounds values to the float type `via` and back (a value stored in an intermediate file of that type).
fn round_via(d: DType, v: &mut [f32]) {
    let ts = d.info().type_size as usize;
    let mut tmp = vec![0u8; 1024 * ts];
    for c in v.chunks_mut(1024) {
        let b = &mut tmp[..c.len() * ts];
        lbrx_quant::cast::encode_f32(d, c, b);
        lbrx_quant::cast::decode_f32(d, b, c);
    }
}

fn context(e: Error, name: &str) -> Error {
    match e {
        Error::Invalid(m) => Error::tensor(name.to_string(), m.to_string()),
        other => other,
    }
}
