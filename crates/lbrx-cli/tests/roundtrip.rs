//! Property test: random tensor sets (every dtype SafeTensors stores, 0-dim and empty tensors, odd shapes, random bit
//! patterns including NaN payloads) go through every writable format and every pair of them and back to
//! SafeTensors unchanged, byte for byte; where a format cannot hold a set, lbrx refuses with one error line and
//! writes nothing. The seed is printed (`LBRX_SEED` repeats a run); NumPy reads every `.npz`/`.npy` lbrx writes
//! with the same values.

#![allow(clippy::print_stderr)]

mod common;
use common::*;
use lbrx_core::DType;
use std::collections::BTreeMap;
use std::path::Path;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

type Tensors = BTreeMap<String, (DType, Vec<u64>, Vec<u8>)>;

/// Writes `t` as one SafeTensors file with lbrx's writer.
fn write_st(path: &Path, t: &Tensors) {
    let list: Vec<_> = t
        .iter()
        .map(|(n, (d, s, b))| (n.clone(), *d, s.clone(), b.clone()))
        .collect();
    write_tensors(path, &list);
}

/// Every tensor of a model lbrx reads: name -> (dtype, shape, bytes).
fn read_all(path: &Path) -> Tensors {
    let s = lbrx_formats::open(path).unwrap();
    s.tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                t.name.clone(),
                (
                    t.dtype,
                    t.shape.clone(),
                    s.view(i).unwrap().bytes().to_vec(),
                ),
            )
        })
        .collect()
}

/// A random tensor set: every dtype SafeTensors stores (the source format), shapes with 0-dim, empty and odd
/// dimensions (sub-byte types in whole bytes).
fn random_set(rng: &mut Rng) -> Tensors {
    let dtypes: Vec<DType> = lbrx_core::DTYPES
        .iter()
        .map(|r| r.dtype)
        .filter(|d| d.info().type_size > 0 && d.info().safetensors_rank.is_some())
        .collect();
    let mut t = Tensors::new();
    for k in 0..1 + rng.below(6) {
        let d = dtypes[rng.below(dtypes.len() as u64) as usize];
        let bs = d.info().block_size as u64;
        let shape: Vec<u64> = match rng.below(6) {
            0 => Vec::new(),
            1 => vec![0],
            2 => vec![1 + rng.below(7) * bs],
            3 => vec![1 + rng.below(3), 0, 2],
            _ => {
                let mut s: Vec<u64> = (0..1 + rng.below(3)).map(|_| 1 + rng.below(5)).collect();
                s.push(bs * (1 + rng.below(3)));
                s
            }
        };
        let shape = if bs > 1 && shape.last().is_none_or(|&l| l % bs != 0) {
            vec![bs]
        } else {
            shape
        };
        let Some(len) = d.byte_len(&shape) else {
            continue;
        };
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        t.insert(
            format!("t{k}.{}", d.name().to_lowercase()),
            (d, shape, data),
        );
    }
    t
}

/// The destinations lbrx writes, by name.
const TARGETS: &[&str] = &["a.safetensors", "dir", "a.gguf", "a.npz", "a.npy"];

#[test]
fn random_tensor_sets_survive_every_format_pair() {
    let seed = std::env::var("LBRX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("roundtrip seed: {seed} (LBRX_SEED={seed} repeats this run)");
    let mut rng = Rng(seed);
    let py = python();
    let d = tempfile::tempdir().unwrap();
    let (mut pairs, mut refused) = (0, 0);
    for round in 0..24 {
        let set = random_set(&mut rng);
        let dir = d.path().join(format!("r{round}"));
        std::fs::create_dir(&dir).unwrap();
        let src = dir.join("src.safetensors");
        write_st(&src, &set);
        assert_eq!(read_all(&src), set, "round {round}: our own file");
        for a in TARGETS {
            for b in TARGETS {
                let (pa, pb) = (dir.join(format!("x-{a}")), dir.join(format!("y-{a}-{b}")));
                let back = dir.join(format!("z-{a}-{b}.safetensors"));
                let mut ok_all = true;
                for (from, to) in [(&src, &pa), (&pa, &pb), (&pb, &back)] {
                    if !from.exists() {
                        ok_all = false;
                        break;
                    }
                    if to.exists() {
                        continue;
                    }
                    let o = lbrx()
                        .arg("convert")
                        .arg(from)
                        .arg(to)
                        .arg("--quiet")
                        .output()
                        .unwrap();
                    if !o.status.success() {
                        let err = String::from_utf8_lossy(&o.stderr);
                        let lines: Vec<&str> = err.lines().collect();
                        assert!(
                            o.status.code() == Some(1)
                                && lines.len() == 1
                                && lines[0].starts_with("error: "),
                            "round {round} {} -> {}: not a clean refusal: {err}",
                            from.display(),
                            to.display()
                        );
                        assert!(!to.exists(), "a refused conversion left {}", to.display());
                        if std::env::var_os("LBRX_ROUNDTRIP_REASONS").is_some() {
                            eprintln!("refused: {}", lines[0]);
                        }
                        ok_all = false;
                        refused += 1;
                        break;
                    }
                }
                if ok_all {
                    let got = read_all(&back);
                    if a.ends_with(".npy") || b.ends_with(".npy") {
                        // a .npy file has no tensor names (its one array is named after the file)
                        let values = |t: &Tensors| t.values().cloned().collect::<Vec<_>>();
                        assert_eq!(
                            values(&got),
                            values(&set),
                            "round {round}: {a} -> {b} -> SafeTensors changed the tensor (seed {seed})"
                        );
                    } else {
                        assert_eq!(
                            got, set,
                            "round {round}: {a} -> {b} -> SafeTensors changed the tensors (seed {seed})"
                        );
                    }
                    pairs += 1;
                }
            }
        }
        if let Some(py) = &py {
            for f in ["x-a.npz", "x-a.npy"] {
                let p = dir.join(f);
                if p.exists() {
                    run_oracle(py, "roundtrip_oracle.py", &[&p, &src]);
                }
            }
        }
    }
    eprintln!("{pairs} format pairs round-tripped, {refused} conversions refused cleanly");
    assert!(pairs > 24, "too few pairs could round-trip: {pairs}");
}
