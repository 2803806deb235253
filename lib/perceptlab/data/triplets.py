"""2AFC triplets: a reference, two distortions and the judgement, and the BAPPS reader that returns them;
BAPPS JND pairs and their reader.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from perceptlab.config import progress
from perceptlab.data.datasets import DataUnavailableError, load_dataset
from perceptlab.validate import check_image, check_positive_int


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
    rows = _read_bapps(split, subsets, limit, size, root, download_ok)
    stack = lambda key: torch.stack([r[key] for r in rows])  # noqa: E731
    return Triplets(stack("ref"), stack("p0"), stack("p1"), torch.tensor([r["judge"] for r in rows]),
                    [r["subset"] for r in rows], source=f"BAPPS 2AFC {split}")


def _read_bapps(split: str, subsets: Sequence[str] | None, limit: int | None, size: int | None,
                root: str | Path | None, download_ok: bool) -> list[dict]:
    """The records of a BAPPS split (the first ``limit`` of each subset), read into memory."""
    dataset = load_dataset("bapps", split, root=root, download_ok=download_ok)
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
        what = "pairs" if split.startswith("jnd") else "triplets"
        raise DataUnavailableError(f"no BAPPS {what} for subsets {subsets} in split {split!r}")
    dataset.items, dataset.size = items, size
    return [dataset[i] for i in progress(range(len(dataset)), desc="BAPPS")]


@dataclass
class JNDPairs:
    """Just-noticeable-difference pairs: ``p0``, ``p1`` (N, 3, H, W) in [0, 1] and ``same`` (N,), the
    fraction of people who judged the two the same; ``kind`` one label per pair; ``source``."""

    p0: torch.Tensor
    p1: torch.Tensor
    same: torch.Tensor
    kind: list[str]
    source: str = ""

    def __post_init__(self):
        check_image(self.p0, "p0", channels=(3,))
        check_image(self.p1, "p1", channels=(3,))
        n = self.p0.shape[0]
        if self.p1.shape != self.p0.shape:
            raise ValueError(f"p1 must have the shape of p0 {tuple(self.p0.shape)}, got {tuple(self.p1.shape)}")
        if self.same.shape != (n,) or not bool(((self.same >= 0) & (self.same <= 1)).all()):
            raise ValueError(f"same must be a ({n},) tensor of fractions in [0, 1]")
        if len(self.kind) != n:
            raise ValueError(f"kind must have one label per pair ({n}), got {len(self.kind)}")

    def __len__(self) -> int:
        return self.p0.shape[0]


def load_bapps_jnd(subsets: Sequence[str] | None = None, limit: int | None = None, size: int | None = None,
                   root: str | Path | None = None, download_ok: bool = True) -> JNDPairs:
    """BAPPS JND val pairs (Zhang et al. 2018) from ``<root>/jnd/val/<subset>/{p0,p1,same}``; ``kind`` is
    the subset (``cnn``, ``traditional``).  Missing files: downloads the official tarball if allowed,
    else :class:`perceptlab.data.DataUnavailableError` says where to put them."""
    rows = _read_bapps("jnd-val", subsets, limit, size, root, download_ok)
    return JNDPairs(torch.stack([r["p0"] for r in rows]), torch.stack([r["p1"] for r in rows]),
                    torch.tensor([r["same"] for r in rows]), [r["subset"] for r in rows], source="BAPPS JND val")
