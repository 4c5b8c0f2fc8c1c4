//! Any bytes as a GGUF file: the reader must return Ok or a typed error, never panic or over-allocate.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("lbrx-fuzz-gguf-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join("f.gguf");
    if std::fs::write(&p, data).is_ok() {
        if let Ok(g) = lbrx_formats::gguf::GgufFile::open(&p) {
            use lbrx_core::Source;
            for i in 0..g.tensors().len() {
                let _ = g.view(i);
            }
        }
    }
});
