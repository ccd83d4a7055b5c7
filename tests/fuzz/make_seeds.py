#!/usr/bin/python3
"""Regenerate the seed corpora of the fuzz harnesses (tests/fuzz/corpus/*).
Run from anywhere; the outputs are checked in. Seeds are small valid files and
a few near misses, so that the fuzzer starts next to every branch:

  config/  tests/configs/*.yaml and configs/*.yaml (good and bad), plus a few
           --set lines (the harness also feeds its input to imx_config_set)
  npy/     tests/data/*.npy (written by numpy), hand-made v1/v2/v3 headers,
           1-D, every dtype, Python 2 'L', long padding, near misses
  idx/     plain and gzip'd labels and images (1-D, 2-D, 3-D), near misses
  h5path/  HDF5 paths "FILE.h5:/DATASET": with and without a dataset, groups,
           .hdf5, ':' in names, and every kind of refused path
"""
import glob
import gzip
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def reset(name):
    d = os.path.join(CORPUS, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def put(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- config ----
d = reset("config")
for p in sorted(glob.glob(os.path.join(ROOT, "tests/configs/*.yaml")) +
                glob.glob(os.path.join(ROOT, "configs/*.yaml"))):
    shutil.copy(p, os.path.join(d, os.path.basename(p)))
for i, line in enumerate(["objective.lambda=0.5", "model.units=256", "lambda=0.5",
                          "data.source=gmm", "optimizer.options=-tao_ls_type armijo",
                          "objective.logdet=~", "data.seed=18446744073709551615",
                          "model.weight_norm=off", "dat.sorce=npy"]):
    put(d, "set_%d.txt" % i, line.encode())


# ---- npy ----
def npy(major, dict_text, payload=b"", hlen=None, pad_to=64):
    start = 10 if major == 1 else 12
    body = dict_text.encode("latin-1")
    total = start + len(body) + 1
    pad = (pad_to - total % pad_to) % pad_to
    header = body + b" " * pad + b"\n"
    n = len(header) if hlen is None else hlen
    size = struct.pack("<H", n) if major == 1 else struct.pack("<I", n)
    return b"\x93NUMPY" + bytes([major, 0]) + size + header + payload


d = reset("npy")
for p in sorted(glob.glob(os.path.join(ROOT, "tests/data/*.npy"))):
    shutil.copy(p, os.path.join(d, os.path.basename(p)))
f8 = struct.pack("<6d", 0.0, 1.0, -2.5, 1e-300, float("inf"), float("nan"))
put(d, "v1_f8_2x3.npy", npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", f8))
put(d, "v2_f8_3x2.npy", npy(2, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", f8))
put(d, "v3_f4_1d.npy", npy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                           struct.pack("<3f", 1.5, -0.0, 3e38)))
put(d, "i4_labels.npy", npy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }",
                            struct.pack("<4i", 0, 1, -1, 2147483647)))
put(d, "i8_labels.npy", npy(1, "{'shape': (2,), 'fortran_order': False, 'descr': '<i8'}",
                            struct.pack("<2q", 3, -9223372036854775808)))
put(d, "u1_labels.npy", npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }",
                            bytes([0, 1, 2, 254, 255])))
put(d, "py2_long.npy", npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1L, 2L), }", f8[:16]))
put(d, "empty_0x3.npy", npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 3), }"))
put(d, "long_padding.npy", npy(2, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }",
                               f8[:8], pad_to=4096 + 64))
put(d, "fortran.npy", npy(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", f8))
put(d, "3d.npy", npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 3), }", f8))
put(d, "structured.npy", npy(1, "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }",
                             f8[:16]))
put(d, "huge_shape.npy", npy(1, "{'descr': '<f8', 'fortran_order': False, "
                                "'shape': (9223372036854775807, 2), }"))
put(d, "hlen_lies.npy", npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", f8,
                            hlen=60000))
put(d, "truncated.npy", npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", f8[:40]))


# ---- idx ----
def idx(dims, payload, typ=0x08):
    return bytes([0, 0, typ, len(dims)]) + b"".join(struct.pack(">I", x) for x in dims) + payload


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


d = reset("idx")
labels = idx([6], bytes([0, 1, 2, 9, 3, 1]))
images3 = idx([3, 2, 2], bytes(range(12)))
images2 = idx([2, 5], bytes(range(10, 20)))
put(d, "labels-idx1-ubyte", labels)
put(d, "images-idx3-ubyte", images3)
put(d, "images-idx2-ubyte", images2)
put(d, "labels-idx1-ubyte.gz", gz(labels))
put(d, "images-idx3-ubyte.gz", gz(images3))
put(d, "images-idx2-ubyte.gz", gz(images2))
put(d, "empty-idx1", idx([0], b""))
put(d, "float-idx3", idx([1, 1, 1], b"\0\0\0\0", typ=0x0D))
put(d, "four-dims", idx([1, 1, 1, 1], b"\0"))
put(d, "truncated-idx3", images3[:-3])
put(d, "trailing-idx3", images3 + b"\0")
put(d, "truncated.gz", gz(images3)[:-9])
put(d, "trailing.gz", gz(images3 + b"extra"))
put(d, "wide-rows-idx3", idx([1, 65536, 65536], b""))

# ---- h5path ----
d = reset("h5path")
for i, spec in enumerate(["train.h5", "train.h5:/images", "train.h5:images", "/data/mnist.hdf5:/train/x",
                          "a:b.h5", "dir.h5:v/a.hdf5:/g/x", "x.npy", "t10k-images-idx3-ubyte",
                          "x.h5:", "x.h5:/", "x.h5://a", "x.h5:/a/", "x.h5:/./a", "x.h5:/a\x01",
                          ".h5:/x", ""]):
    put(d, "spec%02d" % i, spec.encode())
