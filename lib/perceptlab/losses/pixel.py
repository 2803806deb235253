"""Pixel losses: MSE, L1, PSNR and SSIM (Wang et al. 2004), each a function and an ``nn.Module`` twin.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.imaging.filters import gaussian_window
from perceptlab.losses._base import _check_pair, _check_positive, _reduce, _Twin


def mse(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error, (1 / CHW) sum (x - y)^2 per image."""
    _check_pair(x, y, reduction)
    return _reduce((x - y).pow(2).flatten(1).mean(1), reduction)


def l1(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error, (1 / CHW) sum abs(x - y) per image."""
    _check_pair(x, y, reduction)
    return _reduce((x - y).abs().flatten(1).mean(1), reduction)


class MSELoss(nn.Module):
    """Module twin of :func:`mse`."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return mse(x, y, self.reduction)


class L1Loss(nn.Module):
    """Module twin of :func:`l1`."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return l1(x, y, self.reduction)


def psnr_from_mse(mse_value: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB from a mean squared error: 10 log10(data_range^2 / MSE); +inf where MSE = 0.

    Works elementwise on a tensor of any shape, in its dtype.  Where MSE = 0 the value is +inf
    and the gradient 0 (not NaN), so ``psnr(x, x).backward()`` is well defined.
    """
    positive = mse_value > 0
    safe = torch.where(positive, mse_value, torch.ones_like(mse_value))
    return torch.where(positive, 10 * torch.log10(data_range ** 2 / safe), torch.full_like(safe, float("inf")))


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB (higher is better).

    PSNR_i = 10 log10(data_range^2 / MSE_i) with MSE_i = (1 / CHW) sum (x_i - y_i)^2;
    +inf for identical images.  Inputs have values in [0, data_range].
    ``reduction="mean"`` averages the per-image dB values (not the MSEs).
    """
    data_range = _check_positive(data_range, "data_range")
    _check_pair(x, y, reduction, value_range=(0.0, data_range))
    return _reduce(psnr_from_mse((x - y).pow(2).flatten(1).mean(1), data_range), reduction)


class PSNR(_Twin):
    """Module twin of :func:`psnr`: ``PSNR(data_range=1.0, reduction="mean")``."""

    fn = staticmethod(psnr)

    def __init__(self, data_range: float = 1.0, reduction: str = "mean"):
        super().__init__(data_range=data_range, reduction=reduction)


SSIM_K1, SSIM_K2, SSIM_TRUNCATE = 0.01, 0.03, 3.5


def _blur_valid(z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable depthwise Gaussian filter, 'valid' region only: (N, C, H, W) -> (N, C, H-2r, W-2r)."""
    c, k = z.shape[1], g.numel()
    z = F.conv2d(z, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(z, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5) -> torch.Tensor:
    """Local SSIM of Wang et al. (2004), eq. (13), per channel: (N, C, H, W) -> (N, C, H-2r, W-2r).

    SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),
    C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = data_range; local (population) moments under a Gaussian
    window of std ``sigma`` truncated at 3.5 sigma (radius r = 5 for sigma 1.5).  Only windows
    lying fully inside the image are kept: the same values skimage keeps after cropping r pixels.
    """
    dtype = torch.promote_types(x.dtype, y.dtype)  # float32 with float64: computed in float64
    x, y = x.to(dtype), y.to(dtype)
    g = gaussian_window(sigma, SSIM_TRUNCATE, dtype=dtype, device=x.device)
    # (co)variances do not change when x, y are shifted: centre each channel first, so that
    # E[x^2] - E[x]^2 does not lose the small variances of flat regions to float32 rounding
    mx, my = x.mean(dim=(2, 3), keepdim=True), y.mean(dim=(2, 3), keepdim=True)
    x, y = x - mx, y - my
    mu_x, mu_y = _blur_valid(x, g), _blur_valid(y, g)
    var_x = _blur_valid(x * x, g) - mu_x ** 2
    var_y = _blur_valid(y * y, g) - mu_y ** 2
    cov = _blur_valid(x * y, g) - mu_x * mu_y
    mu_x, mu_y = mu_x + mx, mu_y + my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5,
         reduction: str = "mean") -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), in [-1, 1], 1 for identical images.

    The mean of :func:`ssim_map` over channels and positions; equals
    ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=sigma,
    use_sample_covariance=False, data_range=data_range, channel_axis=0)`` per image.
    Differentiable.  Inputs have values in [0, data_range] and H, W >= 2 r + 1 (11 for sigma 1.5).
    """
    data_range = _check_positive(data_range, "data_range")
    sigma = _check_positive(sigma, "sigma")
    _check_pair(x, y, reduction, value_range=(0.0, data_range))
    win = 2 * int(SSIM_TRUNCATE * sigma + 0.5) + 1
    if min(x.shape[-2:]) < win:
        raise ValueError(f"x must be at least {win}x{win} pixels for SSIM with sigma {sigma} "
                         f"(the Gaussian window), got shape {tuple(x.shape)}")
    return _reduce(ssim_map(x, y, data_range, sigma).flatten(1).mean(1), reduction)


def ssim_loss(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5,
              reduction: str = "mean") -> torch.Tensor:
    """1 - SSIM, a loss to minimise (0 for identical images, at most 2); see :func:`ssim`."""
    return 1 - ssim(x, y, data_range, sigma, reduction)


class SSIM(_Twin):
    """Module twin of :func:`ssim`: ``SSIM(data_range=1.0, sigma=1.5, reduction="mean")``."""

    fn = staticmethod(ssim)

    def __init__(self, data_range: float = 1.0, sigma: float = 1.5, reduction: str = "mean"):
        super().__init__(data_range=data_range, sigma=sigma, reduction=reduction)


class SSIMLoss(_Twin):
    """Module twin of :func:`ssim_loss`: ``SSIMLoss(data_range=1.0, sigma=1.5, reduction="mean")``."""

    fn = staticmethod(ssim_loss)

    def __init__(self, data_range: float = 1.0, sigma: float = 1.5, reduction: str = "mean"):
        super().__init__(data_range=data_range, sigma=sigma, reduction=reduction)
