"""Contrast sensitivity functions (CSF): the reciprocal of the contrast a person needs to see a
grating, as a function of its spatial frequency in cycles per degree (cpd).

- ``"mannos-sakrison"``: Mannos & Sakrison (1974), fitted to threshold data for sinusoidal gratings,
  A(f) = 2.6 (0.0192 + 0.114 f) exp(-(0.114 f)^1.1), f in cpd; dimensionless, its maximum
  (about 1.0) at about 8 cpd.
- ``"barten"``: Barten's simplified formula (Barten 1999, eq. 3.26), S(f) = a f exp(-b f)
  sqrt(1 + c exp(b f)) with a = 540 (1 + 0.7 / L)^-0.2 / (1 + 12 / (w (1 + f / 3)^2)),
  b = 0.3 (1 + 100 / L)^0.15, c = 0.06, for a mean luminance ``L`` in cd/m^2 and a square field of
  ``w`` degrees; S is the sensitivity itself (1 / threshold contrast), of order 100-500.

Both are population averages under stated viewing conditions, not any one observer's.
"""
from __future__ import annotations

import math

import torch

CSF_MODELS = ("mannos-sakrison", "barten")


def mannos_sakrison(f: torch.Tensor) -> torch.Tensor:
    """A(f) = 2.6 (0.0192 + 0.114 f) exp(-(0.114 f)^1.1) (Mannos & Sakrison 1974), f in cpd."""
    return 2.6 * (0.0192 + 0.114 * f) * torch.exp(-(0.114 * f) ** 1.1)


def barten(f: torch.Tensor, luminance: float = 100.0, field_deg: float = 10.0) -> torch.Tensor:
    """Barten's simplified CSF (1999, eq. 3.26) at mean luminance ``luminance`` cd/m^2 and a field of
    ``field_deg`` degrees; f in cpd."""
    a = 540 * (1 + 0.7 / luminance) ** -0.2 / (1 + 12 / (field_deg * (1 + f / 3) ** 2))
    b = 0.3 * (1 + 100 / luminance) ** 0.15
    return a * f * torch.exp(-b * f) * torch.sqrt(1 + 0.06 * torch.exp(b * f))


def csf(f, model: str = "mannos-sakrison", **kwargs) -> torch.Tensor:
    """The contrast sensitivity of ``model`` (see the module docstring) at frequencies ``f`` in cycles
    per degree (non-negative; a number, list or tensor), float64, same shape as ``f``."""
    if model not in CSF_MODELS:
        raise ValueError(f"model must be one of {CSF_MODELS}, got {model!r}")
    f = torch.as_tensor(f, dtype=torch.float64)
    if not torch.isfinite(f).all() or (f < 0).any():
        raise ValueError(f"f must be non-negative frequencies in cycles per degree, got {f}")
    return mannos_sakrison(f) if model == "mannos-sakrison" else barten(f, **kwargs)


def csf_peak(model: str = "mannos-sakrison", lo: float = 0.1, hi: float = 60.0, **kwargs) -> float:
    """The frequency (cpd) where ``model`` peaks, by a dense search over [lo, hi] (log-spaced)."""
    f = torch.logspace(math.log10(lo), math.log10(hi), 20001, dtype=torch.float64)
    return float(f[csf(f, model, **kwargs).argmax()])


__all__ = ["CSF_MODELS", "csf", "csf_peak", "mannos_sakrison", "barten"]
