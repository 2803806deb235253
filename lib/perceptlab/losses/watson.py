"""Watson's perceptual model as a trainable loss: Watson-DCT and Watson-DFT (Czolbe, Krause, Cox & Igel 2020).

A single-channel image is cut into K disjoint 8x8 blocks and each block is transformed, by the
orthonormal DCT-II (``block_dct``: C = A X A^T) or by the real 2-D DFT of the block divided by 64
(``block_dft``: 8x5 half spectrum).  With C the coefficients of the *target* (the reference,
which sets the thresholds) and C' those of the input, for one image (the paper's eqs. 5-8)::

    T_L[ijk] = T[ij] ((C[00k] + eps) / (mean_k C[00k] + eps)) ** alpha        luminance masking (5)
    S[ijk]   = smax(T_L[ijk], (|C[ijk]| + eps) ** r  T_L[ijk] ** (1 - r))     contrast masking (6, 7)
    smax(a, b) = (a e^a + b e^b) / (e^a + e^b)                                 softmax of the two (7)
    D        = ( sum_ijk [ (|C[ijk] - C'[ijk]| / S[ijk] + eps) ** p + eps ] ) ** (1 / p)   pooling (8)

with eps = 1e-10 placed as in the authors' released code (``src/loss/watson.py`` of
github.com/SteffenCzolbe/PerceptualSimilarity); the paper writes eq. 8 as sqrt(eps + sum abs(.)^p),
the code (and Watson's Minkowski pooling) takes the p-th root, which we follow.  The DFT variant
(eq. 10) applies the same model to the amplitudes A = sqrt((Re + eps)^2 + (Im + eps)^2) and adds
a phase term on the phases phi = atan2(Im, Re + eps)::

    L_DFT = D(A, A') + sum_ijk w[ij] arccos((1 - 1e-7) cos(phi[ijk] - phi'[ijk])),

where the factor 1 - 1e-7 keeps arccos away from +-1 (infinite gradient) and w is zero at the
four real-only bins (0, 0), (0, 4), (4, 0), (4, 4) of the half spectrum, whose "phase" is only a
sign.  Colour images (eq. 9) are converted to YCbCr (BT.601, full range, Cb and Cr offset by
1/2) and L = sum_c lambda_c L_c with lambda = softmax(channel logits) and separate parameters per
channel.  Every parameter is stored unconstrained: log T, alpha, logit r, p, log w, channel logits.

Departures from the released code, on purpose: the mean luminance of eq. 5 is each image's own
(the paper's definition; the code averages over the whole batch, so a distance there depends on
the other images in the batch: ``luminance_mean="batch"`` reproduces it); the phase weights of
the real-only bins are zero in training too (the code zeroes them only for frozen models); no
dropout during calibration.  Inputs are (N, C, H, W) in [0, 1] with H and W multiples of 8.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.validate import check_image, check_same_shape

BLOCK = 8
EPS = 1e-10
#: arccos is applied to (1 - PHASE_SHRINK) * cos(dphi), as in the released code.
PHASE_SHRINK = 1e-7
#: Largest grid offset of the shift mode, in pixels (offsets are uniform in [-4, 4]).
MAX_SHIFT = 4
#: RGB -> YCbCr (BT.601, full range) for images in [0, 1]: ycc = M @ rgb + bias.
YCBCR_MATRIX = ((0.299, 0.587, 0.114), (-0.1687, -0.3313, 0.5), (0.5, -0.4187, -0.0813))
YCBCR_BIAS = (0.0, 0.5, 0.5)
#: RGB -> grey weights of the released code's greyscale wrapper (what the trained grey parameters saw).
GREY_WEIGHTS = (0.3, 0.59, 0.11)
CHANNEL_NAMES = {1: ("grey",), 3: ("Y", "Cb", "Cr")}
TRANSFORMS = ("dct", "dft")
REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------- block transforms
def dct_matrix(n: int = BLOCK, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The orthonormal n x n DCT-II matrix A: A[i, j] = c_i cos(pi (2j + 1) i / (2n)), c_0 = sqrt(1/n), else sqrt(2/n)."""
    i = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    a = torch.cos(math.pi * (2 * j + 1) * i / (2 * n)) * math.sqrt(2 / n)
    a[0] = math.sqrt(1 / n)
    return a.to(dtype=dtype, device=device)


def to_blocks(x: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """(N, H, W) -> (N, K, block, block): the disjoint blocks in row-major order, K = (H / block) (W / block)."""
    n, h, w = x.shape
    return x.reshape(n, h // block, block, w // block, block).permute(0, 1, 3, 2, 4).reshape(n, -1, block, block)


def block_dct(x: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """(N, H, W) -> (N, K, 8, 8) DCT coefficients C = A X A^T of each block (orthonormal: C[0, 0] = 8 x block mean)."""
    a = dct_matrix(block, x.dtype, x.device)
    return a @ to_blocks(x, block) @ a.T


def block_dft(x: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """(N, H, W) -> (N, K, 8, 5) complex: the real 2-D FFT of each block divided by 64 (C[0, 0] = block mean)."""
    return torch.fft.rfft2(to_blocks(x, block)) / block ** 2


def amplitude_phase(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitude sqrt((Re + eps)^2 + (Im + eps)^2) and phase atan2(Im, Re + eps) of complex coefficients."""
    re, im = c.real, c.imag
    return torch.sqrt((re + EPS) ** 2 + (im + EPS) ** 2), torch.atan2(im, re + EPS)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> YCbCr (BT.601 full range; Y in [0, 1], Cb and Cr in [0, 1] around 1/2)."""
    m = x.new_tensor(YCBCR_MATRIX)
    return torch.einsum("ck,nkhw->nchw", m, x) + x.new_tensor(YCBCR_BIAS).view(1, 3, 1, 1)


def rgb_to_grey(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) grey 0.3 R + 0.59 G + 0.11 B, the released greyscale wrapper's weights."""
    return torch.einsum("k,nkhw->nhw", x.new_tensor(GREY_WEIGHTS), x)[:, None]


# ---------------------------------------------------------------- the model's steps (eqs. 5-8, 10)
def luminance_masking(t: torch.Tensor, dc: torch.Tensor, alpha: torch.Tensor | float,
                      luminance_mean: str = "image") -> torch.Tensor:
    """Eq. 5: T_L[ijk] = T[ij] ((C[00k] + eps) / (mean C[00] + eps)) ** alpha.

    Args:
        t: (B, B') sensitivity table T.
        dc: (N, K) d.c. coefficients C[00k] of the target's blocks (non-negative).
        alpha: luminance-masking exponent.
        luminance_mean: "image" (the mean over each image's blocks, eq. 5) or "batch" (over the
            whole batch, as the released code does).
    Returns: (N, K, B, B') thresholds.
    """
    mean = dc.mean(1, keepdim=True) if luminance_mean == "image" else dc.mean()
    return t * (((dc + EPS) / (mean + EPS)) ** alpha)[..., None, None]


def smooth_max(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 7's smooth maximum of two tensors (broadcast): (a e^a + b e^b) / (e^a + e^b), a softmax-weighted mean."""
    a, b = torch.broadcast_tensors(a, b)
    w = torch.softmax(torch.stack([a, b], -1), -1)
    return a * w[..., 0] + b * w[..., 1]


def contrast_masking(t_l: torch.Tensor, c: torch.Tensor, r: torch.Tensor | float) -> torch.Tensor:
    """Eqs. 6-7: S = smax(T_L, (abs(C) + eps) ** r  T_L ** (1 - r)), the masked threshold of each coefficient."""
    return smooth_max(t_l, (c.abs() + EPS) ** r * t_l ** (1 - r))


def minkowski_pool(c_input: torch.Tensor, c_target: torch.Tensor, s: torch.Tensor,
                   p: torch.Tensor | float) -> torch.Tensor:
    """Eq. 8: (sum_ijk [(abs(C - C') / S + eps) ** p + eps]) ** (1 / p) over (K, B, B'), shape (N,)."""
    terms = ((c_target - c_input) / s).abs().add(EPS) ** p + EPS
    return terms.sum((1, 2, 3)) ** (1 / p)


def watson_distance(c_input: torch.Tensor, c_target: torch.Tensor, t: torch.Tensor, alpha, r, p,
                    luminance_mean: str = "image") -> torch.Tensor:
    """Watson's distance (eqs. 5-8) between (N, K, B, B') real coefficients; thresholds from the target. (N,)"""
    t_l = luminance_masking(t, c_target[..., 0, 0], alpha, luminance_mean)
    return minkowski_pool(c_input, c_target, contrast_masking(t_l, c_target, r), p)


def phase_distance(phase_input: torch.Tensor, phase_target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eq. 10's phase term: sum_ijk w[ij] arccos((1 - 1e-7) cos(phi - phi')), shape (N,)."""
    d = torch.acos(torch.cos(phase_target - phase_input) * (1 - PHASE_SHRINK))
    return (d * w).sum((1, 2, 3))


def real_only_mask(block: int = BLOCK) -> torch.Tensor:
    """(B, B/2 + 1) ones, zero at the bins of the real FFT whose coefficient is real for real input."""
    mask = torch.ones(block, block // 2 + 1)
    for i in (0, block // 2):
        for j in (0, block // 2):
            mask[i, j] = 0
    return mask


# ---------------------------------------------------------------- input checks and the grid shift
def check_blocks(x: torch.Tensor, name: str, block: int = BLOCK) -> None:
    """ValueError unless H and W of ``x`` are multiples of ``block`` (at least one block)."""
    h, w = x.shape[-2:]
    if h < block or w < block:
        raise ValueError(f"{name} must be at least {block}x{block} pixels (one block), got {h}x{w}; "
                         f"upsample or pad it (e.g. F.pad(x, ..., mode='replicate')) to at least {block}x{block}")
    if h % block or w % block:
        lo = (h // block * block, w // block * block)
        hi = (-(-h // block) * block, -(-w // block) * block)
        raise ValueError(f"{name} must have height and width that are multiples of {block}, got {h}x{w}; crop it to "
                         f"{lo[0]}x{lo[1]} or pad it (replicate) to {hi[0]}x{hi[1]}")


def grid_shift(input: torch.Tensor, target: torch.Tensor, offset: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the block grid: replicate-pad both images by MAX_SHIFT and crop H x W at ``offset`` (dy, dx) in [0, 8].

    The image content moves by (dy - 4, dx - 4) pixels relative to the grid, the same for both
    images and the whole batch; in expectation over offsets the blocks cover every position.
    """
    h, w = input.shape[-2:]
    dy, dx = offset
    crop = lambda z: F.pad(z, (MAX_SHIFT,) * 4, mode="replicate")[..., dy: dy + h, dx: dx + w]  # noqa: E731
    return crop(input), crop(target)


# ---------------------------------------------------------------- parameters on disk
def assets_dir() -> Path:
    """The folder of the course's data assets (``assets/`` of the repository, shipped as ``perceptlab/_assets``)."""
    return Path(__file__).resolve().parents[1] / "_assets"


def parameters_path(transform: str, channels: int, pretrained: bool = True) -> Path:
    """The shipped parameter file: ``assets/watson/watson-{dct,dft}-{grey,colour}.json`` or ``...-untrained.json``."""
    if not pretrained:
        return assets_dir() / "watson" / f"watson-{transform}-untrained.json"
    return assets_dir() / "watson" / f"watson-{transform}-{'grey' if channels == 1 else 'colour'}.json"


def read_parameters(path: str | Path) -> dict:
    """A parameter file (JSON with ``transform``, ``channels``, ``parameters``: {name: number or nested list})."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Watson parameter file {path} does not exist; the shipped files are in "
                         f"{assets_dir() / 'watson'} (regenerate them with `python assets/watson/convert.py`), "
                         f"or pass pretrained=False for the untrained starting values")
    try:
        record = json.loads(path.read_text())
        params = {k: torch.tensor(v, dtype=torch.float32) for k, v in record["parameters"].items()}
        return {"transform": record["transform"], "channels": list(record["channels"]), "parameters": params}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"Watson parameter file {path} is malformed ({type(exc).__name__}: {exc}); expected JSON "
                         "with 'transform', 'channels' and 'parameters' as written by WatsonDCT.save_parameters") \
            from exc


# ---------------------------------------------------------------- modules
class WatsonChannel(nn.Module):
    """The parameters and distance of one channel (unconstrained: log T, alpha, logit r, p, log w)."""

    def __init__(self, transform: str, block: int = BLOCK):
        super().__init__()
        self.transform, self.block = transform, block
        shape = (block, block) if transform == "dct" else (block, block // 2 + 1)
        self.log_t = nn.Parameter(torch.zeros(shape))
        self.alpha = nn.Parameter(torch.tensor(0.0))
        self.logit_r = nn.Parameter(torch.tensor(0.0))
        self.p = nn.Parameter(torch.tensor(1.0))
        if transform == "dft":
            self.log_phase_weight = nn.Parameter(torch.zeros(shape))
            self.register_buffer("phase_mask", real_only_mask(block), persistent=False)

    @property
    def t(self) -> torch.Tensor:
        return self.log_t.exp()

    @property
    def r(self) -> torch.Tensor:
        return torch.sigmoid(self.logit_r)

    @property
    def phase_weight(self) -> torch.Tensor:
        return self.log_phase_weight.exp() * self.phase_mask

    def forward(self, input: torch.Tensor, target: torch.Tensor, luminance_mean: str = "image") -> torch.Tensor:
        """(N, H, W) single-channel input and target -> (N,) distances."""
        if self.transform == "dct":
            return watson_distance(block_dct(input, self.block), block_dct(target, self.block), self.t, self.alpha,
                                   self.r, self.p, luminance_mean)
        amp_x, phase_x = amplitude_phase(block_dft(input, self.block))
        amp_y, phase_y = amplitude_phase(block_dft(target, self.block))
        return (watson_distance(amp_x, amp_y, self.t, self.alpha, self.r, self.p, luminance_mean)
                + phase_distance(phase_x, phase_y, self.phase_weight))


class _Watson(nn.Module):
    transform = "dct"

    def __init__(self, channels: int = 3, pretrained: bool | str | Path = True, shift: bool = False,
                 reduction: str = "none", seed: int = 0, luminance_mean: str = "image", grey_from_rgb: bool = False):
        super().__init__()
        if channels not in CHANNEL_NAMES:
            raise ValueError(f"channels must be 1 (greyscale) or 3 (colour, YCbCr), got {channels!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if luminance_mean not in ("image", "batch"):
            raise ValueError(f"luminance_mean must be 'image' or 'batch', got {luminance_mean!r}")
        if grey_from_rgb and channels != 1:
            raise ValueError("grey_from_rgb=True needs channels=1 (a greyscale model fed RGB images)")
        self.channels, self.shift, self.reduction, self.luminance_mean = channels, bool(shift), reduction, luminance_mean
        self.grey_from_rgb = bool(grey_from_rgb)
        self.models = nn.ModuleDict({name: WatsonChannel(self.transform) for name in CHANNEL_NAMES[channels]})
        if channels == 3:
            self.channel_logits = nn.Parameter(torch.zeros(3))
        self.generator = torch.Generator().manual_seed(seed)
        self.last_offset: tuple[int, int] | None = None
        if isinstance(pretrained, bool):
            path, what = parameters_path(self.transform, channels, pretrained), \
                ("trained on BAPPS by Czolbe et al. 2020" if pretrained else "untrained starting values")
        else:
            path, what = Path(pretrained), f"parameters from {Path(pretrained).name}"
        self.load_parameters(path)
        grey = ("greyscale of RGB (0.3, 0.59, 0.11)" if grey_from_rgb else "greyscale") if channels == 1 \
            else "colour (YCbCr)"
        self.label = f"Watson-{self.transform.upper()}, {grey}, {what}" + (", grid shift" if shift else "")

    # -- parameters
    def load_parameters(self, path: str | Path) -> None:
        """Load a parameter file; an untrained (single-channel) file is copied to every channel."""
        record = read_parameters(path)
        if record["transform"] != self.transform:
            raise ValueError(f"Watson parameter file {path} holds {record['transform']} parameters, "
                             f"this model is Watson-{self.transform.upper()}")
        params, names = record["parameters"], record["channels"]
        state = {}
        for name in self.models:
            source = name if name in names else (names[0] if len(names) == 1 else None)
            if source is None:
                raise ValueError(f"Watson parameter file {path} has channels {names}, not {name!r}")
            for key in self.models[name].state_dict():
                full = f"{source}.{key}"
                if full not in params:
                    raise ValueError(f"Watson parameter file {path} lacks {full!r}")
                state[f"models.{name}.{key}"] = params[full]
        if self.channels == 3:
            state["channel_logits"] = params.get("channel_logits", torch.zeros(3))
        try:
            self.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"Watson parameter file {path} does not fit the model: {exc}") from exc

    def parameters_record(self) -> dict:
        """The model's parameters in the file format of :func:`read_parameters` (plain JSON types)."""
        params = {f"{name}.{k}": v.detach().cpu().tolist() for name, m in self.models.items()
                  for k, v in m.state_dict().items()}
        if self.channels == 3:
            params["channel_logits"] = self.channel_logits.detach().cpu().tolist()
        return {"transform": self.transform, "channels": list(self.models), "parameters": params}

    def save_parameters(self, path: str | Path, **meta) -> None:
        """Write the parameters as JSON (e.g. after calibration); ``meta`` is stored alongside."""
        Path(path).write_text(json.dumps({**meta, **self.parameters_record()}, indent=1))

    @property
    def channel_weights(self) -> torch.Tensor:
        """lambda = softmax(channel logits) for colour (Y, Cb, Cr); (1.0,) for greyscale."""
        return torch.softmax(self.channel_logits, 0) if self.channels == 3 else torch.ones(1)

    # -- distance
    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Distance of ``input`` to ``target`` (thresholds from the target), (N,) with reduction 'none'."""
        channels = (3,) if self.grey_from_rgb else (self.channels,)
        check_image(input, "input", channels=channels)
        check_image(target, "target", channels=channels)
        check_same_shape(input, target, "input", "target")
        check_blocks(input, "input")
        if self.shift:
            self.last_offset = tuple(torch.randint(0, 2 * MAX_SHIFT + 1, (2,), generator=self.generator).tolist())
            input, target = grid_shift(input, target, self.last_offset)
        if self.channels == 3:
            input, target = rgb_to_ycbcr(input), rgb_to_ycbcr(target)
        elif self.grey_from_rgb:
            input, target = rgb_to_grey(input), rgb_to_grey(target)
        weights = self.channel_weights.to(input.device)
        d = sum(weights[c] * model(input[:, c], target[:, c], self.luminance_mean)
                for c, model in enumerate(self.models.values()))
        if self.reduction == "mean":
            return d.mean()
        return d.sum() if self.reduction == "sum" else d

    def extra_repr(self) -> str:
        return f"channels={self.channels}, shift={self.shift}, reduction={self.reduction!r}"


class WatsonDCT(_Watson):
    """Watson-DCT loss (Czolbe et al. 2020, eqs. 5-9): blockwise 8x8 DCT, sensitivity, masking, pooling.

    Args:
        channels: 1 (greyscale input (N, 1, H, W)) or 3 (RGB input converted to YCbCr, eq. 9).
        pretrained: True for the parameters trained on BAPPS by the paper's authors (shipped in
            ``assets/watson``), False for the untrained starting values (the Watson/JPEG table,
            alpha 0.649, r 0.7, p 4), or the path of a parameter file (:meth:`save_parameters`).
        shift: move the block grid by a random offset in [-4, 4]^2 at every call (replicate
            padding; seeded by ``seed``), against block artefacts in training.  False: deterministic.
        reduction: "none" (N,), "mean" or "sum".
        luminance_mean: "image" (eq. 5, default) or "batch" (the released code's batch mean).
        grey_from_rgb: with channels=1, take RGB images and convert them with :data:`GREY_WEIGHTS`
            (as the released greyscale wrapper did); the registry's grey entries use this.
    ``forward(input, target)`` takes (N, C, H, W) in [0, 1], H and W multiples of 8.
    """

    transform = "dct"


class WatsonDFT(_Watson):
    """Watson-DFT loss (Czolbe et al. 2020, eq. 10): Watson's model on blockwise DFT amplitudes plus a
    weighted phase distance; the arguments are those of :class:`WatsonDCT` (untrained values: T = 1,
    alpha 0.1, r 0.2, p 1, phase weights e^-2)."""

    transform = "dft"


def _twin(cls: type[_Watson], input, target, pretrained, shift, reduction, seed) -> torch.Tensor:
    channels = input.shape[1] if isinstance(input, torch.Tensor) and input.dim() == 4 else 3
    model = cls(channels if channels in CHANNEL_NAMES else 3, pretrained, shift, reduction, seed)
    return model.to(input.device if isinstance(input, torch.Tensor) else "cpu")(input, target)


def watson_dct(input: torch.Tensor, target: torch.Tensor, pretrained: bool | str | Path = True,
               shift: bool = False, reduction: str = "none", seed: int = 0) -> torch.Tensor:
    """Function twin of :class:`WatsonDCT` (channels taken from the input: 1 grey, 3 colour)."""
    return _twin(WatsonDCT, input, target, pretrained, shift, reduction, seed)


def watson_dft(input: torch.Tensor, target: torch.Tensor, pretrained: bool | str | Path = True,
               shift: bool = False, reduction: str = "none", seed: int = 0) -> torch.Tensor:
    """Function twin of :class:`WatsonDFT` (channels taken from the input: 1 grey, 3 colour)."""
    return _twin(WatsonDFT, input, target, pretrained, shift, reduction, seed)
