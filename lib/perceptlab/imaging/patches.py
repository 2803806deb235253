"""Windows of patches: the one window convention of the patch losses and the S-CNN (Chapter 5).

Amir & Weiss (2021) compare the distributions of small P x P patches inside W x W pooling
windows.  Everything that uses that idea (the S-CNN, its infinite-width limit, the exact patch
MMD and its random-feature estimate) uses this module's convention, so that Theorem 2.1's
equality holds exactly and the three can be compared number for number:

- windows are the W x W regions of the image whose top-left corners lie at multiples of the
  stride S, with no padding: ``(H - W) // S + 1`` rows of windows (and the same for columns);
  pixels right of or below the last window are not used when ``(H - W) % S != 0``;
- a window's patches are its ``(W - P + 1)^2`` stride-1 P x P patches (all channels);
- on the output map of a valid (unpadded) P x P convolution, side ``H - P + 1``, averaging a
  window's patch responses is average pooling with kernel ``W - P + 1`` and stride S
  (:func:`pool_windows`).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from perceptlab.validate import check_positive_int


def window_grid(height: int, width: int, patch_size: int, window: int, stride: int) -> tuple[int, int]:
    """Check a window geometry on an ``height`` x ``width`` image; return (rows, columns) of windows.

    Raises ValueError naming the argument: ``patch_size``, ``window`` or ``stride`` not a positive
    integer, ``patch_size > window``, or ``window`` larger than the image's smaller side.
    """
    check_positive_int(patch_size, "patch_size")
    check_positive_int(window, "window")
    check_positive_int(stride, "stride")
    if patch_size > window:
        raise ValueError(f"patch_size must be <= window (a window must hold at least one patch), "
                         f"got patch_size={patch_size}, window={window}")
    if window > min(height, width):
        raise ValueError(f"window must be <= the image side, got window={window} for images of "
                         f"{height}x{width} pixels")
    return (height - window) // stride + 1, (width - window) // stride + 1


def patches_per_window(patch_size: int, window: int) -> int:
    """The number n = (W - P + 1)^2 of stride-1 P x P patches in a W x W window."""
    return (window - patch_size + 1) ** 2


def center_patches(patches: torch.Tensor, channels: int) -> torch.Tensor:
    """Subtract each patch's own mean per channel (the channel normalisation of Amir & Weiss 2021, Sec. 3).

    ``patches`` (..., C * P * P), flattened channel-major as :func:`window_patches` returns them.
    """
    shape = patches.shape
    p = patches.reshape(*shape[:-1], channels, shape[-1] // channels)
    return (p - p.mean(-1, keepdim=True)).reshape(shape)


def window_patches(x: torch.Tensor, patch_size: int, window: int, stride: int,
                   normalize_channels: bool = False) -> torch.Tensor:
    """All patches of every window: (N, C, H, W) -> (N, L, n, C * P * P).

    L is the number of windows (rows x columns of :func:`window_grid`, row-major), n =
    (W - P + 1)^2 the patches per window (row-major inside the window), and each patch is
    flattened channel-major (C, P, P), as ``F.unfold`` does.  With ``normalize_channels`` each
    patch's per-channel mean is subtracted (:func:`center_patches`).
    """
    n, c, h, w = x.shape
    rows, cols = window_grid(h, w, patch_size, window, stride)
    wins = F.unfold(x, window, stride=stride)  # (N, C*W*W, L)
    wins = wins.transpose(1, 2).reshape(n * rows * cols, c, window, window)
    patches = F.unfold(wins, patch_size).transpose(1, 2)  # (N*L, n_p, C*P*P)
    patches = patches.reshape(n, rows * cols, patches.shape[1], c * patch_size * patch_size)
    return center_patches(patches, c) if normalize_channels else patches


def image_patches(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Every stride-1 P x P patch of the image, as rows: (N, C, H, W) -> (N, (H-P+1)(W-P+1), C * P * P).

    Rows in row-major order of the patches' top-left corners; a patch flattened channel-major.
    A valid P x P convolution is then one matrix product, ``image_patches(x, P) @ w.flatten(1).T``,
    and :func:`patch_map` turns its result back into a feature map.
    """
    return F.unfold(x, patch_size).transpose(1, 2)


def patch_map(rows: torch.Tensor, height: int, width: int, patch_size: int) -> torch.Tensor:
    """Per-patch rows (N, (H-P+1)(W-P+1), K) as a map (N, K, H - P + 1, W - P + 1) (a channels-last view, no copy)."""
    n, _, k = rows.shape
    return rows.view(n, height - patch_size + 1, width - patch_size + 1, k).permute(0, 3, 1, 2)


def pool_windows(responses: torch.Tensor, patch_size: int, window: int, stride: int) -> torch.Tensor:
    """Average patch responses over each window: (N, K, H - P + 1, W - P + 1) -> (N, K, rows, columns).

    ``responses`` is the output map of a valid P x P convolution of an H x W image (one value
    per patch and channel); the result is the mean over each window's patches, i.e. average
    pooling with kernel W - P + 1 and stride S, and its spatial size is :func:`window_grid`'s.
    """
    h, w = responses.shape[-2] + patch_size - 1, responses.shape[-1] + patch_size - 1
    window_grid(h, w, patch_size, window, stride)
    return F.avg_pool2d(responses, window - patch_size + 1, stride)


Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (B, n, d), (B, m, d) -> (B, n, m)


def mmd2(kernel: Kernel, a: torch.Tensor, b: torch.Tensor, chunk: int = 2 ** 20) -> torch.Tensor:
    """The biased (V-statistic) squared MMD between the sample sets ``a`` (B, n, d) and ``b`` (B, m, d), (B,).

        MMD^2 = (1/n^2) sum_ij k(a_i, a_j) - (2/nm) sum_ij k(a_i, b_j) + (1/m^2) sum_ij k(b_i, b_j)

    (Gretton et al. 2012, eq. 5; Amir & Weiss 2021, Sec. 2).  ``kernel(u, v)`` returns the
    (B, n, m) Gram blocks; the B sets are processed in groups of about ``chunk`` kernel entries,
    so memory stays bounded however many windows there are (small groups also stay in the CPU's
    cache, which makes them faster).  Differentiable.
    """
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"a and b must be (B, n, d) and (B, m, d) sample sets, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    per = max(1, chunk // max(a.shape[1], b.shape[1]) ** 2)
    out = []
    for i in range(0, a.shape[0], per):
        u, v = a[i: i + per], b[i: i + per]
        out.append(kernel(u, u).mean((1, 2)) - 2 * kernel(u, v).mean((1, 2)) + kernel(v, v).mean((1, 2)))
    return torch.cat(out)
