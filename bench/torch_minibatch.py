#!/usr/bin/python3
"""torch_minibatch: the quick start's model trained by a PyTorch mini-batch
loop (Adam on the batch loss), the peer of `infomax train` with
optimizer.type adam in docs/performance.md.

The model and the loss are torch_peer.py's (gaussian preset, softmax, weights
normalized per row): on each batch of B rows, C_b is the covariance of the
batch's responsibilities and the loss is
    -log det(C_b + eps I + 1 1^T / K) + lambda sum_{j!=k} C_b,jk^2,
minimized by torch.optim.Adam over (V, b) with autograd. Every --full-every
epochs the loss on all rows is evaluated in float64 (not counted in the
training time). The rows are shuffled each epoch by torch.randperm.

Usage:
  bench/torch_minibatch.py --init PREFIX [--dtype float32] [--lr 0.2]
        [--batch 4096] [--epochs 15] [--threads 2] [--target LOSS]
  PREFIX_W.npy, PREFIX_b.npy: the starting point (from `infomax bench ...
  weights=PREFIX`, the same initial layer as `infomax train`).
Prints one line per evaluated epoch: epoch, training seconds so far, loss on
all rows; with --target the first epoch at or below it.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peer import Problem, load_fmnist, loadavg  # noqa: E402 (exits 77 without torch)

import torch  # noqa: E402


def batch_loss(X, V, b, K, lam, eps, uu, normalize):
    W = V / V.norm(dim=1, keepdim=True) if normalize else V
    A = torch.softmax(-torch.addmm(b, X, W.t()), dim=1)
    D = A - A.mean(dim=0)
    C = D.t() @ D / X.shape[0]
    M = C + uu
    if eps:
        M = M + eps * torch.eye(K, dtype=X.dtype)
    return -torch.logdet(M) + lam * ((C * C).sum() - (C.diagonal() ** 2).sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--init", required=True, help="PREFIX of PREFIX_W.npy, PREFIX_b.npy")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--eps", type=float, default=0.0)
    ap.add_argument("--full-every", type=int, default=1)
    ap.add_argument("--no-normalize", action="store_true",
                    help="W = V (no weight normalization)")
    ap.add_argument("--v-scale", type=float, default=0.0,
                    help="V = scale * W at the start (default sqrt(n): the norm of "
                         "infomax's standard-normal initial rows)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--target", type=float, help="report the first epoch at or below")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dt = torch.float32 if a.dtype == "float32" else torch.float64

    X64 = load_fmnist(0)
    W0 = torch.from_numpy(np.load(a.init + "_W.npy"))
    b0 = torch.from_numpy(np.load(a.init + "_b.npy").reshape(-1))
    K = W0.shape[0]
    full = Problem(X64, K, "softmax", a.lam, a.eps, 1.0)
    full.setup_manual()
    X = X64.to(dt)
    scale = a.v_scale if a.v_scale > 0 else float(np.sqrt(W0.shape[1]))
    V = (scale * W0).to(dt).requires_grad_(True)
    b = b0.clone().to(dt).requires_grad_(True)
    uu = torch.full((K, K), 1.0 / K, dtype=dt)
    opt = torch.optim.Adam([V, b], lr=a.lr)
    N, B = X.shape[0], a.batch
    print(f"# torch {torch.__version__}, {a.dtype}, threads {a.threads}, K {K}, N {N}, "
          f"batch {B}, lr {a.lr}, normalize {not a.no_normalize}, load {loadavg():.2f}")
    print("epoch,train_s,full_loss,load1")
    L0 = full.manual(V.detach().double(), b.detach().double())[0]
    print(f"0,0.000,{L0:.10g},{loadavg():.2f}")
    train_s, hit = 0.0, None
    for ep in range(1, a.epochs + 1):
        t = time.perf_counter()
        perm = torch.randperm(N)
        for s in range(0, N - B + 1, B):       # whole batches only, as infomax
            opt.zero_grad(set_to_none=True)
            L = batch_loss(X[perm[s:s + B]], V, b, K, a.lam, a.eps, uu, not a.no_normalize)
            L.backward()
            opt.step()
        train_s += time.perf_counter() - t
        if ep % a.full_every == 0 or ep == a.epochs:
            Vd, bd = V.detach().double(), b.detach().double()
            # torch_peer's Problem normalizes the rows; without normalization W = V
            Lf = full.manual(Vd, bd)[0] if not a.no_normalize else float(
                batch_loss(X64, Vd, bd, K, a.lam, a.eps, uu.double(), False))
            print(f"{ep},{train_s:.3f},{Lf:.10g},{loadavg():.2f}", flush=True)
            if a.target is not None and hit is None and Lf <= a.target:
                hit = (ep, train_s)
    if a.target is not None:
        print(f"# target {a.target}: " + (f"epoch {hit[0]}, {hit[1]:.2f} s" if hit else "not reached"))


if __name__ == "__main__":
    main()
