"""Distribution metrics for generative models: FID and KID, with streaming feature statistics.

Both compare the distribution of *features* of real and generated images, never the
images themselves; a score only means something together with its feature space, so every
score here carries the extractor's ``label`` (see :class:`Score`).

- :func:`frechet_distance` of two Gaussians (mu, Sigma), in float64 with a stable square root;
- :class:`FeatureStats`: running mean and covariance of features fed batch by batch;
- :func:`fid` / :func:`fid_from_features`: Frechet Inception Distance (Heusel et al. 2017);
- :func:`kid` / :func:`kid_from_features`: Kernel Inception Distance (Binkowski et al. 2018).

``real`` and ``fake`` may be given as

- an image tensor (N, C, H, W) in [0, 1], cut into batches of ``batch_size``;
- an iterable of batches: a ``DataLoader``, a list or a generator yielding image tensors
  (N, C, H, W), ``(images, labels, ...)`` tuples, or single images (C, H, W) that are grouped
  into batches of ``batch_size`` (so a map-style ``Dataset`` works too); only one batch of
  images is held at a time;
- precomputed features: an (N, D) tensor or numpy array (an iterable of (N, D) batches also works),
  or, for FID only, a :class:`FeatureStats`.

The feature extractors of the course are in :mod:`perceptlab.models`: a digits classifier
trained here (quick preset) and Inception-v3 pool3 (full preset).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg
from torch import nn

from perceptlab.config import check_device, progress
from perceptlab.validate import check_image, check_positive_int

NO_LABEL = "precomputed features (feature space not stated)"


# --------------------------------------------------------------------------- the Frechet distance


def _as_float64(x, name: str, ndim: int) -> np.ndarray:
    """``x`` (numpy array, torch tensor, nested sequence or number) as a finite float64 array of rank ``ndim``."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric numpy array or torch tensor, got {type(x).__name__}") from exc
    arr = np.atleast_1d(arr) if ndim == 1 else np.atleast_2d(arr)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def trace_sqrt_product(sigma1, sigma2) -> float:
    """tr (S1 S2)^{1/2} for symmetric positive semi-definite S1, S2, in float64.

    S1 S2 is not symmetric, but it is similar to a symmetric PSD matrix: for any factor F with
    F F^T = S1, the matrices S1 S2 = F (F^T S2) and F^T S2 F have the same eigenvalues
    (eig(AB) = eig(BA)), and F^T S2 F is symmetric PSD.  So its eigenvalues are real and
    non-negative and tr (S1 S2)^{1/2} = sum_i sqrt(lambda_i(F^T S2 F)).  F is the Cholesky factor
    of S1 when S1 is numerically positive definite (cheapest: LAPACK's generalised symmetric
    eigensolver ``sygv`` of type 2 does exactly this), otherwise (singular S1, e.g. fewer
    samples than dimensions) F = U diag(sqrt(max(l, 0))), from the eigendecomposition
    S1 = U diag(l) U^T, so that F F^T = S1^{1/2} S1^{1/2} and F^T S2 F is orthogonally similar to
    S1^{1/2} S2 S1^{1/2}.  Round-off can only push the eigenvalues of the symmetric matrix slightly
    below zero; they are clamped to 0 before the square root, so the result is always real.  Those
    within round-off of zero are set to 0 too (below D eps lambda_max for S1, below
    D eps ||S1||_F ||S2||_F for the product, which is what round-off in the inputs can produce):
    on a singular problem their square roots, ~1e-8 each, would otherwise add up over the null space.
    """
    s1 = np.asarray(sigma1, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    try:  # LAPACK sygv, problem type 2 (S2 S1 x = lambda x): Cholesky S1 = L L^T, eigenvalues of L^T S2 L
        eig = linalg.eigh(s2, s1, type=2, eigvals_only=True, driver="gv", check_finite=False)
    except linalg.LinAlgError:  # S1 not numerically positive definite
        factor = _psd_sqrt_factor(s1)
        m = factor.T @ s2 @ factor
        eig = np.linalg.eigvalsh((m + m.T) / 2)
    # the computed eigenvalues are exact for inputs perturbed by ~eps ||S1|| ||S2|| (backward stability;
    # Frobenius norms bound the spectral ones): anything below D eps ||S1|| ||S2|| is round-off, i.e. 0
    return float(np.sqrt(_clamp_round_off(eig, np.linalg.norm(s1) * np.linalg.norm(s2))).sum())


def _clamp_round_off(eig: np.ndarray, scale: float) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those below the tolerance D eps ``scale`` set to 0.

    They are round-off (negative ones certainly are); left in, their square roots (~1e-8
    scale^{1/2} each) would add up over the null space of a singular matrix.
    """
    eig = eig.copy()
    eig[eig <= eig.shape[0] * np.finfo(np.float64).eps * scale] = 0.0
    return eig


def _psd_sqrt_factor(s: np.ndarray) -> np.ndarray:
    """F = U diag(sqrt(l)) with F F^T = S, from the eigendecomposition S = U diag(l) U^T (l clamped)."""
    evals, evecs = np.linalg.eigh(s)
    return evecs * np.sqrt(_clamp_round_off(evals, max(evals.max(initial=0.0), 0.0)))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2).

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})      (Dowson & Landau 1982)

    which is FID when (mu, S) are the mean and covariance of Inception pool3 features of real
    and generated images (Heusel et al. 2017, "GANs trained by a two time-scale update rule
    converge to a local Nash equilibrium", Eq. 6).

    Stability: pytorch-fid and clean-fid compute ``scipy.linalg.sqrtm(S1 @ S2)``, a Schur
    decomposition of a non-symmetric matrix; for singular covariances (fewer samples than
    dimensions, dead ReLU units) it can return NaN or complex values, which they patch by adding
    1e-6 I and discarding imaginary parts.  Here only the trace is needed, and it is computed from
    the eigenvalues of a *symmetric* PSD matrix similar to S1 S2 (see :func:`trace_sqrt_product`),
    so it is real and finite for any PSD inputs, agrees with the sqrtm formula to ~1e-12 relative
    on well-conditioned inputs, and is several times faster (two symmetric factorisations instead
    of a complex Schur decomposition; see ``benchmarks/bench_fid.py``).

    Args:
        mu1, mu2: means, shape (D,).
        sigma1, sigma2: covariances, shape (D, D), symmetric positive semi-definite (they are
            symmetrised as (S + S^T) / 2; eigenvalues below 0 from round-off count as 0).
        Numpy arrays, torch tensors (any device, detached) or sequences; computed in float64.
    Returns:
        A Python float >= 0 (round-off below zero is clamped); exactly 0.0 for identical statistics.
    Raises:
        ValueError: wrong shapes, mismatched dimensions, NaN or infinite values.
    """
    mu1, mu2 = _as_float64(mu1, "mu1", 1), _as_float64(mu2, "mu2", 1)
    sigma1, sigma2 = _as_float64(sigma1, "sigma1", 2), _as_float64(sigma2, "sigma2", 2)
    d = mu1.shape[0]
    if d == 0:
        raise ValueError("mu1 must have at least one dimension (D >= 1), got length 0")
    if mu2.shape != (d,):
        raise ValueError(f"mu1 and mu2 must have the same length, got {mu1.shape} and {mu2.shape}")
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must have shape ({d}, {d}) to match the means, got {s.shape}")
        scale = max(float(np.abs(s).max()), 1e-300)
        if not np.allclose(s, s.T, rtol=1e-6, atol=1e-9 * scale):
            raise ValueError(f"{name} must be a symmetric covariance matrix; it is not (max |S - S^T| = "
                             f"{float(np.abs(s - s.T).max()):.3g})")
        lowest = float(np.linalg.eigvalsh((s + s.T) / 2).min())
        if lowest < -1e-6 * scale:
            raise ValueError(f"{name} must be positive semi-definite (a covariance); its lowest eigenvalue is "
                             f"{lowest:.3g}")
    if np.array_equal(mu1, mu2) and np.array_equal(sigma1, sigma2):
        return 0.0
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


# --------------------------------------------------------------------------- streaming statistics


def _features_2d(features, name: str) -> torch.Tensor:
    """An (N, D) batch of features as a finite float64 CPU tensor."""
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"{name} must be an (N, D) torch tensor or numpy array, got {type(features).__name__}")
    if features.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got shape {tuple(features.shape)}")
    if features.dtype == torch.bool or features.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {features.dtype}")
    f = features.detach().to("cpu", torch.float64)
    if not torch.isfinite(f).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return f


class FeatureStats:
    """Running mean and covariance of features fed in batches, in float64.

    Each batch B (n_b, D) is merged with Chan, Golub & LeVeque's (1979) pairwise update of
    Welford's algorithm: with the batch mean m_b and scatter M_b = (B - m_b)^T (B - m_b),

        n = n_a + n_b,   delta = m_b - m_a,   mean = m_a + delta n_b / n,
        M = M_a + M_b + delta delta^T n_a n_b / n,

    so the result does not depend on how the features were split into batches (up to round-off)
    and does not suffer the cancellation of the naive sum-of-outer-products formula.
    ``cov`` is M / (n - 1), the unbiased covariance that ``np.cov`` (used by pytorch-fid and
    clean-fid) returns.  Memory: O(D^2), independent of the number of samples.

    Args:
        feature_space: label of the feature space (an extractor's ``label``); FID refuses to
            compare statistics with different labels.
    """

    def __init__(self, feature_space: str = NO_LABEL):
        self.feature_space = feature_space
        self.n = 0
        self._mean: np.ndarray | None = None
        self._scatter: np.ndarray | None = None

    @classmethod
    def from_features(cls, features, feature_space: str = NO_LABEL) -> FeatureStats:
        """Statistics of an (N, D) array or tensor in one go."""
        return cls(feature_space).update(features)

    @property
    def dim(self) -> int | None:
        """Feature dimension D (None before the first batch)."""
        return None if self._mean is None else self._mean.shape[0]

    def update(self, features, name: str = "features") -> FeatureStats:
        """Add a batch of features (n_b, D) (torch tensor or numpy array); returns ``self``."""
        f = _features_2d(features, name).numpy()
        if f.shape[0] == 0:
            return self
        if self.dim is not None and f.shape[1] != self.dim:
            raise ValueError(f"{name} must have {self.dim} features per row like the earlier batches, "
                             f"got shape {f.shape}")
        nb = f.shape[0]
        mb = f.mean(0)
        centred = f - mb
        mb_scatter = centred.T @ centred
        if self.n == 0:
            self._mean, self._scatter = mb, mb_scatter
        else:
            n = self.n + nb
            delta = mb - self._mean
            self._mean = self._mean + delta * (nb / n)
            self._scatter = self._scatter + mb_scatter + np.outer(delta, delta) * (self.n * nb / n)
        self.n += nb
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add the statistics of ``other`` (e.g. computed on another worker); returns ``self``.

        Both must be statistics of the same feature space (equal labels, or one unlabelled).
        """
        if not isinstance(other, FeatureStats):
            raise ValueError(f"other must be a FeatureStats (use update() for a batch of features), "
                             f"got {type(other).__name__}")
        if NO_LABEL not in (self.feature_space, other.feature_space) and self.feature_space != other.feature_space:
            raise ValueError(f"other holds features of another space ({other.feature_space!r}) than these "
                             f"({self.feature_space!r}); statistics of different feature spaces cannot be merged")
        if self.feature_space == NO_LABEL:
            self.feature_space = other.feature_space
        if other.n == 0:
            return self
        if self.n == 0:
            self._mean, self._scatter, self.n = other._mean.copy(), other._scatter.copy(), other.n
            return self
        if other.dim != self.dim:
            raise ValueError(f"other must have dimension {self.dim}, got {other.dim}")
        n = self.n + other.n
        delta = other._mean - self._mean
        self._mean = self._mean + delta * (other.n / n)
        self._scatter = self._scatter + other._scatter + np.outer(delta, delta) * (self.n * other.n / n)
        self.n = n
        return self

    @property
    def mean(self) -> np.ndarray:
        """Mean feature, (D,) float64."""
        if self.n == 0:
            raise ValueError("FeatureStats has no samples yet; call update() first")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (ddof = 1, as ``np.cov``), (D, D) float64; needs at least 2 samples."""
        if self.n < 2:
            raise ValueError(f"the covariance needs at least 2 samples, FeatureStats has {self.n}")
        s = self._scatter / (self.n - 1)
        return (s + s.T) / 2

    def __repr__(self) -> str:
        return f"FeatureStats(n={self.n}, dim={self.dim}, feature_space={self.feature_space!r})"


# --------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class Score:
    """A distribution score with the feature space it was measured in.

    ``float(score)`` (or ``score.value``) is the number; ``f"{score:.2f}"`` formats it;
    ``str(score)`` reads e.g. ``FID = 12.34 (1000 real, 1000 fake; digits classifier trained here
    (test accuracy 0.981))``.  Scores from different feature spaces are not comparable.

    Attributes:
        value: the score (for KID: the mean over subsets).
        feature_space: the extractor's ``label`` (what the features are).
        n_real, n_fake: number of samples on each side.
        metric: "FID" or "KID".
        std: for KID, the standard deviation over subsets (None for FID).
    """

    value: float
    feature_space: str
    n_real: int
    n_fake: int
    metric: str = "FID"
    std: float | None = None

    def __float__(self) -> float:
        return float(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __str__(self) -> str:
        spread = f" +- {self.std:.4g}" if self.std is not None else ""
        return (f"{self.metric} = {self.value:.4g}{spread} ({self.n_real} real, {self.n_fake} fake; "
                f"{self.feature_space})")


# --------------------------------------------------------------------------- from images to features


def extractor_label(extractor) -> str:
    """An extractor's ``label`` attribute, or a stand-in naming its class."""
    label = getattr(extractor, "label", None)
    return label if isinstance(label, str) and label else f"{type(extractor).__name__} features (no label given)"


def _device_of(extractor, device) -> torch.device:
    if device is not None:
        return check_device(device)
    if isinstance(extractor, nn.Module):
        for t in (*extractor.parameters(), *extractor.buffers()):
            return t.device
    return torch.device("cpu")


def _batch_dependent(extractor) -> bool:
    """Whether ``extractor`` has layers that behave differently in training mode and are in it."""
    if not isinstance(extractor, nn.Module):
        return False
    kinds = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
    return any(m.training and isinstance(m, kinds) for m in extractor.modules())


def _run_extractor(extractor, images: torch.Tensor, device: torch.device, name: str) -> torch.Tensor:
    with torch.no_grad():
        f = extractor(images.to(device))
    if not isinstance(f, torch.Tensor):
        raise ValueError(f"extractor must return a tensor (N, D), got {type(f).__name__}")
    if f.dim() > 2 and all(s == 1 for s in f.shape[2:]):
        f = f.flatten(1)  # (N, D, 1, 1) pooled maps
    if f.dim() != 2 or f.shape[0] != images.shape[0]:
        raise ValueError(f"extractor must map {name} of shape (N, C, H, W) to features (N, D), "
                         f"got {tuple(images.shape)} -> {tuple(f.shape)}")
    return f


def _batch_tensor(item, name: str, i: int) -> torch.Tensor | np.ndarray:
    """The data tensor of one item of an iterable: the item itself or the first entry of a tuple/list."""
    if isinstance(item, (tuple, list)) and item:
        item = item[0]
    if isinstance(item, (torch.Tensor, np.ndarray)):
        return item
    raise ValueError(f"item {i} of {name} must be a tensor or a tuple (images, labels, ...), got {type(item).__name__}")


def iter_features(source, extractor=None, *, batch_size: int = 64, device=None, name: str = "images",
                  show_progress: bool = True) -> Iterator[torch.Tensor]:
    """Yield (n_b, D) feature batches of ``source`` (images or features; see the module docstring).

    Images go through ``extractor`` under ``torch.no_grad()`` one batch at a time (on ``device``,
    by default the extractor's own); they are checked to be float in [0, 1] first, with errors
    naming ``name``.  Feature inputs (2-D) are passed through unchanged (the extractor is unused).
    """
    check_positive_int(batch_size, "batch_size")
    if isinstance(source, FeatureStats):
        raise ValueError(f"{name} is a FeatureStats (only a mean and covariance); this needs the features themselves")

    def images_to_features(batch: torch.Tensor, label: str) -> torch.Tensor:
        if extractor is None:
            raise ValueError(f"{name} holds images; pass an extractor (see perceptlab.models) to turn them into "
                             "features, or pass precomputed (N, D) features")
        if _batch_dependent(extractor):
            raise ValueError("extractor has BatchNorm or Dropout layers in training mode (features would depend on "
                             "the batch and on chance); call extractor.eval()")
        check_image(batch, label)
        return _run_extractor(extractor, batch, dev, label)

    dev = _device_of(extractor, device) if extractor is not None else torch.device("cpu")
    if isinstance(source, (torch.Tensor, np.ndarray)):
        if source.ndim == 2:
            yield _features_2d(source, name)
            return
        if source.ndim != 4 or not isinstance(source, torch.Tensor):
            raise ValueError(f"{name} must be images as a torch tensor (N, C, H, W) in [0, 1] or features (N, D), "
                             f"got a {type(source).__name__} of shape {tuple(source.shape)}")
        starts = range(0, source.shape[0], batch_size)
        for start in (progress(starts, desc=name) if show_progress else starts):
            yield images_to_features(source[start: start + batch_size], name)
        return
    if not isinstance(source, (str, bytes, Iterable)) and hasattr(source, "__getitem__") and hasattr(source, "__len__"):
        source = map(source.__getitem__, range(len(source)))  # a map-style Dataset
    if isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
        raise ValueError(f"{name} must be an image tensor (N, C, H, W), features (N, D), an iterable of batches "
                         f"or FeatureStats, got {type(source).__name__}")
    kind, pending = None, []
    for i, item in enumerate(progress(source, desc=name) if show_progress else source):
        x = _batch_tensor(item, name, i)
        item_kind = {2: "features", 3: "image", 4: "images"}.get(x.ndim)
        if item_kind is None:
            raise ValueError(f"item {i} of {name} must be images (N, C, H, W), one image (C, H, W) or features (N, D), "
                             f"got shape {tuple(x.shape)}")
        if kind is not None and (kind == "features") != (item_kind == "features"):
            raise ValueError(f"{name} mixes images and features (item {i} has shape {tuple(x.shape)})")
        kind = item_kind
        if item_kind == "features":
            yield _features_2d(x, f"item {i} of {name}")
            continue
        if isinstance(x, np.ndarray):
            raise ValueError(f"item {i} of {name} must be a torch tensor of images, got a numpy array")
        if item_kind == "images":
            yield images_to_features(x, f"batch {i} of {name}")
            continue
        pending.append(x)
        if len(pending) == batch_size:
            yield images_to_features(torch.stack(pending), f"images {i + 1 - batch_size}..{i} of {name}")
            pending = []
    if pending:
        yield images_to_features(torch.stack(pending), f"the last {len(pending)} images of {name}")
    if kind is None:
        raise ValueError(f"{name} is empty")


def feature_stats(source, extractor=None, *, batch_size: int = 64, device=None, name: str = "images",
                  feature_space: str | None = None) -> FeatureStats:
    """Streaming :class:`FeatureStats` of ``source`` (images or features), labelled with the feature space.

    A ``FeatureStats`` is returned as it is.  The label is ``feature_space`` if given, else the
    extractor's ``label`` (for images), else :data:`NO_LABEL`.
    """
    if isinstance(source, FeatureStats):
        return source
    stats = FeatureStats(feature_space or _default_label(source, extractor))
    for f in iter_features(source, extractor, batch_size=batch_size, device=device, name=name):
        stats.update(f, name)
    if stats.n == 0:
        raise ValueError(f"{name} is empty")
    return stats


def features(source, extractor=None, *, batch_size: int = 64, device=None, name: str = "images") -> torch.Tensor:
    """All features of ``source`` as one (N, D) float64 CPU tensor (KID needs them; FID only needs stats)."""
    out = [f.to("cpu", torch.float64) for f in iter_features(source, extractor, batch_size=batch_size,
                                                               device=device, name=name)]
    dims = {f.shape[1] for f in out}
    if len(dims) > 1:
        raise ValueError(f"{name} yields features of different dimensions {sorted(dims)}")
    return torch.cat(out)


def _is_features(source) -> bool:
    return isinstance(source, (torch.Tensor, np.ndarray)) and source.ndim == 2


def _default_label(source, extractor) -> str:
    if isinstance(source, FeatureStats):
        return source.feature_space
    if _is_features(source) or extractor is None:
        return extractor_label(extractor) if extractor is not None else NO_LABEL
    return extractor_label(extractor)


def _common_label(real, fake, extractor, feature_space: str | None) -> str:
    if feature_space is not None:
        return feature_space
    labels = {_default_label(s, extractor) for s in (real, fake)}
    labels.discard(NO_LABEL)
    if len(labels) > 1:
        raise ValueError(f"real and fake come from different feature spaces {sorted(labels)}; their distance "
                         "means nothing (pass feature_space=... to override)")
    return labels.pop() if labels else NO_LABEL


# --------------------------------------------------------------------------- FID


def fid_from_stats(real: FeatureStats, fake: FeatureStats, names: tuple[str, str] = ("real", "fake")) -> float:
    """FID between two :class:`FeatureStats` (:func:`frechet_distance` of their means and covariances).

    ``names`` are the arguments' names in the error messages.
    """
    for name, stats in zip(names, (real, fake)):
        if stats.n < 2:
            raise ValueError(f"{name} must hold at least 2 feature vectors, rows of an (N, D) array (FID needs a "
                             f"covariance), got N = {stats.n}")
    if real.dim != fake.dim:
        raise ValueError(f"{names[0]} and {names[1]} features must have the same dimension, got {real.dim} and {fake.dim}")
    return frechet_distance(real.mean, real.cov, fake.mean, fake.cov)


def fid_from_features(f1, f2) -> float:
    """FID between two feature arrays (N1, D) and (N2, D) (numpy or torch): the Frechet distance of
    their means and unbiased covariances, as ``cleanfid.fid.fid_from_feats`` computes it."""
    return fid_from_stats(FeatureStats().update(f1, "f1"), FeatureStats().update(f2, "f2"), names=("f1", "f2"))


def fid(real, fake, extractor=None, *, batch_size: int = 64, device=None, feature_space: str | None = None) -> Score:
    """Frechet Inception Distance between real and generated images, in a stated feature space.

    FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2})   (Heusel et al. 2017)

    with (mu, S) the mean and unbiased covariance of the features of each set, accumulated batch by
    batch (:class:`FeatureStats`), so image sets of any size can be streamed from a ``DataLoader``.
    Lower is better; 0 for identical statistics.  FID is biased upwards for small N (Chong &
    Forsyth 2020): compare scores computed with the same N and the same extractor only.

    Args:
        real, fake: images (tensor or iterable of batches), features (N, D), or FeatureStats
            (see the module docstring).
        extractor: a module mapping (N, C, H, W) in [0, 1] to (N, D), e.g.
            :func:`perceptlab.models.digits_classifier` or :class:`~perceptlab.models.InceptionFeatures`;
            needed only for image inputs; its ``label`` becomes the score's ``feature_space``.
        batch_size: images per extractor call (for tensors and single-image iterables).
        device: where the extractor runs (default: where its parameters are).
        feature_space: label to use instead (e.g. for raw feature arrays).
    Returns:
        A :class:`Score` (``float(score)`` is the FID).
    Raises:
        ValueError: bad inputs, images outside [0, 1], mismatched dimensions, fewer than 2 samples,
        or real/fake statistics labelled with different feature spaces.
    """
    label = _common_label(real, fake, extractor, feature_space)
    s_real = feature_stats(real, extractor, batch_size=batch_size, device=device, name="real")
    s_fake = feature_stats(fake, extractor, batch_size=batch_size, device=device, name="fake")
    for name, s in (("real", s_real), ("fake", s_fake)):
        if s.n < 2:
            raise ValueError(f"{name} must have at least 2 samples for a covariance, got {s.n}")
    return Score(fid_from_stats(s_real, s_fake), label, s_real.n, s_fake.n, "FID")


# --------------------------------------------------------------------------- KID


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x, y) = (x . y / d + 1)^3 for all pairs of rows: (m, d), (n, d) -> (m, n)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 of two equal-size samples (m, d) with the cubic polynomial kernel.

    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] - 2/m^2 sum_{i, j} k(x_i, y_j)
    (Gretton et al. 2012, Lemma 6, with the cross term averaged over all pairs as clean-fid and
    torchmetrics do).  Can be negative: its expectation is exactly 0 for identical distributions.
    """
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * kxy.sum() / m ** 2


def _check_subsets(num_subsets, subset_size) -> None:
    check_positive_int(num_subsets, "num_subsets")
    check_positive_int(subset_size, "subset_size")
    if subset_size < 2:
        raise ValueError(f"subset_size must be at least 2, got {subset_size}")


def kid_from_features(f1, f2, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID between feature arrays f1 (real, (N1, D)) and f2 (fake, (N2, D)): (mean, std) over subsets.

    Each of ``num_subsets`` rounds draws m = min(subset_size, N1, N2) rows of f1 and of f2 without
    replacement (``torch.randperm(N1)[:m]`` then ``torch.randperm(N2)[:m]`` from a generator seeded
    with ``seed``: the same draws as torchmetrics' ``KernelInceptionDistance`` after
    ``torch.manual_seed(seed)``) and computes :func:`mmd2_unbiased` in float64.  The mean is KID
    (Binkowski et al. 2018, "Demystifying MMD GANs"); std is the population standard deviation
    over subsets (``unbiased=False``, as torchmetrics).  ``subset_size`` is clamped to the smaller
    set, like clean-fid's ``max_subset_size``; with m = N1 = N2 every subset is the full set and
    the estimate is deterministic (std 0).
    """
    _check_subsets(num_subsets, subset_size)
    x, y = _features_2d(f1, "f1"), _features_2d(f2, "f2")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"f1 and f2 must have the same feature dimension, got {x.shape[1]} and {y.shape[1]}")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples on each side, got {x.shape[0]} and {y.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(num_subsets):
        xi = torch.randperm(x.shape[0], generator=g)[:m]
        yi = torch.randperm(y.shape[0], generator=g)[:m]
        values.append(mmd2_unbiased(x[xi], y[yi]))
    v = torch.stack(values)
    return float(v.mean()), float(v.std(unbiased=False))


def kid(real, fake, extractor=None, *, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        batch_size: int = 64, device=None, feature_space: str | None = None) -> Score:
    """Kernel Inception Distance: unbiased MMD^2 with k(x, y) = (x . y / d + 1)^3, averaged over subsets.

    Unlike FID it is unbiased in the number of samples (its expectation does not depend on N) and
    makes no Gaussian assumption; it can be slightly negative.  The kernel's 1/d scaling was
    chosen for Inception pool3 features (entries of order 0.1-1); in other feature spaces KID's
    magnitude differs (the digits classifier's features are larger, so are its KIDs): as with FID,
    compare KIDs from the same extractor only.  Images are streamed through the
    extractor batch by batch, but the features are kept (MMD needs all pairs): N x D floats per side.
    Cost: num_subsets x 3 products of (m x D) (D x m) matrices.

    Args: as :func:`fid` (FeatureStats are not accepted), plus ``num_subsets``, ``subset_size`` and
    ``seed`` of :func:`kid_from_features`.
    Returns:
        A :class:`Score` with ``value`` the mean and ``std`` the standard deviation over subsets.
    """
    _check_subsets(num_subsets, subset_size)
    for name, s in (("real", real), ("fake", fake)):
        if isinstance(s, FeatureStats):
            raise ValueError(f"{name} is a FeatureStats; KID needs the features themselves (N, D), not their mean "
                             "and covariance")
    label = _common_label(real, fake, extractor, feature_space)
    f_real = features(real, extractor, batch_size=batch_size, device=device, name="real")
    f_fake = features(fake, extractor, batch_size=batch_size, device=device, name="fake")
    if f_real.shape[1] != f_fake.shape[1]:
        raise ValueError(f"real and fake features must have the same dimension, got {f_real.shape[1]} and "
                         f"{f_fake.shape[1]}")
    mean, std = kid_from_features(f_real, f_fake, num_subsets, subset_size, seed)
    return Score(mean, label, f_real.shape[0], f_fake.shape[0], "KID", std)
