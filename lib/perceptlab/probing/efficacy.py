"""Perceptual efficacy of CNN channels (Tariq, Tursun, Kim & Didyk 2020, eqs. 2-8).

For a layer's channels m with tuning curves a_m (the spatial mean activation to a grating)::

    mu1(m) = sum_f CSF(f) |d a_m(I_f) / d f|                 frequency sensitivity, CSF-weighted (2)
    mu2(m) = sum_theta (a_m(I_theta) - max_theta a_m)^2       orientation selectivity (3, 4)
    PE(m)  = mu1(m) mu2(m) / (sum_m mu1(m) sum_m mu2(m))      perceptual efficacy (5)
    H-x    = {m : PE(m) >= the (100 - x)-th percentile}       the x % most efficacious channels (7)
    L-x    = {m : PE(m) <= the x-th percentile}               the x % least (8)

The derivative in eq. 2 is taken on the sampled frequencies with second-order central differences
(``torch.gradient``, one-sided at the ends), so for unevenly spaced frequencies it is still exact
for quadratics.  Percentiles interpolate linearly between order statistics (numpy's default).
"""
from __future__ import annotations

import numpy as np
import torch


def _check_responses(responses, name: str) -> torch.Tensor:
    r = torch.as_tensor(responses, dtype=torch.float64)
    if r.dim() != 2 or r.shape[0] < 1 or r.shape[1] < 2:
        raise ValueError(f"{name} must have shape (channels, n) with n >= 2 stimuli, got {tuple(r.shape)}")
    if not torch.isfinite(r).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return r


def mu1(responses, freqs, csf_values) -> torch.Tensor:
    """Eq. 2: sum_f CSF(f) abs(d a / d f) per channel.  ``responses`` (channels, n_freqs) mean activations
    at the strictly increasing frequencies ``freqs`` (n_freqs,), ``csf_values`` (n_freqs,) the CSF there.
    Returns (channels,) float64."""
    r = _check_responses(responses, "responses")
    f = torch.as_tensor(freqs, dtype=torch.float64).flatten()
    w = torch.as_tensor(csf_values, dtype=torch.float64).flatten()
    if f.numel() != r.shape[1] or w.numel() != r.shape[1]:
        raise ValueError(f"freqs and csf_values must have {r.shape[1]} entries (one per column of responses), "
                         f"got {f.numel()} and {w.numel()}")
    if not (f[1:] > f[:-1]).all():
        raise ValueError(f"freqs must be strictly increasing, got {f.tolist()}")
    if (w < 0).any() or not torch.isfinite(w).all():
        raise ValueError("csf_values must be finite and non-negative")
    slope = torch.gradient(r, spacing=(f,), dim=1)[0]
    return (w * slope.abs()).sum(1)


def mu2(responses) -> torch.Tensor:
    """Eqs. 3-4: sum_theta (a(theta) - max_theta a)^2 per channel; ``responses`` (channels, n_orientations).
    Returns (channels,) float64: 0 for a channel that responds equally to every orientation."""
    r = _check_responses(responses, "responses")
    return (r - r.max(1, keepdim=True).values).pow(2).sum(1)


def perceptual_efficacy(mu1_values, mu2_values) -> torch.Tensor:
    """Eq. 5: PE = mu1 mu2 / (sum mu1 sum mu2) over the channels of one layer, (channels,) float64."""
    a = torch.as_tensor(mu1_values, dtype=torch.float64).flatten()
    b = torch.as_tensor(mu2_values, dtype=torch.float64).flatten()
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"mu1 and mu2 must have the same, non-zero length, got {a.numel()} and {b.numel()}")
    if (a < 0).any() or (b < 0).any() or not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("mu1 and mu2 must be finite and non-negative")
    total = a.sum() * b.sum()
    if total == 0:
        raise ValueError("mu1 and mu2 must not sum to zero (no channel is tuned at all)")
    return a * b / total


def channel_subset(pe, which: str = "H", percent: float = 10.0) -> torch.Tensor:
    """Eqs. 7-8: the indices (sorted) of the channels in H-x (``which="H"``: PE at or above the (100 - x)-th
    percentile) or L-x (``"L"``: at or below the x-th percentile), x = ``percent`` in (0, 100]."""
    p = torch.as_tensor(pe, dtype=torch.float64).flatten()
    if which not in ("H", "L"):
        raise ValueError(f"which must be 'H' or 'L', got {which!r}")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent!r}")
    if p.numel() == 0 or not torch.isfinite(p).all():
        raise ValueError("pe must be a non-empty array of finite values")
    values = p.numpy()
    if which == "H":
        keep = values >= np.percentile(values, 100 - percent)
    else:
        keep = values <= np.percentile(values, percent)
    return torch.from_numpy(np.flatnonzero(keep))


def channel_weights(pe, normalize: str = "mean") -> torch.Tensor:
    """Per-channel weights proportional to PE, scaled to mean 1 (``normalize="mean"``) so that a weighted
    loss keeps the unweighted loss's scale, or to sum 1 (``"sum"``). (channels,) float64."""
    p = torch.as_tensor(pe, dtype=torch.float64).flatten()
    if (p < 0).any() or p.sum() <= 0:
        raise ValueError("pe must be non-negative with a positive sum")
    if normalize not in ("mean", "sum"):
        raise ValueError(f"normalize must be 'mean' or 'sum', got {normalize!r}")
    return p / (p.mean() if normalize == "mean" else p.sum())


__all__ = ["mu1", "mu2", "perceptual_efficacy", "channel_subset", "channel_weights"]
