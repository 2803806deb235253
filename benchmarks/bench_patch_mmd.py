"""Cost of the patch MMD with random Fourier features (Chapter 5), as ratios measured in one run.

Amir & Weiss (2021, Sec. 3) describe the RFF patch MMD as a two-layer CNN: a convolution with r
random filters (w ~ N(0, I / sigma^2), b ~ U(0, 2 pi)), a cosine, and average pooling over the
windows.  Written that way, as one autograd graph (``direct`` below, the baseline of the ratios),
it materialises (N, r, H - P + 1, W - P + 1) activations for x and keeps them for the backward
pass.  The library's :class:`perceptlab.losses.PatchMMDRFF` computes the same numbers (checked at
start-up, values and gradients) as matrix products on the patches, 64 filters at a time, and
recomputes each chunk in the backward pass instead of keeping it (activation checkpointing).

Rows: the direct implementation, the library's RFF loss, the exact patch MMD
(:class:`perceptlab.losses.PatchMMD`), the random VGG16 feature loss and L2 (from
``bench_losses.LOSSES``); all with r = 1024, P = 3, W = 32, S = 16, sigma = 0.6 where they apply.
Timing and memory are measured exactly as in ``bench_losses.py`` (its ``run``: median of
round-robin repeats, forward + backward w.r.t. x, peak memory beyond the inputs).

Run from the repository root::

    .venv/bin/python benchmarks/bench_patch_mmd.py                     # 32x3x64x64 on the CPU
    .venv/bin/python benchmarks/bench_patch_mmd.py --quick             # a smoke run
    .venv/bin/python benchmarks/bench_patch_mmd.py --sessions 5 --json benchmarks/results/bench_patch_mmd_quick_cpu.json

``--sessions N`` repeats the whole measurement in N fresh processes and records each session's
ratios: on a CPU the direct implementation's time varies between processes (how its half-gigabyte
activations are allocated), so one session's ratio is not the whole story.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_losses  # noqa: E402

import perceptlab  # noqa: E402
from perceptlab import losses  # noqa: E402

N_FEATURES = 1024


class DirectRFF(nn.Module):
    """The RFF patch MMD as the paper describes it: one convolution with all r filters, cos, average pooling."""

    def __init__(self, rff: losses.PatchMMDRFF):
        super().__init__()
        self.rff = rff
        self.label = "direct: conv2d with all r filters, cos, avg_pool2d, one autograd graph"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.rff.filters(x.shape[1])
        w, b = w.to(x), b.to(x)
        pool = self.rff.window - self.rff.patch_size + 1
        return math.sqrt(2.0 / w.shape[0]) * F.avg_pool2d(torch.cos(F.conv2d(x, w, b)), pool, self.rff.stride)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.rff.compare(self.features(x), self.features(y)).mean()


def _rff() -> losses.PatchMMDRFF:
    return losses.PatchMMDRFF(N_FEATURES, reduction="mean")


LOSSES = {
    "RFF direct": lambda: DirectRFF(_rff()),
    "PatchMMDRFF": _rff,
    "PatchMMD exact": lambda: losses.PatchMMD(reduction="mean"),
    "FeatureLoss(vgg16)": bench_losses.LOSSES["FeatureLoss(vgg16)"],
    "L2": bench_losses.LOSSES["L2"],
}
QUICK = {"batch": 2, "size": 32, "repeats": 1, "warmup": 1}
DEFAULTS = {"batch": 32, "size": 64, "repeats": 5, "warmup": 1}


def check_same_numbers(device: torch.device, size: int) -> float:
    """The library's RFF and the direct one give the same loss and gradient; returns the max gradient difference."""
    x = torch.rand(2, 3, size, size, device=device, requires_grad=True)
    y = torch.rand(2, 3, size, size, device=device)
    window = min(32, size)
    ours = losses.PatchMMDRFF(N_FEATURES, window=window, stride=window // 2, reduction="mean").to(device)
    direct = DirectRFF(losses.PatchMMDRFF(N_FEATURES, window=window, stride=window // 2, reduction="mean"))
    g1, = torch.autograd.grad(ours(x, y), x)
    g2, = torch.autograd.grad(direct(x, y), x)
    if not torch.allclose(ours(x, y), direct(x, y), rtol=1e-4) or not torch.allclose(g1, g2, rtol=1e-3, atol=1e-9):
        raise AssertionError("PatchMMDRFF and the direct implementation disagree")
    return float((g1 - g2).abs().max())


def main(argv: list[str] | None = None) -> dict:
    args = bench_losses.session_parser(__doc__).parse_args(argv)
    if args.sessions > 1:
        # fresh processes: on CPUs the direct implementation's time depends on how its large blocks are
        # allocated, which varies between processes more than between repeats
        runs = bench_losses.run_sessions(__file__, argv if argv is not None else sys.argv[1:], args.sessions,
                                         lambda r: str(r["summary"]))
        res = {**runs[0], "sessions": [r["summary"] for r in runs]}
        speedups = [r["speedup_over_direct"] for r in res["sessions"]]
        print(f"speed-up over the direct implementation in {len(runs)} sessions: "
              + ", ".join(f"{v:.2f}" for v in speedups))
        bench_losses.save(res, args.json)
        return res
    opts = dict(QUICK if args.quick else DEFAULTS)
    if args.repeats:
        opts["repeats"] = args.repeats
    device = perceptlab.default_device(args.device)
    diff = check_same_numbers(device, opts["size"])
    res = bench_losses.run(list(LOSSES), device, table=LOSSES, **opts)
    res["max_gradient_difference"] = diff
    res["n_features"] = N_FEATURES
    bench_losses.report(res)
    rows = {r["loss"]: r for r in res["results"]}
    ours, vgg = rows["PatchMMDRFF"], rows["FeatureLoss(vgg16)"]
    speedup = 1 / ours["time_ratio"]
    memory = ours["memory_ratio"]
    res["summary"] = {"speedup_over_direct": speedup, "memory_fraction_of_direct": memory,
                      "time_vs_featureloss": ours["time_ms"] / vgg["time_ms"]}
    print(f"PatchMMDRFF: {speedup:.2f}x faster than the direct implementation, "
          f"{'n/a' if memory is None else f'{memory:.3f}'} of its peak memory, "
          f"{ours['time_ms'] / vgg['time_ms']:.3f} of FeatureLoss(vgg16)'s time "
          f"(same numbers: max gradient difference {diff:.1e})")
    bench_losses.save(res, args.json)
    return res


if __name__ == "__main__":
    main()
