//! Malformed `.npy` headers: clear errors, no panics.

use lbrx_core::{Error, Malformed};
use lbrx_formats::npz::parse_npy_header;
use std::path::Path;

fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(header.len() as u16).to_le_bytes());
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn parse(b: &[u8]) -> Result<lbrx_formats::npz::NpyHeader, Error> {
    parse_npy_header(Path::new("x.npy"), None, b, b.len() as u64)
}

#[test]
fn valid_and_hostile_headers() {
    let h = parse(&npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        &[0; 24],
    ))
    .unwrap();
    assert_eq!(h.shape, [2, 3]);
    let h = parse(&npy(
        "{'descr': '>i8', 'fortran_order': False, 'shape': (), }",
        &[0; 8],
    ))
    .unwrap();
    assert!(h.big_endian && h.shape.is_empty());
    assert!(matches!(parse(b"\x93NUMP"), Err(Error::Malformed { .. })));
    let mut past = npy("{}", b"");
    past[8] = 0xff;
    assert!(matches!(
        parse(&past).unwrap_err().malformed_kind(),
        Some(Malformed::HeaderPastEof { .. })
    ));
    let e = parse(&npy(
        "{'descr': '<V2', 'fortran_order': False, 'shape': (2,), }",
        &[0; 4],
    ))
    .unwrap_err();
    assert!(matches!(e.malformed_kind(), Some(Malformed::UnknownDType(d)) if d == "<V2"));
    assert!(parse(&npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
        b""
    ))
    .is_err());
    assert!(parse(&npy("{'descr': '<f4', 'shape': (2,), }", b"")).is_err());
    assert!(matches!(
        parse(&npy(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
            &[0; 8]
        )),
        Err(Error::Unsupported { .. })
    ));
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        parse(&v2).unwrap_err().malformed_kind(),
        Some(Malformed::HeaderTooLarge { .. })
    ));
}
