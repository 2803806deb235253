"""Plots: image grids, side-by-side comparisons, score maps and training curves (matplotlib)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch

from perceptlab.imaging.convert import image_grid, to_numpy  # noqa: F401 (image_grid: part of viz's API)
from perceptlab.validate import check_image


def show_image(ax, image: torch.Tensor, title: str | None = None) -> None:
    """Draw one image (C, H, W) or (1, C, H, W) in [0, 1] on the matplotlib axes ``ax``, without axes, with a title."""
    arr = to_numpy(image)
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def show_grid(images: torch.Tensor, nrow: int = 8, title: str | None = None, size: float = 1.2):
    """Show (N, C, H, W) images as one grid; returns the figure."""
    grid = image_grid(images.detach().cpu(), nrow=nrow)
    ncol = min(nrow, images.shape[0])
    nrows = (images.shape[0] + ncol - 1) // ncol
    fig, ax = plt.subplots(figsize=(size * ncol, size * nrows + (0.3 if title else 0)))
    show_image(ax, grid, title)
    fig.tight_layout()
    return fig


def compare(images: Sequence[torch.Tensor] | Mapping[str, torch.Tensor], titles: Sequence[str] | None = None,
            size: float = 2.5, suptitle: str | None = None):
    """Show single images side by side with titles; accepts a list or ``{title: image}``.

    Each image is (C, H, W) or (1, C, H, W) in [0, 1]. Returns the figure.
    """
    if isinstance(images, Mapping):
        titles, images = list(images.keys()), list(images.values())
    titles = list(titles) if titles is not None else [None] * len(images)
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.4), squeeze=False)
    for ax, im, t in zip(axes[0], images, titles):
        im = im.detach().cpu()
        check_image(im if im.dim() == 4 else im[None], "images")
        show_image(ax, im, t)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def show_map(ax, score: torch.Tensor, title: str | None = None, cmap: str = "viridis") -> None:
    """Draw a 2-D score map (H, W) of any range with a colour bar."""
    im = ax.imshow(score.detach().cpu().numpy(), cmap=cmap)
    ax.set_axis_off()
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, fontsize=9)


def plot_curves(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], xlabel: str = "step",
                ylabel: str = "", title: str | None = None, logy: bool = False, ax=None):
    """Plot named (x, y) curves on one axis; returns the axis."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def bar_ci(rows: Sequence[Mapping], ax=None, title: str | None = None, chance: float | None = 0.5,
           ylabel: str = "2AFC score", labels: Mapping[str, str] | None = None):
    """Bars of ``row["score"]`` with [``low``, ``high``] error bars, one per row (e.g. per metric).

    ``labels`` maps ``row["metric"]`` to the tick label; ``chance`` draws a dashed line.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(rows) + 1.5), 3.2))
    names = [labels.get(r["metric"], r["metric"]) if labels else r["metric"] for r in rows]
    scores = [r["score"] for r in rows]
    err = [[r["score"] - r["low"] for r in rows], [r["high"] - r["score"] for r in rows]]
    ax.bar(range(len(rows)), scores, yerr=err, capsize=3, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
    if chance is not None:
        ax.axhline(chance, color="k", ls="--", lw=1)
        ax.annotate("chance", (len(rows) - 0.5, chance), xytext=(0, 3), textcoords="offset points",
                    ha="right", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return ax


def show_triplet(ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor, titles: Sequence[str] = ("ref", "p0", "p1"),
                 suptitle: str | None = None, size: float = 2.2):
    """One 2AFC triplet side by side: reference, p0, p1 (each (3, H, W) in [0, 1])."""
    return compare([ref, p0, p1], titles, size=size, suptitle=suptitle)


def show_feature_maps(features: Mapping[str, torch.Tensor], n_channels: int = 8, title: str | None = None,
                      size: float = 1.1, cmap: str = "viridis", index: int = 0):
    """Feature maps of several layers, one row per layer: the first ``n_channels`` channels of image ``index``.

    ``features`` is ``{layer: (N, C, H, W)}`` as a :class:`perceptlab.models.Backbone` returns it (any
    range of values).  Each channel is min-max scaled to [0, 1] on its own for display (a constant
    channel shows as 0), so brightness compares positions within one map, not maps with each other.
    Each row is labelled with the layer name and its (C, H, W) shape; layers with fewer than
    ``n_channels`` channels leave the rest of their row empty.  Returns the figure.
    """
    from perceptlab.validate import check_positive_int

    check_positive_int(n_channels, "n_channels")
    if not isinstance(features, Mapping) or not features:
        raise ValueError(f"features must be a non-empty {{layer: (N, C, H, W) tensor}} dict, got {type(features).__name__}")
    for name, f in features.items():
        check_image(f, f"features[{name!r}]", value_range=None)
        if not -f.shape[0] <= index < f.shape[0]:
            raise ValueError(f"index must select one of the {f.shape[0]} images of features[{name!r}], got {index}")
    ncol = min(n_channels, max(f.shape[1] for f in features.values()))
    fig, axes = plt.subplots(len(features), ncol, figsize=(size * ncol + 1.2, size * len(features) + (0.4 if title else 0)),
                             squeeze=False)
    for row, (name, f) in zip(axes, features.items()):
        maps = f[index].detach().float().cpu()
        for k, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if k >= maps.shape[0]:
                continue
            m = maps[k]
            lo, hi = m.min(), m.max()
            m = (m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m)
            ax.imshow(m.numpy(), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        c, h, w = f.shape[1:]
        row[0].set_ylabel(f"{name}\n{c}×{h}×{w}", rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
