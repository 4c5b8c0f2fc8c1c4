//! The seams between formats and the engine: a [`Source`] gives tensors, a [`Sink`] takes planned writes.

use crate::error::Result;
use crate::meta::Metadata;
use crate::tensor::{TensorInfo, TensorView};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The container formats lbrx knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A single `.safetensors` file.
    Safetensors,
    /// A directory of SafeTensors shards (Hugging Face / MLX model directory).
    SafetensorsDir,
    /// GGUF.
    Gguf,
    /// NumPy `.npz` / `.npy`.
    Npz,
    /// PyTorch zip or legacy pickle checkpoint, or a TorchScript archive.
    PyTorch,
    /// A directory of PyTorch checkpoint shards (`pytorch_model-0000N-of-0000M.bin` + index).
    PyTorchDir,
    /// ONNX protobuf.
    Onnx,
    /// HDF5 (Keras).
    Hdf5,
    /// TensorFlow SavedModel / checkpoint.
    TensorFlow,
    /// TFLite flatbuffer.
    TfLite,
}

impl Format {
    /// Short human name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::SafetensorsDir => "safetensors-dir",
            Format::Gguf => "gguf",
            Format::Npz => "npz",
            Format::PyTorch => "pytorch",
            Format::PyTorchDir => "pytorch-dir",
            Format::Onnx => "onnx",
            Format::Hdf5 => "hdf5",
            Format::TensorFlow => "tensorflow",
            Format::TfLite => "tflite",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One file a source reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// An opened model: tensor descriptions and metadata from headers, bytes on demand.
pub trait Source: Send + Sync {
    /// The container format.
    fn format(&self) -> Format;
    /// The path that was opened (file or directory).
    fn root(&self) -> &Path;
    /// The files tensor bytes live in; [`TensorInfo::file`] indexes this list.
    fn files(&self) -> &[SourceFile];
    /// All tensors, in the source's order.
    fn tensors(&self) -> &[TensorInfo];
    /// Model metadata.
    fn metadata(&self) -> &Metadata;
    /// Tensor `index`'s description, or an error naming the index.
    fn tensor(&self, index: usize) -> Result<&TensorInfo> {
        self.tensors()
            .get(index)
            .ok_or_else(|| crate::Error::Invalid(format!("no tensor #{index}")))
    }
    /// The bytes of tensor `index` (zero-copy where possible).
    fn view(&self, index: usize) -> Result<TensorView<'_>>;
    /// Bytes `[offset, offset + len)` of tensor `index` (offsets relative to the tensor). The default slices
    /// [`Source::view`]; sources whose views are computed (byte-swapped, decompressed) override it so that a
    /// conversion working chunk by chunk does not recompute the whole tensor per chunk.
    fn view_range(
        &self,
        index: usize,
        offset: u64,
        len: u64,
    ) -> Result<std::borrow::Cow<'_, [u8]>> {
        let v = self.view(index)?;
        let (start, end) = (offset as usize, (offset + len) as usize);
        let bad = || {
            crate::Error::Invalid(format!(
                "tensor #{index}: range {start}..{end} outside its bytes"
            ))
        };
        Ok(match v.data {
            std::borrow::Cow::Borrowed(b) => {
                std::borrow::Cow::Borrowed(b.get(start..end).ok_or_else(bad)?)
            }
            std::borrow::Cow::Owned(o) => {
                std::borrow::Cow::Owned(o.get(start..end).ok_or_else(bad)?.to_vec())
            }
        })
    }
    /// The open file behind `files()[file]`, for kernel-side copies, when bytes are stored raw.
    fn raw_file(&self, _file: usize) -> Option<&File> {
        None
    }
    /// Hint that bytes `[offset, offset + len)` of file `file` will not be read again soon.
    fn release(&self, _file: usize, _offset: u64, _len: u64) {}
    /// What the reader skipped or could not represent (unknown objects in a checkpoint ...), for people.
    fn warnings(&self) -> &[String] {
        &[]
    }
    /// Non-tensor files that belong to the model (config, tokenizer ...), to carry along on conversion.
    fn assets(&self) -> &[PathBuf] {
        &[]
    }
}

/// [`Source::view`] for sources whose bytes are computed: the whole tensor through [`Source::view_range`].
pub fn view_whole<S: Source + ?Sized>(src: &S, index: usize) -> Result<TensorView<'_>> {
    let info = src.tensor(index)?;
    let data = src.view_range(index, 0, info.len)?;
    Ok(TensorView { info, data })
}

/// A destination for planned writes: files whose layout is fixed before any data is written.
pub trait Sink: Send + Sync {
    /// Writes `data` at `offset` of output file `file`.
    fn write_at(&self, file: usize, offset: u64, data: &[u8]) -> Result<()>;
    /// Copies `len` bytes from `src` at `src_offset` to output `file` at `offset`, kernel-side where possible.
    /// Returns `Ok(false)` if this sink cannot do it; the caller then writes the bytes itself.
    fn copy_range(
        &self,
        _file: usize,
        _offset: u64,
        _src: &File,
        _src_offset: u64,
        _len: u64,
    ) -> Result<bool> {
        Ok(false)
    }
}

/// Implements the field accessors of [`Source`] (`format`, `root`, `files`, `tensors`, `metadata`) for a type
/// with fields `root: PathBuf`, `files: Vec<SourceFile>`, `tensors: Vec<TensorInfo>` and `metadata: Metadata`.
/// Use inside `impl Source for T { ... }`; `source_accessors!(FORMAT, mapped FIELD)` takes the root from
/// `self.FIELD.path()` instead of a `root` field; `source_accessors!(wrapping FIELD)` is for a view over another
/// source in `self.FIELD` with tensors of its own (`tensors: Vec<TensorInfo>`); `source_accessors!(format field)`
/// takes the format from a `format: Format` field.
#[macro_export]
macro_rules! source_accessors {
    (format field) => {
        fn format(&self) -> $crate::Format {
            self.format
        }
        fn root(&self) -> &::std::path::Path {
            &self.root
        }
        $crate::source_accessors!(@data);
    };
    (wrapping $inner:ident) => {
        fn format(&self) -> $crate::Format {
            self.$inner.format()
        }
        fn root(&self) -> &::std::path::Path {
            self.$inner.root()
        }
        fn files(&self) -> &[$crate::SourceFile] {
            self.$inner.files()
        }
        fn tensors(&self) -> &[$crate::TensorInfo] {
            &self.tensors
        }
        fn metadata(&self) -> &$crate::Metadata {
            self.$inner.metadata()
        }
    };
    ($format:expr, mapped $map:ident) => {
        fn root(&self) -> &::std::path::Path {
            self.$map.path()
        }
        $crate::source_accessors!(@fields $format);
    };
    ($format:expr) => {
        fn root(&self) -> &::std::path::Path {
            &self.root
        }
        $crate::source_accessors!(@fields $format);
    };
    (@fields $format:expr) => {
        fn format(&self) -> $crate::Format {
            $format
        }
        $crate::source_accessors!(@data);
    };
    (@data) => {
        fn files(&self) -> &[$crate::SourceFile] {
            &self.files
        }
        fn tensors(&self) -> &[$crate::TensorInfo] {
            &self.tensors
        }
        fn metadata(&self) -> &$crate::Metadata {
            &self.metadata
        }
    };
}
