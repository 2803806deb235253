"""The Simple CNN (S-CNN) of Amir & Weiss (2021, Sec. 1.2) with random weights, and its infinite-width limit.

S-CNN(P, D, W, S, C): one P x P convolution, D 1 x 1 convolutions, every convolution followed by
a ReLU, all of width C, then average pooling over W x W windows at stride S
(:mod:`perceptlab.imaging.patches` fixes the window convention).  The paper's setting is
P = 3, D = 6, W = 32, S = 16, C = 1024.

Theorem 2.1: as C grows, the normalised distance ||h(x) - h(y)||^2 / C of the pooled features
tends to a sum over windows of the (biased) squared MMD between the two images' patch sets,
with a kernel K(p, q) on patches that the layers compose in closed form
(:func:`infinite_width_kernel`).  :func:`infinite_width_distance` computes that limit.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.imaging.patches import image_patches, mmd2, patch_map, pool_windows, window_grid, window_patches
from perceptlab.validate import check_image, check_positive_int, check_same_shape


def scnn_input(x: torch.Tensor) -> torch.Tensor:
    """What the S-CNN sees of an image in [0, 1]: 2x - 1, values in [-1, 1] (mid-grey is the zero vector).

    Both the finite network and its limit apply this map, so the kernel acts on centred patches.
    """
    return 2 * x - 1


class SCNN(nn.Module):
    """A random S-CNN (Amir & Weiss 2021, Sec. 1.2) with the initialisation the infinite-width theory assumes.

    Layers: ``Conv(in_channels -> width, P x P, valid)``, ReLU, then ``depth`` times
    ``Conv(width -> width, 1 x 1)``, ReLU; every weight drawn from N(0, 2 / fan_in) (He et al.
    2015) with ``torch.Generator().manual_seed(seed)``, no biases; then the window average
    (:func:`perceptlab.imaging.patches.pool_windows`).  Images (N, C, H, W) in [0, 1] are mapped
    to 2x - 1 first (:func:`scnn_input`).  The weights are fixed (no gradients); inputs get them.

    Args:
        patch_size: P, the first convolution's kernel size.
        depth: D, the number of 1 x 1 convolutions.
        width: C, the channels of every layer.
        window, stride: W and S of the pooling windows.
        in_channels: image channels.
        seed: seed of the weights.
        normalize_channels: make every first-layer filter zero-mean per input channel (over its
            P x P support), as Amir & Weiss do for random VGGs.  Then w . p = w . (p - mean), the
            network ignores each patch's per-channel mean, and its limit is the kernel on
            mean-removed patches (``infinite_width_distance(..., normalize_channels=True)``).
    """

    def __init__(self, patch_size: int = 3, depth: int = 6, width: int = 1024, window: int = 32, stride: int = 16,
                 in_channels: int = 3, seed: int = 0, normalize_channels: bool = False):
        super().__init__()
        for name, value in (("patch_size", patch_size), ("width", width), ("window", window),
                            ("stride", stride), ("in_channels", in_channels)):
            check_positive_int(value, name)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be an integer >= 0, got {depth!r}")
        if patch_size > window:
            raise ValueError(f"patch_size must be <= window, got patch_size={patch_size}, window={window}")
        self.patch_size, self.depth, self.width, self.window, self.stride = patch_size, depth, width, window, stride
        self.in_channels, self.seed = in_channels, seed
        g = torch.Generator().manual_seed(seed)
        shapes = [(width, in_channels, patch_size, patch_size)] + [(width, width, 1, 1)] * depth
        weights = [torch.randn(s, generator=g) * math.sqrt(2.0 / (s[1] * s[2] * s[3])) for s in shapes]
        if normalize_channels:
            weights[0] = weights[0] - weights[0].mean((2, 3), keepdim=True)
        self.weights = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in weights)
        self.normalize_channels = normalize_channels
        self.label = (f"S-CNN random (P={patch_size}, D={depth}, W={window}, S={stride}, C={width}, seed {seed}"
                      + (", zero-mean first-layer filters)" if normalize_channels else ")"))

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """The last ReLU layer before pooling, (N, width, H - P + 1, W - P + 1), one vector per patch.

        Computed as matrix products on the patches' rows (:func:`perceptlab.imaging.patches.image_patches`):
        the P x P convolution and the 1 x 1 convolutions are the same numbers as ``F.conv2d``, faster on CPUs.
        """
        check_image(x, "x", channels=(self.in_channels,))
        window_grid(x.shape[-2], x.shape[-1], self.patch_size, self.window, self.stride)
        h = image_patches(scnn_input(x.to(self.weights[0].dtype)), self.patch_size)
        for w in self.weights:
            h = F.relu(h @ w.flatten(1).T)
        return patch_map(h, x.shape[-2], x.shape[-1], self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Post-pooling features h(x), (N, width, rows, columns) of windows."""
        return pool_windows(self.responses(x), self.patch_size, self.window, self.stride)

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """||h(x) - h(y)||^2 / width over the post-pooling features, (N,) (the normalised distance of Theorem 2.1)."""
        check_same_shape(x, y, "x", "y")
        return self.compare(self(x), self(y))

    def compare(self, hx: torch.Tensor, hy: torch.Tensor) -> torch.Tensor:
        """:meth:`distance` from features already computed by ``forward``."""
        return (hx - hy).pow(2).flatten(1).sum(1) / self.width


def relu_kernel_step(k_xy: torch.Tensor, k_xx: torch.Tensor, k_yy: torch.Tensor) -> torch.Tensor:
    """One ReLU layer of width -> infinity with He-initialised weights (variance 2 / fan_in), in closed form.

    If the previous layer's kernel is k (so the pre-activations are Gaussian with covariance
    2 k), the next layer's kernel is the first-order arc-cosine kernel (Cho & Saul 2009):

        k'(x, y) = sqrt(k(x, x) k(y, y)) / pi * (sin t + (pi - t) cos t),
        t = arccos(k(x, y) / sqrt(k(x, x) k(y, y))),

    and k'(x, x) = k(x, x): He initialisation keeps the diagonal.  Where a norm is 0 the kernel is 0.
    """
    norms = (k_xx * k_yy).sqrt()
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    cos = (k_xy / safe).clamp(-1.0, 1.0)
    t = torch.arccos(cos)
    return torch.where(norms > 0, norms / math.pi * (torch.sin(t) + (math.pi - t) * cos), torch.zeros_like(norms))


def infinite_width_kernel(depth: int = 6) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The patch kernel K of an infinitely wide random S-CNN with ``depth`` 1 x 1 layers: (B, n, d), (B, m, d) -> (B, n, m).

    K_0(p, q) = p . q / d (d = C P^2, the first layer's fan-in), then ``depth + 1`` applications
    of :func:`relu_kernel_step` (the P x P layer and the D 1 x 1 layers); since every step keeps
    the diagonal, K(p, p) = ||p||^2 / d.  This is lim (1/C) sum_c a_c(p) a_c(q) over the last
    layer's channels (Theorem 2.1's K; Cho & Saul 2009; Arora et al. 2019).
    """
    def kernel(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        d = p.shape[-1]
        k = p @ q.transpose(-1, -2) / d
        kpp = (p * p).sum(-1, keepdim=True) / d  # (B, n, 1)
        kqq = ((q * q).sum(-1) / d).unsqueeze(-2)  # (B, 1, m)
        for _ in range(depth + 1):
            k = relu_kernel_step(k, kpp, kqq)
        return k
    return kernel


def infinite_width_distance(x: torch.Tensor, y: torch.Tensor, patch_size: int = 3, depth: int = 6,
                            window: int = 32, stride: int = 16, normalize_channels: bool = False) -> torch.Tensor:
    """The limit of :meth:`SCNN.distance` as the width grows (Amir & Weiss 2021, Theorem 2.1), (N,).

        lim_{C -> inf} ||h(x) - h(y)||^2 / C = sum over windows w of MMD^2_K(patches_w(x), patches_w(y)),

    the biased squared MMD (:func:`perceptlab.imaging.patches.mmd2`) between the (W - P + 1)^2
    patches of 2x - 1 and of 2y - 1 inside each window, with the kernel of
    :func:`infinite_width_kernel`.  x, y: (N, C, H, W) in [0, 1], the same shape.  With
    ``normalize_channels`` each patch's per-channel mean is removed first: the limit of an S-CNN
    with zero-mean first-layer filters (``SCNN(..., normalize_channels=True)``).
    """
    check_image(x, "x")
    check_image(y, "y")
    check_same_shape(x, y, "x", "y")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an integer >= 0, got {depth!r}")
    px = window_patches(scnn_input(x), patch_size, window, stride, normalize_channels)  # (N, L, n, d)
    py = window_patches(scnn_input(y), patch_size, window, stride, normalize_channels)
    n, windows = px.shape[:2]
    per_window = mmd2(infinite_width_kernel(depth), px.flatten(0, 1), py.flatten(0, 1))
    return per_window.view(n, windows).sum(1)
