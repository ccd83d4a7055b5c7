#!/usr/bin/env python3
"""Draw the prototypes of a trained layer as a PNG grid.

usage: python3 tools/prototypes_png.py RUN_DIR [OUT.png] [--side 28]

Each row w_j of RUN_DIR/layer1_W.npy (K x n, n = side^2) becomes a side x side
tile, scaled symmetrically around 0 (grey = 0, white = positive, black =
negative). Needs only numpy and the standard library (the PNG is written with
zlib), so it runs on a fresh machine after the README set-up.
"""
import os
import struct
import sys
import zlib

import numpy as np


def write_png(path, img):
    """Write an 8-bit greyscale image (H x W uint8)."""
    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))
    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def grid(W, side, scale=3, gap=2):
    K = W.shape[0]
    cols = int(np.ceil(np.sqrt(K)))
    rows = int(np.ceil(K / cols))
    t = side * scale
    img = np.full((rows * (t + gap) + gap, cols * (t + gap) + gap), 255, np.uint8)
    for j in range(K):
        w = W[j].reshape(side, side)
        m = np.abs(w).max() or 1.0
        tile = np.clip(127.5 + 127.5 * w / m, 0, 255).astype(np.uint8)
        tile = np.kron(tile, np.ones((scale, scale), np.uint8))
        r, c = divmod(j, cols)
        img[gap + r * (t + gap):gap + r * (t + gap) + t, gap + c * (t + gap):gap + c * (t + gap) + t] = tile
    return img


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    side = 28
    if "--side" in argv:
        side = int(argv[argv.index("--side") + 1])
        args.remove(str(side))
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    W = np.load(os.path.join(args[0], "layer1_W.npy"))
    if W.shape[1] != side * side:
        print("prototypes_png: n = %d is not %d x %d (use --side)" % (W.shape[1], side, side), file=sys.stderr)
        return 2
    out = args[1] if len(args) > 1 else os.path.join(args[0], "prototypes.png")
    write_png(out, grid(W, side))
    print("wrote %s (%d prototypes)" % (out, W.shape[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
