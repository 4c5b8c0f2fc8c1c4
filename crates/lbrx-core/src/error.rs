//! The typed error of lbrx: every failure names the file, and where it applies the tensor and byte offset.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result with the lbrx [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in a file a problem was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file (or directory) concerned.
    pub path: PathBuf,
    /// The tensor concerned, if any.
    pub tensor: Option<String>,
    /// The absolute byte offset in the file, if known.
    pub offset: Option<u64>,
}

impl Location {
    /// A location naming only a path.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Location {
            path: path.into(),
            tensor: None,
            offset: None,
        }
    }

    /// Adds the tensor name.
    pub fn tensor(mut self, name: impl Into<String>) -> Self {
        self.tensor = Some(name.into());
        self
    }

    /// Adds the byte offset.
    pub fn at(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(t) = &self.tensor {
            write!(f, ", tensor '{t}'")?;
        }
        if let Some(o) = self.offset {
            write!(f, ", byte offset {o}")?;
        }
        Ok(())
    }
}

/// What is wrong with a malformed input: one variant per rule a reader checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The file ends before a fixed-size field.
    #[error("truncated: needs {needed} bytes but the file has {actual}")]
    Truncated {
        /// Bytes required.
        needed: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A header length field points past the end of the file.
    #[error("header length {header_len} runs past the end of the file ({file_size} bytes)")]
    HeaderPastEof {
        /// The declared header length.
        header_len: u64,
        /// The file's size.
        file_size: u64,
    },
    /// A header is larger than the reader accepts.
    #[error("header length {header_len} exceeds the cap of {cap} bytes")]
    HeaderTooLarge {
        /// The declared header length.
        header_len: u64,
        /// The cap.
        cap: u64,
    },
    /// A header is not valid UTF-8.
    #[error("header is not valid UTF-8")]
    HeaderNotUtf8,
    /// A header is not the JSON (or other structure) the format requires.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// The same tensor name appears twice.
    #[error("duplicate tensor name")]
    DuplicateTensor,
    /// A dtype name or id the format does not define.
    #[error("unknown dtype '{0}'")]
    UnknownDType(String),
    /// Shape and dtype give a byte size that differs from the stored byte range.
    #[error("shape {shape:?} of {dtype} needs {expected} bytes but the data range holds {actual}")]
    SizeMismatch {
        /// The declared shape.
        shape: Vec<u64>,
        /// The declared dtype.
        dtype: String,
        /// Bytes implied by shape and dtype.
        expected: u64,
        /// Bytes in the stored range.
        actual: u64,
    },
    /// Shape and dtype do not give a whole number of bytes, or the element count overflows.
    #[error("shape {shape:?} is not a valid size for {dtype}")]
    BadShape {
        /// The declared shape.
        shape: Vec<u64>,
        /// The declared dtype.
        dtype: String,
    },
    /// Data offsets are reversed or not a pair.
    #[error("invalid data offsets [{start}, {end}]")]
    BadOffsets {
        /// Start offset.
        start: u64,
        /// End offset.
        end: u64,
    },
    /// A byte range ends past the end of the data section.
    #[error("data range [{start}, {end}) ends past the data section of {data_len} bytes")]
    OutOfBounds {
        /// Start (relative to the data section).
        start: u64,
        /// End (relative to the data section).
        end: u64,
        /// Data section length.
        data_len: u64,
    },
    /// Two tensors share bytes.
    #[error("data range overlaps tensor '{other}' (which ends at {other_end})")]
    Overlap {
        /// The other tensor.
        other: String,
        /// Where the other tensor ends (relative to the data section).
        other_end: u64,
    },
    /// Bytes between tensors that no tensor owns.
    #[error("{len} unclaimed bytes before this tensor")]
    Hole {
        /// Length of the gap.
        len: u64,
    },
    /// Bytes after the last tensor.
    #[error("{len} trailing bytes after the last tensor")]
    TrailingBytes {
        /// How many.
        len: u64,
    },
    /// A shard index names a file that does not exist.
    #[error("index names shard '{shard}', which does not exist")]
    MissingShard {
        /// The shard's file name.
        shard: String,
    },
    /// A shard index says a tensor is in a shard that does not hold it.
    #[error("index places it in shard '{shard}', which does not contain it")]
    NotInShard {
        /// The shard's file name.
        shard: String,
    },
    /// A shard holds a tensor the index does not list.
    #[error("tensor is in shard '{shard}' but not in the index")]
    NotInIndex {
        /// The shard's file name.
        shard: String,
    },
    /// A pickle names a global that can run code when loaded (`os.system`, `builtins.eval` ...).
    #[error(
        "refused as malicious: the pickle references '{global}', which can run code when loaded; nothing was \
         executed. Do not load this file with torch.load"
    )]
    Malicious {
        /// `module.name`.
        global: String,
    },
    /// A checksum the format stores does not match the bytes: the file is damaged.
    #[error(
        "{what}: stored checksum {stored:#010x} but the bytes give {computed:#010x}; the file is damaged, \
         download or copy it again"
    )]
    Checksum {
        /// What the checksum covers (a block, a tensor's bytes).
        what: String,
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// A value that the format forbids.
    #[error("{0}")]
    Other(String),
}

/// The lbrx error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done ("open", "read", "write", ...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An input breaks a rule of its format.
    #[error("{loc}: {kind}")]
    Malformed {
        /// Where.
        loc: Box<Location>,
        /// What.
        kind: Box<Malformed>,
    },
    /// The input is valid but lbrx cannot handle it (yet).
    #[error("{path}: unsupported: {what}")]
    Unsupported {
        /// The file concerned.
        path: PathBuf,
        /// What is not supported.
        what: String,
    },
    /// A tensor that cannot be made as asked.
    #[error("tensor '{tensor}': {what}")]
    Tensor {
        /// The tensor.
        tensor: String,
        /// What is wrong, and where known what to do.
        what: String,
    },
    /// Options that do not go together, or a value lbrx does not take; the message says what to pass.
    #[error("{0}")]
    Usage(String),
    /// A model file (config.json, tokenizer files, GGUF metadata) that does not say what the conversion needs.
    #[error("{}: {what}", path.display())]
    Model {
        /// The file or model directory.
        path: PathBuf,
        /// What is missing or wrong.
        what: String,
    },
    /// A destination lbrx will not write (the source, the Hugging Face cache, an existing path).
    #[error("{}: {why}", path.display())]
    Destination {
        /// The destination.
        path: PathBuf,
        /// Why, and what to do.
        why: String,
    },
    /// A request that cannot be carried out as asked, of no more specific kind.
    #[error("{0}")]
    Invalid(String),
    /// The run was stopped by a signal before its output was committed: nothing was written.
    #[error("interrupted by {}: nothing was written and the source is untouched", signal_name(*signal))]
    Interrupted {
        /// The signal number (2 SIGINT, 15 SIGTERM, 1 SIGHUP).
        signal: i32,
    },
}

/// A signal's name (`SIGINT`), or its number.
pub fn signal_name(signal: i32) -> String {
    match signal {
        1 => "SIGHUP".into(),
        2 => "SIGINT".into(),
        15 => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, op: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            op,
            source,
        }
    }

    /// A malformed-input error.
    pub fn malformed(loc: Location, kind: Malformed) -> Self {
        Error::Malformed {
            loc: Box::new(loc),
            kind: Box::new(kind),
        }
    }

    /// A tensor error.
    pub fn tensor(tensor: impl Into<String>, what: impl Into<String>) -> Self {
        Error::Tensor {
            tensor: tensor.into(),
            what: what.into(),
        }
    }

    /// A model-file error.
    pub fn model(path: impl AsRef<Path>, what: impl Into<String>) -> Self {
        Error::Model {
            path: path.as_ref().to_path_buf(),
            what: what.into(),
        }
    }

    /// The malformation, if this is one.
    pub fn malformed_kind(&self) -> Option<&Malformed> {
        match self {
            Error::Malformed { kind, .. } => Some(kind),
            _ => None,
        }
    }
}
