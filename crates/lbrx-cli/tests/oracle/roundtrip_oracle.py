"""NumPy reads a .npz or .npy lbrx wrote: every array's shape and bytes equal the tensor of the same name in
the SafeTensors source (read here from its header, so that any dtype compares).

usage: roundtrip_oracle.py OUT.npz|OUT.npy SRC.safetensors
"""
import json
import struct
import sys

import numpy as np

out, src = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8 : 8 + n])
base = 8 + n
want = {
    k: (tuple(v["shape"]), raw[base + v["data_offsets"][0] : base + v["data_offsets"][1]])
    for k, v in header.items()
    if k != "__metadata__"
}
if out.endswith(".npy"):
    arrays = {next(iter(want)): np.load(out, allow_pickle=False)}
else:
    z = np.load(out, allow_pickle=False)
    arrays = {k: z[k] for k in z.files}
assert sorted(arrays) == sorted(want), (sorted(arrays), sorted(want))
for k, a in arrays.items():
    shape, data = want[k]
    assert a.shape == shape, (k, a.shape, shape)
    assert np.ascontiguousarray(a).tobytes() == data, k
print(len(arrays), "arrays agree")
