//! Quantization throughput in memory (no file written), the same work `gguf.quants.quantize(f32_array, TYPE)`
//! does: every matrix of an F16 GGUF decoded to f32 and quantized with ggml's reference quantizer, in row
//! chunks on all cores. Prints "seconds elements".
//!
//! Usage: cargo run --release -p lbrx-convert --example quant_bench -- FILE.gguf TYPE [MAX_WEIGHTS] [RUNS]

#![allow(clippy::print_stdout)] // a benchmark program: its output is the result

use lbrx_core::DType;
use rayon::prelude::*;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: quant_bench FILE.gguf TYPE [MAX_WEIGHTS] [RUNS]";
    let path = args.get(1).ok_or(usage)?;
    let to = args.get(2).and_then(|t| DType::from_name(t)).ok_or(usage)?;
    let limit: u64 = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(u64::MAX);
    let runs: usize = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(3);
    let src = lbrx_formats::open(std::path::Path::new(path))?;
    let bs = to.info().block_size as u64;
    // Work items: (tensor, first element, count) of about 1 Mi elements, whole blocks; matrices only, in file
    // order, up to `limit` weights (as bench/quant_py.py takes them).
    let (mut items, mut elements) = (Vec::new(), 0u64);
    for (i, t) in src.tensors().iter().enumerate() {
        if t.shape.len() < 2 || elements >= limit || t.dtype != DType::F16 {
            continue;
        }
        let n = t.elements();
        let step = (1u64 << 20) / bs * bs;
        let mut e = 0;
        while e < n {
            items.push((i, e, step.min(n - e)));
            e += step;
        }
        elements += n;
    }
    let mut times = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        items.par_iter().for_each_init(
            || (Vec::new(), Vec::new()),
            |(f, q): &mut (Vec<f32>, Vec<u8>), &(i, e, n)| {
                let view = src.view(i).expect("view");
                let bytes = &view.bytes()[(e * 2) as usize..((e + n) * 2) as usize];
                // in pieces of 64 Ki values, as the executor decodes and quantizes them
                let piece = (65536 / bs * bs) as usize;
                for b in bytes.chunks(piece * 2) {
                    let m = b.len() / 2;
                    q.resize(m / bs as usize * to.info().type_size as usize, 0);
                    if to.is_castable_float() {
                        f.resize(m, 0.0);
                        lbrx_quant::cast::decode_f32(DType::F16, b, f);
                        lbrx_quant::ggml_quant::quantize(to, f, q).expect("quantize");
                    } else {
                        lbrx_quant::ggml_quant::quantize_from(DType::F16, b, to, q)
                            .expect("quantize");
                    }
                }
            },
        );
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!("{:.3} {elements}", times[times.len() / 2]);
    Ok(())
}
