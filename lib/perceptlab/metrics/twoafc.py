"""2AFC scoring: the score of Zhang et al. (2018) with ties, percentile-bootstrap intervals, per-kind
agreement tables, and the calibration of Czolbe et al. (2020) (eqs. 11-12).
"""
from __future__ import annotations

import math

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from perceptlab.config import progress
from perceptlab.data.triplets import Triplets
from perceptlab.validate import check_positive_int

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (N,C,H,W) x 2 -> (N,)


def choice(d0: torch.Tensor, d1: torch.Tensor, tie_rtol: float = 0.0) -> torch.Tensor:
    """The metric's choice p_hat: 1 where d1 < d0 (p1 closer), 0 where d0 < d1, 1/2 on a tie.

    Distances within ``tie_rtol * max(|d0|, |d1|)`` of each other count as a tie.
    """
    for name, d in (("d0", d0), ("d1", d1)):
        not_real = (d.is_complex() or d.dtype == torch.bool) if torch.is_tensor(d) else np.iscomplexobj(d)
        if not_real:
            raise ValueError(f"{name} must hold real distances, got {getattr(d, 'dtype', type(d).__name__)}")
    if not (isinstance(tie_rtol, (int, float)) and math.isfinite(tie_rtol) and tie_rtol >= 0):
        raise ValueError(f"tie_rtol must be a finite number >= 0, got {tie_rtol!r}")
    d0, d1 = torch.as_tensor(d0, dtype=torch.float64), torch.as_tensor(d1, dtype=torch.float64)
    if d0.shape != d1.shape:
        raise ValueError(f"d0 and d1 must have the same shape, got {tuple(d0.shape)} and {tuple(d1.shape)}")
    if not (torch.isfinite(d0).all() and torch.isfinite(d1).all()):
        raise ValueError("d0 and d1 must be finite (no NaN or infinite distances)")
    tie = (d0 - d1).abs() <= tie_rtol * torch.maximum(d0.abs(), d1.abs())
    return torch.where(tie, 0.5, (d1 < d0).double())


def score(d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor, reduction: str = "mean",
          tie_rtol: float = 0.0) -> torch.Tensor:
    """2AFC score (Zhang et al. 2018): mean of p * p_hat + (1 - p) * (1 - p_hat), ties count 1/2.

    Args:
        d0, d1: (N,) distances of p0 and p1 to the reference.
        judge: (N,) fraction p in [0, 1] of judgements that chose p1.
        reduction: "mean" (a float64 scalar) or "none" (per-triplet scores, (N,)).
        tie_rtol: relative tolerance below which two distances count as a tie.
    """
    return score_choices(choice(d0, d1, tie_rtol), judge, reduction)


def score_choices(p_hat: torch.Tensor, judge: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The 2AFC score of given choices p_hat (1: p1, 0: p0, 1/2: tie), e.g. a vote of several networks.

    Mean of p * p_hat + (1 - p) * (1 - p_hat); ``reduction`` as in :func:`score`.
    """
    p = torch.as_tensor(judge, dtype=torch.float64)
    p_hat = torch.as_tensor(p_hat, dtype=torch.float64)
    if p.shape != p_hat.shape or not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError(f"judge must be a {tuple(p_hat.shape)} tensor of fractions in [0, 1]")
    per = p * p_hat + (1 - p) * (1 - p_hat)
    if reduction == "none":
        return per
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if per.numel() == 0:
        raise ValueError("d0, d1 and judge must hold at least one triplet to average a 2AFC score")
    return per.mean()


def bootstrap_ci(values: torch.Tensor | np.ndarray, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` (Efron & Tibshirani 1993).

    Resamples the N values with replacement ``n_boot`` times and returns the
    ((1 - level) / 2, (1 + level) / 2) quantiles of the resampled means.
    """
    v = np.asarray(torch.as_tensor(values, dtype=torch.float64))
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {v.shape}")
    check_positive_int(n_boot, "n_boot")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@torch.no_grad()
def component_distances(metric: Distance, triplets: Triplets, batch_size: int = 32,
                        device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-component distances (c0, c1), each (N, K), on the CPU in float64.

    For a metric with a ``layer_distances(x, y) -> (N, K)`` method (e.g.
    :class:`perceptlab.losses.FeatureLoss`: one column per layer, before the layer
    weights) these are its components; for any other metric K = 1 and the column is
    ``metric(x, y)``, which must return one distance per image (``reduction="none"``).
    A metric that computes features separately (``features(x)`` and ``compare_layers(fx, fy)``
    or ``compare(fx, fy)``) embeds each reference once for both of its distortions.
    """
    check_positive_int(batch_size, "batch_size")
    by_layer = getattr(metric, "layer_distances", None)
    featurize = getattr(metric, "features", None)
    compare = getattr(metric, "compare_layers", None) if by_layer is not None else getattr(metric, "compare", None)
    c0, c1 = [], []
    for i in progress(range(0, len(triplets), batch_size), desc="2AFC"):
        ref = triplets.ref[i: i + batch_size].to(device)
        if featurize is not None and compare is not None:
            f_ref = featurize(ref)
            dist = lambda x: compare(featurize(x), f_ref)  # noqa: E731
        else:
            dist = (lambda x: by_layer(x, ref)) if by_layer is not None else (lambda x: metric(x, ref))  # noqa: E731
        for p, out in ((triplets.p0, c0), (triplets.p1, c1)):
            x = p[i: i + batch_size].to(device)
            c = dist(x)
            expected = (len(x), c.shape[-1]) if by_layer is not None else (len(x),)
            if tuple(c.shape) != expected:
                raise ValueError(f"metric must return one distance per image, shape {expected}, got {tuple(c.shape)}")
            out.append((c if by_layer is not None else c[:, None]).detach().double().cpu())
    return torch.cat(c0), torch.cat(c1)


def combine(metric: Distance, components: torch.Tensor) -> torch.Tensor:
    """The metric's distance from its :func:`component_distances`: the layer-weighted sum (weights 1 if none)."""
    weights = getattr(metric, "layer_weights", None)
    if weights is None or components.shape[1] == 1:
        return components.sum(1)
    return components @ torch.tensor(list(weights.values()), dtype=components.dtype)


def distances(metric: Distance, triplets: Triplets, batch_size: int = 32,
              device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(d0, d1) = (metric(p0, ref), metric(p1, ref)) for every triplet, each (N,), float64 on the CPU."""
    c0, c1 = component_distances(metric, triplets, batch_size, device)
    return combine(metric, c0), combine(metric, c1)


def agreement_row(name: str, d0: torch.Tensor, d1: torch.Tensor, triplets: Triplets, n_boot: int = 2000,
                  level: float = 0.95, tie_rtol: float | None = None, seed: int = 0) -> dict:
    """2AFC score of given distances with a bootstrap interval, overall and per kind.

    Returns ``{"metric", "score", "low", "high", "n", "by_kind": {kind: score}, "d0", "d1"}``;
    ``tie_rtol`` defaults to the triplet set's own (``triplets.tie_rtol``).
    """
    tie_rtol = triplets.tie_rtol if tie_rtol is None else tie_rtol
    return {**choice_row(name, choice(d0, d1, tie_rtol), triplets, n_boot, level, seed), "d0": d0, "d1": d1}


def choice_row(name: str, p_hat: torch.Tensor, triplets: Triplets, n_boot: int = 2000, level: float = 0.95,
               seed: int = 0) -> dict:
    """2AFC score of given choices p_hat (N,) with a bootstrap interval, overall and per kind.

    Returns ``{"metric", "score", "low", "high", "n", "by_kind": {kind: score}}``.
    """
    per = score_choices(p_hat, triplets.judge, reduction="none")
    lo, hi = bootstrap_ci(per, n_boot, level, seed)
    kind = np.array(triplets.kind)
    by_kind = {k: float(per[torch.from_numpy(kind == k)].mean()) for k in triplets.kinds()}
    return {"metric": name, "score": float(per.mean()), "low": lo, "high": hi, "n": len(per), "by_kind": by_kind}


def agreement(metrics: dict[str, Distance], triplets: Triplets, n_boot: int = 2000, level: float = 0.95,
              batch_size: int = 32, device: str | torch.device = "cpu", tie_rtol: float | None = None,
              seed: int = 0) -> list[dict]:
    """One :func:`agreement_row` per metric, on ``triplets``."""
    return [agreement_row(name, *distances(metric, triplets, batch_size, device), triplets, n_boot, level,
                          tie_rtol, seed)
            for name, metric in metrics.items()]


def _logit(d0: torch.Tensor, d1: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """gamma * (d0 - d1) / (abs(d0) + abs(d1)), and 0 where both distances are 0."""
    denom = d0.abs() + d1.abs()
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, gamma * (d0 - d1) / safe, torch.zeros_like(denom))


def ranking_probability(d0: torch.Tensor, d1: torch.Tensor, gamma: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Czolbe et al. (2020), eq. (11): the predicted probability that p1 is judged closer,

        G(d0, d1) = sigmoid(gamma * (d0 - d1) / (abs(d0) + abs(d1))),   and 1/2 if d0 = d1 = 0.

    The paper writes the difference as (d1 - d0) for the probability of the *first*
    distortion; BAPPS's judge p is the fraction choosing the second (p1), so the sign
    here makes G comparable with p.  G is invariant to scaling both distances.
    """
    gamma = torch.as_tensor(gamma, dtype=d0.dtype, device=d0.device)
    return torch.sigmoid(_logit(d0, d1, gamma))


def calibration_loss(d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor,
                     gamma: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Czolbe et al. (2020), eq. (12) as a loss: the binary cross-entropy between p and G,

        -[p log G(d0, d1) + (1 - p) log(1 - G(d0, d1))],  averaged over triplets.
    """
    gamma = torch.as_tensor(gamma, dtype=d0.dtype, device=d0.device)
    return F.binary_cross_entropy_with_logits(_logit(d0, d1, gamma), judge.to(d0.dtype))


@dataclass
class Calibration:
    """A fitted combination d = sum_k w_k d_k (w_k >= 0) of component distances, with eq. (11)'s gamma."""

    weights: torch.Tensor
    gamma: float
    history: list[float] = field(default_factory=list)

    def distance(self, components: torch.Tensor) -> torch.Tensor:
        """(N, K) component distances -> (N,) calibrated distances."""
        return components.double() @ self.weights.double()

    def probability(self, c0: torch.Tensor, c1: torch.Tensor) -> torch.Tensor:
        return ranking_probability(self.distance(c0), self.distance(c1), self.gamma)


def calibrate(c0: torch.Tensor, c1: torch.Tensor, judge: torch.Tensor, steps: int = 500, lr: float = 0.05,
              init: torch.Tensor | None = None) -> Calibration:
    """Fit non-negative weights w and gamma > 0 by minimising :func:`calibration_loss` (eqs. 11-12).

    Args:
        c0, c1: (N, K) component distances of p0 and p1 (e.g. one column per network layer,
            as LPIPS weights its layers; K = 1 fits gamma alone, for any fixed metric).
        judge: (N,) fraction choosing p1.
        steps, lr: full-batch Adam on w = softplus(u) and gamma = softplus(g).
        init: (K,) initial weights (default all 1).
    Returns:
        :class:`Calibration` with the weights scaled to sum to 1 (eq. 11 is scale-invariant).
    """
    c0, c1 = torch.as_tensor(c0, dtype=torch.float64), torch.as_tensor(c1, dtype=torch.float64)
    if c0.ndim == 1:
        c0, c1 = c0[:, None], c1[:, None]
    if c0.shape != c1.shape or c0.ndim != 2:
        raise ValueError(f"c0 and c1 must be (N, K) with the same shape, got {tuple(c0.shape)} and {tuple(c1.shape)}")
    judge = torch.as_tensor(judge, dtype=torch.float64)
    if judge.shape != c0.shape[:1]:
        raise ValueError(f"judge must have shape ({c0.shape[0]},), got {tuple(judge.shape)}")
    check_positive_int(steps, "steps")
    inv_softplus = lambda v: v + torch.log(-torch.expm1(-v))  # noqa: E731
    w0 = torch.ones(c0.shape[1], dtype=torch.float64) if init is None else torch.as_tensor(init, dtype=torch.float64)
    u = inv_softplus(w0.clamp_min(1e-6)).requires_grad_(True)
    g = inv_softplus(torch.tensor(1.0, dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.Adam([u, g], lr=lr)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        w, gamma = F.softplus(u), F.softplus(g)
        loss = calibration_loss(c0 @ w, c1 @ w, judge, gamma)
        loss.backward()
        opt.step()
        history.append(loss.item())
    w = F.softplus(u).detach()
    return Calibration(w / w.sum(), float(F.softplus(g.detach())), history)


class _Gamma(torch.nn.Module):
    """Eq. (11)'s gamma as a trainable softplus(g), initialised at 1."""

    def __init__(self):
        super().__init__()
        self.g = torch.nn.Parameter(torch.tensor(math.log(math.expm1(1.0))))

    def forward(self) -> torch.Tensor:
        return F.softplus(self.g)


def calibrate_metric(metric: torch.nn.Module, triplets: Triplets, steps: int, lr: float = 1e-4,
                     batch_size: int = 32, seed: int = 0, out_dir=None, ckpt_every: int = 0,
                     eval_triplets: Triplets | None = None, eval_every: int = 0, device: str | torch.device = "cpu",
                     stop_after: int | None = None, dtype: torch.dtype = torch.float64) -> dict:
    """Train every parameter of ``metric`` and eq. (11)'s gamma on 2AFC judgements (Czolbe et al. 2020).

    Minimises :func:`calibration_loss` (eq. 12) of ``metric(p0, ref)`` and ``metric(p1, ref)`` on
    minibatches of ``batch_size`` triplets drawn with replacement, with Adam (the paper: lr 1e-4 on
    BAPPS train).  This is :func:`calibrate` end to end: there the component distances are fixed and
    only their weights move; here the metric itself (e.g. Watson's T, alpha, r, p, phase and channel
    weights) is trained.  Checkpoints in ``out_dir`` resume exactly (:func:`perceptlab.train.fit`);
    with ``eval_triplets`` the 2AFC score on them is logged as ``eval_score`` every ``eval_every``
    steps and at the end.  Returns ``history`` and ``gamma``; ``metric`` is trained in place, in
    ``dtype``: float64 by default, because a masked model's ratios raised to a pooling exponent
    of 3-5 overflow float32 for dark blocks once calibration moves alpha (a step whose loss or
    parameters are not finite raises a ValueError naming the step).
    """
    from perceptlab.train import fit

    check_positive_int(batch_size, "batch_size")
    if not any(p.requires_grad for p in metric.parameters()):
        raise ValueError("metric has no trainable parameters to calibrate")
    metric.to(device=device, dtype=dtype).train()
    gamma = _Gamma().to(device=device, dtype=dtype)
    opt = torch.optim.Adam([*(p for p in metric.parameters() if p.requires_grad), *gamma.parameters()], lr=lr)
    n = len(triplets)

    def sample(g: torch.Generator, step: int) -> torch.Tensor:
        return torch.randint(0, n, (batch_size,), generator=g)

    def step_fn(index: torch.Tensor, step: int) -> dict:
        ref, p0, p1 = (getattr(triplets, k)[index].to(device=device, dtype=dtype) for k in ("ref", "p0", "p1"))
        opt.zero_grad(set_to_none=True)
        loss = calibration_loss(metric(p0, ref), metric(p1, ref), triplets.judge[index].to(device), gamma())
        if not torch.isfinite(loss):
            raise ValueError(f"the calibration loss became {loss.item()} at step {step + 1}: the metric's distances "
                             f"are no longer finite (e.g. a pooling exponent p near 0); lower lr (now {lr})")
        loss.backward()
        opt.step()
        if not all(torch.isfinite(p).all() for p in metric.parameters()):
            raise ValueError(f"a parameter of the metric became non-finite at step {step + 1} (a non-finite gradient); "
                             f"lower lr (now {lr})")
        return {"loss": loss.item()}

    def eval_fn(step: int) -> dict:
        with torch.no_grad():
            d0, d1 = distances(metric, eval_triplets, batch_size, device)
        return {"eval_score": float(score(d0, d1, eval_triplets.judge, tie_rtol=eval_triplets.tie_rtol))}

    history = fit(step_fn, sample, state={"metric": metric, "gamma": gamma, "opt": opt}, steps=steps, seed=seed,
                  out_dir=out_dir, ckpt_every=ckpt_every, eval_fn=eval_fn if eval_triplets is not None else None,
                  eval_every=eval_every, stop_after=stop_after, desc="2AFC calibration")
    metric.eval()
    return {"history": history, "gamma": float(gamma().detach())}
