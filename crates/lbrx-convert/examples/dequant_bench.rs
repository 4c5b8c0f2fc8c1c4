//! Dequantization throughput in memory (no file written), the same work `gguf.quants.dequantize(...).astype(f16)`
//! does: every tensor of a GGUF to F16, in row chunks on all cores. Prints "seconds elements".
//!
//! Usage: cargo run --release -p lbrx-convert --example dequant_bench -- FILE.gguf [RUNS]

#![allow(clippy::print_stdout)] // a benchmark program: its output is the result

use lbrx_core::DType;
use rayon::prelude::*;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: dequant_bench FILE.gguf [RUNS]")?;
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    let src = lbrx_formats::open(std::path::Path::new(path))?;
    // Work items: (tensor, byte offset, byte length) of about 1 MiB of blocks each.
    let mut items = Vec::new();
    for (i, t) in src.tensors().iter().enumerate() {
        let ts = t.dtype.info().type_size as u64;
        let step = (1 << 20) / ts * ts;
        let mut off = 0;
        while off < t.len {
            items.push((i, off, step.min(t.len - off)));
            off += step;
        }
    }
    let elements: u64 = src.tensors().iter().map(|t| t.elements()).sum();
    // Warm the page cache and the mapping once.
    let _: u64 = items
        .par_iter()
        .map(|&(i, o, _)| {
            src.view(i)
                .map(|v| v.bytes()[o as usize] as u64)
                .unwrap_or(0)
        })
        .sum();
    let mut times = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        items.par_iter().for_each_init(
            || (Vec::new(), Vec::new()),
            |(f, h): &mut (Vec<f32>, Vec<u8>), &(i, o, len)| {
                let view = src.view(i).expect("view");
                let t = view.info;
                let info = t.dtype.info();
                let n = (len / info.type_size as u64 * info.block_size as u64) as usize;
                f.resize(n, 0.0);
                h.resize(n * 2, 0);
                lbrx_quant::ggml::dequantize(
                    t.dtype,
                    &view.bytes()[o as usize..(o + len) as usize],
                    f,
                )
                .expect("dequantize");
                lbrx_quant::cast::encode_f32_fast(DType::F16, f, h);
            },
        );
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!("{:.3} {elements}", times[times.len() / 2]);
    Ok(())
}
