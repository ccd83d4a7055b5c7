#!/usr/bin/env python3
"""Load an infomax model (RUN_DIR/model.h5) and apply it to new data.

    import infomax_model
    m = infomax_model.load("runs/fashion-mnist")        # or the path of model.h5
    F = m.transform(X)                                  # X: raw rows, as data.path holds them
    F = m.transform(X, layer=1, features="z")           # z, activation, r or winner
    m.layers[0].W, m.layers[0].b, m.preprocess.mean     # the arrays themselves

`transform` computes what `infomax transform RUN_DIR --data ...` writes, to
about 1e-12 (the C program's BLAS may round products in another order than
numpy's): u = (scale * x - mean) @ transform, then for each layer
z = u @ W.T + b, a = phi(z), and the next layer's input is what the layer
feeds (a, z, or r = softmax(-z / tau)).

With scikit-learn, the model is a step of a Pipeline:

    from sklearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression
    clf = make_pipeline(infomax_model.InfomaxTransformer("runs/x"), LogisticRegression())

Run as a script, `python3 infomax_model.py RUN_DIR` prints what the model holds.
Needs numpy and h5py (Debian: python3-numpy python3-h5py).
"""
import os
import sys

import numpy as np

try:
    import h5py
except ImportError:  # pragma: no cover - depends on the machine
    h5py = None

FORMAT = "infomax-model"
FORMAT_VERSION = 1
FEATURES = ("z", "activation", "r", "winner")
ACTIVATIONS = ("identity", "relu", "softmax", "topk", "sparsemax")


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


class Preprocess:
    """u = (scale * x - mean) @ transform, as the run's train split was."""

    def __init__(self, kind, scale, mean, transform):
        self.kind, self.scale = kind, float(scale)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.transform = np.asarray(transform, dtype=np.float64)

    def apply(self, X):
        X = np.asarray(X, dtype=np.float64)
        if self.scale != 1.0:
            X = X * self.scale
        U = X - self.mean
        P = self.transform
        n = P.shape[0]
        if np.array_equal(P, np.eye(n)):
            return U
        if np.count_nonzero(P - np.diag(np.diag(P))) == 0:
            return U * np.diag(P)
        return U @ P


class Layer:
    """One trained layer: z = W u + b, a = phi(z)."""

    def __init__(self, index, W, b, activation, temperature, topk, feed, head=None):
        self.index = index
        self.W = np.asarray(W, dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)
        self.activation, self.temperature, self.topk, self.feed = activation, temperature, topk, feed
        self.head = head  # (U, c) of the supervised term's softmax head, or None
        if activation not in ACTIVATIONS:
            raise ValueError("layer%d: unknown activation %r (this loader knows %s)"
                             % (index, activation, ", ".join(ACTIVATIONS)))

    @property
    def units(self):
        return self.W.shape[0]

    @property
    def inputs(self):
        return self.W.shape[1]

    def z(self, U):
        return U @ self.W.T + self.b

    def activate(self, Z):
        return phi(self.activation, Z, self.temperature, self.topk)

    def winners(self, A):
        """The unit `infomax eval` counts as the row's winner: the largest output of a
        softmax, topk or sparsemax layer, the smallest otherwise; ties: lowest index."""
        simplex = self.activation in ("softmax", "topk", "sparsemax")
        return (np.argmax(A, axis=1) if simplex else np.argmin(A, axis=1)).astype(np.int32)


def _softmax_neg(Z, tau):
    E = np.exp(-(Z - Z.min(axis=1, keepdims=True)) / tau)
    return E / E.sum(axis=1, keepdims=True)


def _topk(Z, tau, k):
    out = np.zeros_like(Z)
    # the k smallest z; ties at the k-th value go to the lower indices (a stable sort)
    keep = np.argsort(Z, axis=1, kind="stable")[:, :k]
    rows = np.arange(Z.shape[0])[:, None]
    zmin = Z.min(axis=1, keepdims=True)
    E = np.exp(-(Z[rows, keep] - zmin) / tau)
    out[rows, keep] = E / E.sum(axis=1, keepdims=True)
    return out


def _sparsemax(Z, tau):
    Uu = -(Z - Z.min(axis=1, keepdims=True)) / tau
    out = np.empty_like(Uu)
    for i, u in enumerate(Uu):  # Michelot's iteration, as the C code
        t = -np.inf
        for _ in range(u.size + 1):
            sel = u > t
            tn = (u[sel].sum() - 1) / sel.sum()
            if not tn > t:
                break
            t = tn
        out[i] = np.where(u > t, u - t, 0.0)
    return out


def phi(activation, Z, tau=1.0, k=0):
    """The activation of `infomax` (model.activation) on the rows of Z."""
    if activation == "identity":
        return Z
    if activation == "relu":
        return np.maximum(Z, 0.0)
    if activation == "softmax":
        return _softmax_neg(Z, tau)
    if activation == "topk":
        return _topk(Z, tau, k)
    if activation == "sparsemax":
        return _sparsemax(Z, tau)
    raise ValueError("unknown activation %r" % activation)


class Model:
    """A trained infomax model: preprocessing and layers 1..L."""

    def __init__(self, path, preprocess, layers, config, status, version, inputs):
        self.path, self.preprocess, self.layers = path, preprocess, layers
        self.config, self.status, self.infomax_version, self.inputs = config, status, version, inputs

    def __repr__(self):
        shape = " -> ".join([str(self.inputs)] + ["%d %s" % (l.units, l.activation) for l in self.layers])
        return "<infomax model %s: %s, preprocess %s, %s>" % (self.path, shape, self.preprocess.kind, self.status)

    def transform(self, X, layer=None, features="activation"):
        """The features of layer `layer` (1-based; default: the last) for the raw rows X.

        features: "z" (W u + b), "activation" (phi(z)), "r" (softmax(-z / tau)) or
        "winner" (int32 unit per row)."""
        if features not in FEATURES:
            raise ValueError("features must be one of %s, not %r" % (", ".join(FEATURES), features))
        L = len(self.layers) if layer is None else int(layer)
        if not 1 <= L <= len(self.layers):
            raise ValueError("layer %d: the model has layers 1..%d" % (L, len(self.layers)))
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.inputs:
            raise ValueError("X has shape %s but the model takes rows of %d columns"
                             % (X.shape, self.inputs))
        U = self.preprocess.apply(X)
        for l in self.layers[:L]:
            Z = l.z(U)
            A = l.activate(Z)
            if l.index == L:
                if features == "z":
                    return Z
                if features == "activation":
                    return A
                if features == "r":
                    return _softmax_neg(Z, l.temperature)
                return l.winners(A)
            U = A if l.feed == "activation" else Z
            if l.feed == "r":
                U = _softmax_neg(Z, l.temperature)
        raise AssertionError("unreachable")


def _model_path(path):
    p = os.fspath(path)
    if os.path.isdir(p):
        p = os.path.join(p, "model.h5")
    if not os.path.exists(p):
        raise FileNotFoundError("%s: no model file (infomax train writes RUN_DIR/model.h5 with its "
                                "first checkpoint)" % p)
    return p


def load(path):
    """The model of a run directory (or of a model.h5 file)."""
    if h5py is None:
        raise ImportError("infomax_model needs h5py (Debian: apt-get install python3-h5py)")
    p = _model_path(path)
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise ValueError("%s: not an HDF5 file, so not an infomax model (%s)" % (p, e)) from None
    with f:
        a = f.attrs
        if _text(a.get("format", "")) != FORMAT:
            raise ValueError("%s: not an infomax model (attribute format is %r, want %r)"
                             % (p, _text(a.get("format", "")), FORMAT))
        version = int(a["format_version"])
        if version > FORMAT_VERSION:
            raise ValueError("%s: model format version %d is newer than this loader's %d: use the "
                             "loader of the infomax that wrote it" % (p, version, FORMAT_VERSION))
        g = f["preprocess"]
        pre = Preprocess(_text(g.attrs["kind"]), g.attrs["scale"], g["mean"][()], g["transform"][()])
        layers = []
        for i in range(1, int(a["layers"]) + 1):
            g = f["layer%d" % i]
            head = (g["head/U"][()], g["head/c"][()]) if "head" in g else None
            layers.append(Layer(i, g["W"][()], g["b"][()], _text(g.attrs["activation"]),
                                float(g.attrs["temperature"]), int(g.attrs["topk"]),
                                _text(g.attrs["feed"]), head))
        inputs = int(a["inputs"])
        for l in layers:
            want = inputs if l.index == 1 else layers[l.index - 2].units
            if l.inputs != want:
                raise ValueError("%s: layer%d has %d inputs, expected %d" % (p, l.index, l.inputs, want))
        return Model(p, pre, layers, _text(a["config"]), _text(a["status"]),
                     _text(a["infomax_version"]), inputs)


class InfomaxTransformer:
    """A scikit-learn transformer around a trained model (fit does nothing: the
    model was trained by `infomax train`)."""

    def __init__(self, run_dir, layer=None, features="activation"):
        self.run_dir, self.layer, self.features = run_dir, layer, features

    def get_params(self, deep=True):
        return {"run_dir": self.run_dir, "layer": self.layer, "features": self.features}

    def set_params(self, **params):
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, X=None, y=None):
        self.model_ = load(self.run_dir)
        return self

    def transform(self, X):
        if not hasattr(self, "model_"):
            self.fit()
        return self.model_.transform(X, layer=self.layer, features=self.features)

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print("usage: python3 infomax_model.py RUN_DIR|model.h5", file=sys.stderr)
        return 2
    try:
        m = load(argv[1])
    except (OSError, ValueError, KeyError) as e:
        print("infomax_model: error: %s" % e, file=sys.stderr)
        return 1
    print(m)
    pre = m.preprocess
    print("preprocess: %s, scale %g, mean [%d], transform [%d x %d]"
          % (pre.kind, pre.scale, pre.mean.size, *pre.transform.shape))
    for l in m.layers:
        print("layer%d: W [%d x %d], b [%d], %s, temperature %g%s, feeds %s%s"
              % (l.index, l.units, l.inputs, l.units, l.activation, l.temperature,
                 ", k %d" % l.topk if l.activation == "topk" else "", l.feed,
                 ", supervised head [%d classes]" % l.head[0].shape[0] if l.head else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
