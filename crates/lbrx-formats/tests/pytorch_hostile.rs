//! Hostile and malformed PyTorch checkpoints: each is refused with a clear error (never a panic, never an
//! allocation sized by an unchecked length), and nothing in them is executed.

use lbrx_core::Source;
use lbrx_formats::pytorch::PyTorchFile;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A protocol-2 pickle of `{name: _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())}`
/// over one FloatStorage of `numel` elements with key '0'.
fn state_dict_pickle(name: &str, numel: u64, offset: u64, size: &[u64], stride: &[u64]) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    let s = |p: &mut Vec<u8>, t: &str| {
        p.push(b'X');
        p.extend_from_slice(&(t.len() as u32).to_le_bytes());
        p.extend_from_slice(t.as_bytes());
    };
    let int = |p: &mut Vec<u8>, v: u64| {
        p.push(0x8a);
        p.push(8);
        p.extend_from_slice(&v.to_le_bytes());
    };
    s(&mut p, name);
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    s(&mut p, "storage");
    p.extend_from_slice(b"ctorch\nFloatStorage\n");
    s(&mut p, "0");
    s(&mut p, "cpu");
    int(&mut p, numel);
    p.extend_from_slice(b"tQ");
    int(&mut p, offset);
    p.push(b'(');
    for &d in size {
        int(&mut p, d);
    }
    p.extend_from_slice(b"t(");
    for &d in stride {
        int(&mut p, d);
    }
    p.extend_from_slice(b"t\x89ccollections\nOrderedDict\n)RtRu.");
    p
}

/// Writes a torch zip archive with `data.pkl` and the given `data/KEY` members.
fn torch_zip(path: &Path, pkl: &[u8], members: &[(&str, &[u8], bool)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let stored: zip::write::SimpleFileOptions =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", stored).unwrap();
    z.write_all(pkl).unwrap();
    z.start_file("archive/byteorder", stored).unwrap();
    z.write_all(b"little").unwrap();
    for (name, data, deflate) in members {
        let o = if *deflate {
            stored.compression_method(zip::CompressionMethod::Deflated)
        } else {
            stored
        };
        z.start_file(format!("archive/data/{name}"), o).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

fn tmp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn err(path: &Path) -> String {
    match PyTorchFile::open(path) {
        Ok(f) => {
            // Opening may succeed where only reading can tell; reading must then fail.
            let e = (0..f.tensors().len()).find_map(|i| f.view(i).err());
            e.map(|e| e.to_string())
                .unwrap_or_else(|| panic!("{} was accepted", path.display()))
        }
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_wellformed_handmade_archive_reads() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("ok.pt");
    let data: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    // a 3x2 transposed view of a 2x3 storage
    torch_zip(
        &p,
        &state_dict_pickle("w", 6, 0, &[3, 2], &[1, 3]),
        &[("0", &data, false)],
    );
    let f = PyTorchFile::open(&p).unwrap();
    assert_eq!(f.tensors()[0].shape, [3, 2]);
    let v: Vec<f32> = f
        .view(0)
        .unwrap()
        .bytes()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(v, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}

#[test]
fn code_running_globals_are_refused_by_every_route() {
    let d = tempfile::tempdir().unwrap();
    let canary = d.path().join("CANARY");
    let cmd = format!("touch {}", canary.display());
    let q = |s: &str| format!("S'{s}'\n");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "global-reduce",
            format!("cos\nsystem\n({}tR.", q(&cmd)).into_bytes(),
            "os.system",
        ),
        (
            "posix",
            format!("cposix\nsystem\n({}tR.", q(&cmd)).into_bytes(),
            "posix.system",
        ),
        (
            "stack-global",
            [
                &b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93"[..],
                format!("({}tR.", q("1")).as_bytes(),
            ]
            .concat(),
            "builtins.eval",
        ),
        (
            "exec",
            format!("c__builtin__\nexec\n({}tR.", q("x")).into_bytes(),
            "__builtin__.exec",
        ),
        (
            "inst",
            format!("({}ios\nsystem\n.", q(&cmd)).into_bytes(),
            "os.system",
        ),
        (
            "obj",
            format!("(csubprocess\nPopen\n{}o.", q(&cmd)).into_bytes(),
            "subprocess.Popen",
        ),
        (
            "build",
            "ccollections\nOrderedDict\n)R}S'__setstate__'\ncbuiltins\ngetattr\nsb."
                .to_string()
                .into_bytes(),
            "builtins.getattr",
        ),
        (
            "nested-reduce",
            format!(
                "cbuiltins\ngetattr\n(cbuiltins\n__import__\n({}tR{}tR({}tR.",
                q("os"),
                q("system"),
                q(&cmd)
            )
            .into_bytes(),
            "builtins.getattr",
        ),
    ];
    for (name, pkl, global) in cases {
        // as a bare pickle (what torch.load would unpickle first) and as the data.pkl of an archive
        let raw = tmp(&d, &format!("{name}.bin"), &pkl);
        let e = err(&raw);
        assert!(e.contains("malicious") && e.contains(global), "{name}: {e}");
        let z = d.path().join(format!("{name}.pt"));
        torch_zip(&z, &pkl, &[]);
        let e = err(&z);
        assert!(
            e.contains("malicious") && e.contains(global),
            "{name} (zip): {e}"
        );
        assert!(e.contains("byte offset"), "{name}: {e}");
    }
    assert!(!canary.exists(), "a payload ran");
}

#[test]
fn huge_declared_lengths_are_refused_before_allocating() {
    let d = tempfile::tempdir().unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, op) in [
        ("binunicode8", 0x8du8),
        ("binbytes8", 0x8e),
        ("frame", 0x95),
        ("bytearray8", 0x96),
    ] {
        let mut b = vec![0x80, 5, op];
        b.extend_from_slice(&(1u64 << 62).to_le_bytes());
        b.extend_from_slice(b"abc.");
        cases.push((name, b));
    }
    let mut long4 = vec![0x80, 2, 0x8b];
    long4.extend_from_slice(&(i32::MAX).to_le_bytes());
    cases.push(("long4", long4));
    let mut binunicode = vec![0x80, 2, b'X'];
    binunicode.extend_from_slice(&u32::MAX.to_le_bytes());
    cases.push(("binunicode", binunicode));
    for (name, pkl) in cases {
        let z = d.path().join(format!("{name}.pt"));
        torch_zip(&z, &pkl, &[]);
        let e = err(&z);
        assert!(e.contains("remain"), "{name}: {e}");
    }
}

#[test]
fn memo_bombs_deep_nesting_and_cycles_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    // A list holding the previous list twice, 80 levels deep: 2^80 paths through one small object graph.
    let mut bomb = vec![0x80, 2, b']', b'q', 0];
    for i in 0..80u8 {
        bomb.extend_from_slice(&[b'(', b'h', i, b'h', i, b'l', b'q', i + 1]);
    }
    bomb.push(b'.');
    let z = d.path().join("bomb.pt");
    torch_zip(&z, &bomb, &[]);
    // No tensors anywhere: read as an empty checkpoint, in bounded time.
    assert_eq!(PyTorchFile::open(&z).unwrap().tensors().len(), 0);

    // A bomb whose leaves are tensors: exponentially many names, refused.
    let data = [0u8; 4];
    let mut tb = state_dict_pickle("w", 1, 0, &[1], &[1]);
    tb.pop(); // drop STOP; the dict is on the stack
    tb.extend_from_slice(b"q\x00");
    for i in 0..80u8 {
        tb.extend_from_slice(&[b'(', b'h', i, b'h', i, b'l', b'q', i + 1]);
    }
    tb.push(b'.');
    let z = d.path().join("tensor-bomb.pt");
    torch_zip(&z, &tb, &[("0", &data, false)]);
    let e = err(&z);
    assert!(e.contains("references") || e.contains("more than"), "{e}");

    // 200,000 open MARKs.
    let mut marks = vec![0x80, 2];
    marks.extend(std::iter::repeat_n(b'(', 200_000));
    let z = d.path().join("marks.pt");
    torch_zip(&z, &marks, &[]);
    assert!(err(&z).contains("MARK"), "{}", err(&z));

    // Lists nested 100,000 deep (a stack of EMPTY_LIST, then APPENDs).
    let mut deep = vec![0x80, 2];
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.extend(std::iter::repeat_n(b'a', 99_999));
    deep.push(b'.');
    let z = d.path().join("deep.pt");
    torch_zip(&z, &deep, &[]);
    assert!(err(&z).contains("nested deeper"), "{}", err(&z));

    // A list that contains itself.
    let z = d.path().join("cycle.pt");
    torch_zip(&z, b"\x80\x02]q\x00h\x00a.", &[]);
    assert!(err(&z).contains("nested deeper"), "{}", err(&z));
}

#[test]
fn views_and_storages_out_of_bounds_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let data: Vec<u8> = vec![0; 16];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "size-past",
            state_dict_pickle("w", 4, 0, &[10], &[1]),
            "reaches past",
        ),
        (
            "offset-past",
            state_dict_pickle("w", 4, 3, &[2], &[1]),
            "reaches past",
        ),
        (
            "stride-past",
            state_dict_pickle("w", 4, 0, &[2, 2], &[3, 1]),
            "reaches past",
        ),
        (
            "numel-lies",
            state_dict_pickle("w", 8, 0, &[4], &[1]),
            "declares 8 elements",
        ),
        (
            "numel-overflow",
            state_dict_pickle("w", 1 << 62, 0, &[4], &[1]),
            "declares",
        ),
        (
            "shape-overflow",
            state_dict_pickle("w", 4, 0, &[1 << 62, 1 << 62], &[1, 1]),
            "not a valid size",
        ),
        (
            "stride-overflow",
            state_dict_pickle("w", 4, 0, &[8, 2], &[1 << 62, 1]),
            "not a valid size",
        ),
        (
            "stride-negative",
            state_dict_pickle("w", 4, 0, &[2, 2], &[1 << 63, 1]),
            "negative stride",
        ),
        (
            "dims-mismatch",
            state_dict_pickle("w", 4, 0, &[2, 2], &[1]),
            "dims",
        ),
    ];
    for (name, pkl, want) in cases {
        let z = d.path().join(format!("{name}.pt"));
        torch_zip(&z, &pkl, &[("0", &data, false)]);
        let e = err(&z);
        assert!(e.contains(want), "{name}: {e}");
        assert!(e.contains("tensor 'w'") || e.contains("'w'"), "{name}: {e}");
    }
    // A storage record the archive does not have.
    let z = d.path().join("missing.pt");
    torch_zip(&z, &state_dict_pickle("w", 4, 0, &[4], &[1]), &[]);
    assert!(err(&z).contains("not in the archive"), "{}", err(&z));
}

#[test]
fn deflate_bombs_never_inflate_past_the_declared_size() {
    let d = tempfile::tempdir().unwrap();
    // A deflated storage of 64 MiB of zeros whose zip headers are patched to declare 16 bytes.
    let big = vec![0u8; 64 << 20];
    let z = d.path().join("bomb.pt");
    torch_zip(
        &z,
        &state_dict_pickle("w", 4, 0, &[4], &[1]),
        &[("0", &big, true)],
    );
    let mut bytes = std::fs::read(&z).unwrap();
    let declared = (64u32 << 20).to_le_bytes();
    let mut patched = 0;
    for i in 0..bytes.len() - 4 {
        if bytes[i..i + 4] == declared {
            bytes[i..i + 4].copy_from_slice(&16u32.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "local and central headers");
    std::fs::write(&z, &bytes).unwrap();
    let e = err(&z);
    assert!(
        e.contains("past its declared size") || e.contains("zip"),
        "{e}"
    );

    // A pickle declaring a 1 TiB storage against 16 stored bytes.
    let z = d.path().join("liar.pt");
    torch_zip(
        &z,
        &state_dict_pickle("w", 1 << 38, 0, &[4], &[1]),
        &[("0", &[0u8; 16], true)],
    );
    assert!(err(&z).contains("declares"), "{}", err(&z));
}

#[test]
fn not_a_checkpoint_and_truncated_files() {
    let d = tempfile::tempdir().unwrap();
    let e = err(&tmp(&d, "text.bin", b"hello world"));
    assert!(e.contains("not a PyTorch checkpoint"), "{e}");
    let e = err(&tmp(&d, "plain.bin", b"\x80\x02}q\x00.")); // a pickle, but not torch's
    assert!(e.contains("not a PyTorch checkpoint"), "{e}");
    let mut tar = vec![0u8; 512];
    tar[257..262].copy_from_slice(b"ustar");
    assert!(err(&tmp(&d, "old.tar", &tar)).contains("tar"));
    // A legacy file cut inside its storage records.
    let mut legacy = vec![0x80, 2, 0x8a, 10];
    legacy.extend_from_slice(&0x1950a86a20f9469cfc6cu128.to_le_bytes()[..10]);
    legacy.extend_from_slice(b".\x80\x02M\xe9\x03.\x80\x02}.");
    legacy.extend_from_slice(&state_dict_pickle("w", 4, 0, &[4], &[1]));
    legacy.extend_from_slice(b"\x80\x02]X\x01\x00\x00\x000a.");
    legacy.extend_from_slice(&4u64.to_le_bytes());
    legacy.extend_from_slice(&[0u8; 8]); // 8 of the 16 bytes
    let e = err(&tmp(&d, "cut.pt", &legacy));
    assert!(e.contains("truncated"), "{e}");
    // The same with its records whole reads.
    legacy.extend_from_slice(&[0u8; 8]);
    let p = tmp(&d, "whole.pt", &legacy);
    assert_eq!(PyTorchFile::open(&p).unwrap().tensors()[0].name, "w");
    // Every prefix of a valid archive fails cleanly.
    let z = d.path().join("ok.pt");
    torch_zip(
        &z,
        &state_dict_pickle("w", 4, 0, &[4], &[1]),
        &[("0", &[0u8; 16], false)],
    );
    let whole = std::fs::read(&z).unwrap();
    for cut in (0..whole.len()).step_by(7) {
        let p = tmp(&d, "prefix.pt", &whole[..cut]);
        let _ = PyTorchFile::open(&p).map(|f| {
            (0..f.tensors().len())
                .filter(|&i| f.view(i).is_ok())
                .count()
        });
    }
}
