"""The 2AFC agreement experiment (Chapter 2): every metric on the synthetic set (quick) and BAPPS (full),
and one metric calibrated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from perceptlab.config import PresetConfig
from perceptlab.data.synthetic_2afc import synthetic_2afc
from perceptlab.data.triplets import Triplets, load_bapps
from perceptlab.metrics.twoafc import (
    Calibration,
    agreement_row,
    calibrate,
    combine,
    component_distances,
)


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
    from perceptlab.losses import registry

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
