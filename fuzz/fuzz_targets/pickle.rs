//! Any bytes as a pickle: the reader must return Ok or an error, never panic, loop or over-allocate; whatever
//! parses is flattened to tensors as a checkpoint would be.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lbrx_formats::pytorch::{pickle, rebuild};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = pickle::parse(data, 0, pickle::Limits::default()) {
        for naming in [rebuild::Naming::Plain, rebuild::Naming::Script] {
            let _ = rebuild::flatten(&p, p.root, "", naming, &rebuild::ScriptClasses::new());
        }
    }
});
