//! Hostile inputs for the ONNX, TensorBundle, TFLite and HDF5 readers, as byte literals (or protobufs built
//! here): each gives its own error, none panics or allocates by an unchecked length.

use lbrx_formats::onnx::proto::{GraphProto, ModelProto, StringStringEntryProto, TensorProto};
use prost::Message;
use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn onnx_error(t: TensorProto) -> String {
    let d = tempfile::tempdir().unwrap();
    let m = ModelProto {
        ir_version: Some(8),
        graph: Some(GraphProto {
            initializer: vec![t],
            ..Default::default()
        }),
        ..Default::default()
    };
    let p = write(d.path(), "m.onnx", &m.encode_to_vec());
    lbrx_formats::onnx::open(&p).unwrap_err().to_string()
}

fn f32_tensor(dims: Vec<i64>) -> TensorProto {
    TensorProto {
        name: Some("w".into()),
        dims,
        data_type: Some(1),
        ..Default::default()
    }
}

#[test]
fn onnx_lengths_types_and_paths_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "x.onnx", b"\xff\xff\xff\xff not a protobuf");
    let e = lbrx_formats::onnx::open(&p).unwrap_err().to_string();
    assert!(e.contains("not a valid ONNX protobuf"), "{e}");

    let mut t = f32_tensor(vec![2, 3]);
    t.raw_data = Some(vec![0u8; 20].into());
    let e = onnx_error(t);
    assert!(e.contains("needs 24 bytes") && e.contains("20"), "{e}");

    // 2^40 x 2^40 elements announced by two values: refused without allocating
    let mut t = f32_tensor(vec![1 << 40, 1 << 40]);
    t.float_data = vec![1.0, 2.0];
    let e = onnx_error(t);
    assert!(
        e.contains("not a valid size") || e.contains("overflows"),
        "{e}"
    );
    let mut t = f32_tensor(vec![1 << 20, 4]);
    t.float_data = vec![1.0, 2.0];
    let e = onnx_error(t);
    assert!(e.contains("holds 2 values"), "{e}");

    let mut t = f32_tensor(vec![-1]);
    t.raw_data = Some(vec![0u8; 4].into());
    assert!(onnx_error(t).contains("negative dimension"));

    let mut t = f32_tensor(vec![1]);
    t.data_type = Some(99);
    assert!(onnx_error(t).contains("ONNX data type 99"));

    for (loc, why) in [
        ("/etc/hostname", "absolute path"),
        ("../outside.bin", "leaves the directory"),
    ] {
        let mut t = f32_tensor(vec![1]);
        t.data_location = Some(1);
        t.external_data = vec![StringStringEntryProto {
            key: Some("location".into()),
            value: Some(loc.into()),
        }];
        let e = onnx_error(t);
        assert!(e.contains(why), "{loc}: {e}");
    }
}

#[test]
fn sstable_footer_and_blocks_are_checked() {
    let e = lbrx_formats::tensorflow::sstable::read(&[0u8; 10]).unwrap_err();
    assert!(e.what.contains("shorter than a table footer"));
    let e = lbrx_formats::tensorflow::sstable::read(&[0u8; 48]).unwrap_err();
    assert!(e.what.contains("no table magic"));
    // a footer whose index handle points past the end
    let mut f = vec![0u8; 48];
    f[0] = 0;
    f[1] = 0;
    f[2] = 0xe8;
    f[3] = 0x07; // index offset 1000
    f[4] = 0x10; // size 16
    f[40..].copy_from_slice(&0xdb47_7524_8b80_fb57u64.to_le_bytes());
    let e = lbrx_formats::tensorflow::sstable::read(&f).unwrap_err();
    assert!(e.what.contains("past the end"), "{}", e.what);
    // a block whose checksum does not match
    let mut t = vec![0u8; 4]; // empty block: no restarts... count 0
    t.extend_from_slice(&[0, 0, 0, 0, 0]); // type 0, crc 0
    let mut foot = vec![0u8, 0, 0, 4];
    foot.resize(40, 0);
    foot.extend_from_slice(&0xdb47_7524_8b80_fb57u64.to_le_bytes());
    t.extend_from_slice(&foot);
    let e = lbrx_formats::tensorflow::sstable::read(&t).unwrap_err();
    assert!(e.crc.is_some(), "{e:?}");
}

#[test]
fn tflite_offsets_are_checked() {
    let d = tempfile::tempdir().unwrap();
    for (bytes, needle) in [
        (&b"\x08\0\0\0TFL"[..], "past the end"),
        (&b"\x08\0\0\0XXXX"[..], "no TFL3"),
        (&b"\xf0\xff\xff\xffTFL3"[..], "past the end"),
        (&b"\x08\0\0\0TFL3\x40\0\0\0"[..], "vtable before the file"),
    ] {
        let p = write(d.path(), "m.tflite", bytes);
        let e = lbrx_formats::tflite::open(&p).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }
}

#[test]
fn hdf5_structure_is_checked() {
    let p = Path::new("x.h5");
    let e = lbrx_formats::hdf5::parse(b"not hdf5", p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no HDF5 signature"), "{e}");
    let mut sb = b"\x89HDF\r\n\x1a\n".to_vec();
    sb.extend_from_slice(&[0, 0, 0, 0, 0, 8, 8, 0]);
    let e = lbrx_formats::hdf5::parse(&sb, p).unwrap_err().to_string();
    assert!(e.contains("past the end"), "{e}");
    sb.extend_from_slice(&[4, 0, 16, 0, 0, 0, 0, 0]);
    sb.extend_from_slice(&[0; 32]); // base, free space, eof, driver
    sb.extend_from_slice(&0u64.to_le_bytes()); // link name offset
    sb.extend_from_slice(&(1u64 << 40).to_le_bytes()); // root object header past the end
    sb.extend_from_slice(&[0; 24]);
    let e = lbrx_formats::hdf5::parse(&sb, p).unwrap_err().to_string();
    assert!(e.contains("past the end of the file"), "{e}");
    sb[13] = 3;
    let e = lbrx_formats::hdf5::parse(&sb, p).unwrap_err().to_string();
    assert!(e.contains("not 2, 4 or 8"), "{e}");
}
