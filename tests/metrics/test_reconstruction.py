"""Tests of perceptlab.metrics.reconstruction: DeePSiM's normalized Euclidean error (Dosovitskiy & Brox 2016, Sec. 4),
||a - b|| / N with N the mean distance between all pairs of different test samples."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from perceptlab.metrics.reconstruction import mean_pairwise_distance, normalized_euclidean_error


def _triangle(s: float) -> torch.Tensor:
    """The vertices of an equilateral triangle of side ``s`` in R^2, as (3, 2) float64."""
    return torch.tensor([[0.0, 0.0], [s, 0.0], [s / 2, s * math.sqrt(3) / 2]], dtype=torch.float64)


def test_equilateral_triangle_mean_pairwise_distance_is_the_side():
    for s in (1.0, 2.5, 0.01):
        assert mean_pairwise_distance(_triangle(s)) == pytest.approx(s, rel=1e-12)


def test_error_of_known_displacements_from_the_triangle_vertices():
    s = 2.0
    t = _triangle(s)
    # displace the vertices by vectors of lengths 0.3, 0.4 and 0 (a 3-4-5 triangle gives 0.5 for the middle one)
    shift = torch.tensor([[0.3, 0.0], [0.3, 0.4], [0.0, 0.0]], dtype=torch.float64)
    expected = (0.3 + 0.5 + 0.0) / 3 / s
    assert normalized_euclidean_error(t + shift, t) == pytest.approx(expected, rel=1e-12)
    # the same displacement for every vertex: the error is its length over the side
    assert normalized_euclidean_error(t + torch.tensor([0.6, 0.8], dtype=torch.float64), t) == pytest.approx(1.0 / s)


def test_outputs_equal_to_targets_give_zero():
    t = torch.rand(5, 3, 8, 8)
    assert normalized_euclidean_error(t.clone(), t) == 0.0


def test_cyclic_permutation_of_three_targets_gives_exactly_one():
    """With 3 targets, every permutation without fixed points is a cycle, which meets every pair once:
    the error is the mean pairwise distance over itself, 1 (100%: 'randomly drawing a sample')."""
    t = torch.randn(3, 3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for perm in ([1, 2, 0], [2, 0, 1]):
        assert normalized_euclidean_error(t[perm], t) == pytest.approx(1.0, abs=1e-12)


def test_any_derangement_of_equidistant_targets_gives_exactly_one():
    t = torch.eye(6, dtype=torch.float64) * 3.0  # a regular simplex: all pairwise distances equal
    perm = [1, 0, 3, 4, 5, 2]
    assert all(p != i for i, p in enumerate(perm))
    assert normalized_euclidean_error(t[perm], t) == pytest.approx(1.0, abs=1e-12)


def test_random_derangement_gives_one_on_average_over_all_derangements():
    """For general targets, a derangement's error is 1 only on average: each ordered pair (i, j), i != j,
    is hit by the same number of derangements, so their mean error is the mean pairwise distance over itself."""
    n = 5
    t = torch.randn(n, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    errors = [normalized_euclidean_error(t[list(p)], t) for p in itertools.permutations(range(n))
              if all(p[i] != i for i in range(n))]
    assert len(errors) == 44  # the derangements of 5
    assert float(np.mean(errors)) == pytest.approx(1.0, abs=1e-12)
    assert float(np.std(errors)) > 0.01  # single derangements are not exactly 1 here


def _zebra(width: int, size: int = 32, phase: int = 0) -> torch.Tensor:
    """Black-and-white vertical stripes of ``width`` pixels, (3, size, size) in {0, 1}."""
    col = ((torch.arange(size) + phase) // width) % 2
    return col.float().expand(3, size, size).clone()


def test_zebra_grey_image_has_half_the_error_of_the_pattern_shifted_by_one_stripe():
    """Sec. 4: 'A monotonous gray image will have twice smaller Euclidean error than the same pattern
    shifted by one stripe width.'"""
    widths = (2, 4, 8)
    targets = torch.stack([_zebra(w) for w in widths])
    shifted = torch.stack([_zebra(w, phase=w) for w in widths])
    assert torch.equal(shifted, 1 - targets)  # one stripe width: black and white swap
    grey = torch.full_like(targets, 0.5)
    e_grey, e_shift = normalized_euclidean_error(grey, targets), normalized_euclidean_error(shifted, targets)
    assert e_grey == pytest.approx(e_shift / 2, rel=1e-12)
    # closed form: ||grey - t|| = 0.5 sqrt(n), ||shifted - t|| = sqrt(n)
    n = targets[0].numel()
    mean_pair = mean_pairwise_distance(targets)
    assert e_shift == pytest.approx(math.sqrt(n) / mean_pair, rel=1e-12)
    assert e_grey == pytest.approx(0.5 * math.sqrt(n) / mean_pair, rel=1e-12)


def test_error_does_not_depend_on_the_flattening_layout():
    g = torch.Generator().manual_seed(2)
    t, o = torch.rand(4, 3, 6, 5, generator=g), torch.rand(4, 3, 6, 5, generator=g) * 2 - 0.5
    e = normalized_euclidean_error(o, t)
    assert normalized_euclidean_error(o.flatten(1), t.flatten(1)) == pytest.approx(e, rel=1e-12)
    assert normalized_euclidean_error(o.permute(0, 2, 3, 1).contiguous(), t.permute(0, 2, 3, 1).contiguous()) == \
        pytest.approx(e, rel=1e-12)
    assert normalized_euclidean_error(o.permute(0, 3, 1, 2), t.permute(0, 3, 1, 2)) == pytest.approx(e, rel=1e-12)
    assert normalized_euclidean_error(o.reshape(4, 15, 6), t.reshape(4, 15, 6)) == pytest.approx(e, rel=1e-12)
    # float32 and float64 inputs agree (computed in float64)
    assert normalized_euclidean_error(o.double(), t.double()) == pytest.approx(e, rel=1e-6)


def test_error_is_scale_invariant_and_outputs_are_not_range_checked():
    g = torch.Generator().manual_seed(3)
    t = torch.rand(4, 10, generator=g, dtype=torch.float64)
    o = torch.rand(4, 10, generator=g, dtype=torch.float64) * 3 - 1
    e = normalized_euclidean_error(o, t)
    assert normalized_euclidean_error(7 * o, 7 * t) == pytest.approx(e, rel=1e-9)
    assert normalized_euclidean_error(o + 5, t + 5) == pytest.approx(e, rel=1e-9)


def test_mean_pairwise_distance_equals_scipy_pdist():
    x = np.random.default_rng(4).normal(size=(9, 3, 4, 4))
    expected = pdist(x.reshape(9, -1)).mean()  # unordered pairs: the same mean as over ordered pairs
    assert mean_pairwise_distance(torch.from_numpy(x)) == pytest.approx(expected, rel=1e-12)
    assert mean_pairwise_distance(torch.from_numpy(x).float()) == pytest.approx(expected, rel=1e-6)
    # more samples (torch.cdist switches to its matrix-product algorithm above 25 rows)
    y = np.random.default_rng(5).uniform(size=(60, 3, 8, 8))
    assert mean_pairwise_distance(torch.from_numpy(y)) == pytest.approx(pdist(y.reshape(60, -1)).mean(), rel=1e-9)


def test_gradients_are_not_needed_and_inputs_are_unchanged():
    t = torch.rand(3, 4, requires_grad=True)
    o = torch.rand(3, 4)
    before = t.detach().clone()
    assert isinstance(normalized_euclidean_error(o, t), float)
    assert torch.equal(t.detach(), before)


# --------------------------------------------------------------------------- bad inputs


def test_fewer_than_two_targets_raise_naming_targets():
    with pytest.raises(ValueError, match="targets"):
        mean_pairwise_distance(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="targets"):
        normalized_euclidean_error(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))


def test_shape_mismatch_raises_naming_outputs_and_targets():
    with pytest.raises(ValueError, match="outputs and targets must have the same shape"):
        normalized_euclidean_error(torch.rand(3, 3, 4, 4), torch.rand(4, 3, 4, 4))
    with pytest.raises(ValueError, match="outputs and targets must have the same shape"):
        normalized_euclidean_error(torch.rand(3, 3, 4, 4), torch.rand(3, 3, 4, 5))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values_raise_naming_the_argument(bad):
    t = torch.rand(3, 4)
    o = torch.rand(3, 4)
    o_bad, t_bad = o.clone(), t.clone()
    o_bad[1, 2], t_bad[0, 0] = bad, bad
    with pytest.raises(ValueError, match="outputs"):
        normalized_euclidean_error(o_bad, t)
    with pytest.raises(ValueError, match="targets"):
        normalized_euclidean_error(o, t_bad)


def test_integer_and_non_tensor_inputs_raise_naming_the_argument():
    t = torch.rand(3, 4)
    with pytest.raises(ValueError, match="outputs"):
        normalized_euclidean_error((t * 255).to(torch.uint8), t)
    with pytest.raises(ValueError, match="targets"):
        normalized_euclidean_error(t, torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="targets"):
        mean_pairwise_distance(np.ones((3, 4)))
    with pytest.raises(ValueError, match="outputs"):
        normalized_euclidean_error(torch.rand(4), torch.rand(4))  # no sample axis


def test_identical_targets_raise_a_value_error_naming_targets():
    """All targets equal: N = 0 and the normalisation is undefined; a ValueError, not a ZeroDivisionError."""
    t = torch.full((3, 4), 0.5)
    with pytest.raises(ValueError, match="targets"):
        normalized_euclidean_error(torch.rand(3, 4), t)
