"""The two-alternative forced choice (2AFC) test of a distance, and its calibration.

A 2AFC triplet is a reference image ``ref``, two distorted versions ``p0`` and
``p1``, and ``judge`` = p, the fraction of judgements that chose ``p1`` as the
closer one (Zhang et al. 2018, BAPPS).  A distance d "agrees" with the
judgement through its own choice: with d0 = d(ref, p0), d1 = d(ref, p1),

    p_hat = 1 if d1 < d0,  0 if d0 < d1,  1/2 on a tie,
    score = mean over triplets of  p * p_hat + (1 - p) * (1 - p_hat)      (Zhang et al. 2018)

so a metric that always agrees with a unanimous choice scores 1 and a coin scores 1/2.

Two sources of triplets:

- **BAPPS** (full preset): human judgements, read from the dataset's own folder layout
  (``2afc/<split>/<subset>/{ref,p0,p1}/*.png`` and ``judge/*.npy``) by :func:`load_bapps`.
- **Synthetic** (offline): :func:`synthetic_2afc` builds triplets from bundled images
  whose "judgement" is fixed by construction, in two parts:
  (i) ``"strength"``: one distortion at two strengths; the weaker is closer;
  (ii) ``"equal_mse"``: two different distortions scaled to the *same* MSE, the closer one
  taken from documented perceptual findings (Wang & Bovik 2009: at equal MSE a mean
  luminance shift or a contrast stretch looks far better than blur, noise or JPEG; a
  one- or two-pixel translation looks better than noise).  L2 is at chance there by construction.
  A synthetic score is an *ordering agreement* with these rules, never a human agreement.

Calibration (Czolbe et al. 2020, eqs. 11-12) turns distances into a predicted probability
and fits a metric's free parameters by binary cross-entropy against p.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from . import data
from .config import PresetConfig, progress
from .validate import check_image, check_positive_int

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (N,C,H,W) x 2 -> (N,)

#: The BAPPS triplet reader (defined with the other on-disk dataset readers in ``perceptlab.data``).
BAPPS2AFC = data.BAPPS2AFC


# --------------------------------------------------------------------------- triplets


@dataclass
class Triplets:
    """A set of 2AFC triplets held in memory.

    ``ref``, ``p0``, ``p1``: (N, 3, H, W) in [0, 1]; ``judge``: (N,) fraction choosing p1;
    ``kind``: one label per triplet (distortion or BAPPS subset); ``source`` says where they come from;
    ``tie_rtol``: distances closer than this (relative) count as a tie when scoring this set.
    """

    ref: torch.Tensor
    p0: torch.Tensor
    p1: torch.Tensor
    judge: torch.Tensor
    kind: list[str]
    source: str = ""
    tie_rtol: float = 0.0

    def __post_init__(self):
        for name in ("ref", "p0", "p1"):
            check_image(getattr(self, name), name, channels=(3,))
        n = self.ref.shape[0]
        if self.p0.shape != self.ref.shape or self.p1.shape != self.ref.shape:
            raise ValueError(f"p0 and p1 must have the shape of ref {tuple(self.ref.shape)}, "
                             f"got {tuple(self.p0.shape)} and {tuple(self.p1.shape)}")
        if self.judge.shape != (n,) or not bool(((self.judge >= 0) & (self.judge <= 1)).all()):
            raise ValueError(f"judge must be a ({n},) tensor of fractions in [0, 1]")
        if len(self.kind) != n:
            raise ValueError(f"kind must have one label per triplet ({n}), got {len(self.kind)}")

    def __len__(self) -> int:
        return self.ref.shape[0]

    def subset(self, index: Sequence[int] | torch.Tensor) -> "Triplets":
        index = torch.as_tensor(index, dtype=torch.long)
        return Triplets(self.ref[index], self.p0[index], self.p1[index], self.judge[index],
                        [self.kind[i] for i in index.tolist()], self.source, self.tie_rtol)

    def split(self, fraction: float, seed: int = 0) -> tuple["Triplets", "Triplets"]:
        """A random (first, rest) split with ``fraction`` of the triplets in the first part."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        k = round(fraction * len(self))
        return self.subset(perm[:k]), self.subset(perm[k:])

    def kinds(self) -> list[str]:
        """The distinct kinds, in order of first appearance."""
        return list(dict.fromkeys(self.kind))


def load_bapps(split: str = "val", subsets: Sequence[str] | None = None, limit: int | None = None,
               size: int | None = None, root: str | Path | None = None, download_ok: bool = True) -> Triplets:
    """BAPPS 2AFC triplets (Zhang et al. 2018) as :class:`Triplets`; ``kind`` is the subset name.

    Reads ``<root>/2afc/<split>/<subset>/...`` (``root`` defaults to the dataset folder of
    ``perceptlab.data``); downloads the official tarball if allowed, else raises
    :class:`perceptlab.data.DataUnavailableError` saying where to put the files.
    ``limit`` keeps the first ``limit`` triplets of each subset.
    """
    dataset = data.load_dataset("bapps", split, root=root, download_ok=download_ok)
    items = [it for it in dataset.items if subsets is None or it[0] in subsets]
    if limit is not None:
        check_positive_int(limit, "limit")
        per_subset: dict[str, int] = {}
        kept = []
        for it in items:
            per_subset[it[0]] = per_subset.get(it[0], 0) + 1
            if per_subset[it[0]] <= limit:
                kept.append(it)
        items = kept
    if not items:
        raise data.DataUnavailableError(f"no BAPPS triplets for subsets {subsets} in split {split!r}")
    dataset.items, dataset.size = items, size
    rows = [dataset[i] for i in progress(range(len(dataset)), desc="BAPPS")]
    stack = lambda key: torch.stack([r[key] for r in rows])  # noqa: E731
    return Triplets(stack("ref"), stack("p0"), stack("p1"), torch.tensor([r["judge"] for r in rows]),
                    [r["subset"] for r in rows], source=f"BAPPS 2AFC {split}")


# --------------------------------------------------------------------------- scoring


def choice(d0: torch.Tensor, d1: torch.Tensor, tie_rtol: float = 0.0) -> torch.Tensor:
    """The metric's choice p_hat: 1 where d1 < d0 (p1 closer), 0 where d0 < d1, 1/2 on a tie.

    Distances within ``tie_rtol * max(|d0|, |d1|)`` of each other count as a tie.
    """
    d0, d1 = torch.as_tensor(d0, dtype=torch.float64), torch.as_tensor(d1, dtype=torch.float64)
    if d0.shape != d1.shape:
        raise ValueError(f"d0 and d1 must have the same shape, got {tuple(d0.shape)} and {tuple(d1.shape)}")
    if torch.isnan(d0).any() or torch.isnan(d1).any():
        raise ValueError("d0 and d1 must not contain NaN")
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
    p = torch.as_tensor(judge, dtype=torch.float64)
    p_hat = choice(d0, d1, tie_rtol)
    if p.shape != p_hat.shape or not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError(f"judge must be a {tuple(p_hat.shape)} tensor of fractions in [0, 1]")
    per = p * p_hat + (1 - p) * (1 - p_hat)
    if reduction == "none":
        return per
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
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
    """
    check_positive_int(batch_size, "batch_size")
    by_layer = getattr(metric, "layer_distances", None)
    c0, c1 = [], []
    for i in progress(range(0, len(triplets), batch_size), desc="2AFC"):
        ref = triplets.ref[i: i + batch_size].to(device)
        for p, out in ((triplets.p0, c0), (triplets.p1, c1)):
            x = p[i: i + batch_size].to(device)
            c = by_layer(x, ref) if by_layer is not None else metric(x, ref)
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
    per = score(d0, d1, triplets.judge, reduction="none", tie_rtol=tie_rtol)
    lo, hi = bootstrap_ci(per, n_boot, level, seed)
    kind = np.array(triplets.kind)
    by_kind = {k: float(per[torch.from_numpy(kind == k)].mean()) for k in triplets.kinds()}
    return {"metric": name, "score": float(per.mean()), "low": lo, "high": hi, "n": len(per),
            "by_kind": by_kind, "d0": d0, "d1": d1}


def agreement(metrics: dict[str, Distance], triplets: Triplets, n_boot: int = 2000, level: float = 0.95,
              batch_size: int = 32, device: str | torch.device = "cpu", tie_rtol: float | None = None,
              seed: int = 0) -> list[dict]:
    """One :func:`agreement_row` per metric, on ``triplets``."""
    return [agreement_row(name, *distances(metric, triplets, batch_size, device), triplets, n_boot, level,
                          tie_rtol, seed)
            for name, metric in metrics.items()]


# --------------------------------------------------------------------------- calibration (Czolbe et al. 2020)


def _logit(d0: torch.Tensor, d1: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """gamma * (d0 - d1) / (|d0| + |d1|), and 0 where both distances are 0."""
    denom = d0.abs() + d1.abs()
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, gamma * (d0 - d1) / safe, torch.zeros_like(denom))


def ranking_probability(d0: torch.Tensor, d1: torch.Tensor, gamma: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Czolbe et al. (2020), eq. (11): the predicted probability that p1 is judged closer,

        G(d0, d1) = sigmoid(gamma * (d0 - d1) / (|d0| + |d1|)),   and 1/2 if d0 = d1 = 0.

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


# --------------------------------------------------------------------------- synthetic 2AFC

#: Bundled images the synthetic references are cut from (the comparator trains on others).
TWOAFC_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "gravel")
#: Context pixels around each reference, so that shifts and blurs need no padding.
MARGIN = 4


def _center(context: torch.Tensor) -> torch.Tensor:
    return context[..., MARGIN:-MARGIN, MARGIN:-MARGIN]


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (radius ceil(3 sigma), reflect padding) of (N, C, H, W) images."""
    if sigma <= 0:
        return images
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=images.dtype)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(images.device)
    c = images.shape[1]
    out = F.conv2d(F.pad(images, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG-compress each image at ``quality`` (1-95, lower is stronger) with PIL and decode it."""
    from PIL import Image

    out = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray((data.to_numpy(im[None]) * 255).round().astype(np.uint8)).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        out.append(data.to_tensor(np.asarray(Image.open(buf).convert("RGB")))[0])
    return torch.stack(out).to(images)


def distort(context: torch.Tensor, kind: str, strength: float, generator: torch.Generator) -> torch.Tensor:
    """One distortion of the references at the centre of ``context`` (N, 3, H + 2M, W + 2M), M = MARGIN.

    Kinds and what ``strength`` means (larger is stronger except for JPEG):
      ``noise``: Gaussian noise std;  ``blur``: Gaussian sigma in pixels;  ``jpeg``: quality;
      ``shift``: translation by whole pixels along a random axis direction;  ``color``: size of a
      luminance-free colour cast;  ``contrast``: contrast reduction factor in [0, 1);
      ``luminance``: mean luminance shift (brighter for dark images, darker for bright ones);
      ``stretch``: contrast increase factor.  Outputs are clipped to [0, 1].
    """
    ref = _center(context)
    n = ref.shape[0]
    if kind == "noise":
        out = ref + strength * torch.randn(ref.shape, generator=generator)
    elif kind == "blur":
        out = _center(gaussian_blur(context, strength))
    elif kind == "jpeg":
        out = _center(jpeg(context, int(strength)))
    elif kind == "shift":
        s = int(strength)
        if not 0 < s <= MARGIN:
            raise ValueError(f"shift strength must be an integer in [1, {MARGIN}], got {strength}")
        h, w = ref.shape[-2:]
        directions = torch.randint(4, (n,), generator=generator).tolist()  # up, right, down, left
        steps = [((0, s, 0, -s)[d], (s, 0, -s, 0)[d]) for d in directions]
        out = torch.stack([context[i, :, MARGIN + dy: MARGIN + dy + h, MARGIN + dx: MARGIN + dx + w]
                           for i, (dy, dx) in enumerate(steps)])
    elif kind == "color":
        v = torch.randn(n, 3, generator=generator)
        v = v - v.mean(1, keepdim=True)  # zero mean over channels: a cast, not a brightness change
        out = ref + strength * (v / v.norm(dim=1, keepdim=True) * math.sqrt(3)).view(n, 3, 1, 1)
    elif kind in ("contrast", "stretch"):
        mean = ref.mean(dim=(1, 2, 3), keepdim=True)
        factor = 1 - strength if kind == "contrast" else 1 + strength
        out = mean + factor * (ref - mean)
    elif kind == "luminance":
        sign = torch.where(ref.mean(dim=(1, 2, 3), keepdim=True) < 0.5, 1.0, -1.0)
        out = ref + sign * strength
    else:
        raise ValueError(f"kind must be one of {DISTORTIONS}, got {kind!r}")
    return out.clamp(0, 1)


DISTORTIONS = ("noise", "blur", "jpeg", "shift", "color", "contrast", "luminance", "stretch")

#: Part (i): (weak, strong) strength of each distortion.
STRENGTH_PAIRS = {"noise": (0.03, 0.09), "blur": (0.7, 1.8), "jpeg": (60, 12), "shift": (1, 3),
                  "color": (0.04, 0.12), "contrast": (0.15, 0.45)}
#: Part (ii): (looks better, looks worse) at equal MSE (Wang & Bovik 2009), with the
#: strong base strength each is scaled down from.
EQUAL_MSE_PAIRS = (("luminance", "blur"), ("luminance", "noise"), ("luminance", "jpeg"),
                   ("stretch", "blur"), ("stretch", "noise"), ("stretch", "jpeg"), ("shift", "noise"))
EQUAL_MSE_TIE_RTOL = 1e-4
BASE_STRENGTH = {"luminance": 0.5, "stretch": 1.0, "blur": 3.0, "noise": 0.3, "jpeg": 5}


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.double() - b.double()).pow(2).flatten(1).mean(1)


def scale_to_mse(ref: torch.Tensor, distorted: torch.Tensor, target: torch.Tensor, iters: int = 60) -> torch.Tensor:
    """clip(ref + s (distorted - ref)) with s in [0, 1] per image chosen by bisection so its MSE is ``target``.

    The MSE grows monotonically with s (clipping only stops it growing), so bisection
    converges; ``target`` must not exceed the MSE of ``distorted`` itself.
    """
    ref64, delta = ref.double(), distorted.double() - ref.double()
    lo = torch.zeros(ref.shape[0], dtype=torch.float64, device=ref.device)
    hi = torch.ones_like(lo)
    make = lambda s: (ref64 + s.view(-1, 1, 1, 1) * delta).clamp(0, 1)  # noqa: E731
    for _ in range(iters):
        mid = (lo + hi) / 2
        above = _mse(make(mid), ref64) > target
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    return make((lo + hi) / 2).to(ref.dtype)


def reference_contexts(n: int, size: int = 64, images: Sequence[str] = TWOAFC_IMAGES, image_size: int = 256,
                       seed: int = 0) -> torch.Tensor:
    """``n`` random (3, size + 2 MARGIN, size + 2 MARGIN) crops of bundled images (grey ones as 3 channels)."""
    loaded = torch.cat([data.load_image(name, size=image_size).expand(-1, 3, -1, -1) for name in images])
    return data.random_crops(loaded, size + 2 * MARGIN, n, torch.Generator().manual_seed(seed))


def _assemble(ref, closer, farther, kinds, generator, source, tie_rtol) -> Triplets:
    """Put the closer image at p0 or p1 at random; judge = 1 where p1 is the closer one."""
    flip = torch.rand(ref.shape[0], generator=generator) < 0.5
    p0 = torch.where(flip.view(-1, 1, 1, 1), farther, closer)
    p1 = torch.where(flip.view(-1, 1, 1, 1), closer, farther)
    return Triplets(ref, p0, p1, flip.float(), kinds, source, tie_rtol)


def synthetic_2afc(part: str, n_per_kind: int = 25, size: int = 64, images: Sequence[str] = TWOAFC_IMAGES,
                   image_size: int = 256, psnr_range: tuple[float, float] = (22.0, 30.0), seed: int = 0) -> Triplets:
    """Synthetic 2AFC triplets from bundled images; ``judge`` is 0 or 1 by construction.

    Args:
        part: ``"strength"`` (part i: each distortion of ``STRENGTH_PAIRS`` at a weak and a
            strong level, both jittered by a random factor in [0.8, 1.25]; the weaker is closer) or
            ``"equal_mse"`` (part ii: each pair of ``EQUAL_MSE_PAIRS`` scaled to one MSE, drawn
            from ``psnr_range`` in dB, or set by the shift's own MSE; the better-looking one is closer).
        n_per_kind: triplets per distortion (part i) or per pair (part ii).
        size: side of the square references.
        images, image_size: bundled images, resized to ``image_size`` before cropping.
    Returns:
        :class:`Triplets` whose ``kind`` is the distortion (part i) or "better < worse" (part ii).
        In part (ii) the two MSEs agree to a few 1e-6 (relative; float32 images), so the set's
        ``tie_rtol`` is 1e-4: L2 then ties on every triplet and scores exactly 1/2.
    """
    check_positive_int(n_per_kind, "n_per_kind")
    g = torch.Generator().manual_seed(seed + 1)
    if part == "strength":
        kinds = list(STRENGTH_PAIRS)
    elif part == "equal_mse":
        kinds = [f"{a} < {b}" for a, b in EQUAL_MSE_PAIRS]
    else:
        raise ValueError(f"part must be 'strength' or 'equal_mse', got {part!r}")
    contexts = reference_contexts(n_per_kind * len(kinds), size, images, image_size, seed)
    refs, closer, farther, labels = [], [], [], []
    for k, kind in enumerate(kinds):
        ctx = contexts[k * n_per_kind: (k + 1) * n_per_kind]
        ref = _center(ctx)
        if part == "strength":
            weak, strong = STRENGTH_PAIRS[kind]
            jitter = float(torch.empty(()).uniform_(0.8, 1.25, generator=g))
            if kind in ("shift", "jpeg"):  # integer strengths: keep them as given
                jitter = 1.0
            # the same random draws (noise pattern, shift direction, colour) at both strengths
            state = int(torch.randint(2 ** 31, (), generator=g))
            a = distort(ctx, kind, weak * jitter, torch.Generator().manual_seed(state))
            b = distort(ctx, kind, strong * jitter, torch.Generator().manual_seed(state))
        else:
            good, bad = kind.split(" < ")
            b_full = distort(ctx, bad, BASE_STRENGTH[bad], g)
            if good == "shift":
                a = distort(ctx, "shift", int(torch.randint(1, 3, (), generator=g)), g)
                target = _mse(a, ref)
            else:
                a_full = distort(ctx, good, BASE_STRENGTH[good], g)
                psnr = torch.empty(ref.shape[0], dtype=torch.float64).uniform_(*psnr_range, generator=g)
                target = torch.minimum(10 ** (-psnr / 10), 0.9 * torch.minimum(_mse(a_full, ref), _mse(b_full, ref)))
                a = scale_to_mse(ref, a_full, target)
            b = scale_to_mse(ref, b_full, torch.minimum(target, _mse(b_full, ref)))
        refs.append(ref)
        closer.append(a)
        farther.append(b)
        labels += [kind] * ref.shape[0]
    source = "synthetic 2AFC, part (i): one distortion at two strengths" if part == "strength" else \
        "synthetic 2AFC, part (ii): different distortions at equal MSE"
    return _assemble(torch.cat(refs), torch.cat(closer), torch.cat(farther), labels, g, source,
                     0.0 if part == "strength" else EQUAL_MSE_TIE_RTOL)


# --------------------------------------------------------------------------- experiment


@dataclass
class AgreementConfig(PresetConfig):
    """Which metrics are scored on which 2AFC sets, and which one is calibrated.

    Quick: the synthetic set (both parts) and offline metrics.  Full: also BAPPS val (human
    judgements) and the ImageNet-trained metrics.  ``calibrate`` names a metric whose layers
    get weights fitted with eqs. (11)-(12) on half of ``calibration_set`` and tested on the other half.
    """

    FULL: ClassVar[dict] = dict(n_per_kind=100, bapps=True, calibration_set="bapps", calibrate="vgg-imagenet-norm",
                                metrics=("l2", "ssim", "vgg-random", "vgg-random-norm", "vgg-random-zm-norm",
                                         "exemplar-norm", "vgg-imagenet", "vgg-imagenet-norm", "lpips-alex", "lpips-vgg"))

    metrics: tuple[str, ...] = ("l2", "ssim", "vgg-random", "vgg-random-norm", "vgg-random-zm-norm", "exemplar-norm")
    n_per_kind: int = 20
    size: int = 64
    bapps: bool = False
    bapps_limit: int | None = None  # triplets per BAPPS subset (None: all)
    calibrate: str = "exemplar-norm"
    calibration_set: str = "equal_mse"  # a set name ("equal_mse", "strength", "bapps") or "synthetic" (both parts)
    calibration_steps: int = 500
    n_boot: int = 1000
    batch_size: int = 32
    seed: int = 0


def make_sets(config: AgreementConfig) -> dict[str, Triplets]:
    """The 2AFC sets of a config: ``strength`` and ``equal_mse`` (synthetic) and, if asked, ``bapps``."""
    sets = {part: synthetic_2afc(part, config.n_per_kind, config.size, seed=config.seed)
            for part in ("strength", "equal_mse")}
    if config.bapps:
        sets["bapps"] = load_bapps("val", limit=config.bapps_limit, size=config.size)
    return sets


def concat(a: Triplets, b: Triplets, source: str) -> Triplets:
    """Two triplet sets as one (their tie tolerance: the larger of the two)."""
    return Triplets(torch.cat([a.ref, b.ref]), torch.cat([a.p0, b.p0]), torch.cat([a.p1, b.p1]),
                    torch.cat([a.judge, b.judge]), a.kind + b.kind, source, max(a.tie_rtol, b.tie_rtol))


def run_agreement(config: AgreementConfig, device: str | torch.device = "cpu") -> dict:
    """Score every metric on every set; fit one calibrated metric.

    Returns ``sets`` ({name: Triplets}), ``labels`` ({metric: label}), ``tables`` ({set: [rows]}),
    ``components`` ({set: {metric: (c0, c1)}}) and ``calibration``: the fitted
    :class:`Calibration`, its layer names, and rows for the metric's own vs fitted layer weights on
    the held-out half.
    """
    from . import distances as registry

    sets = make_sets(config)
    if config.calibrate not in config.metrics:
        raise ValueError(f"calibrate must be one of the config's metrics {config.metrics}, got {config.calibrate!r}")
    labels, tables, components = {}, {name: [] for name in sets}, {name: {} for name in sets}
    for metric_name in config.metrics:
        metric = registry.make(metric_name, reduction="none").to(device)
        labels[metric_name] = metric.label
        for set_name, triplets in sets.items():
            c0, c1 = component_distances(metric, triplets, config.batch_size, device)
            components[set_name][metric_name] = (c0, c1)
            tables[set_name].append(agreement_row(metric_name, combine(metric, c0), combine(metric, c1),
                                                  triplets, config.n_boot, seed=config.seed))
        if metric_name == config.calibrate:
            layers, metric_for_calibration = list(getattr(metric, "layers", [metric_name])), metric

    # calibration: fit on one half, score on the other
    if config.calibration_set == "synthetic":
        pool = concat(sets["strength"], sets["equal_mse"], "synthetic 2AFC, both parts")
        c0 = torch.cat([components[s][config.calibrate][0] for s in ("strength", "equal_mse")])
        c1 = torch.cat([components[s][config.calibrate][1] for s in ("strength", "equal_mse")])
    elif config.calibration_set in sets:
        pool = sets[config.calibration_set]
        c0, c1 = components[config.calibration_set][config.calibrate]
    else:
        raise ValueError(f"calibration_set must be 'synthetic' or one of {list(sets)}, got {config.calibration_set!r}")
    perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(config.seed))
    train, test = perm[: len(pool) // 2], perm[len(pool) // 2:]
    fitted = calibrate(c0[train], c1[train], pool.judge[train], steps=config.calibration_steps)
    held_out = pool.subset(test)
    own = getattr(metric_for_calibration, "layer_weights", None)
    own = torch.ones(c0.shape[1]) if own is None else torch.tensor(list(own.values()))
    defined = Calibration(own.double() / own.sum(), 1.0)
    calibration = {
        "metric": config.calibrate, "layers": layers, "fit": fitted, "n_train": len(train), "n_test": len(test),
        "set": pool.source,
        "rows": [agreement_row(f"{config.calibrate}, {tag} layer weights", cal.distance(c0[test]), cal.distance(c1[test]),
                               held_out, config.n_boot, seed=config.seed)
                 for tag, cal in (("its own", defined), ("fitted", fitted))],
    }
    return {"sets": sets, "labels": labels, "tables": tables, "components": components, "calibration": calibration}
