"""Quality-assessment (QA) sets: reference images, distorted versions and a score per distorted image.

- :func:`graded_quality_set`: bundled images under graded distortions, scored by their *severity
  level* (1 = mildest).  A severity is a property of the distortion, **not a human opinion**: a metric
  that ranks the levels correctly within each distortion type has learnt the obvious, nothing more.
- :func:`load_iqa`: a human-rated set (LIVE, TID2013, ...) that the user provides, since none can be
  downloaded here.  Layout: ``<data_dir>/iqa/<name>/scores.csv`` with a header line and columns
  ``reference,distorted,score[,group]`` (image paths relative to that folder; ``score`` a DMOS or MOS;
  ``group`` the distortion type), the images next to it.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from perceptlab.config import data_dir
from perceptlab.data.datasets import DataUnavailableError
from perceptlab.imaging.convert import read_image
from perceptlab.imaging.resample import resize
from perceptlab.data.synthetic_2afc import TWOAFC_IMAGES, _center, distort, reference_contexts
from perceptlab.validate import check_image, check_positive_int

#: Severity levels of each graded distortion, mildest first (JPEG: quality, lower is worse).
GRADED_LEVELS = {"noise": (0.02, 0.04, 0.07, 0.11, 0.16), "blur": (0.6, 1.0, 1.5, 2.2, 3.2),
                 "jpeg": (70, 45, 28, 16, 8), "contrast": (0.1, 0.2, 0.35, 0.5, 0.65)}


@dataclass
class QASet:
    """``refs`` (R, 3, H, W) and ``distorted`` (N, 3, H, W) in [0, 1]; ``ref_index`` (N,) the reference
    of each distorted image; ``score`` (N,) larger = worse (severity level, or DMOS); ``group`` the
    distortion type of each; ``source`` what the scores are."""

    refs: torch.Tensor
    distorted: torch.Tensor
    ref_index: torch.Tensor
    score: torch.Tensor
    group: list[str]
    source: str = ""

    def __post_init__(self):
        check_image(self.refs, "refs", channels=(3,))
        check_image(self.distorted, "distorted", channels=(3,))
        n = self.distorted.shape[0]
        if self.ref_index.shape != (n,) or self.score.shape != (n,) or len(self.group) != n:
            raise ValueError(f"ref_index, score and group must have one entry per distorted image ({n})")
        if self.refs.shape[1:] != self.distorted.shape[1:]:
            raise ValueError("refs and distorted must have the same image size")

    def __len__(self) -> int:
        return self.distorted.shape[0]

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(reference, distorted) aligned, each (N, 3, H, W)."""
        return self.refs[self.ref_index], self.distorted


def graded_quality_set(n_refs: int = 12, size: int = 64, kinds: tuple[str, ...] = tuple(GRADED_LEVELS),
                       images: tuple[str, ...] = TWOAFC_IMAGES, seed: int = 0) -> QASet:
    """``n_refs`` crops of bundled images, each distorted by every kind of :data:`GRADED_LEVELS` at every
    level; ``score`` is the level (1-5), a severity by construction, not an opinion."""
    check_positive_int(n_refs, "n_refs")
    unknown = [k for k in kinds if k not in GRADED_LEVELS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be names of {tuple(GRADED_LEVELS)}, got {kinds}")
    contexts = reference_contexts(n_refs, size, images, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    distorted, ref_index, score, group = [], [], [], []
    for kind in kinds:
        for level, strength in enumerate(GRADED_LEVELS[kind], start=1):
            distorted.append(distort(contexts, kind, strength, g))
            ref_index.append(torch.arange(n_refs))
            score += [float(level)] * n_refs
            group += [kind] * n_refs
    return QASet(_center(contexts), torch.cat(distorted), torch.cat(ref_index), torch.tensor(score), group,
                 source=f"bundled images, {len(kinds)} distortions x {len(GRADED_LEVELS[kinds[0]])} severity levels "
                        "(severity, not human opinion)")


def load_iqa(name: str, size: int | None = None, root: str | Path | None = None) -> QASet:
    """A human-rated QA set the user placed under ``<data_dir>/iqa/<name>/`` (see the module docstring);
    images resized to ``size`` if given.  Missing files raise :class:`DataUnavailableError` at once."""
    folder = Path(root) if root is not None else data_dir() / "iqa" / name
    table = folder / "scores.csv"
    if not table.is_file():
        raise DataUnavailableError(
            f"no QA set {name!r}: {table} does not exist. {name} cannot be downloaded here; put its images in "
            f"{folder} and a file scores.csv with a header and the columns reference,distorted,score[,group] "
            "(paths relative to that folder; score a DMOS or MOS, group the distortion type)")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"reference", "distorted", "score"} <= set(rows[0]):
        raise ValueError(f"{table} must have a header with the columns reference, distorted, score[, group]")
    read = lambda p: (resize(read_image(folder / p), size) if size else read_image(folder / p))[0]  # noqa: E731
    refs, index, distorted = {}, [], []
    for r in rows:
        missing = [p for p in (r["reference"], r["distorted"]) if not (folder / p).is_file()]
        if missing:
            raise DataUnavailableError(f"{table} names images that are not in {folder}: {missing}")
        if r["reference"] not in refs:
            refs[r["reference"]] = read(r["reference"])
        index.append(list(refs).index(r["reference"]))
        distorted.append(read(r["distorted"]))
    return QASet(torch.stack(list(refs.values())), torch.stack(distorted), torch.tensor(index),
                 torch.tensor([float(r["score"]) for r in rows]), [r.get("group") or "all" for r in rows],
                 source=f"{name} (human opinion scores, {table})")


__all__ = ["GRADED_LEVELS", "QASet", "graded_quality_set", "load_iqa"]
