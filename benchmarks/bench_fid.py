"""Speed and agreement of ``metrics.frechet_distance`` against pytorch-fid's ``scipy.linalg.sqrtm`` formula.

Both get the same statistics: means and ``np.cov`` covariances of two sets of N correlated
Gaussian "features" of dimension D (default 2048, Inception's pool3, with N = 4096 samples each),
and, as a second case, a singular pair (N < D).  Reported, in one run:

- the time of each, one call each (pytorch-fid's path: ``sqrtm(S1 @ S2)`` plus its ``1e-6 I``
  retry when the result is not finite; ours: LAPACK's ``sygv`` (a Cholesky factorisation of S1,
  the reduction to L^T S2 L and its symmetric eigenvalues), or for a singular S1 an
  eigendecomposition, two matrix products and a symmetric eigenvalue solve), as wall-clock time
  and as the process's CPU time;
- their ratio (sqrtm time / ours), which is what to compare across machines.  On a machine
  shared with other jobs, wall times swing by 2-3x from run to run; with ``OMP_NUM_THREADS=1``
  the CPU-time ratio is the steadier number;
- both FID values and their relative difference.

The goal of the issue: at least 5x faster, relative difference below 1e-6 on the well-conditioned
case.  On the singular case the sqrtm path needs its 1e-6 I patch (or returns complex values),
so the two differ by more; ours has no patch.  BLAS threads matter: the thread count is printed;
compare runs with the same ``OMP_NUM_THREADS``.

Run from the repository root::

    .venv/bin/python benchmarks/bench_fid.py                 # D = 2048, N = 4096
    .venv/bin/python benchmarks/bench_fid.py --dim 512 --n 1024
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from scipy import linalg

from perceptlab.metrics import frechet_distance


def pytorch_fid_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's ``calculate_frechet_distance`` (``sqrtm``'s deprecated ``disp=False`` dropped)."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real  # pytorch-fid raises if the diagonal's imaginary part exceeds 1e-3
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def statistics(n: int, d: int, seed: int, scale: float = 1.0, shift: float = 0.0):
    """Mean and np.cov covariance of n samples of a correlated d-dimensional Gaussian."""
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + 0.3 * np.random.default_rng(d).standard_normal((d, d)) / np.sqrt(d)
    f = scale * rng.standard_normal((n, d)) @ mix + shift
    return f.mean(0), np.cov(f, rowvar=False)


def timed(fn):
    """(value, wall seconds, CPU seconds of this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return float(value), time.perf_counter() - wall, time.process_time() - cpu


def compare(name: str, s1, s2) -> None:
    (mu1, c1), (mu2, c2) = s1, s2
    ours, w_ours, c_ours = timed(lambda: frechet_distance(mu1, c1, mu2, c2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, w_ref, c_ref = timed(lambda: pytorch_fid_frechet_distance(mu1, c1, mu2, c2))
    rel = abs(ours - ref) / abs(ref)
    print(f"{name:<28} | {w_ref:8.2f} {w_ours:7.2f} {w_ref / w_ours:6.1f}x | {c_ref:8.2f} {c_ours:7.2f} "
          f"{c_ref / c_ours:6.1f}x | {ref:14.8f} {ours:14.8f} {rel:9.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--n", type=int, default=4096, help="samples per set (well-conditioned case)")
    args = parser.parse_args()
    d = args.dim
    print(f"D = {d}, OMP_NUM_THREADS = {os.environ.get('OMP_NUM_THREADS', 'unset')}, cpus = {os.cpu_count()}")
    print(f"{'':<28} | {'wall seconds':^23} | {'CPU seconds':^23} |")
    print(f"{'case':<28} | {'sqrtm':>8} {'ours':>7} {'ratio':>7} | {'sqrtm':>8} {'ours':>7} {'ratio':>7} | "
          f"{'FID sqrtm':>14} {'FID ours':>14} {'rel diff':>9}")
    compare(f"N = {args.n} (well-conditioned)", statistics(args.n, d, 0), statistics(args.n, d, 1, 1.2, 0.05))
    n_small = max(d // 4, 3)
    compare(f"N = {n_small} < D (singular)", statistics(n_small, d, 2), statistics(n_small, d, 3, 1.2, 0.05))


if __name__ == "__main__":
    main()
