//! Any bytes as a TensorBundle `.index` table: the SSTable reader must return Ok or an error, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lbrx_formats::tensorflow::sstable::read(data);
});
