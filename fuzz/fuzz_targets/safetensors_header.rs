//! Any bytes as a SafeTensors file: the header parser must return Ok or a typed error, never panic or
//! allocate from a length field.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = lbrx_formats::safetensors::parse_header(Path::new("fuzz.safetensors"), data, data.len() as u64);
});
