//! Any bytes as a PyTorch checkpoint (zip archive or legacy pickles): opening and reading every tensor must
//! return Ok or an error, never panic or over-allocate.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = std::env::temp_dir().join(format!("lbrx-fuzz-pytorch-{}.pt", std::process::id()));
    if std::fs::write(&p, data).is_ok() {
        if let Ok(f) = lbrx_formats::pytorch::PyTorchFile::open(&p) {
            use lbrx_core::Source;
            for i in 0..f.tensors().len() {
                let _ = f.view(i);
            }
        }
    }
});
