//! lbrx's quantizers against ggml's own `ggml_quantize_chunk` (llama.cpp's libggml-base, called through
//! ctypes by tests/oracle/ggml_quantize.py) on random and edge-case rows - zeros, constants, huge, tiny and
//! subnormal magnitudes, outliers, one-signed rows, ties, values near the F16 limit - for every type lbrx
//! quantizes to, with and without an importance matrix, and on rows with infinities for the types whose
//! reference code takes them: the bytes must be equal.

mod common;
use common::*;
use lbrx_core::DType;

#[test]
fn every_quantizer_equals_ggml_quantize_chunk_on_edge_rows() {
    let (Some(py), Some(quantize)) = (python(), llama_tool("llama-quantize")) else {
        return;
    };
    let libdir = quantize.parent().unwrap();
    let d = tempfile::tempdir().unwrap();
    // every ggml type lbrx quantizes to (Q8_K is ggml's dot-product intermediate, not a chunk quantizer's)
    let types: Vec<DType> = (0..64)
        .filter_map(|id| DType::from_gguf_id(id).ok())
        .filter(|t| lbrx_quant::ggml_quant::can_quantize(*t) && *t != DType::Q8K)
        .collect();
    assert!(types.len() >= 28, "{types:?}");
    let ids: Vec<String> = types
        .iter()
        .map(|t| t.info().gguf_id.unwrap().to_string())
        .collect();
    let out = d.path().to_path_buf();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&libdir, &out];
    args.extend(ids.iter().map(|s| s as &dyn AsRef<std::ffi::OsStr>));
    run_oracle(&py, "ggml_quantize.py", &args);

    let floats = |name: &str| -> Vec<f32> {
        std::fs::read(d.path().join(name))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("manifest.json")).unwrap()).unwrap();
    let im = floats("imatrix.f32");
    let cols = m["cols"].as_u64().unwrap() as usize;
    let mut failures = Vec::new();
    let mut checked = 0;
    for c in m["cases"].as_array().unwrap() {
        let dtype = DType::from_gguf_id(c["type"].as_u64().unwrap() as u32).unwrap();
        let want = std::fs::read(d.path().join(c["file"].as_str().unwrap())).unwrap();
        let weights = c["imatrix"].as_bool().unwrap().then_some(&im[..]);
        let input = c["input"].as_str().unwrap();
        let x = floats(input);
        let mut got = vec![0u8; want.len()];
        lbrx_quant::ggml_quant::quantize_rows(dtype, &x, cols, weights, &mut got).unwrap();
        if got != want {
            let row_bytes = want.len() / (x.len() / cols);
            let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap();
            failures.push(format!(
                "{dtype} ({input}, imatrix {}): row {} differs first at byte {}",
                weights.is_some(),
                i / row_bytes,
                i % row_bytes
            ));
        }
        checked += 1;
    }
    assert!(checked >= 2 * types.len() - 3 + 11, "only {checked} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
