//! Hostile and malformed GGUF inputs: each section truncated, absurd counts and lengths, bad offsets and types.

use lbrx_core::{Error, Malformed, Source};
use lbrx_formats::gguf::GgufFile;

/// A tiny builder for GGUF bytes (little-endian unless `be`).
struct B {
    v: Vec<u8>,
    be: bool,
    v1: bool,
}

impl B {
    fn new(version: u32, be: bool) -> Self {
        let mut b = B {
            v: b"GGUF".to_vec(),
            be,
            v1: version == 1,
        };
        b.u32(version);
        b
    }
    fn u32(&mut self, x: u32) -> &mut Self {
        self.v.extend(if self.be {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        });
        self
    }
    fn u64(&mut self, x: u64) -> &mut Self {
        self.v.extend(if self.be {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        });
        self
    }
    fn len(&mut self, x: u64) -> &mut Self {
        if self.v1 {
            self.u32(x as u32)
        } else {
            self.u64(x)
        }
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.len(s.len() as u64);
        self.v.extend(s.as_bytes());
        self
    }
    fn pad(&mut self, align: usize) -> &mut Self {
        while !self.v.len().is_multiple_of(align) {
            self.v.push(0);
        }
        self
    }
}

/// A valid file: one u32 KV, two F32 tensors ([2] and [3]) at offsets 0 and 32.
fn valid(version: u32, be: bool) -> Vec<u8> {
    let mut b = B::new(version, be);
    b.len(2).len(1);
    b.str("k").u32(4).u32(7);
    b.str("a").u32(1).len(2).u32(0).u64(0);
    b.str("b").u32(1).len(3).u32(0).u64(32);
    b.pad(32);
    for x in [1.0f32, 2.0] {
        b.v.extend(if be { x.to_be_bytes() } else { x.to_le_bytes() });
    }
    b.pad(32);
    for x in [3.0f32, 4.0, 5.0] {
        b.v.extend(if be { x.to_be_bytes() } else { x.to_le_bytes() });
    }
    b.v
}

fn open(bytes: &[u8]) -> Result<GgufFile, Error> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.gguf");
    std::fs::write(&p, bytes).unwrap();
    GgufFile::open(&p)
}

fn kind(bytes: &[u8]) -> Malformed {
    match open(bytes) {
        Err(Error::Malformed { kind, .. }) => *kind,
        other => panic!("expected malformed, got {other:?}"),
    }
}

#[test]
fn versions_and_endianness_read_alike() {
    for (version, be) in [(1, false), (2, false), (3, false), (3, true), (2, true)] {
        let g = open(&valid(version, be)).unwrap_or_else(|e| panic!("v{version} be={be}: {e}"));
        assert_eq!(g.info().version, version);
        assert_eq!(g.tensors().len(), 2);
        assert_eq!(g.metadata().get("k"), Some(&lbrx_core::Value::U32(7)));
        let b = g.view(1).unwrap();
        let vals: Vec<f32> = b
            .bytes()
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(vals, [3.0, 4.0, 5.0], "v{version} be={be}");
    }
}

#[test]
fn truncated_anywhere_is_an_error_not_a_panic() {
    let full = valid(3, false);
    for cut in 0..full.len() {
        assert!(open(&full[..cut]).is_err(), "cut at {cut} was accepted");
    }
}

#[test]
fn absurd_counts_and_lengths_are_refused_before_allocating() {
    let mut b = B::new(3, false);
    b.u64(1 << 60).u64(0);
    assert!(matches!(kind(&b.v), Malformed::Other(m) if m.contains("cannot fit")));
    let mut b = B::new(3, false);
    b.u64(0).u64(1 << 60);
    assert!(matches!(kind(&b.v), Malformed::Other(m) if m.contains("cannot fit")));
    let mut b = B::new(3, false);
    b.u64(0).u64(1).u64(1 << 40); // key length past EOF
    assert!(matches!(
        kind(&b.v),
        Malformed::Other(_) | Malformed::Truncated { .. }
    ));
    let mut b = B::new(3, false);
    b.u64(0).u64(1).str("k").u32(9).u32(4).u64(1 << 61); // array of 2^61 u32
    assert!(matches!(kind(&b.v), Malformed::Other(m) if m.contains("cannot fit")));
    let mut b = B::new(3, false);
    b.u64(0).u64(1).str("k").u32(8).u64(500); // string value past EOF
    assert!(matches!(kind(&b.v), Malformed::Truncated { .. }));
}

#[test]
fn bad_tensor_entries() {
    let tensor = |ty: u32, off: u64, ne: u64| {
        let mut b = B::new(3, false);
        b.u64(1).u64(0).str("t").u32(1).u64(ne).u32(ty).u64(off);
        b.pad(32);
        b.v.extend([0u8; 64]);
        b.v
    };
    assert!(open(&tensor(0, 0, 2)).is_ok());
    assert!(
        matches!(kind(&tensor(4, 0, 2)), Malformed::UnknownDType(m) if m.contains("Q4_2") && m.contains("retired"))
    );
    assert!(
        matches!(kind(&tensor(31, 0, 2)), Malformed::UnknownDType(m) if m.contains("Q4_0_4_4"))
    );
    assert!(
        matches!(kind(&tensor(77, 0, 2)), Malformed::UnknownDType(m) if m.contains("unknown ggml type 77"))
    );
    assert!(
        matches!(kind(&tensor(0, 5, 2)), Malformed::Other(m) if m.contains("not a multiple of the alignment"))
    );
    assert!(matches!(
        kind(&tensor(0, 0, 1000)),
        Malformed::OutOfBounds { .. }
    ));
    assert!(matches!(
        kind(&tensor(2, 0, 33)),
        Malformed::BadShape { .. }
    )); // Q4_0 rows must be whole blocks
        // Two tensors sharing bytes.
    let mut b = B::new(3, false);
    b.u64(2).u64(0);
    b.str("a").u32(1).u64(16).u32(0).u64(0);
    b.str("b").u32(1).u64(16).u32(0).u64(32);
    b.pad(32);
    b.v.extend([0u8; 96]);
    assert!(matches!(kind(&b.v), Malformed::Overlap { other, .. } if other == "a"));
    // Five dimensions, duplicate names.
    let mut b = B::new(3, false);
    b.u64(1).u64(0).str("t").u32(5);
    b.v.extend([0u8; 64]);
    assert!(matches!(kind(&b.v), Malformed::Other(m) if m.contains("dimensions")));
    let mut b = B::new(3, false);
    b.u64(2)
        .u64(0)
        .str("t")
        .u32(1)
        .u64(2)
        .u32(0)
        .u64(0)
        .str("t")
        .u32(1)
        .u64(2)
        .u32(0)
        .u64(32);
    b.pad(32);
    b.v.extend([0u8; 64]);
    assert!(matches!(kind(&b.v), Malformed::DuplicateTensor));
}

#[test]
fn a_v1_file_claiming_v3_and_bad_headers() {
    let mut v1 = valid(1, false);
    v1[4..8].copy_from_slice(&3u32.to_le_bytes()); // 32-bit counts read as 64-bit: garbage counts
    assert!(open(&v1).is_err());
    let mut v = valid(3, false);
    v[4..8].copy_from_slice(&9u32.to_le_bytes());
    assert!(matches!(kind(&v), Malformed::Other(m) if m.contains("unsupported GGUF version 9")));
    assert!(matches!(kind(b"GGUX\x03\0\0\0"), Malformed::Other(m) if m.contains("magic")));
    let mut b = B::new(3, false);
    b.u64(0).u64(1).str("general.alignment").u32(4).u32(24);
    assert!(matches!(kind(&b.v), Malformed::Other(m) if m.contains("alignment")));
    let mut b = B::new(3, false);
    b.u64(0).u64(1).str("k").u32(99);
    assert!(matches!(kind(&b.v), Malformed::Other(m) if m.contains("unknown value type 99")));
    let mut b = B::new(3, false);
    b.u64(0).u64(2).str("k").u32(7).v.push(1);
    b.str("k").u32(7).v.push(0);
    assert!(matches!(kind(&b.v), Malformed::Other(m) if m.contains("duplicate key")));
}

#[test]
fn deeply_nested_arrays_are_capped() {
    let mut b = B::new(3, false);
    b.u64(0).u64(1).str("k").u32(9);
    for _ in 0..20 {
        b.u32(9).u64(1);
    }
    b.u32(4).u64(1).u32(0);
    assert!(matches!(kind(&b.v), Malformed::Other(m) if m.contains("nested")));
}
