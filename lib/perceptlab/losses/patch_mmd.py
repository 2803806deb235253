"""The patch MMD loss of Amir & Weiss (2021, Sec. 3): compare the distributions of small patches
inside each pooling window directly, exactly or with random Fourier features.

For images x, y (N, C, H, W) in [0, 1], windows w (W x W at stride S, no padding; the convention of
:mod:`perceptlab.imaging.patches`), and the (W - P + 1)^2 stride-1 P x P patches p_i of x and q_j
of y inside a window (flattened over all channels):

    patch_mmd(x, y) = (1 / #windows) sum_w MMD^2_k(w),
    MMD^2_k(w) = mean_ij k(p_i, p_j) - 2 mean_ij k(p_i, q_j) + mean_ij k(q_i, q_j)   (biased, V-statistic)
    k(p, q) = exp(-||p - q||^2 / (2 sigma^2))                                        (eq. 3)

The paper uses P = 3, W = 32, S = 16 and sigma "always in the range (0.5, 0.75)", and channel
normalisation (each patch's per-channel mean subtracted) for 2AFC only.  It does not say which
image range sigma refers to; here images are in [0, 1] (the library's convention) and the default
:data:`SIGMA` = 0.6 is in the paper's range.

The authors' follow-up code (``ariel415el/PerceptualLossExperiments``, ``losses/mmd/``) differs:
it uses exp(-d^2 / sigma^2) (no factor 2), scales a per-pixel sigma by P^2, and reflect-pads the
image.  This module follows the paper.
"""
from __future__ import annotations

import math

import torch

from perceptlab.imaging.patches import image_patches, mmd2, window_grid, window_patches
from perceptlab.losses._base import FeatureMapDistance, _check_pair, _check_positive, _reduce, _Twin
from perceptlab.validate import check_image, check_positive_int

#: The default kernel bandwidth, for patches of images in [0, 1] (the paper: sigma in (0.5, 0.75)).
SIGMA = 0.6


def gaussian_kernel(sigma: float):
    """k(p, q) = exp(-||p - q||^2 / (2 sigma^2)) as a Gram-block function (B, n, d), (B, m, d) -> (B, n, m)."""
    scale = -1.0 / (2 * sigma ** 2)

    def kernel(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        # ||p - q||^2 = ||p||^2 + ||q||^2 - 2 p.q, with one batched matrix product
        sq = torch.baddbmm((p * p).sum(-1, keepdim=True), p, q.transpose(-1, -2), alpha=-2)
        if torch.is_grad_enabled() and (p.requires_grad or q.requires_grad):
            return torch.exp((sq + (q * q).sum(-1).unsqueeze(-2)).clamp_min(0) * scale)
        return sq.add_((q * q).sum(-1).unsqueeze(-2)).clamp_min_(0).mul_(scale).exp_()  # in place: no graph to keep
    return kernel


class _GaussianCrossMean(torch.autograd.Function):
    """mean_ij k(p_i, t_j) per set for p (B, n, d) and fixed t (B, m, d), with the Gaussian kernel,
    in blocks of ``chunk`` columns; the backward pass recomputes each block instead of keeping the
    (B, n, m) kernel: d/dp_i = sum_j k(p_i, t_j) (t_j - p_i) / (sigma^2 n m)."""

    @staticmethod
    def _blocks(p, t, sigma, chunk):
        kernel = gaussian_kernel(sigma)
        for j in range(0, t.shape[1], chunk):
            yield j, kernel(p, t[:, j: j + chunk])

    @staticmethod
    def forward(ctx, p, t, sigma, chunk):
        ctx.save_for_backward(p, t)
        ctx.sigma, ctx.chunk = sigma, chunk
        with torch.no_grad():
            total = sum(k.sum((1, 2)) for _, k in _GaussianCrossMean._blocks(p, t, sigma, chunk))
        return total / (p.shape[1] * t.shape[1])

    @staticmethod
    def backward(ctx, grad):
        p, t = ctx.saved_tensors
        gp = torch.zeros_like(p)
        with torch.no_grad():
            for j, k in _GaussianCrossMean._blocks(p, t, ctx.sigma, ctx.chunk):
                gp += k @ t[:, j: j + ctx.chunk] - k.sum(-1, keepdim=True) * p
        scale = grad / (ctx.sigma ** 2 * p.shape[1] * t.shape[1])
        return gp * scale.view(-1, 1, 1), None, None, None


def gaussian_cross_mean(p: torch.Tensor, t: torch.Tensor, sigma: float, chunk: int = 1024) -> torch.Tensor:
    """mean_ij exp(-||p_i - t_j||^2 / (2 sigma^2)) for each of B sets, (B,); differentiable in ``p`` only.

    p (B, n, d), t (B, m, d).  The kernel is computed in blocks of ``chunk`` columns in both passes,
    so memory stays O(n chunk) for any number m of target patches (the Generalized Image Mean
    under the exact patch MMD compares one image's patches with those of all its targets).
    """
    return _GaussianCrossMean.apply(p, t.detach(), float(sigma), chunk)


def _check_geometry(x: torch.Tensor, patch_size: int, window: int, stride: int) -> None:
    window_grid(x.shape[-2], x.shape[-1], patch_size, window, stride)


def window_mmd(p: torch.Tensor, q: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """The biased squared MMD with the Gaussian kernel between two patch sets of one window, a scalar.

    ``p`` (n, d) and ``q`` (m, d): one flattened patch per row.  The building block of :func:`patch_mmd`.
    """
    sigma = _check_positive(sigma, "sigma")
    if p.dim() != 2 or q.dim() != 2 or p.shape[1] != q.shape[1]:
        raise ValueError(f"p and q must be (n, d) and (m, d) patch sets, got {tuple(p.shape)} and {tuple(q.shape)}")
    return mmd2(gaussian_kernel(sigma), p[None], q[None])[0]


def patch_mmd(x: torch.Tensor, y: torch.Tensor, patch_size: int = 3, window: int = 32, stride: int = 16,
              sigma: float = SIGMA, normalize_channels: bool = False, reduction: str = "none") -> torch.Tensor:
    """The exact patch MMD (module docstring): mean over windows of the biased MMD^2 of the patch sets, (N,).

    Args:
        x, y: (N, C, H, W) images in [0, 1], the same shape.
        patch_size, window, stride: P, W and S (windows: :mod:`perceptlab.imaging.patches`).
        sigma: the Gaussian kernel's bandwidth (for values in [0, 1]).
        normalize_channels: subtract each patch's per-channel mean first (the paper's 2AFC setting).
        reduction: "none" gives (N,), "mean" their mean.
    Raises:
        ValueError: sigma <= 0, P > W, W larger than the image side, S < 1, shapes that differ, NaNs.
    """
    sigma = _check_positive(sigma, "sigma")
    _check_pair(x, y, reduction)
    _check_geometry(x, patch_size, window, stride)
    px = window_patches(x, patch_size, window, stride, normalize_channels)
    py = window_patches(y, patch_size, window, stride, normalize_channels)
    n, windows = px.shape[:2]
    per_window = mmd2(gaussian_kernel(sigma), px.flatten(0, 1), py.flatten(0, 1)).view(n, windows)
    return _reduce(per_window.mean(1), reduction)


class PatchMMD(_Twin):
    """Module twin of :func:`patch_mmd`; ``forward(x, y)`` -> (N,) with ``reduction="none"``."""

    fn = staticmethod(patch_mmd)

    def __init__(self, patch_size: int = 3, window: int = 32, stride: int = 16, sigma: float = SIGMA,
                 normalize_channels: bool = False, reduction: str = "none"):
        _check_positive(sigma, "sigma")
        super().__init__(patch_size=patch_size, window=window, stride=stride, sigma=sigma,
                         normalize_channels=normalize_channels, reduction=reduction)
        self.label = (f"patch MMD, exact (P={patch_size}, W={window}, S={stride}, sigma={sigma:g}"
                      + (", mean-removed patches)" if normalize_channels else ")"))

    def mean_objective(self, targets: torch.Tensor):
        """``y -> (1/N) sum_i patch_mmd(y, t_i)`` for one image y (1, C, H, W), exactly.

        Per window, (1/N) sum_i MMD^2(y, t_i) = mean k(y, y) - 2 mean k(y, T) + (1/N) sum_i mean k(t_i, t_i),
        with T the patches of all N targets in that window: the cross term is one kernel block
        against the pooled patches, and the last term is a constant computed once.
        """
        check_image(targets, "targets")
        o = self.options
        _check_geometry(targets, o["patch_size"], o["window"], o["stride"])
        kernel = gaussian_kernel(o["sigma"])
        patches = lambda z: window_patches(z, o["patch_size"], o["window"], o["stride"], o["normalize_channels"])  # noqa: E731
        with torch.no_grad():
            pt = patches(targets)  # (N, L, n, d)
            n_targets, windows = pt.shape[:2]
            pooled = pt.transpose(0, 1).flatten(1, 2)  # (L, N n, d)
            flat = pt.flatten(0, 1)
            own = torch.cat([kernel(flat[i: i + 1], flat[i: i + 1]).mean((1, 2)) for i in range(len(flat))])
            own = own.view(n_targets, windows).mean(0)  # (L,)

        def objective(y: torch.Tensor) -> torch.Tensor:
            py = patches(y)[0]  # (L, n, d)
            cross = gaussian_cross_mean(py, pooled, o["sigma"])
            return (kernel(py, py).mean((1, 2)) - 2 * cross + own).mean()
        return objective


# --------------------------------------------------------------------------- random Fourier features


def random_fourier_filters(n_features: int, channels: int, patch_size: int, sigma: float,
                           generator: torch.Generator, normalize_channels: bool = False
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random Fourier features of the Gaussian kernel as convolution filters (Rahimi & Recht 2007).

    w ~ N(0, I / sigma^2) of shape (r, C, P, P) and b ~ U(0, 2 pi) of shape (r,), so that for
    phi(p) = sqrt(2 / r) cos(w . p + b), E[phi(p) . phi(q)] = exp(-||p - q||^2 / (2 sigma^2)).
    With ``normalize_channels`` each filter's per-channel mean is subtracted: w . (p - mean) equals
    (w - mean w) . p, so this is the channel normalisation of the patches, done on the filters.
    """
    w = torch.randn(n_features, channels, patch_size, patch_size, generator=generator, dtype=torch.float64) / sigma
    if normalize_channels:
        w = w - w.mean((2, 3), keepdim=True)
    b = torch.rand(n_features, generator=generator, dtype=torch.float64) * (2 * math.pi)
    return w, b


def window_means(length: int, patch_size: int, window: int, stride: int, dtype=torch.float32,
                 device=None) -> torch.Tensor:
    """The 1-D averaging matrix of the windows along one image axis: (windows, length - P + 1).

    Row i averages the ``window - patch_size + 1`` patch positions of window i (starting at
    ``i * stride``); applied along both axes it is :func:`perceptlab.imaging.patches.pool_windows`.
    """
    positions, k = length - patch_size + 1, window - patch_size + 1
    starts = torch.arange(0, positions - k + 1, stride, device=device)
    cols = torch.arange(positions, device=device)
    inside = (cols >= starts[:, None]) & (cols < starts[:, None] + k)
    return inside.to(dtype) / k


class _PooledCosines(torch.autograd.Function):
    """Window means of cos(w . p + b) for the patch rows (N, H'W', d + 1) (a last column of ones carries
    the bias) and augmented filters [w, b] (r, d + 1): (N, rows, columns, r).

    With A_r, A_c the window-averaging matrices (:func:`window_means`) and z = w . p + b, the
    features are f = A_r cos(z) A_c^T per filter, and df/dp = -(A_r^T g A_c) sin(z) w.  The work is
    done ``group`` images and ``chunk`` filters at a time (blocks small enough to stay in the CPU's
    cache), and the backward pass recomputes each block's z and takes its sine in place, so no
    (N, H', W', r) activation is kept between the passes.
    """

    @staticmethod
    def forward(ctx, rows, w, a_r, a_c, map_size, chunk, group):
        ctx.save_for_backward(rows, w, a_r, a_c)
        ctx.sizes = map_size, chunk, group
        (h, wd), (n_rows, n_cols) = map_size, (a_r.shape[0], a_c.shape[0])
        out = rows.new_empty(rows.shape[0], n_rows, n_cols, w.shape[0])
        for i in range(0, rows.shape[0], group):
            block = rows[i: i + group]
            for j in range(0, w.shape[0], chunk):
                c = (block @ w[j: j + chunk].T).cos_()  # (g, H'W', k)
                g, k = c.shape[0], c.shape[-1]
                c = (a_r @ c.view(g, h, wd * k)).view(g, n_rows, wd, k)  # average over each window's rows ...
                out[i: i + group, :, :, j: j + chunk] = a_c @ c  # ... and its columns
        return out

    @staticmethod
    def backward(ctx, grad):
        rows, w, a_r, a_c = ctx.saved_tensors
        (h, wd), chunk, group = ctx.sizes
        grad_rows = torch.empty_like(rows)
        for i in range(0, rows.shape[0], group):
            block, total = rows[i: i + group], None
            for j in range(0, w.shape[0], chunk):
                wc = w[j: j + chunk]
                g, k = block.shape[0], wc.shape[0]
                share = (a_c.T @ grad[i: i + group, :, :, j: j + chunk]).reshape(g, a_r.shape[0], wd * k)
                share = (a_r.T @ share).view(g, h * wd, k)  # each patch's share of its windows' gradients
                part = (block @ wc.T).sin_().mul_(share) @ wc
                total = part if total is None else total.add_(part)
            grad_rows[i: i + group] = -total
        return grad_rows, None, None, None, None, None, None


def pooled_fourier_features(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, patch_size: int, window: int,
                            stride: int, chunk: int = 64, group: int = 4) -> torch.Tensor:
    """sqrt(2 / r) times the window means of cos(w . p + b): (N, C, H, W) -> (N, r, rows, columns).

    The same numbers as the direct implementation (one convolution with all r filters, a cosine,
    average pooling over the windows), computed as matrix products on the patches
    (:func:`perceptlab.imaging.patches.image_patches`), ``group`` images and ``chunk`` filters at a
    time, with its own backward pass that recomputes each block instead of keeping it: the
    (N, r, H - P + 1, W - P + 1) activations never exist.  ``benchmarks/bench_patch_mmd.py``
    measures time and memory against the direct implementation.
    """
    height, width = x.shape[-2:]
    window_grid(height, width, patch_size, window, stride)
    rows = image_patches(x, patch_size)
    rows = torch.cat([rows, rows.new_ones(rows.shape[0], rows.shape[1], 1)], 2)  # the bias as a last weight
    w = torch.cat([w.flatten(1), b[:, None]], 1).to(rows)
    a_r = window_means(height, patch_size, window, stride, rows.dtype, rows.device)
    a_c = window_means(width, patch_size, window, stride, rows.dtype, rows.device)
    map_size = (height - patch_size + 1, width - patch_size + 1)
    pooled = _PooledCosines.apply(rows, w, a_r, a_c, map_size, chunk, group)  # (N, rows, columns, r)
    return math.sqrt(2.0 / w.shape[0]) * pooled.permute(0, 3, 1, 2)


class PatchMMDRFF(FeatureMapDistance):
    """The patch MMD estimated with r random Fourier features: a two-layer CNN (Amir & Weiss 2021, Sec. 3).

    Layer 1 is a P x P convolution with the filters of :func:`random_fourier_filters` and a cosine,
    phi(p) = sqrt(2 / r) cos(w . p + b); layer 2 averages phi over each window (the windows of
    :func:`patch_mmd`); the distance is the squared L2 between the pooled features divided by the
    number of windows, (N,).  Since E[phi(p) . phi(q)] = k(p, q) exactly, its expectation over the
    draw of (w, b) is exactly :func:`patch_mmd` (biased V-statistic, mean over windows); its
    standard deviation shrinks like 1 / sqrt(r).

    Args:
        n_features: r.
        patch_size, window, stride, sigma, normalize_channels: as :func:`patch_mmd`.
        seed: seed of the draw; the same seed draws the same features on every machine.
        redraw: draw new features on every call (from a generator seeded with ``seed``), an
            unbiased estimate whose randomness averages out over training steps.
        reduction: "none" (N,) or "mean".
    """

    def __init__(self, n_features: int = 1024, patch_size: int = 3, window: int = 32, stride: int = 16,
                 sigma: float = SIGMA, normalize_channels: bool = False, seed: int = 0, redraw: bool = False,
                 reduction: str = "none"):
        super().__init__()
        check_positive_int(n_features, "n_features")
        self.sigma = _check_positive(sigma, "sigma")
        window_grid(window, window, patch_size, window, stride)  # P <= W and S >= 1, before any image is seen
        self.n_features, self.patch_size, self.window, self.stride = n_features, patch_size, window, stride
        self.normalize_channels, self.seed, self.redraw, self.reduction = normalize_channels, seed, redraw, reduction
        self._generator = torch.Generator().manual_seed(seed)
        self._filters: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.label = (f"patch MMD, {n_features} random Fourier features (P={patch_size}, W={window}, S={stride}, "
                      f"sigma={sigma:g}, seed {seed}" + (", redrawn each call" if redraw else "")
                      + (", mean-removed patches)" if normalize_channels else ")"))

    def filters(self, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (w, b) used for images with ``channels`` channels (float64; drawn once unless ``redraw``)."""
        if self.redraw:
            return random_fourier_filters(self.n_features, channels, self.patch_size, self.sigma, self._generator,
                                          self.normalize_channels)
        if channels not in self._filters:
            g = torch.Generator().manual_seed(self.seed)
            self._filters[channels] = random_fourier_filters(self.n_features, channels, self.patch_size, self.sigma,
                                                             g, self.normalize_channels)
        return self._filters[channels]

    def features(self, x: torch.Tensor, filters: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Pooled features (N, r, rows, columns) of x (:func:`pooled_fourier_features`)."""
        w, b = self.filters(x.shape[1]) if filters is None else filters
        return pooled_fourier_features(x, w, b, self.patch_size, self.window, self.stride)

    def compare(self, fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
        """The distance (N,) from pooled features: ||fx - fy||^2 / #windows."""
        return (fx - fy).pow(2).flatten(1).sum(1) / (fx.shape[-2] * fx.shape[-1])

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y, self.reduction)
        filters = self.filters(x.shape[1])  # one draw for both images, also when redrawing
        return _reduce(self.compare(self.features(x, filters), self.features(y, filters)), self.reduction)

    def mean_objective(self, targets: torch.Tensor):
        if self.redraw:
            raise ValueError("mean_objective needs fixed features: build PatchMMDRFF with redraw=False")
        return super().mean_objective(targets)

    def extra_repr(self) -> str:
        return self.label
