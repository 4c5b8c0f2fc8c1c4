"""Seeded large ONNX / TensorFlow / Keras files, and their reading by the reference packages (bench/formats.sh).

  make KIND PATH MB    KIND: onnx | onnx-external | tf | h5; float32 tensors of 4 Mi elements, seeded
  read KIND PATH       every tensor read into numpy by the reference package (onnx, tf.train, h5py)
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np


def tensors(mb):
    rng = np.random.default_rng(7)
    n = max(1, int(mb * 2**20 // (16 * 2**20)))
    return {f"layer{i}.weight": rng.standard_normal((2048, 2048), dtype=np.float32) for i in range(n)}


def make(kind, path, mb):
    ts = tensors(mb)
    if kind.startswith("onnx"):
        import onnx
        from onnx import helper, numpy_helper

        inits = [numpy_helper.from_array(a, k) for k, a in ts.items()]
        g = helper.make_graph([], "g", [], [], initializer=inits)
        m = helper.make_model(g)
        if kind == "onnx":
            onnx.save(m, path)
        else:
            onnx.save_model(m, path, save_as_external_data=True, location=os.path.basename(path) + ".data")
    elif kind == "tf":
        import tensorflow as tf

        tf.train.Checkpoint(**{k.replace(".", "_"): tf.Variable(a) for k, a in ts.items()}).write(path)
    elif kind == "h5":
        import h5py

        with h5py.File(path, "w") as f:
            for k, a in ts.items():
                f.create_dataset(k, data=a)


def read(kind, path):
    total = 0
    if kind.startswith("onnx"):
        import onnx
        from onnx import numpy_helper

        m = onnx.load(path)
        for t in m.graph.initializer:
            total += numpy_helper.to_array(t).nbytes
    elif kind == "tf":
        import tensorflow as tf

        r = tf.train.load_checkpoint(path)
        for k, dt in r.get_variable_to_dtype_map().items():
            if dt != tf.string:
                total += r.get_tensor(k).nbytes
    elif kind == "h5":
        import h5py

        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: None)
            for k in f:
                total += f[k][()].nbytes
    print(total)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        read(sys.argv[2], sys.argv[3])
