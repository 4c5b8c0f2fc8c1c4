//! Any bytes as a .onnx file: the reader must return Ok or an error, never panic or over-allocate.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("lbrx-fuzz-onnx-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join("f.onnx");
    if std::fs::write(&p, data).is_ok() {
        if let Ok(s) = lbrx_formats::onnx::open(&p) {
            use lbrx_core::Source;
            for i in 0..s.tensors().len() {
                let _ = s.view(i);
            }
        }
    }
});
