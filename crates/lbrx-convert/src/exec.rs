//! The streaming executor: one work item per row-chunk of a tensor, run on a rayon pool; each reads a
//! zero-copy view of its source bytes, transforms into a per-thread buffer and writes at its planned offset.
//! Peak memory is threads x chunk size; output bytes do not depend on the thread count or scheduling.

use crate::plan::{Job, Plan, Transform};
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

/// Byte offset of `elem` elements into a tensor of `dtype` (element counts are block-aligned by construction).
fn bytes_of(dtype: lbrx_core::DType, elems: u64) -> u64 {
    let i = dtype.info();
    elems / i.block_size as u64 * i.type_size as u64
}

/// The dtype a job reads: its source tensor's, or its own for bytes computed at plan time.
fn src_dtype(job: &Job, src: &dyn Source) -> DType {
    match job.transform {
        Transform::Inline { .. } => job.dtype,
        _ => src.tensors()[job.src].dtype,
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
        _ => std::borrow::Cow::Borrowed(&job.shape),
    }
}

fn work_items(plan: &Plan, src: &dyn Source, chunk_bytes: u64) -> Vec<Item> {
    let mut items = Vec::new();
    for (j, job) in plan.jobs.iter().enumerate() {
        let sdt = src_dtype(job, src);
        let shape = logical_shape(job);
        let n: u64 = shape.iter().product();
        let mut block = (sdt.info().block_size as u64).max(job.dtype.info().block_size as u64);
        match job.transform {
            Transform::WrittenBy { .. } => continue,
            Transform::MlxQuant { group, .. } => {
                let g = group as u64;
                block = block / gcd(block, g) * g;
            }
            _ => {}
        }
        if job.permute_heads.is_some() || plan.imatrix.contains_key(&j) {
            // whole rows, so that each item gathers complete source rows (or quantizes with its row's
            // importance weights)
            let cols = row_elems(&shape);
            block = block / gcd(block, cols) * cols;
        }
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
/// gathered into one buffer, or the stacked parts' ranges concatenated.
fn source_bytes<'a>(
    job: &Job,
    src: &'a dyn Source,
    elem: u64,
    count: u64,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let sdt = src_dtype(job, src);
    let shape = logical_shape(job);
    if !job.parts.is_empty() {
        let per = shape.iter().skip(1).product::<u64>();
        let mut out = Vec::with_capacity(bytes_of(sdt, count) as usize);
        let (mut e, end) = (elem, elem + count);
        while e < end {
            let (part, within) = ((e / per) as usize, e % per);
            let n = (per - within).min(end - e);
            let &p = job.parts.get(part).ok_or_else(|| {
                Error::tensor(job.name.to_string(), format!("stacked part {part} missing"))
            })?;
            out.extend_from_slice(&src.view_range(p, bytes_of(sdt, within), bytes_of(sdt, n))?);
            e += n;
        }
        return Ok(std::borrow::Cow::Owned(out));
    }
    let base = job.src_start;
    match job.permute_heads {
        None => src.view_range(job.src, bytes_of(sdt, base + elem), bytes_of(sdt, count)),
        Some(heads) => {
            let rows = shape[0];
            let cols = row_elems(&shape);
            if heads == 0 || !rows.is_multiple_of(2 * heads) {
                return Err(Error::tensor(
                    job.name.to_string(),
                    format!("{rows} rows do not split into {heads} rotary heads"),
                ));
            }
            let row_bytes = bytes_of(sdt, cols);
            let mut out = Vec::with_capacity(bytes_of(sdt, count) as usize);
            for r in elem / cols..(elem + count) / cols {
                let s = permuted_row(r, rows, heads, job.unpermute);
                out.extend_from_slice(&src.view_range(
                    job.src,
                    bytes_of(sdt, base) + s * row_bytes,
                    row_bytes,
                )?);
            }
            Ok(std::borrow::Cow::Owned(out))
        }
    }
}

/// Writes every planned file's header, then every tensor, into `sink`. `progress` is called with the number of
/// output bytes just completed (from worker threads).
pub fn execute(
    plan: &Plan,
    src: &dyn Source,
    sink: &dyn Sink,
    opts: ExecOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    for (i, f) in plan.files.iter().enumerate() {
        sink.write_at(i, 0, &f.header)?;
    }
    for (file, offset, bytes) in &plan.fixed {
        sink.write_at(*file, *offset, bytes)?;
    }
    let items = work_items(plan, src, opts.chunk_bytes.max(4096));
    let run = || {
        items
            .par_iter()
            .with_max_len(1)
            .try_for_each_init(Vec::new, |buf: &mut Vec<u8>, item| {
                let job = &plan.jobs[item.job];
                let sdt = src_dtype(job, src);
                let src_off = bytes_of(sdt, item.elem);
                let src_len = bytes_of(sdt, item.count);
                let out_off = job.offset + bytes_of(job.dtype, item.elem);
                let out_len = bytes_of(job.dtype, item.count);
                let name = &job.name;
                if let Transform::MlxQuant { .. } = job.transform {
                    let n = mlx_quant_item(plan, job, src, sink, item, buf)?;
                    if job.parts.is_empty() {
                        let info = &src.tensors()[job.src];
                        let at = info.offset + bytes_of(sdt, job.src_start) + src_off;
                        src.release(info.file, at, src_len);
                    }
                    progress(n);
                    return Ok(());
                }
                if let Some(add) = job.shift {
                    // Shifted values: decode to f32, add in f32, encode the output type.
                    let bytes = source_bytes(job, src, item.elem, item.count)?;
                    let n = item.count as usize;
                    let mut floats = vec![0f32; n];
                    decode_values(sdt, &bytes, &mut floats, name)?;
                    for v in &mut floats {
                        *v += add;
                    }
                    buf.resize(out_len as usize, 0);
                    lbrx_quant::ggml_quant::quantize(job.dtype, &floats, buf)
                        .map_err(|e| context(e, name))?;
                    sink.write_at(job.file, out_off, buf)?;
                    progress(out_len);
                    return Ok(());
                }
                match job.transform {
                    Transform::Inline { index } => {
                        let data = plan
                            .inline
                            .get(index)
                            .and_then(|d| d.get(src_off as usize..(src_off + src_len) as usize));
                        let data = data.ok_or_else(|| {
                            Error::tensor(name.to_string(), "inline data out of range")
                        })?;
                        sink.write_at(job.file, out_off, data)?;
                        progress(out_len);
                        return Ok(());
                    }
                    Transform::Copy if job.permute_heads.is_none() && job.parts.is_empty() => {
                        let src_off = src_off + bytes_of(sdt, job.src_start);
                        let info = &src.tensors()[job.src];
                        let copied = match src.raw_file(info.file) {
                            Some(f) => sink.copy_range(
                                job.file,
                                out_off,
                                f,
                                info.offset + src_off,
                                src_len,
                            )?,
                            None => false,
                        };
                        if !copied {
                            let bytes = src.view_range(job.src, src_off, src_len)?;
                            sink.write_at(job.file, out_off, &bytes)?;
                        }
                    }
                    Transform::Copy => {
                        let bytes = source_bytes(job, src, item.elem, item.count)?;
                        sink.write_at(job.file, out_off, &bytes)?;
                    }
                    Transform::Cast { from, to } => {
                        let bytes = source_bytes(job, src, item.elem, item.count)?;
                        // Cast and write in cache-sized pieces so the write copies from a hot buffer.
                        let (fs, ts) =
                            (from.info().type_size as usize, to.info().type_size as usize);
                        let piece = (PIECE_BYTES / ts.max(fs)).max(1);
                        let mut at = out_off;
                        for s in bytes.chunks(piece * fs) {
                            let n = s.len() / fs * ts;
                            buf.resize(n, 0);
                            lbrx_quant::cast(from, s, to, &mut buf[..n])
                                .map_err(|e| context(e, name))?;
                            sink.write_at(job.file, at, &buf[..n])?;
                            at += n as u64;
                        }
                    }
                    Transform::Dequant { from, to } => {
                        let bytes = source_bytes(job, src, item.elem, item.count)?;
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
                    }
                    Transform::WrittenBy { .. } | Transform::MlxQuant { .. } => {}
                    Transform::Quant { from, to, via } if plan.imatrix.contains_key(&item.job) => {
                        let bytes = source_bytes(job, src, item.elem, item.count)?;
                        let n = item.count as usize;
                        let mut floats = vec![0f32; n];
                        decode_values(from, &bytes, &mut floats, name)?;
                        round_via(via, &mut floats);
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
                    }
                    Transform::Quant { from, to, via } => {
                        let bytes = source_bytes(job, src, item.elem, item.count)?;
                        // Whole output blocks at a time: decode (or dequantize) to f32, then ggml's reference
                        // quantizer.
                        let (bs, bts) =
                            (to.info().block_size as usize, to.info().type_size as usize);
                        let (fbs, fts) = (
                            from.info().block_size as usize,
                            from.info().type_size as usize,
                        );
                        let blocks = (PIECE_BYTES / (bs * 4)).max(1);
                        let mut at = out_off;
                        // stored floats go straight to the quantizer (vector kernels read them as they are)
                        let direct =
                            via.is_none() && matches!(from, DType::F32 | DType::F16 | DType::BF16);
                        // the f32 piece only the decoding path needs
                        let mut floats = vec![0f32; if direct { 0 } else { blocks * bs }];
                        for s in bytes.chunks(blocks * bs / fbs * fts) {
                            let n = s.len() / fts * fbs;
                            let nb = n / bs * bts;
                            buf.resize(nb, 0);
                            if direct {
                                lbrx_quant::ggml_quant::quantize_from(from, s, to, &mut buf[..nb])
                                    .map_err(|e| context(e, name))?;
                            } else {
                                decode_values(from, s, &mut floats[..n], name)?;
                                round_via(via, &mut floats[..n]);
                                lbrx_quant::ggml_quant::quantize(to, &floats[..n], &mut buf[..nb])
                                    .map_err(|e| context(e, name))?;
                            }
                            sink.write_at(job.file, at, &buf[..nb])?;
                            at += nb as u64;
                        }
                    }
                }
                if job.parts.is_empty() {
                    let info = &src.tensors()[job.src];
                    let at = info.offset + bytes_of(sdt, job.src_start) + src_off;
                    src.release(info.file, at, src_len);
                }
                progress(out_len);
                Ok::<(), Error>(())
            })
    };
    if opts.threads == 0 {
        run()
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start {} threads: {e}", opts.threads)))?;
        pool.install(run)
    }
}

/// One work item of an MLX quantized weight: its source values decoded (or dequantized), shifted, rounded to
/// the output float dtype and quantized; the packed words, scales and biases written at their planned offsets.
/// Returns the output bytes written.
fn mlx_quant_item(
    plan: &Plan,
    job: &Job,
    src: &dyn Source,
    sink: &dyn Sink,
    item: &Item,
    buf: &mut Vec<u8>,
) -> Result<u64> {
    let Transform::MlxQuant {
        from,
        to,
        bits,
        group,
        mode,
        scales,
        biases,
    } = job.transform
    else {
        return Ok(0);
    };
    let name = &job.name;
    let (n, g) = (item.count as usize, group as usize);
    let ts = to.info().type_size as usize;
    let bytes = source_bytes(job, src, item.elem, item.count)?;
    let values: std::borrow::Cow<'_, [u8]> = if from == to && job.shift.is_none() {
        bytes
    } else {
        let mut floats = vec![0f32; n];
        decode_values(from, &bytes, &mut floats, name)?;
        if let Some(add) = job.shift {
            for v in &mut floats {
                *v += add;
            }
        }
        let mut out = vec![0u8; n * ts];
        lbrx_quant::cast::encode_f32(to, &floats, &mut out);
        std::borrow::Cow::Owned(out)
    };
    let packed_len = n * bits as usize / 8;
    let groups = n / g;
    let first_group = item.elem / group as u64;
    let sj = &plan.jobs[scales];
    if let Some(biases) = biases {
        buf.resize(packed_len + 2 * groups * ts, 0);
        let (packed, rest) = buf.split_at_mut(packed_len);
        let (sc, bi) = rest.split_at_mut(groups * ts);
        lbrx_quant::mlx::quantize_affine(to, &values, bits, g, packed, sc, bi)
            .map_err(|e| context(e, name))?;
        let bj = &plan.jobs[biases];
        sink.write_at(job.file, job.offset + item.elem * bits as u64 / 8, packed)?;
        sink.write_at(sj.file, sj.offset + first_group * ts as u64, sc)?;
        sink.write_at(bj.file, bj.offset + first_group * ts as u64, bi)?;
    } else {
        buf.resize(packed_len + groups, 0);
        let (packed, sc) = buf.split_at_mut(packed_len);
        lbrx_quant::mlx::quantize_fp(mode, to, &values, packed, sc)
            .map_err(|e| context(e, name))?;
        sink.write_at(job.file, job.offset + item.elem * bits as u64 / 8, packed)?;
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
fn round_via(via: Option<DType>, v: &mut [f32]) {
    let Some(d) = via else { return };
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
