"""Template matching with four similarity measures (Chapter 1).

For an image f and a template g of size h x w (summing over channels too), the
valid-mode score map h[m, n] has shape (H - h + 1, W - w + 1):

- ``corr``:      h[m,n] = sum_{k,l} g[k,l] f[m+k, n+l]                 (plain filtering)
- ``zero_mean``: h[m,n] = sum_{k,l} (g[k,l] - mean(g)) f[m+k, n+l]
- ``ssd``:       h[m,n] = sum_{k,l} (g[k,l] - f[m+k, n+l])^2            (lower is better)
- ``ncc``:       h[m,n] = sum (g - mean g)(f_w - mean f_w) / sqrt(sum (g - mean g)^2 sum (f_w - mean f_w)^2)

(the definitions of the lecture slides, Zhu 2025; NCC as Lewis 1995 computes it, and
as ``skimage.feature.match_template`` does).  SSD is built from linear filters:
sum g^2 - 2 (g correlated with f) + (box filter of f^2).  Correlations use the FFT for
large templates and direct convolution for small ones; window sums use running
sums (integral images), so NCC costs about as much as one correlation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from perceptlab.validate import check_image

METHODS = ("corr", "zero_mean", "ssd", "ncc")
_FFT_MIN_TEMPLATE = 16  # measured (benchmarks/bench_matching.py): float64 direct convolution loses from 4x4 up


def _as_chw(x: torch.Tensor, name: str) -> torch.Tensor:
    check_image(x, name, ndim=(2, 3))
    return x[None] if x.dim() == 2 else x


def correlate(image: torch.Tensor, template: torch.Tensor, use_fft: bool | None = None) -> torch.Tensor:
    """Valid-mode cross-correlation summed over channels.

    Args:
        image: (C, H, W) tensor (any real values).
        template: (C, h, w) tensor, h <= H, w <= W.
        use_fft: force the FFT (True) or direct (False) path; None picks by template size.
    Returns:
        (H - h + 1, W - w + 1) tensor: sum_{c,k,l} template[c,k,l] image[c, m+k, n+l].
    """
    C, H, W = image.shape
    _, h, w = template.shape
    if use_fft is None:
        use_fft = h * w >= _FFT_MIN_TEMPLATE
    if not use_fft:
        return F.conv2d(image[None], template[None])[0, 0]
    fh, fw = H + h - 1, W + w - 1  # linear (not circular) correlation
    spec = torch.fft.rfft2(image, s=(fh, fw)) * torch.fft.rfft2(torch.flip(template, (-2, -1)), s=(fh, fw))
    full = torch.fft.irfft2(spec.sum(0), s=(fh, fw))
    return full[h - 1: H, w - 1: W]


def window_sum(image: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Sum of (C, H, W) ``image`` over every h x w window and all channels, via running sums.

    Returns (H - h + 1, W - w + 1). This is the "box filter" of the slides.
    """
    s = image.sum(0)
    s = F.pad(s.cumsum(0).cumsum(1), (1, 0, 1, 0))
    return s[h:, w:] - s[:-h, w:] - s[h:, :-w] + s[:-h, :-w]


def match_template(image: torch.Tensor, template: torch.Tensor, method: str = "ncc") -> torch.Tensor:
    """Score every placement of ``template`` in ``image`` (valid mode).

    Args:
        image: (H, W) or (C, H, W) float tensor in [0, 1].
        template: (h, w) or (C, h, w) float tensor in [0, 1], same number of channels, h <= H, w <= W.
        method: "corr", "zero_mean", "ssd" (lower = better match) or "ncc" (in [-1, 1]).
    Returns:
        Score map of shape (H - h + 1, W - w + 1), dtype of ``image``.
        For "ncc" windows with zero variance score 0, as in scikit-image.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    f, g = _as_chw(image, "image"), _as_chw(template, "template")
    if f.shape[0] != g.shape[0]:
        raise ValueError(f"template must have the image's {f.shape[0]} channel(s), got {g.shape[0]}")
    _, h, w = g.shape
    if h > f.shape[1] or w > f.shape[2]:
        raise ValueError(f"template must be no larger than the image {tuple(f.shape[1:])}, got {(h, w)}")
    dtype = image.dtype
    f, g = f.double(), g.double()  # running sums and FFTs lose precision in float32
    if method == "corr":
        out = correlate(f, g)
    elif method == "zero_mean":
        out = correlate(f, g - g.mean())
    elif method == "ssd":
        out = (g * g).sum() - 2 * correlate(f, g) + window_sum(f * f, h, w)
        out = out.clamp_min(0)
    else:
        n = g.numel()
        g0 = g - g.mean()
        numerator = correlate(f, g0)  # sum (g - gbar) f_w == sum (g - gbar)(f_w - fbar_w)
        s1, s2 = window_sum(f, h, w), window_sum(f * f, h, w)
        f_var = (s2 - s1 * s1 / n).clamp_min(0)
        denominator = torch.sqrt(f_var * (g0 * g0).sum())
        eps = torch.finfo(dtype).eps
        out = torch.where(denominator > eps, numerator / denominator.clamp_min(eps), torch.zeros_like(numerator))
    return out.to(dtype)


def local_maxima(score: torch.Tensor, min_distance: int = 1) -> torch.Tensor:
    """Boolean mask of points equal to the maximum of their (2d+1)^2 neighbourhood."""
    if score.dim() != 2:
        raise ValueError(f"score must be a 2-D map (H, W), got shape {tuple(score.shape)}")
    k = 2 * min_distance + 1
    pooled = F.max_pool2d(score[None, None], k, stride=1, padding=min_distance)[0, 0]
    return score >= pooled


def find_peaks(score: torch.Tensor, k: int = 1, min_distance: int = 5, threshold: float | None = None,
               lower_is_better: bool = False) -> list[tuple[int, int, float]]:
    """Top-``k`` detections with non-maximum suppression.

    Candidates are local maxima within ``min_distance`` pixels (a max-pool window)
    that pass ``threshold`` if given (scores at most ``threshold`` with
    ``lower_is_better``, as for SSD). Going from the best candidate down, one is
    kept only if it is more than ``min_distance`` pixels (Chebyshev distance)
    from every kept one, so plateaus and ties yield a single detection. Returns up
    to ``k`` tuples ``(row, col, score)``, best first.
    """
    s = -score if lower_is_better else score
    mask = local_maxima(s, min_distance)
    if threshold is not None:
        mask &= s >= (-threshold if lower_is_better else threshold)
    rows, cols = torch.nonzero(mask, as_tuple=True)
    order = torch.argsort(s[rows, cols], descending=True, stable=True)
    kept: list[tuple[int, int, float]] = []
    for i in order.tolist():
        r, c = int(rows[i]), int(cols[i])
        if all(max(abs(r - kr), abs(c - kc)) > min_distance for kr, kc, _ in kept):
            kept.append((r, c, float(score[r, c])))
            if len(kept) == k:
                break
    return kept


def detections(score: torch.Tensor, threshold: float, min_distance: int = 5,
               lower_is_better: bool = False) -> list[tuple[int, int, float]]:
    """All thresholded detections after non-maximum suppression (see :func:`find_peaks`)."""
    return find_peaks(score, k=score.numel(), min_distance=min_distance, threshold=threshold,
                      lower_is_better=lower_is_better)


def normalize_map(score: torch.Tensor) -> torch.Tensor:
    """Rescale a score map to [0, 1] for display or thresholding by a fraction of the range."""
    lo, hi = score.min(), score.max()
    return (score - lo) / (hi - lo) if hi > lo else torch.zeros_like(score)
