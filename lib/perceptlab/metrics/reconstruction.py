"""The normalized Euclidean error of DeePSiM (Dosovitskiy & Brox 2016, Sec. 4), in image or feature space.
"""
from __future__ import annotations

import torch


def _flat(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor (N, ...), got {type(x).__name__}"
                         + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() < 2 or x.shape[0] < 1 or x[0].numel() == 0:
        raise ValueError(f"{name} must have shape (N, ...) with N >= 1 non-empty samples, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x.detach().flatten(1).double()


def mean_pairwise_distance(targets: torch.Tensor) -> float:
    """N = the mean Euclidean distance ||t_i - t_j|| over all ordered pairs i != j of ``targets`` (N >= 2)."""
    t = _flat(targets, "targets")
    n = t.shape[0]
    if n < 2:
        raise ValueError(f"targets must hold at least 2 samples (the normalisation averages over pairs), got {n}")
    d = torch.cdist(t, t)  # float64: no cancellation worth mentioning at these sizes
    mean = float(d.sum() / (n * (n - 1)))
    if mean == 0:
        raise ValueError("targets must not all be equal: their mean pairwise distance, the normalisation, is 0")
    return mean


def normalized_euclidean_error(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """(1/N_s) sum_i ||o_i - t_i|| / N, with N :func:`mean_pairwise_distance` of the targets (a fraction).

    Dosovitskiy & Brox (2016), Sec. 4: "the normalization coefficient N is the average of
    Euclidean distances between all pairs of different samples from the test set", so 1.0
    (100%) is as good as answering with a random other test sample.  ``outputs`` and ``targets``
    are (N_s, ...) with N_s >= 2, flattened per sample: images (normalized error in image space)
    or features (in feature space).  Output values are not range-checked (generators' outputs
    are linear).
    """
    o, t = _flat(outputs, "outputs"), _flat(targets, "targets")
    if o.shape != t.shape:
        raise ValueError(f"outputs and targets must have the same shape, got {tuple(outputs.shape)} and "
                         f"{tuple(targets.shape)}")
    return float((o - t).norm(dim=1).mean()) / mean_pairwise_distance(targets)
