//! Any bytes as an importance matrix (llama-imatrix's GGUF or legacy `.dat`): Ok or a typed error, never a
//! panic or an allocation sized by an unchecked count.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("lbrx-fuzz-imatrix-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for name in ["imatrix.gguf", "imatrix.dat"] {
        let p = dir.join(name);
        if std::fs::write(&p, data).is_ok() {
            let _ = lbrx_formats::imatrix::read_imatrix(&p);
        }
    }
});
