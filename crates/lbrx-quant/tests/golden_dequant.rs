//! Dequantization against ggml itself: ../shared/golden/ggml-quants holds, for every type, bytes from ggml's
//! quantizer and the floats ggml's `to_float` makes of them. Ours must equal them bit for bit.

use lbrx_core::DType;
mod common;

#[test]
fn every_golden_case_dequantizes_bit_exactly() {
    let Some(dir) = common::golden("ggml-quants") else {
        return;
    };
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for c in m["cases"].as_array().unwrap() {
        let id = c["ggml_type_id"].as_u64().unwrap() as u32;
        let dtype = DType::from_gguf_id(id).unwrap();
        let q = std::fs::read(dir.join(c["quantized"].as_str().unwrap())).unwrap();
        let want: Vec<u32> = std::fs::read(dir.join(c["dequantized"].as_str().unwrap()))
            .unwrap()
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let mut got = vec![0f32; want.len()];
        lbrx_quant::ggml::dequantize(dtype, &q, &mut got).unwrap();
        let bs = dtype.info().block_size as usize;
        let bad: Vec<usize> = (0..want.len())
            .filter(|&i| got[i].to_bits() != want[i])
            .collect();
        if let Some(&i) = bad.first() {
            failures.push(format!(
                "{} ({}): {} of {} values differ; first at element {i} (block {}): got {:e} ({:#010x}) want {:e} ({:#010x})",
                c["quantized"].as_str().unwrap(),
                dtype,
                bad.len(),
                want.len(),
                i / bs,
                got[i],
                got[i].to_bits(),
                f32::from_bits(want[i]),
                want[i]
            ));
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} cases");
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn lengths_are_checked() {
    let mut out = [0f32; 31];
    assert!(lbrx_quant::ggml::dequantize(DType::Q4_0, &[0u8; 18], &mut out).is_err());
    assert!(lbrx_quant::ggml::dequantize(DType::Q4_0, &[0u8; 17], &mut [0f32; 32]).is_err());
}

#[test]
fn reference_quantizers_match_ggml_bit_for_bit() {
    let Some(dir) = common::golden("ggml-quants") else {
        return;
    };
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    let floats = |name: &str| -> Vec<f32> {
        std::fs::read(dir.join(name))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    for c in m["cases"].as_array().unwrap() {
        let dtype = DType::from_gguf_id(c["ggml_type_id"].as_u64().unwrap() as u32).unwrap();
        if !lbrx_quant::ggml_quant::can_quantize(dtype) {
            continue;
        }
        let with_imatrix = c["imatrix"].as_bool().unwrap();
        if !with_imatrix && lbrx_quant::ggml_quant::requires_imatrix(dtype) {
            continue;
        }
        let input = floats(c["input"].as_str().unwrap());
        let imatrix = c["imatrix_file"].as_str().map(floats);
        let cols = c["cols"].as_u64().unwrap() as usize;
        let want = std::fs::read(dir.join(c["quantized"].as_str().unwrap())).unwrap();
        let mut got = vec![0u8; want.len()];
        lbrx_quant::ggml_quant::quantize_rows(dtype, &input, cols, imatrix.as_deref(), &mut got)
            .unwrap();
        if got != want {
            let ts = dtype.info().type_size as usize;
            let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap();
            failures.push(format!(
                "{}: first difference in block {} (byte {})",
                c["quantized"].as_str().unwrap(),
                i / ts,
                i % ts
            ));
        }
        checked.push((dtype, with_imatrix));
    }
    checked.sort();
    checked.dedup();
    for d in [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q2K,
        DType::Q3K,
        DType::Q4K,
        DType::Q5K,
        DType::Q6K,
        DType::IQ4NL,
        DType::IQ4XS,
        DType::TQ1_0,
        DType::TQ2_0,
        DType::MXFP4,
        DType::NVFP4,
        DType::Q1_0,
        DType::Q2_0,
        DType::IQ2XXS,
        DType::IQ2XS,
        DType::IQ2S,
        DType::IQ3XXS,
        DType::IQ3S,
        DType::IQ1S,
        DType::IQ1M,
    ] {
        for im in [false, true] {
            if !im && lbrx_quant::ggml_quant::requires_imatrix(d) {
                continue;
            }
            assert!(
                checked.contains(&(d, im)),
                "{d} (imatrix {im}) not checked: only {checked:?}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
