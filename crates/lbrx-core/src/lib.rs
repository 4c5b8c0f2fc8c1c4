//! Core model of lbrx: the dtype registry, tensor descriptions and views, metadata, the [`Source`] and
//! [`Sink`] traits that formats and the conversion engine meet at, and the typed [`Error`].

pub mod dtype;
pub mod error;
pub mod meta;
pub mod source;
pub mod tensor;

pub use dtype::{
    element_count, torch_dtype, DType, DTypeInfo, DTypeKind, GgufTypeError, DTYPES,
    RETIRED_GGML_TYPES, TORCH_DTYPES,
};
pub use error::{Error, Location, Malformed, Result};
pub use meta::{Metadata, Value, ValueKind, VALUE_KINDS};
pub use source::{Format, Sink, Source, SourceFile};
pub use tensor::{TensorInfo, TensorView};

/// Formats a byte count for people: `1.50 GiB`, `12.0 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}
