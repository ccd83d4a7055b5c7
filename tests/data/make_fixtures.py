#!/usr/bin/python3
"""Regenerate the small .npy fixtures written by numpy itself (run once from
tests/data; the outputs are checked in). Entry (i, j) of every matrix is
i + j*1e-3, as the tests expect."""
import numpy as np
from numpy.lib import format as fmt

rows, cols = 7, 3
a = np.arange(rows)[:, None] + np.arange(cols)[None, :] * 1e-3

np.save("np_f8.npy", a)                                   # version 1.0, '<f8'
np.save("np_f4.npy", a.astype("<f4"))                     # '<f4'
with open("np_f8_v2.npy", "wb") as f:                     # version 2.0
    fmt.write_array(f, a, version=(2, 0))
np.save("np_fortran.npy", np.asfortranarray(a))           # rejected: fortran_order
np.save("np_be.npy", a.astype(">f8"))                     # rejected: big-endian
np.save("np_labels_i8.npy", np.arange(rows) % 3)          # int64 labels 0,1,2,0,...
np.save("np_labels_u1.npy", (np.arange(rows) % 3).astype(np.uint8))
