//! Any bytes as a SentencePiece `tokenizer.model` (protobuf): Ok or a typed error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("lbrx-fuzz-spm-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join("tokenizer.model");
    if std::fs::write(&p, data).is_ok() {
        let _ = lbrx_formats::sentencepiece::read_model(&p);
    }
});
