//! SentencePiece model files (`tokenizer.model`).
//!
//! Layout: one protobuf message `ModelProto` (proto2): field 1 `pieces` (repeated `SentencePiece {piece = 1,
//! score = 2, type = 3}`), field 2 `trainer_spec` (model type, vocab size, byte fallback, special ids),
//! field 3 `normalizer_spec` (name, add_dummy_prefix, ...). Unknown fields are skipped.
//! Specification: <https://github.com/google/sentencepiece/blob/master/src/sentencepiece_model.proto>

use lbrx_core::{Error, Location, Malformed, Result};
use std::path::Path;

/// Largest `tokenizer.model` accepted (real ones are under 20 MB).
pub const MAX_MODEL_BYTES: u64 = 256 << 20;

/// The type of a piece, as `sentencepiece_model.proto` numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum PieceType {
    /// An ordinary piece.
    Normal = 1,
    /// The unknown-token piece.
    Unknown = 2,
    /// A control symbol (`<s>`, `</s>`).
    Control = 3,
    /// A user-defined symbol, always kept whole.
    UserDefined = 4,
    /// A byte-fallback piece (`<0x0A>`).
    Byte = 6,
    /// An unused piece.
    Unused = 5,
}

/// One vocabulary entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SentencePiece {
    /// The piece's text (`▁` for a space).
    #[prost(string, optional, tag = "1")]
    pub piece: Option<String>,
    /// Its score (log probability for unigram, merge rank for BPE).
    #[prost(float, optional, tag = "2")]
    pub score: Option<f32>,
    /// Its [`PieceType`].
    #[prost(enumeration = "PieceType", optional, tag = "3")]
    pub kind: Option<i32>,
}

impl SentencePiece {
    /// The piece's type; absent means normal.
    pub fn piece_type(&self) -> PieceType {
        self.kind
            .and_then(|k| PieceType::try_from(k).ok())
            .unwrap_or(PieceType::Normal)
    }
}

/// The training settings kept in the model.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrainerSpec {
    /// 1 unigram, 2 BPE, 3 word, 4 char.
    #[prost(int32, optional, tag = "3")]
    pub model_type: Option<i32>,
    /// Vocabulary size.
    #[prost(int32, optional, tag = "4")]
    pub vocab_size: Option<i32>,
    /// Unknown bytes become `<0xNN>` pieces.
    #[prost(bool, optional, tag = "35")]
    pub byte_fallback: Option<bool>,
    /// Id of the unknown token.
    #[prost(int32, optional, tag = "40")]
    pub unk_id: Option<i32>,
    /// Id of the beginning-of-sequence token.
    #[prost(int32, optional, tag = "41")]
    pub bos_id: Option<i32>,
    /// Id of the end-of-sequence token.
    #[prost(int32, optional, tag = "42")]
    pub eos_id: Option<i32>,
    /// Id of the padding token (-1: none).
    #[prost(int32, optional, tag = "43")]
    pub pad_id: Option<i32>,
}

/// Text normalization settings.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NormalizerSpec {
    /// Rule name (`nmt_nfkc`, `identity` ...).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Adds a leading space (`▁`) to the input.
    #[prost(bool, optional, tag = "3")]
    pub add_dummy_prefix: Option<bool>,
    /// Collapses runs of whitespace.
    #[prost(bool, optional, tag = "4")]
    pub remove_extra_whitespaces: Option<bool>,
    /// Replaces spaces by `▁`.
    #[prost(bool, optional, tag = "5")]
    pub escape_whitespaces: Option<bool>,
}

/// A whole SentencePiece model.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// The vocabulary, in id order.
    #[prost(message, repeated, tag = "1")]
    pub pieces: Vec<SentencePiece>,
    /// Training settings.
    #[prost(message, optional, tag = "2")]
    pub trainer_spec: Option<TrainerSpec>,
    /// Normalization settings.
    #[prost(message, optional, tag = "3")]
    pub normalizer_spec: Option<NormalizerSpec>,
}

/// Reads and decodes a `tokenizer.model` file.
pub fn read_model(path: &Path) -> Result<ModelProto> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "stat", e))?;
    if meta.len() > MAX_MODEL_BYTES {
        return Err(Error::malformed(
            Location::file(path),
            Malformed::HeaderTooLarge {
                header_len: meta.len(),
                cap: MAX_MODEL_BYTES,
            },
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
    decode_model(&bytes).map_err(|m| Error::malformed(Location::file(path), m))
}

/// Decodes a SentencePiece model from its bytes.
pub fn decode_model(bytes: &[u8]) -> std::result::Result<ModelProto, Malformed> {
    use prost::Message;
    let m = ModelProto::decode(bytes)
        .map_err(|e| Malformed::InvalidHeader(format!("not a SentencePiece model: {e}")))?;
    if m.pieces.is_empty() {
        return Err(Malformed::InvalidHeader(
            "SentencePiece model has no pieces".into(),
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_model(b"\xff\xff\xff\xff").is_err());
        assert!(decode_model(b"").is_err());
        // field 1, length 1000 but 2 bytes follow
        assert!(decode_model(b"\x0a\xe8\x07ab").is_err());
    }

    #[test]
    fn decodes_pieces_and_types() {
        use prost::Message;
        let m = ModelProto {
            pieces: vec![
                SentencePiece {
                    piece: Some("<unk>".into()),
                    score: Some(0.0),
                    kind: Some(2),
                },
                SentencePiece {
                    piece: Some("▁a".into()),
                    score: Some(-1.5),
                    kind: None,
                },
            ],
            trainer_spec: None,
            normalizer_spec: None,
        };
        let d = decode_model(&m.encode_to_vec()).unwrap();
        assert_eq!(d.pieces[0].piece_type(), PieceType::Unknown);
        assert_eq!(d.pieces[1].piece_type(), PieceType::Normal);
        assert_eq!(d.pieces[1].score, Some(-1.5));
    }
}
