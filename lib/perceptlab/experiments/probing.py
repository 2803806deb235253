"""Chapter 7's experiments (Tariq, Tursun, Kim & Didyk 2020): probing channels with gratings, whether
perceptual efficacy predicts quality, what the H and L channels encode, and a PE-weighted contextual
loss for x4 super-resolution.

``python -m perceptlab run {pe-probe, pe-quality, pe-reconstruct, pe-superres}`` runs them; the
notebooks call the same functions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn

from perceptlab.config import PresetConfig, check_device, default_seed
from perceptlab.data.images import load_image
from perceptlab.data.quality_sets import graded_quality_set, load_iqa
from perceptlab.data.synthetic_2afc import synthetic_2afc
from perceptlab.data.triplets import load_bapps, load_bapps_jnd
from perceptlab.imaging.filters import gradient_magnitude
from perceptlab.experiments.superres import SRConfig, run_superres
from perceptlab.losses import registry
from perceptlab.losses.channels import channel_distance
from perceptlab.losses.contextual import ContextualLoss
from perceptlab.losses.pixel import MSELoss, ssim
from perceptlab.losses.watson import rgb_to_ycbcr
from perceptlab.metrics.quality import bootstrap_srocc, grouped_srocc, jnd_map
from perceptlab.metrics.sharpness import high_frequency_fraction
from perceptlab.metrics.twoafc import agreement_row
from perceptlab.models.backbones import Backbone, backbone
from perceptlab.probing.efficacy import channel_subset, channel_weights
from perceptlab.probing.stimuli import radial_amplitude
from perceptlab.probing.tuning import Stimuli, geometric_frequencies, probe

# --------------------------------------------------------------------------- networks

#: Networks a probe can use, with the layers probed by default.  "exemplar" and "vgg16-random" run
#: offline (the Exemplar-CNN trained here, seeded random VGG16); the others need ImageNet weights.
PROBE_LAYERS = {
    "exemplar": ("relu1", "relu2", "relu3"),
    "vgg16-random": ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
    "vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
    "alexnet": ("relu1", "relu2", "relu3", "relu4", "relu5"),
    "squeezenet1_1": ("relu1", "fire3", "fire5", "fire7", "fire9"),
}


def probe_network(name: str, preset: str = "quick", device: str | torch.device = "cpu") -> Backbone:
    """The :class:`Backbone` of ``name`` (a key of :data:`PROBE_LAYERS`), labelled with its weights."""
    if name not in PROBE_LAYERS:
        raise ValueError(f"name must be one of {tuple(PROBE_LAYERS)}, got {name!r}")
    if name == "exemplar":
        from perceptlab.models.exemplar import ExemplarConfig, exemplar_cnn

        return exemplar_cnn(ExemplarConfig.for_preset(preset), device=device)
    if name == "vgg16-random":
        return backbone("vgg16", "random", seed=0)
    return backbone(name, "imagenet")


@dataclass
class ProbeConfig(PresetConfig):
    """Tuning curves, mu1, mu2 and PE of every channel of ``layers`` of each network (Figs. 2-3).

    Quick: the Exemplar-CNN trained here and a random VGG16, 64-pixel gratings at 32 pixels per
    degree (2 degrees of visual angle, Nyquist 16 cpd), 12 frequencies from 0.5 cpd, 12 orientations,
    4 phases.  Full: ImageNet VGG16, AlexNet and SqueezeNet (the seed's networks), 224-pixel gratings
    at 64 pixels per degree, 24 frequencies and orientations, 8 phases.
    """

    FULL: ClassVar[dict] = dict(networks=("vgg16", "alexnet", "squeezenet1_1"), size=224, ppd=64.0, n_freqs=24,
                                n_thetas=24, n_phases=8, f_max=32.0, network_preset="full")

    networks: tuple[str, ...] = ("exemplar", "vgg16-random")
    size: int = 64
    ppd: float = 32.0
    f_min: float = 0.5
    f_max: float = 16.0
    n_freqs: int = 12
    n_thetas: int = 12
    n_phases: int = 4
    contrast: float = 1.0
    csf_model: str = "mannos-sakrison"
    batch: int = 64
    network_preset: str = "quick"

    def stimuli(self) -> Stimuli:
        return Stimuli(self.size, self.ppd, geometric_frequencies(self.f_min, self.f_max, self.n_freqs),
                       tuple(k * math.pi / self.n_thetas for k in range(self.n_thetas)),
                       tuple(2 * math.pi * k / self.n_phases for k in range(self.n_phases)), self.contrast,
                       None, self.csf_model)


def run_probe(config: ProbeConfig, device: str | torch.device = "cpu") -> dict:
    """Probe every network of ``config``.  Returns ``stimuli``, ``labels`` ({network: weights label}) and
    ``results`` ({network: {layer: :func:`perceptlab.probing.probe` entry}})."""
    device = check_device(device)
    stimuli = config.stimuli()
    results, labels = {}, {}
    for name in config.networks:
        net = probe_network(name, config.network_preset, device)
        labels[name] = f"{net.name}, {net.weights_label}"
        results[name] = probe(net, PROBE_LAYERS[name], stimuli, config.batch, device)
    return {"stimuli": stimuli, "labels": labels, "results": results}


def layer_efficacy(net: Backbone, layers, network_preset: str, device="cpu") -> dict[str, torch.Tensor]:
    """{layer: PE (C,)} of ``layers`` of ``net``, probed with the stimuli of ``ProbeConfig``'s ``network_preset``."""
    layers = [layers] if isinstance(layers, str) else list(layers)
    probes = probe(net, layers, ProbeConfig.for_preset(network_preset).stimuli(), device=device)
    return {l: probes[l]["pe"] for l in layers}


# --------------------------------------------------------------------------- (b) does PE predict quality?


@dataclass
class PEQualityConfig(PresetConfig):
    """H-x, L-x and all channels (F) of each layer on a QA test (SROCC with the score), 2AFC and JND
    (Figs. 4-5), and H-``compare_percent`` of ``compare_layer`` against LPIPS, AlexNet, SSIM and L2
    (Fig. 8).

    Quick: random VGG16, graded distortions of bundled images (severity, not opinion) and the
    synthetic 2AFC set (rules, not people).  Full: ImageNet VGG16, BAPPS 2AFC val and JND val,
    and LIVE/TID-style sets the user provides under ``<data_dir>/iqa/<name>/`` (``iqa_sets``).
    """

    FULL: ClassVar[dict] = dict(network="vgg16", bapps=True, jnd=True, iqa_sets=("live",),
                                compare=("l2", "ssim", "alexnet-imagenet", "lpips-alex"), n_refs=24,
                                network_preset="full")

    network: str = "vgg16-random"
    layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")
    percents: tuple[float, ...] = (5.0, 10.0, 25.0, 50.0)
    n_refs: int = 12
    size: int = 64
    n_per_kind: int = 20
    twoafc_parts: tuple[str, ...] = ("equal_mse",)
    bapps: bool = False
    bapps_limit: int | None = None
    jnd: bool = False
    iqa_sets: tuple[str, ...] = ()
    compare_layer: str = "relu2_2"
    compare_percent: float = 10.0
    compare: tuple[str, ...] = ("l2", "ssim", "alexnet-random", "lpips-alex-random")
    network_preset: str = "quick"
    n_boot: int = 500
    seed: int = field(default_factory=default_seed)


def subset_names(percents) -> list[tuple[str, str, float]]:
    """(name, which, percent) of every channel set: F (all), then H-x and L-x for each x."""
    return [("F", "F", 100.0)] + [(f"{w}-{p:g}", w, p) for p in percents for w in ("H", "L")]


def layer_features(net: Backbone, layer: str, images: torch.Tensor, device="cpu", batch: int = 32) -> torch.Tensor:
    """``net``'s features of ``images`` at ``layer``, (N, C, h, w) on the CPU, one forward pass per batch."""
    with torch.no_grad():
        return torch.cat([net(x.to(device), [layer])[layer].cpu() for x in images.split(batch)])


def subset_distances(fa: torch.Tensor, fb: torch.Tensor, sets, pe: torch.Tensor,
                     batch: int = 64) -> dict[str, torch.Tensor]:
    """Eq. 1 between precomputed features ``fa``, ``fb`` (N, C, h, w) for every channel set
    ``(name, which, percent)`` of ``sets`` (:func:`subset_names`): {name: (N,) float64}."""
    index = {name: None if which == "F" else channel_subset(pe, which, percent) for name, which, percent in sets}
    return {name: torch.cat([channel_distance(a, b, channels).double() for a, b in zip(fa.split(batch), fb.split(batch))])
            for name, channels in index.items()}


def quality_sets(config: PEQualityConfig) -> dict:
    """The test sets: ``qa`` ({name: QASet}), ``twoafc`` ({name: Triplets}), ``jnd`` (JNDPairs or None)."""
    qa = {"graded": graded_quality_set(config.n_refs, config.size, seed=config.seed)}
    for name in config.iqa_sets:
        qa[name] = load_iqa(name, config.size)
    if config.bapps:
        twoafc = {"bapps": load_bapps("val", limit=config.bapps_limit, size=config.size)}
    else:
        twoafc = {part: synthetic_2afc(part, config.n_per_kind, config.size, seed=config.seed)
                  for part in config.twoafc_parts}
    jnd = load_bapps_jnd(limit=config.bapps_limit, size=config.size) if config.jnd else None
    return {"qa": qa, "twoafc": twoafc, "jnd": jnd}


def score_sets(encode, compare, sets: dict, config: PEQualityConfig) -> dict[str, dict]:
    """Scores of several distances at once.  ``encode(images)`` turns images into what ``compare(a, b)``
    takes (features, or the images themselves; indexable along the first axis), computed once per
    image tensor; ``compare`` returns {name: (N,) distances of aligned pairs}.  Per name: ``srocc_<set>``
    for each QA set (mean over distortion types of the SROCC with the score, with a bootstrap
    interval over reference images, and ``by_group``), ``2afc_<set>`` (score and interval) and
    ``jnd`` (mAP), each a dict with ``value`` (and ``low``, ``high``)."""
    out: dict[str, dict] = {}
    for name, q in sets["qa"].items():
        refs = encode(q.refs)
        for metric, d in compare(refs[q.ref_index], encode(q.distorted)).items():
            s = grouped_srocc(d, q.score, q.group)
            lo, hi = bootstrap_srocc(d, q.score, q.ref_index.tolist(), q.group, config.n_boot, seed=config.seed)
            out.setdefault(metric, {})[f"srocc_{name}"] = {"value": s["mean"], "low": lo, "high": hi, "by_group": s}
    for name, t in sets["twoafc"].items():
        ref = encode(t.ref)
        d0, d1 = compare(encode(t.p0), ref), compare(encode(t.p1), ref)
        for metric in d0:
            row = agreement_row(name, d0[metric], d1[metric], t, config.n_boot, seed=config.seed)
            out.setdefault(metric, {})[f"2afc_{name}"] = {"value": row["score"], "low": row["low"], "high": row["high"]}
    if sets["jnd"] is not None:
        j = sets["jnd"]
        for metric, d in compare(encode(j.p0), encode(j.p1)).items():
            out.setdefault(metric, {})["jnd"] = {"value": jnd_map(d, j.same)}
    return out


def run_pe_quality(config: PEQualityConfig, device: str | torch.device = "cpu") -> dict:
    """Probe ``config.network``, then score every channel set of every layer, and the comparison metrics.

    Returns ``sets`` (:func:`quality_sets`), ``pe`` ({layer: (C,)}), ``rows`` (one per layer and set:
    ``layer``, ``set``, ``which``, ``percent``, ``n_channels`` and the :func:`score_sets` entries),
    ``compare`` (rows for H-x of ``compare_layer`` and every ``compare`` metric) and ``labels``.
    """
    device = check_device(device)
    sets = quality_sets(config)
    net = probe_network(config.network, config.network_preset, device)
    pe = layer_efficacy(net, config.layers, config.network_preset, device)
    names = subset_names(config.percents)
    rows, best = [], {}
    for layer in config.layers:
        scores = score_sets(lambda x: layer_features(net, layer, x, device),
                            lambda fa, fb: subset_distances(fa, fb, names, pe[layer]), sets, config)
        for name, which, percent in names:
            n = pe[layer].numel() if which == "F" else len(channel_subset(pe[layer], which, percent))
            rows.append({"layer": layer, "set": name, "which": which, "percent": percent, "n_channels": n,
                         **scores[name]})
            if layer == config.compare_layer and (which, percent) == ("H", config.compare_percent):
                best = scores[name]
    key = f"H-{config.compare_percent:g} {config.compare_layer}"
    labels = {key: f"{net.name}, {net.weights_label}"}
    metrics = {}
    for name in config.compare:
        metrics[name] = registry.make(name).to(device)
        labels[name] = getattr(metrics[name], "label", name)

    def compare_distances(a, b):
        with torch.no_grad():
            return {name: torch.cat([m(x.to(device), y.to(device)).double().cpu() for x, y in zip(a.split(32), b.split(32))])
                    for name, m in metrics.items()}
    scored = score_sets(lambda x: x, compare_distances, sets, config) if metrics else {}
    compare = [{"metric": key, **best}] + [{"metric": name, **scored[name]} for name in config.compare]
    return {"sets": sets, "pe": pe, "rows": rows, "compare": compare, "labels": labels,
            "network": f"{net.name}, {net.weights_label}"}


# --------------------------------------------------------------------------- (c) what H and L channels see


@dataclass
class ReconstructConfig(PresetConfig):
    """Reconstruct an image from the features of channel sets of one layer by optimisation (Fig. 6),
    starting from mean grey plus seeded noise, Adam on the pixels; then measure each reconstruction's
    spectrum and colour.  Quick: random VGG16 relu2_2, a 64-pixel crop; full: ImageNet VGG16 relu2_2
    and relu3_3, 224 pixels."""

    FULL: ClassVar[dict] = dict(network="vgg16", size=224, steps=1000, layers=("relu2_2", "relu3_3"),
                                network_preset="full")

    network: str = "vgg16-random"
    layers: tuple[str, ...] = ("relu2_2",)
    image: str = "astronaut"
    crop: tuple[int, int] = (110, 70)
    size: int = 64
    sets: tuple[tuple[str, float], ...] = (("H", 10.0), ("L", 10.0), ("L", 50.0), ("F", 100.0))
    steps: int = 300
    lr: float = 0.05
    init_noise: float = 0.1
    network_preset: str = "quick"
    seed: int = field(default_factory=default_seed)


def target_image(config: ReconstructConfig) -> torch.Tensor:
    """The (1, 3, size, size) crop of the bundled image (from its 256-pixel version, scaled for full)."""
    big = load_image(config.image, max(256, config.size + max(config.crop)))
    y, x = config.crop
    return big[:, :, y: y + config.size, x: x + config.size].expand(-1, 3, -1, -1).contiguous()


def reconstruct(net: Backbone, layer: str, target: torch.Tensor, channels: torch.Tensor | None, steps: int,
                lr: float, seed: int, device="cpu", init_noise: float = 0.1) -> torch.Tensor:
    """argmin_x of eq. 1 on ``channels`` (None: all) between x and ``target`` (Mahendran & Vedaldi 2015):
    x = sigmoid(u), u = 0 (mean grey) plus seeded Gaussian noise of std ``init_noise``, Adam; returns
    x (1, 3, H, W) in [0, 1].  What the channels do not constrain keeps its starting value."""
    g = torch.Generator().manual_seed(seed)
    u = (init_noise * torch.randn(target.shape, generator=g)).to(device).requires_grad_(True)
    with torch.no_grad():
        ft = net(target.to(device), [layer])[layer]
        scale = channel_distance(ft, torch.zeros_like(ft), channels).clamp_min(1e-12)
    opt = torch.optim.Adam([u], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        fx = net(torch.sigmoid(u), [layer])[layer]
        (channel_distance(fx, ft, channels) / scale).sum().backward()
        opt.step()
    return torch.sigmoid(u).detach().cpu()


def spectral_centroid(x: torch.Tensor, ppd: float = 1.0) -> float:
    """The amplitude-weighted mean radial frequency of a (1, C, H, W) image (cycles per pixel x ``ppd``)."""
    f, a = radial_amplitude(x[0], ppd)
    return float((f * a).sum() / a.sum())


def colourfulness(x: torch.Tensor) -> float:
    """Mean chroma of a (N, 3, H, W) image: the root mean square of Cb - 1/2 and Cr - 1/2 (YCbCr, BT.601)."""
    ycc = rgb_to_ycbcr(x)
    return float(((ycc[:, 1:] - 0.5) ** 2).mean().sqrt())


def run_reconstruction(config: ReconstructConfig, device: str | torch.device = "cpu") -> dict:
    """Reconstructions from every channel set of every layer and their measurements.

    Returns ``target``, ``images`` ({(layer, set name): image}) and ``rows`` (``layer``, ``set``,
    ``n_channels``, ``centroid``, ``hf`` (high-frequency fraction), ``chroma``, ``mse``), with the
    target's own values in the row of set "target".
    """
    device = check_device(device)
    net = probe_network(config.network, config.network_preset, device)
    pe_of = layer_efficacy(net, config.layers, config.network_preset, device)
    target = target_image(config)
    measure = lambda x: {"centroid": spectral_centroid(x), "hf": float(high_frequency_fraction(x).mean()),  # noqa: E731
                         "chroma": colourfulness(x), "mse": float((x - target).pow(2).mean())}
    rows = [{"layer": "-", "set": "target", "n_channels": 0, **measure(target)}]
    images = {}
    for layer in config.layers:
        pe = pe_of[layer]
        for which, percent in config.sets:
            channels = None if which == "F" else channel_subset(pe, which, percent)
            name = "F" if which == "F" else f"{which}-{percent:g}"
            x = reconstruct(net, layer, target, channels, config.steps, config.lr, config.seed, device,
                            config.init_noise)
            images[(layer, name)] = x
            rows.append({"layer": layer, "set": name, "n_channels": pe.numel() if channels is None else len(channels),
                         **measure(x)})
    return {"target": target, "images": images, "rows": rows, "network": f"{net.name}, {net.weights_label}"}


# --------------------------------------------------------------------------- (d) PE-weighted contextual loss for SR


class MixedLoss(nn.Module):
    """Eq. 9: alpha L2 + (1 - alpha) contextual loss (mean over the batch)."""

    def __init__(self, alpha: float, contextual: ContextualLoss | None):
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        if alpha < 1 and contextual is None:
            raise ValueError("alpha < 1 needs a contextual loss")
        self.alpha, self.l2, self.cx = alpha, MSELoss(), contextual
        self.label = f"{alpha:g} L2" + (f" + {1 - alpha:g} {contextual.label}" if alpha < 1 else "")

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = self.alpha * self.l2(x, y)
        return loss if self.alpha == 1 else loss + (1 - self.alpha) * self.cx(x, y)


@dataclass
class PESRConfig(PresetConfig):
    """x4 super-resolution with eq. 9 for each ``alphas`` value, the contextual loss on ``layer`` with
    uniform and PE-weighted channels (Fig. 7), reusing Chapter 1's SR runner.  Quick: bundled images,
    random VGG16 relu2_2; full: 96-pixel crops of DIV2K (train for training, valid for the scores, as the
    seed) and ImageNet VGG16 (``sr_overrides`` are fields of :class:`SRConfig`)."""

    FULL: ClassVar[dict] = dict(network="vgg16", sr_overrides={"data": "div2k", "patch": 96, "n_train": 16_000,
                                                               "n_test": 256, "width": 64, "depth": 10,
                                                               "steps": 20_000, "batch": 32, "lr": 1e-3,
                                                               "ckpt_every": 1000},
                                alphas=(1.0, 0.9, 0.5, 0.1), network_preset="full")

    network: str = "vgg16-random"
    layer: str = "relu2_2"
    alphas: tuple[float, ...] = (1.0, 0.5, 0.1)
    weightings: tuple[str, ...] = ("uniform", "pe")
    h: float = 0.5
    sr_overrides: dict = field(default_factory=lambda: {"steps": 80, "n_train": 1024, "n_test": 48})
    network_preset: str = "quick"
    seed: int = field(default_factory=default_seed)


def no_reference_sharpness(x: torch.Tensor) -> float:
    """Mean gradient magnitude of the luminance of (N, C, H, W) images (:func:`perceptlab.imaging.gradient_magnitude`,
    averaged over the batch), a no-reference sharpness measure that runs offline; larger = more fine detail (or
    noise)."""
    return float(gradient_magnitude(x).mean())


def run_pe_superres(config: PESRConfig, device: str | torch.device = "cpu", out_dir=None) -> dict:
    """Train one SR network per (alpha, weighting) (alpha = 1 once: pure L2) and measure each on held-out
    patches: PSNR, SSIM and the no-reference sharpness, with the ground truth's and bicubic's.

    Returns ``rows`` (``alpha``, ``weighting``, ``psnr``, ``ssim``, ``sharpness``, ``label``), ``reference``
    (ground truth and bicubic rows) and ``images`` ({(alpha, weighting): first outputs}, plus "hr", "lr",
    "bicubic").
    """
    device = check_device(device)
    net = probe_network(config.network, config.network_preset, device)
    pe = layer_efficacy(net, config.layer, config.network_preset, device)[config.layer]
    sr = replace(SRConfig(seed=config.seed), **config.sr_overrides)
    rows, images, reference = [], {}, []
    runs = [(a, w) for a in config.alphas for w in (("-",) if a == 1 else config.weightings)]
    for alpha, weighting in runs:
        cx = None if alpha == 1 else ContextualLoss(net, config.layer, h=config.h,
                                                     channel_weights=channel_weights(pe) if weighting == "pe" else None)
        loss = MixedLoss(alpha, cx).to(device)
        folder = None if out_dir is None else f"{out_dir}/alpha{alpha:g}-{weighting}"
        result = run_superres(replace(sr, loss=loss), device, out_dir=folder)
        out, hr = result["images"]["output"], result["images"]["hr"]
        rows.append({"alpha": alpha, "weighting": weighting, "label": loss.label,
                     "psnr": result["metrics"]["psnr_network"], "ssim": float(ssim(out, hr).mean()),
                     "sharpness": no_reference_sharpness(out)})
        images[(alpha, weighting)] = out[:8]
        if not reference:
            bic = result["images"]["bicubic"]
            reference = [{"what": "ground truth", "psnr": float("inf"), "ssim": 1.0, "sharpness": no_reference_sharpness(hr)},
                         {"what": "bicubic", "psnr": result["metrics"]["psnr_bicubic"],
                          "ssim": float(ssim(bic, hr).mean()), "sharpness": no_reference_sharpness(bic)}]
            images.update(hr=hr[:8], lr=result["images"]["lr"][:8], bicubic=bic[:8])
    return {"rows": rows, "reference": reference, "images": images, "pe": pe,
            "network": f"{net.name}, {net.weights_label}"}


__all__ = [
    "PROBE_LAYERS", "probe_network", "ProbeConfig", "run_probe",
    "PEQualityConfig", "subset_names", "layer_features", "subset_distances", "quality_sets", "score_sets",
    "run_pe_quality",
    "ReconstructConfig", "target_image", "reconstruct", "spectral_centroid", "colourfulness", "run_reconstruction",
    "MixedLoss", "PESRConfig", "no_reference_sharpness", "run_pe_superres",
]
