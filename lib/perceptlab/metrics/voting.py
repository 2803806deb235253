"""Voting between random networks on 2AFC (Amir & Weiss 2021, Sec. 1.2).

One random network is a noisy judge: its 2AFC choices depend on the draw of its filters.  Amir
and Weiss reduce that variance by drawing K = 20 random VGG16 networks and letting them vote on
each triplet; the majority decides.  Here each network's choice p_hat is 1 (p1 is closer), 0 (p0)
or 1/2 (a tie), and the vote is the majority of those choices (a network's tie gives half a vote
to each side; an even split is a tie of the vote).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from perceptlab.data.triplets import Triplets
from perceptlab.metrics.twoafc import Distance, choice, choice_row, distances, score_choices


def majority_vote(choices: torch.Tensor) -> torch.Tensor:
    """The majority of K judges' choices, (K, N) -> (N,): 1 where more than half the votes go to p1,
    0 where more than half go to p0, 1/2 on an even split.  Choices are 0, 1/2 or 1."""
    c = torch.as_tensor(choices, dtype=torch.float64)
    if c.dim() != 2 or c.shape[0] < 1:
        raise ValueError(f"choices must be a (K, N) tensor with K >= 1 judges, got shape {tuple(c.shape)}")
    if not bool(((c == 0) | (c == 0.5) | (c == 1)).all()):
        raise ValueError("choices must hold 0 (p0), 1/2 (tie) or 1 (p1)")
    share = c.mean(0)
    return torch.where(share > 0.5, 1.0, torch.where(share < 0.5, 0.0, 0.5)).double()


def network_choices(metrics: Iterable[Distance], triplets: Triplets, batch_size: int = 32,
                    device: str | torch.device = "cpu", tie_rtol: float | None = None) -> torch.Tensor:
    """Each metric's 2AFC choices on ``triplets``, (K, N) (:func:`perceptlab.metrics.twoafc.choice`)."""
    tie_rtol = triplets.tie_rtol if tie_rtol is None else tie_rtol
    rows = [choice(*distances(m, triplets, batch_size, device), tie_rtol) for m in metrics]
    if not rows:
        raise ValueError("metrics must hold at least one network")
    return torch.stack(rows)


def vote_agreement(name: str, choices: torch.Tensor, triplets: Triplets, n_boot: int = 2000, level: float = 0.95,
                   seed: int = 0) -> dict:
    """The vote's 2AFC row (:func:`perceptlab.metrics.twoafc.choice_row`) and the spread of the single networks.

    Returns the row of the majority vote with ``networks`` (each network's own score, in order) and
    their ``networks_mean``, ``networks_std`` (over networks, ddof 1 when K > 1), ``networks_min``,
    ``networks_max`` and ``k``.
    """
    choices = torch.as_tensor(choices, dtype=torch.float64)
    row = choice_row(name, majority_vote(choices), triplets, n_boot, level, seed)
    singles = np.array([float(score_choices(c, triplets.judge)) for c in choices])
    row.update(networks=singles.tolist(), k=len(singles), networks_mean=float(singles.mean()),
               networks_std=float(singles.std(ddof=1)) if len(singles) > 1 else 0.0,
               networks_min=float(singles.min()), networks_max=float(singles.max()))
    return row


def ensemble_agreement(name: str, build: Callable[[int], Distance], seeds: Iterable[int], triplets: Triplets,
                       batch_size: int = 32, device: str | torch.device = "cpu", n_boot: int = 2000,
                       seed: int = 0) -> dict:
    """K networks ``build(s)`` (one per seed), their choices, and :func:`vote_agreement` of them.

    Networks are built and scored one at a time, so only one is in memory.  The row also holds
    ``choices`` (K, N).
    """
    metrics = (build(s).to(device) for s in seeds)
    choices = network_choices(metrics, triplets, batch_size, device)
    return {**vote_agreement(name, choices, triplets, n_boot, seed=seed), "choices": choices}
