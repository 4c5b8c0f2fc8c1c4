//! The TensorFlow protobuf messages that hold weights, written by hand for `prost` (field numbers from
//! `tensorflow/core/protobuf/tensor_bundle.proto`, `framework/tensor.proto`, `tensor_shape.proto`,
//! `tensor_slice.proto`, `graph.proto`, `node_def.proto`, `attr_value.proto`, `function.proto` and
//! `protobuf/saved_model.proto`, `meta_graph.proto`). Only the fields lbrx reads are declared.

use bytes::Bytes;

/// `BundleHeaderProto`: the value of the empty key of a `.index` table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleHeaderProto {
    /// Number of `.data-*` shards.
    #[prost(int32, tag = "1")]
    pub num_shards: i32,
    /// 0 little-endian, 1 big-endian.
    #[prost(int32, tag = "2")]
    pub endianness: i32,
}

/// `BundleEntryProto`: where one tensor (or one slice) is.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BundleEntryProto {
    /// `DataType`.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// Shape.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
    /// Data shard.
    #[prost(int32, tag = "3")]
    pub shard_id: i32,
    /// Offset in the shard.
    #[prost(int64, tag = "4")]
    pub offset: i64,
    /// Byte size.
    #[prost(int64, tag = "5")]
    pub size: i64,
    /// Masked crc32c of the bytes.
    #[prost(fixed32, tag = "6")]
    pub crc32c: u32,
    /// For a partitioned variable: the slices stored under their own keys.
    #[prost(message, repeated, tag = "7")]
    pub slices: Vec<TensorSliceProto>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
    /// Rank unknown.
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

/// `TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    /// Size (-1 unknown).
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// `TensorSliceProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorSliceProto {
    /// One extent per dimension.
    #[prost(message, repeated, tag = "1")]
    pub extent: Vec<Extent>,
}

/// `TensorSliceProto.Extent`: `length` absent means the whole dimension.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Extent {
    /// First index.
    #[prost(int64, tag = "1")]
    pub start: i64,
    /// Length.
    #[prost(int64, optional, tag = "2")]
    pub length: Option<i64>,
}

/// `SavedModel`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedModel {
    /// Meta graphs (one per tag set).
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphDef>,
}

/// `MetaGraphDef`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphDef {
    /// The graph.
    #[prost(message, optional, tag = "2")]
    pub graph_def: Option<GraphDef>,
}

/// `GraphDef`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphDef {
    /// Nodes.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeDef>,
    /// Functions.
    #[prost(message, optional, tag = "2")]
    pub library: Option<FunctionDefLibrary>,
}

/// `FunctionDefLibrary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionDefLibrary {
    /// Functions.
    #[prost(message, repeated, tag = "1")]
    pub function: Vec<FunctionDef>,
}

/// `FunctionDef`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionDef {
    /// Signature (its name).
    #[prost(message, optional, tag = "1")]
    pub signature: Option<OpDef>,
    /// Nodes.
    #[prost(message, repeated, tag = "3")]
    pub node_def: Vec<NodeDef>,
}

/// `OpDef` (only its name).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OpDef {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `NodeDef`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeDef {
    /// Node name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Operation.
    #[prost(string, tag = "2")]
    pub op: String,
    /// Attributes.
    #[prost(map = "string, message", tag = "5")]
    pub attr: std::collections::HashMap<String, AttrValue>,
}

/// `AttrValue` (the tensor case only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttrValue {
    /// A tensor value.
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
}

/// `TensorProto` of TensorFlow.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `DataType`.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// Shape.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// Raw little-endian bytes.
    #[prost(bytes = "bytes", tag = "4")]
    pub tensor_content: Bytes,
    /// Half and bfloat16 bits.
    #[prost(int32, repeated, tag = "13")]
    pub half_val: Vec<i32>,
    /// Floats.
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    /// Doubles.
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    /// Integers up to 32 bits.
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    /// 64-bit integers.
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
    /// Booleans.
    #[prost(bool, repeated, tag = "11")]
    pub bool_val: Vec<bool>,
    /// Unsigned 32-bit.
    #[prost(uint32, repeated, tag = "16")]
    pub uint32_val: Vec<u32>,
    /// Unsigned 64-bit.
    #[prost(uint64, repeated, tag = "17")]
    pub uint64_val: Vec<u64>,
}

/// `TrackableObjectGraph`: the value of a TF2 checkpoint's `_CHECKPOINTABLE_OBJECT_GRAPH` key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackableObjectGraph {
    /// Objects.
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<TrackableObject>,
}

/// `TrackableObjectGraph.TrackableObject` (its saved tensors only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackableObject {
    /// The tensors saved for this object.
    #[prost(message, repeated, tag = "2")]
    pub attributes: Vec<SerializedTensor>,
}

/// `TrackableObject.SerializedTensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SerializedTensor {
    /// Attribute name (`VARIABLE_VALUE`).
    #[prost(string, tag = "1")]
    pub name: String,
    /// The variable's name in the program that saved it (`sequential/dense/kernel`).
    #[prost(string, tag = "2")]
    pub full_name: String,
    /// The checkpoint key it is stored under.
    #[prost(string, tag = "3")]
    pub checkpoint_key: String,
}
