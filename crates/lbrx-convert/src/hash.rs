//! Model hashes in the layout of llama.cpp's `llama-gguf-hash` (examples/gguf-hash): per tensor, in file order,
//! one line per algorithm (`xxh64`, `sha1`, `sha256`) naming `FILE:TENSOR`, then the whole-model lines over
//! every tensor's bytes in order (`xxh64`, `sha1`, `sha256`, and `uuid`: a UUIDv5 of the tensors' bytes in
//! llama.cpp's namespace). Any source lbrx reads hashes its logical tensor bytes (what `view_range` gives),
//! so a SafeTensors file and its GGUF copy hash alike where their bytes are the same.
//!
//! A manifest is a file of such lines (`TYPE  HASH  NAME`, extra words ignored); `--check` compares against it
//! with `llama-gguf-hash`'s rules and exit codes (its uuid lookup, which searches `sha256` entries, included).

use lbrx_core::{Error, Result, Source};
use sha1::Digest as _;
use std::path::Path;

/// A hash algorithm, in the order lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algo {
    /// xxHash64, seed 0 (printed big-endian hex).
    Xxh64,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// UUIDv5 of the whole model in llama.cpp's namespace (model line only).
    Uuid,
}

/// The algorithms: (algorithm, name as the manifest spells it).
pub const ALGOS: [(Algo, &str); 4] = [
    (Algo::Xxh64, "xxh64"),
    (Algo::Sha1, "sha1"),
    (Algo::Sha256, "sha256"),
    (Algo::Uuid, "uuid"),
];

/// `uuid.uuid5(uuid.NAMESPACE_URL, 'en.wikipedia.org/wiki/Llama.cpp')`, llama.cpp's namespace.
const UUID_NAMESPACE: [u8; 16] = [
    0xef, 0x00, 0x12, 0x06, 0xda, 0xdc, 0x5f, 0x6d, 0xa1, 0x5f, 0x33, 0x59, 0xe5, 0x77, 0xd4, 0xe5,
];

impl Algo {
    /// The manifest's name.
    pub fn name(self) -> &'static str {
        ALGOS.iter().find(|a| a.0 == self).map_or("", |a| a.1)
    }

    /// The algorithm a manifest line names.
    pub fn parse(s: &str) -> Option<Algo> {
        ALGOS.iter().find(|a| a.1 == s).map(|a| a.0)
    }
}

/// One hash: its algorithm, hex (or UUID) text, and what it covers (`FILE:TENSOR` or `FILE`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HashLine {
    /// The algorithm's name.
    #[serde(rename = "type")]
    pub algo: &'static str,
    /// The digest.
    pub hash: String,
    /// `FILE:TENSOR` for a tensor, `FILE` for the whole model.
    pub name: String,
}

enum State {
    Xxh64(Box<xxhash_rust::xxh64::Xxh64>),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl State {
    fn new(a: Algo) -> State {
        match a {
            Algo::Xxh64 => State::Xxh64(Box::new(xxhash_rust::xxh64::Xxh64::new(0))),
            Algo::Sha1 | Algo::Uuid => {
                let mut s = sha1::Sha1::new();
                if a == Algo::Uuid {
                    s.update(UUID_NAMESPACE);
                }
                State::Sha1(s)
            }
            Algo::Sha256 => State::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            State::Xxh64(s) => s.update(b),
            State::Sha1(s) => s.update(b),
            State::Sha256(s) => s.update(b),
        }
    }

    fn hex(self, uuid: bool) -> String {
        let bytes: Vec<u8> = match self {
            State::Xxh64(s) => s.digest().to_be_bytes().to_vec(),
            State::Sha1(s) => s.finalize().to_vec(),
            State::Sha256(s) => s.finalize().to_vec(),
        };
        if !uuid {
            return bytes.iter().map(|b| format!("{b:02x}")).collect();
        }
        let mut u = [0u8; 16];
        u.copy_from_slice(&bytes[..16]);
        u[6] = (u[6] & 0x0f) | 0x50;
        u[8] = (u[8] & 0x3f) | 0x80;
        let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// Bytes hashed at a time.
const PIECE: u64 = 8 << 20;

/// The hash lines of `src` (labelled `label`, as `llama-gguf-hash` prints the path it was given): per tensor
/// unless `no_layer`, then the whole model, for `algos` (sorted, duplicates ignored).
pub fn hash_source(
    src: &dyn Source,
    label: &str,
    algos: &[Algo],
    no_layer: bool,
) -> Result<Vec<HashLine>> {
    let mut algos = algos.to_vec();
    algos.sort();
    algos.dedup();
    let mut model: Vec<(Algo, State)> = algos.iter().map(|&a| (a, State::new(a))).collect();
    let mut lines = Vec::new();
    for (i, t) in src.tensors().iter().enumerate() {
        let len = t
            .dtype
            .byte_len(&t.shape)
            .ok_or_else(|| Error::tensor(t.name.to_string(), "its size does not fit in 64 bits"))?;
        let per: Vec<Algo> = if no_layer {
            Vec::new()
        } else {
            algos.iter().copied().filter(|&a| a != Algo::Uuid).collect()
        };
        let mut tensor: Vec<State> = per.iter().map(|&a| State::new(a)).collect();
        let mut at = 0;
        while at < len {
            let n = PIECE.min(len - at);
            let bytes = src.view_range(i, at, n)?;
            for s in &mut tensor {
                s.update(&bytes);
            }
            for (_, s) in &mut model {
                s.update(&bytes);
            }
            drop(bytes);
            let info = &src.tensors()[i];
            src.release(info.file, info.offset + at, n);
            at += n;
        }
        for (a, s) in per.into_iter().zip(tensor) {
            lines.push(HashLine {
                algo: a.name(),
                hash: s.hex(false),
                name: format!("{label}:{}", t.name),
            });
        }
    }
    for (a, s) in model {
        lines.push(HashLine {
            algo: a.name(),
            hash: s.hex(a == Algo::Uuid),
            name: label.to_string(),
        });
    }
    Ok(lines)
}

/// What a manifest says of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    /// No entry of that type and name.
    #[serde(rename = "Not Found")]
    NotFound,
    /// The entry's hash differs.
    Mismatch,
    /// Equal.
    Ok,
}

impl Verdict {
    /// As `llama-gguf-hash` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::NotFound => "Not Found",
            Verdict::Mismatch => "Mismatch",
            Verdict::Ok => "Ok",
        }
    }
}

/// A manifest: `TYPE HASH NAME` lines.
#[derive(Debug, Clone)]
pub struct Manifest {
    entries: Vec<(String, String, String)>,
}

/// The outcome of a check, with `llama-gguf-hash`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    /// Everything found matched (exit 0).
    Success,
    /// A hash differs (exit 1).
    Failure,
    /// Nothing of the model was in the manifest (exit 3).
    MissingEntry,
}

impl CheckResult {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            CheckResult::Success => 0,
            CheckResult::Failure => 1,
            CheckResult::MissingEntry => 3,
        }
    }

    /// As `llama-gguf-hash` prints it.
    pub fn name(self) -> &'static str {
        match self {
            CheckResult::Success => "Success",
            CheckResult::Failure => "Failure",
            CheckResult::MissingEntry => "Manifest Missing Entry",
        }
    }
}

impl Manifest {
    /// Reads a manifest file (lines of fewer than three words are skipped).
    pub fn read(path: &Path) -> Result<Manifest> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "open manifest", e))?;
        if meta.len() > 1 << 30 {
            return Err(Error::model(
                path,
                "a manifest over 1 GiB is not a hash list",
            ));
        }
        let text = std::fs::read(path).map_err(|e| Error::io(path, "read manifest", e))?;
        let text = String::from_utf8_lossy(&text);
        let entries = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((
                    w.next()?.to_string(),
                    w.next()?.to_string(),
                    w.next()?.to_string(),
                ))
            })
            .collect();
        Ok(Manifest { entries })
    }

    /// The known hash types the manifest has, in `llama-gguf-hash`'s report order (sha256, sha1, xxh64, uuid).
    pub fn kinds(&self) -> Vec<Algo> {
        [Algo::Sha256, Algo::Sha1, Algo::Xxh64, Algo::Uuid]
            .into_iter()
            .filter(|a| self.entries.iter().any(|e| e.0 == a.name()))
            .collect()
    }

    /// The verdict on one line: the first entry of its type and name decides. A model's uuid is looked up
    /// among `sha256` entries, as `llama-gguf-hash` does.
    pub fn verify(&self, line: &HashLine) -> Verdict {
        let kind = if line.algo == Algo::Uuid.name() {
            Algo::Sha256.name()
        } else {
            line.algo
        };
        match self
            .entries
            .iter()
            .find(|e| e.0 == kind && e.2 == line.name)
        {
            None => Verdict::NotFound,
            Some(e) if e.1 == line.hash => Verdict::Ok,
            Some(_) => Verdict::Mismatch,
        }
    }

    /// The check's outcome over every line (`label` names the model lines), by `llama-gguf-hash`'s rules: the
    /// model lines decide when present, else the tensor lines.
    pub fn outcome(&self, lines: &[HashLine], label: &str) -> CheckResult {
        let (mut t_in, mut t_bad, mut m_in, mut m_bad) = (false, false, false, false);
        for l in lines {
            let v = self.verify(l);
            let model = l.name == label;
            match (v, model) {
                (Verdict::NotFound, _) => {}
                (Verdict::Mismatch, false) => (t_in, t_bad) = (true, true),
                (Verdict::Ok, false) => t_in = true,
                (Verdict::Mismatch, true) => (m_in, m_bad) = (true, true),
                (Verdict::Ok, true) => m_in = true,
            }
        }
        if !m_in {
            return match (t_in, t_bad) {
                (false, _) => CheckResult::MissingEntry,
                (true, true) => CheckResult::Failure,
                (true, false) => CheckResult::Success,
            };
        }
        if (t_in && t_bad) || m_bad {
            CheckResult::Failure
        } else {
            CheckResult::Success
        }
    }
}

/// A line as `llama-gguf-hash` prints it (`%-8s  %s  %s`), with the verdict when checking.
pub fn format_line(l: &HashLine, verdict: Option<Verdict>) -> String {
    match verdict {
        Some(v) => format!("{:<8}  {}  {}  -  {}", l.algo, l.hash, l.name, v.name()),
        None => format!("{:<8}  {}  {}", l.algo, l.hash, l.name),
    }
}
