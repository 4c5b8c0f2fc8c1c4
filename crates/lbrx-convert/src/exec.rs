//! The streaming executor: one work item per row-chunk of a tensor, run on a rayon pool; each reads a
//! zero-copy view of its source bytes, transforms into a per-thread buffer and writes at its planned offset.
//! Peak memory is threads x chunk size; output bytes do not depend on the thread count or scheduling.

use crate::plan::{Plan, Transform};
use lbrx_core::{Error, Result, Sink, Source};
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

fn work_items(plan: &Plan, src: &dyn Source, chunk_bytes: u64) -> Vec<Item> {
    let mut items = Vec::new();
    for (j, job) in plan.jobs.iter().enumerate() {
        let info = &src.tensors()[job.src];
        let n = info.elements();
        let block = (info.dtype.info().block_size as u64).max(job.dtype.info().block_size as u64);
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
    let items = work_items(plan, src, opts.chunk_bytes.max(4096));
    let run = || {
        items
            .par_iter()
            .with_max_len(1)
            .try_for_each_init(Vec::new, |buf: &mut Vec<u8>, item| {
                let job = &plan.jobs[item.job];
                let info = &src.tensors()[job.src];
                let src_off = bytes_of(info.dtype, item.elem);
                let src_len = bytes_of(info.dtype, item.count);
                let out_off = job.offset + bytes_of(job.dtype, item.elem);
                let out_len = bytes_of(job.dtype, item.count);
                match job.transform {
                    Transform::Copy => {
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
                    Transform::Cast { from, to } => {
                        let bytes = src.view_range(job.src, src_off, src_len)?;
                        // Cast and write in cache-sized pieces so the write copies from a hot buffer.
                        let (fs, ts) =
                            (from.info().type_size as usize, to.info().type_size as usize);
                        let piece = (PIECE_BYTES / ts.max(fs)).max(1);
                        let mut at = out_off;
                        for s in bytes.chunks(piece * fs) {
                            let n = s.len() / fs * ts;
                            buf.resize(n, 0);
                            lbrx_quant::cast(from, s, to, &mut buf[..n])
                                .map_err(|e| context(e, &info.name))?;
                            sink.write_at(job.file, at, &buf[..n])?;
                            at += n as u64;
                        }
                    }
                    Transform::Dequant { from, to } => {
                        let bytes = src.view_range(job.src, src_off, src_len)?;
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
                                .map_err(|e| context(e, &info.name))?;
                            buf.resize(n * ts, 0);
                            lbrx_quant::cast::encode_f32_fast(to, &floats[..n], &mut buf[..n * ts]);
                            sink.write_at(job.file, at, &buf[..n * ts])?;
                            at += (n * ts) as u64;
                        }
                    }
                }
                src.release(info.file, info.offset + src_off, src_len);
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

fn context(e: Error, name: &str) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(format!("tensor '{name}': {m}")),
        other => other,
    }
}
