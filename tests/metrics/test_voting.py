"""The K-network vote on 2AFC (Amir & Weiss 2021, Sec. 1.2)."""
import pytest
import torch

from perceptlab.data.triplets import Triplets
from perceptlab.metrics import (ensemble_agreement, majority_vote, network_choices, score, score_choices,
                                vote_agreement)


def _triplets(judge):
    n = len(judge)
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(n, 3, 8, 8, generator=g)
    return Triplets(ref, ref.clone(), ref.clone(), torch.tensor(judge, dtype=torch.float32), ["a"] * n)


def test_majority_vote_on_hand_made_votes():
    votes = torch.tensor([[1.0, 0.0, 1.0, 0.5, 1.0],
                          [1.0, 1.0, 0.0, 0.5, 0.0],
                          [0.0, 0.0, 0.5, 0.5, 0.5]])
    # p1 2:1 | p0 2:1 | 1.5 : 1.5 tie | all ties | 1.5 : 1.5 tie
    assert majority_vote(votes).tolist() == [1.0, 0.0, 0.5, 0.5, 0.5]
    assert majority_vote(torch.tensor([[0.0, 1.0]])).tolist() == [0.0, 1.0]  # one judge is its own majority


def test_majority_vote_rejects_other_choices():
    with pytest.raises(ValueError, match="choices"):
        majority_vote(torch.tensor([[0.3, 1.0]]))
    with pytest.raises(ValueError, match="choices"):
        majority_vote(torch.tensor([1.0, 0.0]))


def test_score_of_choices_is_the_2afc_score():
    d0, d1 = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 1.0, 3.0])
    judge = torch.tensor([0.2, 0.9, 0.5])
    assert score_choices(torch.tensor([0.0, 1.0, 0.5]), judge).item() == pytest.approx(score(d0, d1, judge).item())


def test_vote_agreement_scores_the_vote_and_reports_each_network():
    triplets = _triplets([1.0, 1.0, 0.0, 0.0])
    votes = torch.tensor([[1.0, 1.0, 0.0, 1.0],   # 3/4
                          [1.0, 0.0, 0.0, 0.0],   # 3/4
                          [0.0, 1.0, 1.0, 0.0]])  # 2/4
    row = vote_agreement("vote", votes, triplets, n_boot=50)
    assert row["networks"] == [0.75, 0.75, 0.5]
    assert row["score"] == 1.0  # the majority is right on every triplet: voting removes the single nets' errors
    assert row["networks_mean"] == pytest.approx(2 / 3) and row["networks_min"] == 0.5 and row["k"] == 3
    assert row["networks_std"] == pytest.approx(torch.tensor([0.75, 0.75, 0.5]).std().item())
    assert row["low"] <= row["score"] <= row["high"]


def test_ensemble_builds_one_network_per_seed_and_votes():
    triplets = _triplets([1.0, 0.0, 1.0])

    class Toy(torch.nn.Module):
        """A 'network' whose distance to the reference is seeded noise: it votes at random."""

        def __init__(self, seed):
            super().__init__()
            self.g = torch.Generator().manual_seed(seed)

        def forward(self, x, y):
            return torch.rand(x.shape[0], generator=self.g)

    built = []
    row = ensemble_agreement("toy", lambda s: built.append(s) or Toy(s), range(5), triplets, n_boot=20)
    assert built == [0, 1, 2, 3, 4]
    assert row["choices"].shape == (5, 3) and row["k"] == 5
    assert torch.equal(row["choices"], network_choices([Toy(s) for s in range(5)], triplets))
    assert row["score"] == score_choices(majority_vote(row["choices"]), triplets.judge).item()
    with pytest.raises(ValueError, match="at least one"):
        network_choices([], triplets)
