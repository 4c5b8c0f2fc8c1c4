//! Any bytes as a shard index file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("lbrx-fuzz-index-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join("model.safetensors.index.json");
    if std::fs::write(&p, data).is_ok() {
        let _ = lbrx_formats::safetensors::read_index(&p);
    }
});
