//! MLX affine quantization against mlx itself: ../shared/golden/mlx-quants holds `mlx.core.quantize` and
//! `mlx.core.dequantize` outputs for bits 2-8 and group sizes 32-128 on f32, f16 and bf16 inputs.

use lbrx_core::DType;
mod common;

#[test]
fn quantize_and_dequantize_equal_mlx_bit_for_bit() {
    let Some(dir) = common::golden("mlx-quants") else {
        return;
    };
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let read = |k: &serde_json::Value| std::fs::read(dir.join(k.as_str().unwrap())).unwrap();
    let mut failures = Vec::new();
    let cases = m["cases"].as_array().unwrap();
    for c in cases {
        let dtype = match c["dtype"].as_str().unwrap() {
            "float32" => DType::F32,
            "float16" => DType::F16,
            _ => DType::BF16,
        };
        let (bits, group) = (
            c["bits"].as_u64().unwrap() as u32,
            c["group_size"].as_u64().unwrap() as usize,
        );
        let input = read(&c["input"]);
        let (w, s, b, deq) = (
            read(&c["weight"]),
            read(&c["scales"]),
            read(&c["biases"]),
            read(&c["dequantized"]),
        );
        let n = input.len() / dtype.info().type_size as usize;
        let mut packed = vec![0u8; n * bits as usize / 8];
        let (mut scales, mut biases) = (vec![0u8; s.len()], vec![0u8; b.len()]);
        lbrx_quant::mlx::quantize_affine(
            dtype,
            &input,
            bits,
            group,
            &mut packed,
            &mut scales,
            &mut biases,
        )
        .unwrap();
        let stem = c["weight"].as_str().unwrap();
        for (what, ours, theirs) in [
            ("weight", &packed[..], &w[..packed.len()]),
            ("scales", &scales[..], &s[..]),
            ("biases", &biases[..], &b[..]),
        ] {
            if ours != theirs {
                let i = ours.iter().zip(theirs).position(|(x, y)| x != y).unwrap();
                failures.push(format!("{stem}: {what} differs first at byte {i}"));
            }
        }
        assert!(
            w[packed.len()..].iter().all(|&x| x == 0),
            "{stem}: reference has more packed bytes"
        );
        let mut out = vec![0u8; input.len()];
        lbrx_quant::mlx::dequantize_affine(dtype, &w, &s, &b, bits, group, &mut out).unwrap();
        if out != deq {
            let i = out.iter().zip(&deq).position(|(x, y)| x != y).unwrap();
            failures.push(format!("{stem}: dequantized differs first at byte {i}"));
        }
    }
    assert!(cases.len() >= 150);
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
