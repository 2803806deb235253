"""Agreement of a distance with graded quality: Spearman's rank correlation (SROCC) with a severity or
an opinion score (a QA test), and the mean average precision of just-noticeable-difference judgements
(BAPPS JND, as Zhang et al. 2018 score it).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats

from perceptlab.validate import check_positive_int


def _vector(values, name: str) -> np.ndarray:
    v = np.asarray(torch.as_tensor(values, dtype=torch.float64))
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least two values, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return v


def srocc(distances, scores) -> float:
    """Spearman's rank-order correlation between distances and scores (e.g. severity or DMOS), ties
    ranked by their mean rank (``scipy.stats.spearmanr``); 1 when the distance orders the images as
    the scores do."""
    d, s = _vector(distances, "distances"), _vector(scores, "scores")
    if d.shape != s.shape:
        raise ValueError(f"distances and scores must have the same length, got {d.size} and {s.size}")
    return _spearman(d, s)


def _spearman(d: np.ndarray, s: np.ndarray) -> float:
    """Spearman's rho as the Pearson correlation of average ranks (what ``scipy.stats.spearmanr`` computes),
    without its per-call overhead; nan for a constant input."""
    if d.size < 2 or np.ptp(d) == 0 or np.ptp(s) == 0:
        return float("nan")
    return float(np.corrcoef(stats.rankdata(d), stats.rankdata(s))[0, 1])


def grouped_srocc(distances, scores, groups: Sequence[str]) -> dict[str, float]:
    """SROCC within each group (e.g. per distortion type, whose severity scales are not comparable)
    and ``"mean"``, their average."""
    d, s = _vector(distances, "distances"), _vector(scores, "scores")
    g = np.asarray(groups)
    if g.shape != d.shape or d.shape != s.shape:
        raise ValueError("distances, scores and groups must have the same length")
    out = {k: srocc(d[g == k], s[g == k]) for k in dict.fromkeys(g.tolist())}
    out["mean"] = float(np.nanmean(list(out.values())))
    return out


def bootstrap_srocc(distances, scores, clusters: Sequence, groups: Sequence[str] | None = None,
                    n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the (grouped, mean) SROCC, resampling whole ``clusters`` (e.g.
    reference images, each with all its distorted versions) with replacement."""
    check_positive_int(n_boot, "n_boot")
    d, s = _vector(distances, "distances"), _vector(scores, "scores")
    c = np.asarray(clusters)
    g = np.asarray(groups) if groups is not None else np.zeros(d.size, dtype=int).astype(str)
    ids = list(dict.fromkeys(c.tolist()))
    members = {k: np.flatnonzero(c == k) for k in ids}
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = np.concatenate([members[ids[i]] for i in rng.integers(0, len(ids), len(ids))])
        per_group = [_spearman(d[pick][g[pick] == k], s[pick][g[pick] == k]) for k in dict.fromkeys(g.tolist())]
        values.append(np.nanmean(per_group) if not np.isnan(per_group).all() else np.nan)
    lo, hi = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision-recall curve with the precision made monotone (the VOC definition,
    as ``voc_ap`` in the LPIPS code): sum over recall steps of the step times the best precision at
    any recall at least as large."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def jnd_map(distances, same) -> float:
    """BAPPS JND score (Zhang et al. 2018): rank the pairs by distance, count each pair as ``same`` of a
    "same" judgement and 1 - ``same`` of a "different" one, and return the average precision of
    finding the "same" pairs first (1: every pair judged the same is closer than every pair judged
    different)."""
    d, s = _vector(distances, "distances"), _vector(same, "same")
    if d.shape != s.shape:
        raise ValueError(f"distances and same must have the same length, got {d.size} and {s.size}")
    if (s < 0).any() or (s > 1).any() or s.sum() == 0:
        raise ValueError("same must be fractions in [0, 1], not all 0")
    order = np.argsort(d, kind="stable")
    tp = np.cumsum(s[order])
    fp = np.cumsum(1 - s[order])
    return average_precision(tp / s.sum(), tp / (tp + fp))


__all__ = ["srocc", "grouped_srocc", "bootstrap_srocc", "average_precision", "jnd_map"]
