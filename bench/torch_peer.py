#!/usr/bin/python3
"""torch_peer: the same objective and gradient as `infomax` in PyTorch
(float64 or --dtype float32, the same threads, the same BLAS through Debian's python3-torch,
which links libblas.so.3), the peer of docs/performance.md.

The objective is the gaussian preset on the whole data set:
    W = V / ||V|| (rows), Z = X W^T + 1 b^T, A = phi(Z)
    m = mean(A), C = (A - m)^T (A - m) / N
    L = -log det(C + eps I [+ 1 1^T / K for softmax]) + lambda sum_{j!=k} C_jk^2
and its gradient with respect to V and b.

Variants (each timed as the best of --evals after one warm-up):
  autograd  the plain script: L from tensors, L.backward(), fresh tensors every call
  manual    the hand-written backward (the same algorithm as infomax), with every
            N x K and K x K buffer allocated once and reused (out= everywhere)
  mixed     manual, with C's factorization, log det and G in float64 (with
            --dtype float32: what infomax's parallel.precision single does)
  moments   identity activation only: C = W S_x W^T from the input covariance
            S_x computed once (what infomax's moments path does)

Usage:
  bench/torch_peer.py --fmnist --K 64,256 [--variants autograd,manual] [--threads 1]
  bench/torch_peer.py --synthetic N,n --K 1024 --activation identity
  bench/torch_peer.py --fmnist --K 64 --check PREFIX --expect LOSS
      (PREFIX_W.npy, PREFIX_b.npy from `infomax bench ... weights=PREFIX`: the
       loss at those weights must match infomax's to 1e-9 relative)
Writes one CSV line per (K, variant) to stdout (and --out FILE).
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np

try:
    import torch
except ImportError:
    print("torch_peer: python3-torch is not installed (apt-get install python3-torch)",
          file=sys.stderr)
    sys.exit(77)

FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def load_fmnist(samples):
    with gzip.open(FMNIST, "rb") as f:
        raw = f.read()
    N, r, c = (int.from_bytes(raw[4 * i:4 * i + 4], "big") for i in (1, 2, 3))
    X = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(N, r * c).astype(np.float64)
    if samples:
        X = X[:samples]
    X *= 1.0 / 255.0
    X -= X.mean(axis=0)          # data.preprocess: center (as configs/fashion-mnist.yaml)
    return torch.from_numpy(np.ascontiguousarray(X))


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class Problem:
    def __init__(self, X, K, act, lam, eps, tau):
        self.X, self.K, self.act, self.lam, self.eps, self.tau = X, K, act, lam, eps, tau
        self.N, self.n = X.shape
        self.mixed = False
        self.u = torch.full((K,), 1.0 / np.sqrt(K), dtype=X.dtype)

    # ---- the plain autograd script ----
    def autograd(self, V, b):
        V = V.detach().requires_grad_(True)
        b = b.detach().requires_grad_(True)
        W = V / V.norm(dim=1, keepdim=True)
        Z = torch.addmm(b, self.X, W.t())
        A = torch.softmax(-Z / self.tau, dim=1) if self.act == "softmax" else Z
        D = A - A.mean(dim=0)
        C = D.t() @ D / self.N
        M = C + self.eps * torch.eye(self.K, dtype=C.dtype)
        if self.act == "softmax":
            M = M + torch.outer(self.u, self.u)
        L = -torch.logdet(M) + self.lam * ((C * C).sum() - (C.diagonal() ** 2).sum())
        L.backward()
        return L.item(), V.grad, b.grad

    # ---- the hand-written backward with reused buffers ----
    def setup_manual(self):
        N, K, n = self.N, self.K, self.n
        e = lambda *s: torch.empty(*s, dtype=self.X.dtype)
        self.bufs = dict(W=e(K, n), A=e(N, K), T=e(N, K), C=e(K, K), M=e(K, K), G=e(K, K),
                         gW=e(K, n), gb=e(K), m=e(K), s=e(N, 1), nrm=e(K, 1))
        self.I = torch.eye(K, dtype=self.X.dtype)
        self.uu = torch.outer(self.u, self.u)

    def manual(self, V, b):
        B, X, N = self.bufs, self.X, self.N
        W, A, T, C, M, G = B["W"], B["A"], B["T"], B["C"], B["M"], B["G"]
        torch.norm(V, dim=1, keepdim=True, out=B["nrm"])
        torch.div(V, B["nrm"], out=W)
        torch.addmm(b, X, W.t(), out=A)                  # Z
        if self.act == "softmax":
            A.mul_(-1.0 / self.tau)                      # softmax(-Z/tau) in place
            torch.amax(A, dim=1, keepdim=True, out=B["s"])
            A.sub_(B["s"]).exp_()
            torch.sum(A, dim=1, keepdim=True, out=B["s"])
            A.div_(B["s"])
        torch.mean(A, dim=0, out=B["m"])
        A.sub_(B["m"])                                   # D = A - m (A kept via T below)
        torch.mm(A.t(), A, out=C)
        C.div_(N)
        if self.mixed:     # the K x K algebra in float64, the row products in float32
            Cd = C.double()
            Md = Cd + self.eps * self.I.double()
            if self.act == "softmax":
                Md += self.uu.double()
            Lc = torch.linalg.cholesky(Md)
            Gd = -torch.cholesky_inverse(Lc) + 2 * self.lam * (Cd - torch.diag(Cd.diagonal()))
            G.copy_(Gd)
            C = Cd
        else:
            torch.add(C, self.I, alpha=self.eps, out=M)
            if self.act == "softmax":
                M.add_(self.uu)
            Lc = torch.linalg.cholesky(M)
        logdet = 2.0 * Lc.diagonal().log().sum().item()
        off = (C * C).sum().item() - (C.diagonal() ** 2).sum().item()
        L = -logdet + self.lam * off
        if not self.mixed:
            torch.cholesky_inverse(Lc, out=G)            # M^{-1}
            G.mul_(-1.0)
            G.add_(C, alpha=2 * self.lam)
            G.diagonal().sub_(2 * self.lam * C.diagonal())
        torch.mm(A, G, out=T)                            # dL/dA = (2/N) D G
        T.mul_(2.0 / N)
        if self.act == "softmax":
            A.add_(B["m"])                               # back to r
            torch.sum(A * T, dim=1, keepdim=True, out=B["s"])  # <r, g>
            T.sub_(B["s"]).mul_(A).mul_(-1.0 / self.tau)
        torch.mm(T.t(), X, out=B["gW"])
        torch.sum(T, dim=0, out=B["gb"])
        gW = B["gW"]
        wg = (W * gW).sum(dim=1, keepdim=True)
        gV = (gW - W * wg) / B["nrm"]
        return L, gV, B["gb"]

    # ---- identity activation: from the input moments ----
    def setup_moments(self):
        Xc = self.X - self.X.mean(dim=0)
        self.Sx = Xc.t() @ Xc / self.N
        self.setup_manual()

    def moments(self, V, b):
        B = self.bufs
        W = B["W"]
        torch.norm(V, dim=1, keepdim=True, out=B["nrm"])
        torch.div(V, B["nrm"], out=W)
        T = W @ self.Sx
        C = B["C"]
        torch.mm(T, W.t(), out=C)
        M = C + self.eps * self.I
        Lc = torch.linalg.cholesky(M)
        L = -2.0 * Lc.diagonal().log().sum().item() + self.lam * ((C * C).sum() - (C.diagonal() ** 2).sum()).item()
        G = -torch.cholesky_inverse(Lc) + 2 * self.lam * (C - torch.diag(C.diagonal()))
        gW = 2 * G @ T
        wg = (W * gW).sum(dim=1, keepdim=True)
        return L, (gW - W * wg) / B["nrm"], torch.zeros_like(b)


def timed(fn, V, b, evals):
    fn(V, b)  # warm-up (allocations, first touch)
    best, tot, L = float("inf"), 0.0, None
    for _ in range(evals):
        t = time.perf_counter()
        L, gV, gb = fn(V, b)
        t = time.perf_counter() - t
        best, tot = min(best, t), tot + t
    return L, best, tot / evals


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fmnist", action="store_true")
    ap.add_argument("--samples", type=int, default=0, help="first N rows of Fashion-MNIST")
    ap.add_argument("--synthetic", help="N,n: standard-normal data (timing only)")
    ap.add_argument("--K", default="64")
    ap.add_argument("--activation", default="softmax", choices=["softmax", "identity"])
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--eps", type=float, default=0.0)
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--variants", default="autograd,manual")
    ap.add_argument("--evals", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                    help="float32: the whole evaluation in single precision, as a PyTorch "
                         "user's default")
    ap.add_argument("--check", help="PREFIX of PREFIX_W.npy, PREFIX_b.npy")
    ap.add_argument("--expect", type=float, help="infomax's loss at --check's weights")
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.synthetic:
        N, n = (int(v) for v in a.synthetic.split(","))
        g = torch.Generator().manual_seed(1)
        X = torch.randn(N, n, dtype=torch.float64, generator=g)
        data = "synthetic"
    else:
        X = load_fmnist(a.samples)
        data = "fashion-mnist"
    X = X.to(getattr(torch, a.dtype))
    N, n = X.shape
    out = open(a.out, "a") if a.out else None
    header = "peer,data,N,n,K,activation,variant,dtype,threads,best_s,mean_s,loss,load1"
    if not out or out.tell() == 0:
        print(header)
        if out:
            print(header, file=out)
    rc = 0
    for K in (int(k) for k in a.K.split(",")):
        p = Problem(X, K, a.activation, a.lam, a.eps, a.tau)
        if a.check:
            V = torch.from_numpy(np.load(a.check + "_W.npy"))
            b = torch.from_numpy(np.load(a.check + "_b.npy").reshape(-1))
        else:
            g = torch.Generator().manual_seed(K)
            V = torch.randn(K, n, dtype=torch.float64, generator=g)
            b = 0.1 * torch.randn(K, dtype=torch.float64, generator=g)
        V, b = V.to(X.dtype), b.to(X.dtype)
        for v in a.variants.split(","):
            if v == "moments":
                if a.activation != "identity":
                    continue
                t0 = time.perf_counter()
                p.setup_moments()
                setup = time.perf_counter() - t0
                print("# moments: S_x computed once in %.3f s (not in the time per evaluation)"
                      % setup, file=sys.stderr)
                fn = p.moments
            elif v in ("manual", "mixed"):
                p.setup_manual()
                p.mixed = v == "mixed"
                fn = p.manual
            else:
                fn = p.autograd
            try:
                L, best, mean = timed(fn, V, b, a.evals)
            except RuntimeError as ex:   # e.g. a float32 C that is not positive definite
                print("# K=%d %s %s failed: %s" % (K, v, a.dtype, str(ex).splitlines()[0]),
                      file=sys.stderr)
                L, best, mean = float("nan"), float("nan"), float("nan")
            line = "torch-%s,%s,%d,%d,%d,%s,%s,%s,%d,%.6e,%.6e,%.17g,%.2f" % (
                torch.__version__, data, N, n, K, a.activation, v, a.dtype, a.threads, best, mean, L,
                loadavg())
            print(line, flush=True)
            if out:
                print(line, file=out, flush=True)
            if a.expect is not None:
                ok = abs(L - a.expect) <= 1e-9 * abs(a.expect)
                print("%s: %s loss %.15g, infomax %.15g" % ("PASSED" if ok else "FAILED", v, L,
                                                          a.expect), file=sys.stderr)
                rc |= not ok
    return rc


if __name__ == "__main__":
    sys.exit(main())
