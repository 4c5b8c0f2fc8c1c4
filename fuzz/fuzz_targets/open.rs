//! Any bytes under any of the names lbrx recognizes, through `lbrx_formats::open` (detection by magic and
//! extension, then the reader it picks) and a read of every tensor: Ok or a typed error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "m.safetensors",
    "m.gguf",
    "m.npz",
    "m.npy",
    "m.bin",
    "m.pt",
    "m.pth",
    "m",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("lbrx-fuzz-open-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(NAMES[pick as usize % NAMES.len()]);
    if std::fs::write(&p, body).is_ok() {
        if let Ok(s) = lbrx_formats::open(&p) {
            for i in 0..s.tensors().len() {
                let _ = s.view(i);
            }
            let _ = s.warnings();
        }
    }
    let _ = std::fs::remove_file(&p);
});
