//! Any bytes as an HDF5 file: the reader must return Ok or an error, never panic, loop or over-allocate.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lbrx_formats::hdf5::parse(data, std::path::Path::new("fuzz.h5"));
});
