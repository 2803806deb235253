"""Input checks shared by every module: wrong inputs raise ValueError naming the argument."""
from __future__ import annotations

import torch


def check_image(x, name: str = "image", *, ndim: int | tuple[int, ...] = 4, channels: tuple[int, ...] | None = None,
                value_range: tuple[float, float] | None = (0.0, 1.0), tol: float = 1e-6) -> torch.Tensor:
    """Validate an image tensor and return it unchanged.

    Args:
        x: the tensor to check.
        name: the argument name used in error messages.
        ndim: allowed number of dimensions (4 means (N, C, H, W)).
        channels: allowed channel counts (dim -3), or None for any.
        value_range: inclusive bounds the values must lie in (``None`` skips the check).

    Raises:
        ValueError: not a tensor, not floating point, wrong rank or channels, NaN/inf,
        or values outside ``value_range``.
    """
    ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    shapes = {2: "(H, W)", 3: "(C, H, W)", 4: "(N, C, H, W)"}
    expected = " or ".join(shapes.get(d, f"{d}-D") for d in ndims)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor with values in [0, 1], got dtype {x.dtype}")
    if x.dim() not in ndims:
        raise ValueError(f"{name} must have shape {expected}, got shape {tuple(x.shape)}")
    if channels is not None and x.dim() >= 3 and x.shape[-3] not in channels:
        raise ValueError(f"{name} must have {' or '.join(map(str, channels))} channels (dim -3), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    x_ = x.detach()
    if not torch.isfinite(x_).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if value_range is not None:
        lo, hi = value_range
        xmin, xmax = float(x_.min()), float(x_.max())
        if xmin < lo - tol or xmax > hi + tol:
            raise ValueError(f"{name} must have values in [{lo}, {hi}], got min {xmin:.4g}, max {xmax:.4g}")
    return x


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
