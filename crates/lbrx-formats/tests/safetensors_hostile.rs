//! Hostile and malformed SafeTensors inputs: each must give its own error variant, never a panic.

use lbrx_core::{DType, Error, Malformed};
use lbrx_formats::safetensors::{
    header_bytes, parse_header, OutTensor, SafetensorsDir, SafetensorsFile,
};
use proptest::prelude::*;
use std::path::Path;

fn st(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn parse(bytes: &[u8]) -> Result<lbrx_formats::safetensors::Header, Error> {
    parse_header(Path::new("x.safetensors"), bytes, bytes.len() as u64)
}

fn kind(bytes: &[u8]) -> Malformed {
    match parse(bytes) {
        Err(Error::Malformed { kind, .. }) => *kind,
        other => panic!("expected a malformed-input error, got {other:?}"),
    }
}

#[test]
fn valid_minimal() {
    let json = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let h = parse(&st(json, &[0; 8])).unwrap();
    assert_eq!(h.tensors.len(), 1);
    assert_eq!(h.data_start, 8 + json.len() as u64);
    assert_eq!(h.tensors[0].offset, h.data_start);
}

#[test]
fn empty_file_and_short_length() {
    assert!(matches!(
        kind(b""),
        Malformed::Truncated {
            needed: 8,
            actual: 0
        }
    ));
    assert!(matches!(kind(b"\x01\x02\x03"), Malformed::Truncated { .. }));
}

#[test]
fn header_length_past_eof() {
    let mut b = st("{}", b"");
    b[0] = 200;
    assert!(matches!(
        kind(&b),
        Malformed::HeaderPastEof {
            header_len: 200,
            ..
        }
    ));
}

#[test]
fn enormous_header_length_is_capped_not_allocated() {
    let mut b = 1_000_000_000_000_000_000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert!(matches!(
        kind(&b),
        Malformed::HeaderTooLarge {
            header_len: 1_000_000_000_000_000_000,
            ..
        }
    ));
    let b = u64::MAX.to_le_bytes();
    assert!(matches!(kind(&b), Malformed::HeaderTooLarge { .. }));
}

#[test]
fn not_utf8_not_json_not_object() {
    assert!(matches!(
        kind(
            &st("\u{0}\u{1}", b"")[..8]
                .iter()
                .chain(b"\xff\xfe")
                .copied()
                .collect::<Vec<_>>()
        ),
        Malformed::HeaderNotUtf8
    ));
    assert!(matches!(
        kind(&st("{\"a\":", b"")),
        Malformed::InvalidHeader(_)
    ));
    assert!(matches!(
        kind(&st("[1,2]", b"")),
        Malformed::InvalidHeader(_)
    ));
    assert!(matches!(
        kind(&st(r#"{"a":5}"#, b"")),
        Malformed::InvalidHeader(_)
    ));
}

#[test]
fn unknown_dtype() {
    let b = st(
        r#"{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}"#,
        &[0; 4],
    );
    assert!(matches!(kind(&b), Malformed::UnknownDType(d) if d == "F17"));
    let b = st(
        r#"{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}"#,
        &[0; 4],
    );
    assert!(matches!(kind(&b), Malformed::UnknownDType(_)));
}

#[test]
fn shape_size_mismatch() {
    let b = st(
        r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        &[0; 8],
    );
    assert!(matches!(
        kind(&b),
        Malformed::SizeMismatch {
            expected: 12,
            actual: 8,
            ..
        }
    ));
}

#[test]
fn shape_overflow_is_an_error() {
    let b = st(
        r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#,
        &[0; 8],
    );
    assert!(matches!(kind(&b), Malformed::BadShape { .. }));
    let b = st(
        r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
        &[0; 4],
    );
    assert!(matches!(kind(&b), Malformed::InvalidHeader(_)));
}

#[test]
fn offsets_reversed_out_of_bounds_and_malformed() {
    let b = st(
        r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#,
        &[0; 4],
    );
    assert!(matches!(
        kind(&b),
        Malformed::BadOffsets { start: 4, end: 0 }
    ));
    let b = st(
        r#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#,
        &[0; 4],
    );
    assert!(matches!(
        kind(&b),
        Malformed::OutOfBounds {
            end: 8,
            data_len: 4,
            ..
        }
    ));
    let b = st(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0]}}"#,
        &[0; 4],
    );
    assert!(matches!(kind(&b), Malformed::InvalidHeader(_)));
}

#[test]
fn overlapping_tensors() {
    let b = st(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
        &[0; 6],
    );
    assert!(matches!(kind(&b), Malformed::Overlap { other, .. } if other == "a"));
}

#[test]
fn hole_and_trailing_bytes() {
    let b = st(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
        &[0; 6],
    );
    assert!(matches!(kind(&b), Malformed::Hole { len: 2 }));
    let b = st(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
        &[0; 7],
    );
    assert!(matches!(kind(&b), Malformed::TrailingBytes { len: 3 }));
}

#[test]
fn duplicate_names_and_bad_metadata() {
    let b = st(
        r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}"#,
        &[0; 4],
    );
    assert!(matches!(kind(&b), Malformed::DuplicateTensor));
    let b = st(r#"{"__metadata__":{"k":1}}"#, b"");
    assert!(matches!(kind(&b), Malformed::InvalidHeader(_)));
}

#[test]
fn error_names_file_tensor_and_offset() {
    let b = st(
        r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        &[0; 8],
    );
    let e = parse(&b).unwrap_err().to_string();
    assert!(
        e.contains("x.safetensors") && e.contains("tensor 'w'") && e.contains("byte offset"),
        "{e}"
    );
}

#[test]
fn sharded_directory_errors() {
    let dir = tempfile::tempdir().unwrap();
    let shard = st(
        r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#,
        &[1, 2],
    );
    std::fs::write(dir.path().join("s1.safetensors"), &shard).unwrap();
    let idx = |map: &str| {
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            format!(r#"{{"metadata":{{}},"weight_map":{map}}}"#),
        )
        .unwrap()
    };

    idx(r#"{"a":"s1.safetensors","b":"s2.safetensors"}"#);
    let e = SafetensorsDir::open(dir.path()).unwrap_err();
    assert!(
        matches!(e.malformed_kind(), Some(Malformed::MissingShard { shard }) if shard == "s2.safetensors"),
        "{e}"
    );

    std::fs::write(
        dir.path().join("s2.safetensors"),
        st(
            r#"{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#,
            &[3],
        ),
    )
    .unwrap();
    idx(r#"{"a":"s2.safetensors","b":"s1.safetensors"}"#);
    let e = SafetensorsDir::open(dir.path()).unwrap_err();
    assert!(
        matches!(e.malformed_kind(), Some(Malformed::NotInShard { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("tensor 'a'"), "{e}");

    idx(r#"{"a":"s1.safetensors"}"#);
    std::fs::remove_file(dir.path().join("s2.safetensors")).unwrap();
    std::fs::write(dir.path().join("s1.safetensors"), st(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"z":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#, &[1, 2])).unwrap();
    let e = SafetensorsDir::open(dir.path()).unwrap_err();
    assert!(
        matches!(e.malformed_kind(), Some(Malformed::NotInIndex { .. })),
        "{e}"
    );

    idx(r#"{"a":"../s1.safetensors"}"#);
    let e = SafetensorsDir::open(dir.path()).unwrap_err();
    assert!(
        matches!(e.malformed_kind(), Some(Malformed::InvalidHeader(_))),
        "{e}"
    );

    idx(r#"{"a":"s1.safetensors","z":"s1.safetensors"}"#);
    let d = SafetensorsDir::open(dir.path()).unwrap();
    assert_eq!(lbrx_core::Source::tensors(&d).len(), 2);
}

#[test]
fn file_open_reports_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    std::fs::write(&p, b"\xff\xff\xff\xff\xff\xff\xff\x00{}").unwrap();
    let e = SafetensorsFile::open(&p).unwrap_err();
    assert!(e.to_string().contains("bad.safetensors"));
}

fn dtype_strategy() -> impl Strategy<Value = DType> {
    prop::sample::select(vec![
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::U8,
        DType::Bool,
        DType::F8E4M3,
        DType::F64,
        DType::F4,
    ])
}

proptest! {
    /// Whatever the writer lays out, the reader accepts, with the same names, dtypes, shapes and sizes.
    #[test]
    fn writer_layout_reads_back(specs in prop::collection::vec(("[a-z.]{1,12}", dtype_strategy(), prop::collection::vec(0u64..5, 0..4)), 0..12)) {
        let mut seen = std::collections::HashSet::new();
        let tensors: Vec<OutTensor> = specs
            .into_iter()
            .filter(|(n, _, _)| seen.insert(n.clone()) && n != "__metadata__")
            .map(|(name, dtype, mut shape)| {
                if dtype == DType::F4 { shape.push(2); }
                OutTensor { name, dtype, shape }
            })
            .collect();
        let members: Vec<usize> = (0..tensors.len()).collect();
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        let layout = header_bytes(&tensors, &members, Some(&meta)).unwrap();
        let mut file = layout.header.clone();
        file.resize(layout.size as usize, 0xab);
        prop_assert_eq!(layout.header.len() % 8, 0);
        let h = parse(&file).unwrap();
        prop_assert_eq!(h.tensors.len(), tensors.len());
        prop_assert_eq!(h.metadata, meta);
        for p in &layout.tensors {
            let t = h.tensors.iter().find(|t| t.name == tensors[p.tensor].name).unwrap();
            prop_assert_eq!(t.offset, p.offset);
            prop_assert_eq!(t.len, p.len);
            prop_assert_eq!(t.dtype, tensors[p.tensor].dtype);
        }
    }

    /// Arbitrary bytes never panic the header parser.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse(&bytes);
    }
}
