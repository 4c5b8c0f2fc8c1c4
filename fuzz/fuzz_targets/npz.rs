//! Any bytes as a .npy file or .npz archive: the reader must return Ok or an error, never panic or over-allocate.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("lbrx-fuzz-npz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for name in ["f.npz", "f.npy"] {
        let p = dir.join(name);
        if std::fs::write(&p, data).is_ok() {
            if let Ok(n) = lbrx_formats::npz::NpzFile::open(&p) {
                use lbrx_core::Source;
                for i in 0..n.tensors().len() {
                    let _ = n.view(i);
                }
            }
        }
    }
});
