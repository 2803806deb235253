"""The synthetic 2AFC set: distortions of bundled images whose "judgement" is a rule stated in advance.

Part (i), ``strength``: the same distortion at two strengths; the weaker is closer.  Part (ii),
``equal_mse``: pairs of distortions scaled to the same mean squared error, where a rule (e.g.
"a luminance shift is closer than noise") gives the answer.  These are ordering tests, not
human judgements.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from perceptlab.data.images import load_image, random_crops
from perceptlab.data.triplets import Triplets
from perceptlab.imaging.codecs import jpeg
from perceptlab.imaging.filters import gaussian_blur
from perceptlab.validate import check_positive_int

#: Bundled images the synthetic references are cut from (the comparator trains on others).
TWOAFC_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "gravel")


#: Context pixels around each reference, so that shifts and blurs need no padding.
MARGIN = 4


def _center(context: torch.Tensor) -> torch.Tensor:
    return context[..., MARGIN:-MARGIN, MARGIN:-MARGIN]


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
    loaded = torch.cat([load_image(name, size=image_size).expand(-1, 3, -1, -1) for name in images])
    return random_crops(loaded, size + 2 * MARGIN, n, torch.Generator().manual_seed(seed))


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
