"""Reference readings of ONNX, TensorFlow, TFLite and Keras/HDF5 files, and seeded files made by those packages.

  check KIND SRC OUT.safetensors   every tensor of SRC as the reference package reads it equals OUT's (names,
                                   dtypes, shapes, bytes); KIND is onnx | tf | tflite | h5 | keras
  make-onnx DIR SEED               inline, external (one file, per tensor) models with every initializer kind
  make-tf DIR SEED                 a TF2 checkpoint in several shards and a TF1 one with a partitioned variable
  make-tflite DIR SEED             a TFLite model with per-channel int8 weights (and a float one)
  make-keras DIR SEED              Keras 3 `.keras`, legacy `.h5` and `.weights.h5` files
  make-h5 DIR SEED                 h5py files: chunked/compressed, big-endian, latest format, lzf
"""

import io
import json
import os
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import ml_dtypes
import numpy as np

# numpy / ml_dtypes dtype name -> SafeTensors dtype lbrx writes, and how the reference values become its bytes
ST_DTYPES = {
    "float32": "F32", "float16": "F16", "float64": "F64", "bfloat16": "BF16",
    "int8": "I8", "int16": "I16", "int32": "I32", "int64": "I64",
    "uint8": "U8", "uint16": "U16", "uint32": "U32", "uint64": "U64", "bool": "BOOL", "complex64": "C64",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2fnuz": "F8_E5M2FNUZ", "float8_e8m0fnu": "F8_E8M0",
}


def expected(arr):
    """(dtype, shape, bytes) lbrx must write for a reference array."""
    arr = np.asarray(arr)
    name = arr.dtype.name
    shape = list(arr.shape)
    if name in ("int4", "int2"):
        return "I8", shape, arr.astype(np.int8).tobytes()
    if name in ("uint4", "uint2"):
        return "U8", shape, arr.astype(np.uint8).tobytes()
    if name == "float4_e2m1fn":
        nib = arr.reshape(-1).view(np.uint8) & 0x0F
        nib = np.concatenate([nib, np.zeros(len(nib) % 2, np.uint8)])
        return "F4", shape, (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8).tobytes()
    return ST_DTYPES[name], shape, np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    return {
        k: (v["dtype"], v["shape"], raw[base + v["data_offsets"][0] : base + v["data_offsets"][1]])
        for k, v in header.items()
    }


# ---------------------------------------------------------------- reference readers

def onnx_ref(path):
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(path, load_external_data=False)
    base = os.path.dirname(os.path.abspath(path))
    out = {}

    def sparse(name, s):
        vals = numpy_helper.to_array(s.values, base_dir=base)
        idx = numpy_helper.to_array(s.indices, base_dir=base)
        dims = list(s.dims)
        dense = np.zeros(int(np.prod(dims)), dtype=vals.dtype)
        flat = idx if idx.ndim == 1 else np.ravel_multi_index(tuple(idx.T), dims)
        dense[flat] = vals
        out[name] = dense.reshape(dims)

    def put(name, t):
        if t.data_type == onnx.TensorProto.STRING:
            return
        out[name] = numpy_helper.to_array(t, base_dir=base)

    def graph(g, prefix):
        for t in g.initializer:
            put(prefix + t.name, t)
        for s in g.sparse_initializer:
            sparse(prefix + s.values.name, s)
        nodes(g.node, prefix)

    def nodes(ns, prefix):
        for n in ns:
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
                a = n.attribute[0]
                v = helper.get_attribute_value(a)
                name = prefix + n.output[0]
                if a.name == "value":
                    put(name, v)
                elif a.name == "sparse_value":
                    sparse(name, v)
                elif a.name in ("value_float", "value_floats"):
                    out[name] = np.array(v, dtype=np.float32)
                elif a.name in ("value_int", "value_ints"):
                    out[name] = np.array(v, dtype=np.int64)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    graph(a.g, prefix)
                for g in a.graphs:
                    graph(g, prefix)

    graph(m.graph, "")
    for f in m.functions:
        nodes(f.node, f.name + "/")
    return out


def tf_ref(path):
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import tensor_util

    out = {}
    pb = None
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb")):
        pb = os.path.join(path, "saved_model.pb")
        prefix = os.path.join(path, "variables", "variables")
    elif path.endswith(".index"):
        prefix = path[: -len(".index")]
    elif os.path.isdir(path):
        has_state = os.path.exists(os.path.join(path, "checkpoint"))
        prefix = tf.train.latest_checkpoint(path) if has_state else None
        if prefix is None:  # no `checkpoint` file: the directory's only checkpoint, whatever its prefix
            idx = [f for f in os.listdir(path) if f.endswith(".index")]
            prefix = os.path.join(path, idx[0][: -len(".index")]) if len(idx) == 1 else None
    else:
        prefix = path
    if prefix and os.path.exists(prefix + ".index"):
        # load_checkpoint's reader, without its directory lookup (which cannot name the empty prefix "DIR/")
        r = tf.compat.v1.train.NewCheckpointReader(prefix)
        for name, dt in r.get_variable_to_dtype_map().items():
            if dt == tf.string:
                continue
            try:
                out[name] = r.get_tensor(name)
            except ValueError:  # the Python reader lacks some dtypes (half); TensorFlow's restore op has them
                out[name] = tf.raw_ops.RestoreV2(
                    prefix=prefix, tensor_names=[name], shape_and_slices=[""], dtypes=[dt]
                )[0].numpy()
    if pb:
        sm = saved_model_pb2.SavedModel()
        sm.ParseFromString(open(pb, "rb").read())
        for mg in sm.meta_graphs:
            g = mg.graph_def
            groups = [("", g.node)] + [(f.signature.name + "/", f.node_def) for f in g.library.function]
            for prefix, ns in groups:
                for n in ns:
                    if n.op != "Const" or "value" not in n.attr:
                        continue
                    t = n.attr["value"].tensor
                    if t.dtype == tf.string.as_datatype_enum:
                        continue
                    a = tensor_util.MakeNdarray(t)
                    if a.nbytes >= 16384 and prefix + n.name not in out:
                        out[prefix + n.name] = a
    return out


def tflite_ref(path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.python import schema_py_generated as fb

    buf = open(path, "rb").read()
    model = fb.Model.GetRootAsModel(buf, 0)
    interp = Interpreter(
        model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interp.allocate_tensors()
    sg = model.Subgraphs(0)
    out = {}
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        b = model.Buffers(t.Buffer())
        if t.Buffer() == 0 or (b.DataLength() == 0 and b.Offset() <= 1):
            continue
        name = t.Name().decode()
        if name in out:
            name = f"{name}:{i}"
        out[name] = interp.get_tensor(i)
    return out


def h5_ref(f):
    import h5py

    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiub" and obj.dtype.names is None:
            out[name] = obj[()]

    f.visititems(visit)
    return out


def hdf5_ref(path):
    import h5py

    with h5py.File(path, "r") as f:
        return h5_ref(f)


def keras_ref(path):
    import h5py

    data = zipfile.ZipFile(path).read("model.weights.h5")
    with h5py.File(io.BytesIO(data), "r") as f:
        return h5_ref(f)


REFS = {"onnx": onnx_ref, "tf": tf_ref, "tflite": tflite_ref, "h5": hdf5_ref, "keras": keras_ref}


def check(kind, src, ours):
    ref = REFS[kind](src)
    got = read_safetensors(ours)
    missing, extra = sorted(set(ref) - set(got)), sorted(set(got) - set(ref))
    assert not missing and not extra, f"{src}: names differ; missing {missing[:10]}, extra {extra[:10]}"
    for name, arr in ref.items():
        want = expected(arr)
        have = got[name]
        assert have[0] == want[0], f"{src}: {name}: dtype {have[0]}, reference {want[0]}"
        assert list(have[1]) == want[1], f"{src}: {name}: shape {have[1]}, reference {want[1]}"
        assert have[2] == want[2], f"{src}: {name}: bytes differ"
    print(f"{src}: {len(ref)} tensors equal")


# ---------------------------------------------------------------- makers

def make_onnx(d, seed):
    import onnx
    from onnx import TensorProto as T, helper, numpy_helper

    rng = np.random.default_rng(seed)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    inits = [
        numpy_helper.from_array(f32(7, 5), "w_f32"),
        numpy_helper.from_array(f32(3, 4).astype(np.float16), "w_f16"),
        numpy_helper.from_array(f32(6, 2).astype(ml_dtypes.bfloat16), "w_bf16"),
        numpy_helper.from_array(rng.integers(-8, 8, (5, 3)).astype(ml_dtypes.int4), "w_int4"),
        numpy_helper.from_array(rng.integers(0, 16, (7,)).astype(ml_dtypes.uint4), "w_uint4"),
        numpy_helper.from_array(f32(4, 4).astype(ml_dtypes.float8_e4m3fn), "w_f8"),
        numpy_helper.from_array(rng.integers(-(2**40), 2**40, (9,)).astype(np.int64), "w_i64"),
        numpy_helper.from_array(f32(3).astype(np.float64), "w_f64"),
        numpy_helper.from_array(rng.integers(0, 2, (5,)).astype(bool), "w_bool"),
        # typed fields instead of raw_data
        helper.make_tensor("t_f32", T.FLOAT, [2, 3], f32(6).tolist()),
        helper.make_tensor("t_f16", T.FLOAT16, [4], f32(4).astype(np.float16)),
        helper.make_tensor("t_bf16", T.BFLOAT16, [3], f32(3).astype(ml_dtypes.bfloat16)),
        helper.make_tensor("t_int4", T.INT4, [5], rng.integers(-8, 8, 5).tolist()),
        helper.make_tensor("t_u8", T.UINT8, [6], rng.integers(0, 256, 6).tolist()),
        helper.make_tensor("t_i64", T.INT64, [3], rng.integers(-1000, 1000, 3).tolist()),
        helper.make_tensor("t_u64", T.UINT64, [2], [2**63 + 5, 7]),
        helper.make_tensor("t_u32", T.UINT32, [2], [2**32 - 1, 3]),
        helper.make_tensor("t_f64", T.DOUBLE, [2], [0.1, -2.5]),
        helper.make_tensor("t_bool", T.BOOL, [3], [True, False, True]),
        helper.make_tensor("t_f8", T.FLOAT8E5M2, [3], f32(3).astype(ml_dtypes.float8_e5m2)),
    ]
    sparse_init = helper.make_sparse_tensor(
        numpy_helper.from_array(f32(3), "s_init"),
        numpy_helper.from_array(np.array([1, 5, 8], np.int64), "s_init_idx"),
        [3, 4],
    )
    sparse_2d = helper.make_sparse_tensor(
        numpy_helper.from_array(f32(2), "unused"),
        numpy_helper.from_array(np.array([[0, 1], [2, 3]], np.int64), "unused_idx"),
        [3, 4],
    )
    then_g = helper.make_graph(
        [helper.make_node("Constant", [], ["then_c"], value=numpy_helper.from_array(f32(4, 2)))],
        "then", [], [helper.make_tensor_value_info("then_c", T.FLOAT, [4, 2])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Constant", [], ["else_c"], value_floats=f32(3).tolist())],
        "else", [], [helper.make_tensor_value_info("else_c", T.FLOAT, [3])],
    )
    nodes = [
        helper.make_node("Constant", [], ["c_tensor"], value=numpy_helper.from_array(f32(3, 3))),
        helper.make_node("Constant", [], ["c_float"], value_float=1.5),
        helper.make_node("Constant", [], ["c_floats"], value_floats=[1.0, -2.0]),
        helper.make_node("Constant", [], ["c_int"], value_int=-7),
        helper.make_node("Constant", [], ["c_ints"], value_ints=[3, 4, 5]),
        helper.make_node("Constant", [], ["c_sparse"], sparse_value=sparse_2d),
        helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True))),
        helper.make_node("If", ["cond"], ["if_out"], then_branch=then_g, else_branch=else_g),
    ]
    g = helper.make_graph(
        nodes, "g", [], [helper.make_tensor_value_info("if_out", T.FLOAT, None)], initializer=inits,
        sparse_initializer=[sparse_init],
    )
    fn = helper.make_function(
        "custom", "fn", [], ["y"],
        [helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(f32(2, 2)))],
        [helper.make_opsetid("", 21)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], functions=[fn])
    m.producer_name = "lbrx-test"
    onnx.save(m, os.path.join(d, "inline.onnx"))
    for sub, one in (("one", True), ("per", False)):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
        mm = onnx.ModelProto()
        mm.CopyFrom(m)
        kw = {"location": "weights.bin"} if one else {}
        onnx.save_model(
            mm, os.path.join(d, sub, "model.onnx"), save_as_external_data=True,
            all_tensors_to_one_file=one, size_threshold=0, **kw,
        )


def make_tf(d, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    vs = {
        f"v{i}": tf.Variable((rng.standard_normal((40 + i, 30)) * 100).astype(dt))
        for i, dt in enumerate([np.float32, np.int32, np.float64, np.float32])
    }
    vs["ids"] = tf.Variable(rng.integers(-100, 100, (17,)).astype(np.int64))
    vs["bf"] = tf.Variable(tf.cast(rng.standard_normal((8, 8)).astype(np.float32), tf.bfloat16))
    opts = tf.train.CheckpointOptions(
        experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(max_shard_size=6000)
    )
    tf.train.Checkpoint(**vs).write(os.path.join(d, "sharded", "ckpt"), options=opts)
    # the empty prefix: DIR/.index and DIR/.data-00000-of-00001
    tf.train.Checkpoint(w=tf.Variable(rng.standard_normal((3, 5)).astype(np.float32))).write(
        os.path.join(d, "empty") + "/"
    )
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.set_random_seed(seed)
        tf.compat.v1.get_variable(
            "layer/part", shape=[11, 6], partitioner=tf.compat.v1.fixed_size_partitioner(3),
            initializer=tf.compat.v1.random_normal_initializer(seed=seed),
        )
        tf.compat.v1.get_variable(
            "cols", shape=[4, 9], partitioner=lambda shape, dtype: [1, 2],
            initializer=tf.compat.v1.random_normal_initializer(seed=seed + 1),
        )
        tf.compat.v1.get_variable("plain", shape=[5], initializer=tf.compat.v1.ones_initializer())
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as s:
            s.run(tf.compat.v1.global_variables_initializer())
            saver.save(s, os.path.join(d, "sliced", "model"))


def make_tflite(d, seed):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    m = tf.keras.Sequential([
        tf.keras.Input((16, 16, 3)),
        tf.keras.layers.Conv2D(8, 3, activation="relu"),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10),
    ])
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    open(os.path.join(d, "float.tflite"), "wb").write(conv.convert())
    rng = np.random.default_rng(seed)

    def rep():
        for _ in range(8):
            yield [rng.standard_normal((1, 16, 16, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    open(os.path.join(d, "int8.tflite"), "wb").write(conv.convert())


def make_keras(d, seed):
    import keras

    keras.utils.set_random_seed(seed)
    m = keras.Sequential([
        keras.Input((12,)),
        keras.layers.Dense(20, activation="relu", name="hidden"),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(3, name="out"),
    ])
    m.save(os.path.join(d, "model.keras"))
    m.save(os.path.join(d, "model.h5"))
    m.save_weights(os.path.join(d, "model.weights.h5"))


def make_h5(d, seed):
    """h5py files beyond Keras' defaults: chunked with deflate + shuffle and partial edge chunks, fletcher32,
    big-endian and integer datasets, scalars, nested groups, the latest file format (superblock v3, v2 object
    headers, link messages; contiguous datasets), and what lbrx refuses: an lzf-compressed dataset, a chunked
    dataset of the latest format (its 1.10 chunk indexes)."""
    import h5py

    rng = np.random.default_rng(seed)
    with h5py.File(os.path.join(d, "latest.h5"), "w", libver="latest") as f:
        g = f.create_group("model/block")
        g.create_dataset("w", data=rng.standard_normal((37, 23)).astype(np.float32))
        g.create_dataset("i", data=rng.integers(-(2**40), 2**40, (9,)).astype(np.int64))
        f.create_dataset("be", data=rng.standard_normal((4, 6)).astype(">f4"))
        f.create_dataset("scalar", data=np.float32(rng.standard_normal()))
        f.attrs["note"] = "not a tensor"
    with h5py.File(os.path.join(d, "latest-chunked.h5"), "w", libver="latest") as f:
        f.create_dataset("x", data=np.arange(100, dtype=np.float32), chunks=(10,), compression="gzip")
    for name, libver in (("earliest.h5", "earliest"),):
        with h5py.File(os.path.join(d, name), "w", libver=libver) as f:
            g = f.create_group("model/block")
            g.create_dataset("w", data=rng.standard_normal((37, 23)).astype(np.float32), chunks=(8, 5),
                             compression="gzip", compression_opts=6, shuffle=True)
            g.create_dataset("b", data=rng.integers(-1000, 1000, (29,)).astype(np.int16), chunks=(4,),
                             fletcher32=True)
            f.create_dataset("be", data=rng.standard_normal((4, 6)).astype(">f8"))
            f.create_dataset("u", data=rng.integers(0, 2**32, (5,), dtype=np.uint64).astype(np.uint32))
            f.create_dataset("half", data=rng.standard_normal((3, 3)).astype(np.float16), chunks=(2, 2))
            f.create_dataset("scalar", data=np.float64(rng.standard_normal()))
            f.create_dataset("empty_chunks", shape=(6, 6), dtype=np.float32, chunks=(3, 3))
            f.attrs["note"] = "not a tensor"
    with h5py.File(os.path.join(d, "lzf.h5"), "w") as f:
        f.create_dataset("x", data=np.arange(100, dtype=np.float32), chunks=(10,), compression="lzf")


def main():
    cmd = sys.argv[1]
    if cmd == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        d, seed = sys.argv[2], int(sys.argv[3])
        os.makedirs(d, exist_ok=True)
        {
            "make-onnx": make_onnx, "make-tf": make_tf, "make-tflite": make_tflite, "make-keras": make_keras,
            "make-h5": make_h5,
        }[cmd](
            d, seed
        )


if __name__ == "__main__":
    main()
