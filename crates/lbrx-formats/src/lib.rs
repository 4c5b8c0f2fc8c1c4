//! On-disk formats of lbrx. Each format module documents its layout and links its specification;
//! [`open`] detects a path's format and returns it as a [`Source`].

pub mod detect;
pub mod gguf;
pub mod hdf5;
pub mod imatrix;
pub mod mmap;
pub mod npz;
pub mod onnx;
pub mod pytorch;
pub mod safetensors;
pub mod sentencepiece;
pub mod sharded;
pub mod stored;
pub mod tensorflow;
pub mod tflite;

pub use detect::detect;
use lbrx_core::{Format, Result, Source};
use std::path::Path;

/// Opens a model file or directory, detecting its format. Reads headers only.
pub fn open(path: &Path) -> Result<Box<dyn Source>> {
    match detect(path)? {
        Format::Safetensors => Ok(Box::new(safetensors::SafetensorsFile::open(path)?)),
        Format::SafetensorsDir => Ok(Box::new(safetensors::SafetensorsDir::open(path)?)),
        Format::Gguf => {
            let g = gguf::GgufFile::open(path)?;
            if gguf::GgufSplit::is_split(&g) {
                Ok(Box::new(gguf::GgufSplit::open(path)?))
            } else {
                Ok(Box::new(g))
            }
        }
        Format::Npz => Ok(Box::new(npz::NpzFile::open(path)?)),
        Format::PyTorch => Ok(Box::new(pytorch::PyTorchFile::open(path)?)),
        Format::PyTorchDir => Ok(Box::new(pytorch::PyTorchDir::open(path)?)),
        Format::Onnx => Ok(Box::new(onnx::open(path)?)),
        Format::TensorFlow => Ok(Box::new(tensorflow::open(path)?)),
        Format::TfLite => Ok(Box::new(tflite::open(path)?)),
        Format::Hdf5 => Ok(Box::new(hdf5::open(path)?)),
    }
}
