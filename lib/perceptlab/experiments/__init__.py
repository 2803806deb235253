"""Every experiment of the course as a function of a config with two presets.

``python -m perceptlab run <experiment> --preset {quick,full} --device cuda --out runs/<name>``
runs one from the command line; notebooks call the same functions.  A runner
takes ``(config, device, out_dir)`` and returns a dict with ``metrics`` (floats)
and ``images`` (tensors), which :func:`run` saves as ``metrics.json`` and PNG grids.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from perceptlab.config import default_device
from perceptlab.config import preset as active_preset
from perceptlab.experiments.agreement import AgreementConfig, run_agreement
from perceptlab.experiments.dcgan import GANConfig, run_gan
from perceptlab.experiments.deepsim import (
    AEConfig,
    InversionConfig,
    run_autoencoders,
    run_inversion,
)
from perceptlab.experiments.gan1d import GAN1DConfig, run_gan1d
from perceptlab.experiments.gim import GIMConfig, PerceptualGIMConfig, run_gim
from perceptlab.experiments.random_filters import (
    PatchGIMConfig,
    PatchMMDCostConfig,
    RandomAgreementConfig,
    SCNNLimitConfig,
    run_patch_gim,
    run_patch_mmd_costs,
    run_random_agreement,
    run_scnn_limit,
)
from perceptlab.experiments.probing import (
    PEQualityConfig,
    PESRConfig,
    ProbeConfig,
    ReconstructConfig,
    run_pe_quality,
    run_pe_superres,
    run_probe,
    run_reconstruction,
)
from perceptlab.experiments.superres import SRConfig, run_superres
from perceptlab.experiments.watson import (
    WatsonAgreementConfig,
    WatsonColourVAEConfig,
    WatsonVAEConfig,
    run_watson_agreement,
    run_watson_vae,
)


@dataclass(frozen=True)
class Experiment:
    config: type
    runner: Callable[..., dict]
    description: str


def _gim(config: GIMConfig, device, out_dir) -> dict:
    result = run_gim(config, device)
    images = {"targets": result["targets"], "mean": result["mean"], "median": result["median"]}
    images.update({f"gim_{k}": v for k, v in result["solutions"].items()})
    return {"metrics": result["metrics"], "images": images}


def _superres(config: SRConfig, device, out_dir) -> dict:
    result = run_superres(config, device, out_dir=out_dir)
    n = min(8, result["images"]["hr"].shape[0])
    images = {k: v[:n] for k, v in result["images"].items() if k != "lr"}
    return {"metrics": result["metrics"], "images": images}


def _agreement(config: AgreementConfig, device, out_dir) -> dict:
    result = run_agreement(config, device)
    metrics = {f"2afc_{s}_{r['metric']}": r["score"] for s, rows in result["tables"].items() for r in rows}
    metrics.update({f"2afc_{s}_{r['metric']}_ci": [r["low"], r["high"]]
                    for s, rows in result["tables"].items() for r in rows})
    cal = result["calibration"]
    metrics.update({"calibration_metric": cal["metric"], "calibration_gamma": cal["fit"].gamma,
                    "calibration_weights": dict(zip(cal["layers"], cal["fit"].weights.tolist())),
                    "calibration_uniform_heldout": cal["rows"][0]["score"],
                    "calibration_fitted_heldout": cal["rows"][1]["score"],
                    "labels": result["labels"]})
    images = {f"{name}_examples": torch.cat([s.ref[:8], s.p0[:8], s.p1[:8]]) for name, s in result["sets"].items()}
    return {"metrics": metrics, "images": images}


def _gan(config: GANConfig, device, out_dir, n_eval: int | None = None) -> dict:
    """Train, then report FID/KID of the final G at the end, in the preset's feature space.

    digits (quick) -> the digits classifier (offline), 500 samples; photos (full) -> Inception-v3
    pool3 (torchvision's ImageNet weights, not comparable with published FIDs), 10 000 samples, against
    the test split.  The extractor is built *before* training, so missing Inception weights fail fast.
    """
    from perceptlab.experiments.dcgan import FIDEval, held_out_real
    from perceptlab.models.digits import extractor_for_preset
    from perceptlab.models.weights import WeightsUnavailableError

    preset = "quick" if config.data == "digits" else "full"
    n_eval = n_eval or (500 if preset == "quick" else 10_000)
    try:
        extractor = extractor_for_preset(preset)
    except WeightsUnavailableError as exc:
        raise WeightsUnavailableError(
            f"`run gan` reports FID/KID at the end in Inception-v3 pool3 features and needs Inception "
            f"weights before it starts training.\n{exc}") from exc
    extractor = extractor.to(default_device(device))
    if config.data == "digits" and (config.n_train is None or config.n_train >= 1797):
        real, reference = None, "training digits (set n_train < 1797 to hold digits out)"
    else:
        real, reference = held_out_real(config, n_eval), "held-out real images (not trained on)"
    result = run_gan(config, device, out_dir=out_dir)
    if real is None:
        real = result["real"]
    evaluator = FIDEval(extractor, real, n=n_eval, seed=config.seed + 4)
    scores = evaluator(result["generator"])
    metrics = dict(result["metrics"])
    metrics.update({"fid": scores["fid"], "kid": scores["kid"], "kid_std": scores["kid_std"], "fid_n_fake": n_eval,
                    "fid_n_real": int(real.shape[0]), "fid_reference": reference,
                    "fid_feature_space": evaluator.feature_space})
    return {"metrics": metrics, "images": {"samples": result["samples"][:64], "real": result["real"][:64]}}


def _gan1d(config: GAN1DConfig, device, out_dir) -> dict:
    result = run_gan1d(config, device, out_dir=out_dir)
    return {"metrics": result["metrics"], "images": {}}


def _deepsim_ae(config: AEConfig, device, out_dir) -> dict:
    """The four autoencoders of Table 3 (SE, L1, DeePSiM with two comparators), Tables 3 and 4 as metrics."""
    result = run_autoencoders(config, device)
    metrics = {f"{loss}_{k}": v for loss, m in result["metrics"].items() for k, v in m.items()}
    metrics.update(feature_space=result["feature_space"], fid_space=result["fid_space"],
                   **{f"{loss}_label": meta["label"] for loss, meta in result["meta"].items()},
                   **{f"{loss}_train_seconds": meta["train_seconds"] for loss, meta in result["meta"].items()})
    images = {"test": result["test"][:16], **{f"recon_{k}": v for k, v in result["reconstructions"].items()}}
    return {"metrics": metrics, "images": images}


def _deepsim_invert(config: InversionConfig, device, out_dir) -> dict:
    """Inversion of ``config.layer`` with the ablation's four losses and by optimisation (Figs. 7, 8)."""
    result = run_inversion(config, device)
    metrics = {f"{method}_{k}": v for method, m in result["metrics"].items() for k, v in m.items()}
    metrics.update(phi=result["phi_label"], **{f"{k}_label": meta["label"] for k, meta in result["meta"].items()})
    images = {"test": result["test"][:16], **{f"recon_{k}": v for k, v in result["reconstructions"].items()}}
    return {"metrics": metrics, "images": images}


def _random_2afc(config: RandomAgreementConfig, device, out_dir) -> dict:
    result = run_random_agreement(config, device)
    metrics = {f"2afc_{s}_{r['metric']}": r["score"] for s, rows in result["tables"].items() for r in rows}
    metrics.update({f"2afc_{s}_{r['metric']}_ci": [r["low"], r["high"]]
                    for s, rows in result["tables"].items() for r in rows})
    for s, vote in result["votes"].items():
        metrics.update({f"2afc_{s}_vote": vote["score"], f"2afc_{s}_vote_ci": [vote["low"], vote["high"]],
                        f"2afc_{s}_voters": vote["networks"]})
    metrics.update(labels=result["labels"], seconds=result["seconds"])
    return {"metrics": metrics, "images": {}}


def _scnn_limit(config: SCNNLimitConfig, device, out_dir) -> dict:
    result = run_scnn_limit(config, device)
    metrics = {"pairs": result["names"], "limit": result["limit"].tolist(), "widths": list(config.widths),
               "rms_rel_error": result["rms"].tolist(), "bias": result["bias"].tolist(), "slope": result["slope"],
               "seconds": {str(k): v for k, v in result["seconds"].items()}}
    return {"metrics": metrics, "images": {"x": result["x"], "y": result["y"]}}


def _patch_gim(config: PatchGIMConfig, device, out_dir) -> dict:
    result = run_patch_gim(config, device)
    metrics, images = {"labels": result["labels"]}, {}
    for part in ("crops", "dcgan"):
        if part not in result:
            continue
        r = result[part]
        metrics.update({f"{part}_sharpness_{k}": v for k, v in r["sharpness"].items()})
        metrics.update({f"{part}_patch_contrast_w1_{k}": v for k, v in r["contrast_w1"].items()})
        metrics[f"{part}_patch_contrast_w1_mean"] = r["mean_contrast_w1"]
        images[f"{part}_targets"] = r["targets"]
        images.update({f"{part}_gim_{k}": v for k, v in r["solutions"].items()})
    return {"metrics": metrics, "images": images}


def _patch_mmd_costs(config: PatchMMDCostConfig, device, out_dir) -> dict:
    result = run_patch_mmd_costs(config, device)
    rff, sweep = result["rff"], result["sweep"]
    metrics = {"features": list(config.features), "rff_rms_rel_error": rff["rms"].tolist(), "rff_slope": rff["slope"],
               "rff_seconds": rff["rff_seconds"], "exact_seconds": rff["exact_seconds"], "sweep_set": sweep["set"],
               "sweep": sweep["rows"]}
    return {"metrics": metrics, "images": {}}


def _watson_2afc(config: WatsonAgreementConfig, device, out_dir) -> dict:
    result = run_watson_agreement(config, device, out_dir)
    metrics = {f"2afc_{r['metric']}": r["score"] for r in result["rows"]}
    metrics.update({f"2afc_{r['metric']}_ci": [r["low"], r["high"]] for r in result["rows"]})
    for t, cal in result["calibration"].items():
        metrics.update({f"recalibrated_{t}_before": cal["before"]["score"], f"recalibrated_{t}_after": cal["after"]["score"],
                        f"recalibrated_{t}_gamma": cal["gamma"]})
    metrics.update(labels=result["labels"], evaluation_set=result["test"].source, calibration_set=result["train"].source,
                   costs=[{k: r[k] for k in ("metric", "seconds", "speedup_vs_vgg")} for r in result["costs"]])
    return {"metrics": metrics, "images": {}}


def _watson_vae(config: WatsonVAEConfig, device, out_dir) -> dict:
    result = run_watson_vae(config, device)
    metrics = {f"{loss}_{k}": v for loss, m in result["metrics"].items() for k, v in m.items()}
    metrics.update(fid_space=result["fid_space"], **{f"{loss}_label": meta["label"] for loss, meta in result["meta"].items()},
                   **{f"{loss}_train_seconds": meta["train_seconds"] for loss, meta in result["meta"].items()})
    images = {"test": result["test"][:16], **{f"recon_{k}": v for k, v in result["reconstructions"].items()},
              **{f"samples_{k}": v for k, v in result["samples"].items()},
              **{f"manifold_{k}": v for k, v in result["manifold"].items()}}
    return {"metrics": metrics, "images": images}


def _pe_probe(config: ProbeConfig, device, out_dir) -> dict:
    result = run_probe(config, device)
    metrics = {"labels": result["labels"], "freqs": list(result["stimuli"].freqs),
               "thetas": list(result["stimuli"].thetas)}
    for net, layers in result["results"].items():
        for layer, r in layers.items():
            metrics[f"{net}_{layer}"] = {k: r[k].tolist() for k in ("mu1", "mu2", "pe")}
            metrics[f"{net}_{layer}"]["orient_cpd"] = r["orient_cpd"]
    return {"metrics": metrics, "images": {}}


def _pe_scores(row: dict) -> dict:
    return {k: {kk: vv for kk, vv in v.items() if kk != "by_group"} for k, v in row.items() if isinstance(v, dict)}


def _pe_quality(config: PEQualityConfig, device, out_dir) -> dict:
    result = run_pe_quality(config, device)
    metrics = {"network": result["network"], "labels": result["labels"],
               "rows": [{**{k: r[k] for k in ("layer", "set", "n_channels")}, **_pe_scores(r)} for r in result["rows"]],
               "compare": [{"metric": r["metric"], **_pe_scores(r)} for r in result["compare"]]}
    return {"metrics": metrics, "images": {}}


def _pe_reconstruct(config: ReconstructConfig, device, out_dir) -> dict:
    result = run_reconstruction(config, device)
    images = {"target": result["target"], **{f"{layer}_{name}": x for (layer, name), x in result["images"].items()}}
    return {"metrics": {"network": result["network"], "rows": result["rows"]}, "images": images}


def _pe_superres(config: PESRConfig, device, out_dir) -> dict:
    result = run_pe_superres(config, device, out_dir)
    images = {k if isinstance(k, str) else f"alpha{k[0]:g}_{k[1]}": v for k, v in result["images"].items()}
    return {"metrics": {"network": result["network"], "rows": result["rows"], "reference": result["reference"]},
            "images": images}


EXPERIMENTS: dict[str, Experiment] = {
    "gim": Experiment(GIMConfig, _gim, "Generalized Image Mean of shifted crops with L2 and L1 (Chapter 1)"),
    "superres": Experiment(SRConfig, _superres, "x4 super-resolution regressed with a pixel loss (Chapter 1)"),
    "gim_perceptual": Experiment(PerceptualGIMConfig, _gim, "Generalized Image Mean under perceptual losses (Chapter 2)"),
    "agreement": Experiment(AgreementConfig, _agreement, "2AFC agreement of pixel, SSIM and feature distances (Chapter 2)"),
    "gan": Experiment(GANConfig, _gan, "DCGAN on digits (quick) or CelebA 64x64 (full) (Chapter 3)"),
    "gan1d": Experiment(GAN1DConfig, _gan1d, "A 1-D GAN whose discriminator approaches D* (Chapter 3)"),
    "deepsim-ae": Experiment(AEConfig, _deepsim_ae, "Autoencoders with SE, L1 and DeePSiM losses (Chapter 4)"),
    "deepsim-invert": Experiment(InversionConfig, _deepsim_invert, "Inverting a network's features with DeePSiM "
                                 "(Chapter 4)"),
    "random-2afc": Experiment(RandomAgreementConfig, _random_2afc, "2AFC of trained, random and patch-MMD distances, "
                              "with a K-network vote (Chapter 5)"),
    "scnn-limit": Experiment(SCNNLimitConfig, _scnn_limit, "A random S-CNN's distance against its infinite-width "
                             "limit (Chapter 5)"),
    "patch-gim": Experiment(PatchGIMConfig, _patch_gim, "Generalized Image Mean under patch losses (Chapter 5)"),
    "patch-mmd-costs": Experiment(PatchMMDCostConfig, _patch_mmd_costs, "Patch MMD: RFF error and time, "
                                  "hyperparameters on 2AFC (Chapter 5)"),
    "watson-2afc": Experiment(WatsonAgreementConfig, _watson_2afc, "Watson-DCT/DFT on 2AFC, re-calibrated, and the "
                              "cost of each distance (Chapter 6)"),
    "watson-vae": Experiment(WatsonVAEConfig, _watson_vae, "VAEs on digits (quick) or MNIST (full) with L2, SSIM, "
                             "Watson-DFT and a deep loss (Chapter 6)"),
    "watson-vae-colour": Experiment(WatsonColourVAEConfig, _watson_vae, "Colour VAEs on bundled crops (quick) or "
                                    "CelebA 64x64 (full) (Chapter 6)"),
    "pe-probe": Experiment(ProbeConfig, _pe_probe, "Tuning curves, mu1, mu2 and perceptual efficacy of CNN channels "
                           "(Chapter 7)"),
    "pe-quality": Experiment(PEQualityConfig, _pe_quality, "H-x / L-x channel subsets on QA, 2AFC and JND tests "
                             "(Chapter 7)"),
    "pe-reconstruct": Experiment(ReconstructConfig, _pe_reconstruct, "Images reconstructed from H and L channels "
                                 "(Chapter 7)"),
    "pe-superres": Experiment(PESRConfig, _pe_superres, "x4 SR with L2 + a PE-weighted contextual loss (Chapter 7)"),
}


def make_config(name: str, preset: str | None = None, **overrides: Any):
    """The config of experiment ``name`` for a preset, with field overrides."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {sorted(EXPERIMENTS)}, got {name!r}")
    cls = EXPERIMENTS[name].config
    known = {f.name for f in fields(cls)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown config fields for {name}: {sorted(unknown)}; known: {sorted(known)}")
    return cls.for_preset(active_preset(preset), **overrides)


def save_outputs(result: dict, out_dir: Path) -> None:
    """Write ``metrics.json`` and one PNG grid per entry of ``result['images']`` (:func:`perceptlab.imaging.save_png`)."""
    from perceptlab.imaging.codecs import save_png

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result["metrics"], indent=2))
    for key, images in result.get("images", {}).items():
        save_png(images, out_dir / f"{key}.png")


def run(name: str, preset: str | None = None, device: str | None = None, out: str | Path | None = None,
        **overrides: Any) -> dict:
    """Run experiment ``name``; with ``out``, also save config, metrics and images there."""
    config = make_config(name, preset, **overrides)
    device = default_device(device)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps({"experiment": name, "device": str(device), **asdict(config)},
                                                        indent=2, default=str))
    result = EXPERIMENTS[name].runner(config, device, out_dir)
    if out_dir is not None:
        save_outputs(result, out_dir)
    return result


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["steps=10", "losses=[\\"l2\\"]"]`` -> ``{"steps": 10, "losses": ["l2"]}`` (JSON values, else strings)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set takes key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        parsed = _parse_value(value)
        out[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out
