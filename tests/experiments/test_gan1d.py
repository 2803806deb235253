"""Tests of perceptlab.gan1d: Prop. 1 and Thm. 1 of Goodfellow et al. (2014) on a grid, and a learned 1-D GAN."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import assert_same
from scipy import stats
from scipy.spatial.distance import jensenshannon

from perceptlab.course import spread
from perceptlab.experiments import gan1d
from perceptlab.train import CHECKPOINT

LOG2, LOG4 = math.log(2), math.log(4)
X, DX = gan1d.make_grid(8.0, 1601)


def _pairs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = lambda *a: gan1d.gaussian_mixture(X, *a)  # noqa: E731
    u = lambda lo, hi: gan1d.uniform_density(X, lo, hi)  # noqa: E731
    return {
        "shifted gaussians": (g([0.0], [1.0]), g([1.5], [1.0])),
        "different widths": (g([0.0], [0.5]), g([0.0], [2.0])),
        "mixture vs one mode": (g([-2.0, 2.0], [0.5, 0.7], [0.3, 0.7]), g([2.0], [0.7])),
        "overlapping boxes": (u(-2.0, 1.0), u(0.0, 3.0)),  # D* is 1, 1/2 and 0 on pieces
        "box vs gaussian": (u(-1.0, 1.0), g([0.5], [1.0])),
    }


# --------------------------------------------------------------------------- densities and divergences


def test_grid_and_densities_are_normalised():
    x, dx = gan1d.make_grid(6.0, 1201)
    assert x.dtype == torch.float64 and x.shape == (1201,) and dx == pytest.approx(0.01)
    assert float(x[0]) == -6.0 and float(x[-1]) == 6.0
    p = gan1d.gaussian_mixture(x, [-1.0, 2.0], [0.5, 1.0], [1, 3])
    assert float(p.sum()) * dx == pytest.approx(1.0, abs=1e-12)
    ref = 0.25 * stats.norm.pdf(x.numpy(), -1, 0.5) + 0.75 * stats.norm.pdf(x.numpy(), 2, 1.0)
    assert np.allclose(p.numpy(), ref, rtol=1e-4, atol=0)  # the tails beyond the grid (< 1e-4) are renormalised away
    box = gan1d.uniform_density(x, -1.0, 1.0)
    assert float(box.sum()) * dx == pytest.approx(1.0) and float(box[x > 1.0].abs().sum()) == 0.0


def test_density_arguments_are_checked():
    with pytest.raises(ValueError, match="half_width"):
        gan1d.make_grid(-1.0)
    with pytest.raises(ValueError, match="stds"):
        gan1d.gaussian_mixture(X, [0.0], [0.0])
    with pytest.raises(ValueError, match="same non-zero length"):
        gan1d.gaussian_mixture(X, [0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="p_data"):
        gan1d.optimal_discriminator(-torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="same grid"):
        gan1d.jsd(torch.ones(3, dtype=torch.float64), torch.ones(4, dtype=torch.float64), 1.0)


def test_optimal_discriminator_formula_and_zero_over_zero():
    p = torch.tensor([0.0, 1.0, 2.0, 0.0, 3.0], dtype=torch.float64)
    q = torch.tensor([0.0, 1.0, 0.0, 2.0, 1.0], dtype=torch.float64)
    assert torch.equal(gan1d.optimal_discriminator(p, q), torch.tensor([0.5, 0.5, 1.0, 0.0, 0.75], dtype=torch.float64))


def test_jsd_closed_forms_and_scipy():
    p, q = _pairs()["shifted gaussians"]
    assert gan1d.jsd(p, p, DX) == pytest.approx(0.0, abs=1e-15)
    assert gan1d.jsd(p, q, DX) == pytest.approx(gan1d.jsd(q, p, DX), rel=1e-12)
    # scipy's jensenshannon is the square root of JSD (natural log by default), on probability vectors
    for p, q in _pairs().values():
        assert gan1d.jsd(p, q, DX) == pytest.approx(jensenshannon((p * DX).numpy(), (q * DX).numpy()) ** 2, rel=1e-9)
    disjoint = gan1d.uniform_density(X, -3.0, -1.0), gan1d.uniform_density(X, 1.0, 3.0)
    assert gan1d.jsd(*disjoint, DX) == pytest.approx(LOG2, rel=1e-12)
    # KL has the 0 log 0 = 0 convention, and is infinite off the support
    assert math.isinf(gan1d.kl(disjoint[0], disjoint[1], DX)) and gan1d.kl(p, p, DX) == pytest.approx(0, abs=1e-15)


@pytest.mark.parametrize("name", list(_pairs()))
def test_virtual_criterion_is_minus_log4_plus_twice_jsd(name):
    """Goodfellow et al. (2014), Thm. 1: C(G) = V(D*, G) = -log 4 + 2 JSD(p_data || p_g)."""
    p_data, p_g = _pairs()[name]
    c = gan1d.virtual_criterion(p_data, p_g, DX)
    assert c == pytest.approx(gan1d.criterion_closed_form(p_data, p_g, DX), abs=1e-12)
    assert -LOG4 < c < 0


def test_identical_densities_give_minus_log4_and_d_star_one_half():
    p = gan1d.gaussian_mixture(X, [-2.0, 2.0], [0.5, 0.7], [0.3, 0.7])
    d_star = gan1d.optimal_discriminator(p, p)
    assert torch.equal(d_star, torch.full_like(p, 0.5))
    assert gan1d.virtual_criterion(p, p, DX) == pytest.approx(-LOG4, abs=1e-12)
    assert gan1d.jsd(p, p, DX) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("pair", [((-3.0, -1.0), (1.0, 3.0)), ((-1.0, 0.0), (0.5, 4.0))])
def test_disjoint_supports_give_jsd_log2_and_criterion_zero(pair):
    p_data, p_g = (gan1d.uniform_density(X, *pair[0]), gan1d.uniform_density(X, *pair[1]))
    d_star = gan1d.optimal_discriminator(p_data, p_g)
    assert torch.equal(d_star[p_data > 0], torch.ones_like(d_star[p_data > 0]))  # D* tells them apart perfectly
    assert torch.equal(d_star[p_g > 0], torch.zeros_like(d_star[p_g > 0]))
    assert gan1d.jsd(p_data, p_g, DX) == pytest.approx(LOG2, rel=1e-12)
    assert gan1d.virtual_criterion(p_data, p_g, DX) == pytest.approx(0.0, abs=1e-12)  # 0 log 0 = 0 everywhere


def test_d_star_maximises_the_value():
    """Prop. 1: for fixed densities no other D reaches V(D*, G); D = 1/2 gives -log 4 whatever the densities."""
    p_data, p_g = _pairs()["mixture vs one mode"]
    d_star = gan1d.optimal_discriminator(p_data, p_g)
    best = gan1d.value(d_star, p_data, p_g, DX)
    assert gan1d.value(torch.full_like(p_data, 0.5), p_data, p_g, DX) == pytest.approx(-LOG4, abs=1e-12)
    g = torch.Generator().manual_seed(0)
    for eps in (0.3, 0.05, 0.005):
        for _ in range(5):
            h = torch.randn(X.shape, generator=g, dtype=torch.float64)
            d = (d_star + eps * h).clamp(1e-6, 1 - 1e-6)
            assert gan1d.value(d, p_data, p_g, DX) < best
    with pytest.raises(ValueError, match="d must hold values"):
        gan1d.value(d_star + 1, p_data, p_g, DX)


def test_sampling_and_histogram_density():
    g = torch.Generator().manual_seed(0)
    mixture = ([-2.0, 2.0], [0.5, 0.7], [0.3, 0.7])
    s = gan1d.sample_mixture(200_000, *mixture, generator=g)
    assert s.shape == (200_000, 1)
    assert float((s < 0).float().mean()) == pytest.approx(0.3, abs=0.005)
    again = gan1d.sample_mixture(200_000, *mixture, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, again)  # all randomness from the generator
    p = gan1d.gaussian_mixture(X, [-2.0, 2.0], [0.5, 0.7], [0.3, 0.7])
    for bandwidth, tol in ((0.0, 0.06), (0.1, 0.03)):
        est = gan1d.histogram_density(s, X, bandwidth)
        assert float(est.sum()) * DX == pytest.approx(1.0)
        assert float((est - p).abs().sum()) * DX < tol  # L1 distance between densities
    one = gan1d.histogram_density(torch.tensor([0.004, 0.006]), X)  # bins [x_i - dx/2, x_i + dx/2)
    assert one[800] * DX == pytest.approx(0.5) and one[801] * DX == pytest.approx(0.5)
    with pytest.raises(ValueError, match="inside the grid"):
        gan1d.histogram_density(torch.tensor([100.0]), X)


def test_noise_quantiles_represent_a_standard_normal():
    z = gan1d.noise_quantiles(10_001)
    assert z.shape == (10_001, 1) and float(z[5000]) == 0.0
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-6) and float(z.std()) == pytest.approx(1.0, abs=2e-3)
    assert gan1d.noise_quantiles(7, noise_dim=3).shape == (7, 3)


def test_discriminator_gap():
    p_data, p_g = _pairs()["shifted gaussians"]
    d_star = gan1d.optimal_discriminator(p_data, p_g)
    gap = gan1d.discriminator_gap(d_star, p_data, p_g, DX)
    assert gap == {"weighted": 0.0, "data_mean": 0.0, "data_max": 0.0}
    gap = gan1d.discriminator_gap((d_star + 0.1).clamp(max=1), p_data, p_g, DX)
    assert gap["data_max"] == pytest.approx(0.1) and 0.05 < gap["weighted"] <= 0.1


# --------------------------------------------------------------------------- the learned GAN

# Seeded training ends differently on other CPUs, so the learned GAN's outcomes are checked against
# bounds chosen from their spread over seeds (perceptlab.course.spread.OUTCOMES["gan1d"], measured with
# `python -m perceptlab spread gan1d gan1d_untrained`; the spread is recorded next to the bounds).
FAST = spread.gan1d_test_config()


@pytest.fixture(scope="module")
def learned() -> dict:
    return gan1d.run_gan1d(FAST)


def test_networks_shapes_and_arguments():
    G, D = gan1d.Generator1D(noise_dim=3), gan1d.Discriminator1D()
    assert G(torch.randn(5, 3)).shape == (5, 1) and D(torch.randn(5, 1)).shape == (5,)
    d = D.on_grid(X)
    assert d.shape == X.shape and d.dtype == torch.float64 and 0 < float(d.min()) <= float(d.max()) < 1
    with pytest.raises(ValueError, match="activation"):
        gan1d.Generator1D(activation="relu6")


def test_learned_gan_records_snapshots_for_plots(learned):
    r = learned
    assert [s["step"] for s in r["snapshots"]] == [200, 400, 600] and FAST.steps == 600
    for s in [r["initial"], *r["snapshots"], r["refined"]]:
        for key in ("d", "p_g", "d_star"):
            assert s[key].shape == r["x"].shape and torch.isfinite(s[key]).all()
        assert float(s["p_g"].sum()) * r["dx"] == pytest.approx(1.0)
        assert s["criterion"] == pytest.approx(-LOG4 + 2 * s["jsd"], abs=1e-9)
        assert s["value"] <= s["criterion"] + 1e-9  # V(D, G) <= max_D V(D, G)
    assert len(r["history"].records) == FAST.steps
    assert r["history"].series("jsd")[0] == [200, 400, 600]


def test_generator_density_approaches_the_data_and_refining_d_approaches_d_star(learned):
    """The untrained G puts its mass in a narrow spike (JSD > 0.5); training brings JSD down by a factor
    of at least 4; D trained alone against the final G (Prop. 1's inner max) comes closer to D* than
    the lagging D of the game, within bounds measured over 20 seeds (20 seeds: gap_refined
    0.054 +- 0.018, max 0.097; gap_data_mean_refined 0.063 +- 0.024, max 0.116; jsd_final / jsd_init
    at most 0.155; gap_refined < gap_final on every seed, the ratio at most 0.76)."""
    assert spread.failed_checks("gan1d", spread.gan1d_learned_metrics(learned)) == []


def test_discriminator_against_the_untrained_generator_approaches_d_star():
    """Against an untrained G (a narrow spike of mass), D* is far from 1/2 and D still learns it
    (20 seeds: gap 0.0051 +- 0.0014, max 0.0082; V within 0.0083 of C(G))."""
    assert spread.failed_checks("gan1d_untrained", spread.gan1d_versus_untrained(seed=0)) == []


def test_learned_gan_resumes_exactly(tmp_path):
    config = gan1d.GAN1DConfig(steps=40, snapshot_every=10, n_density=5_000, refine_steps=0, d_steps=2)
    whole = gan1d.run_gan1d(config, out_dir=tmp_path / "a")
    gan1d.run_gan1d(config, out_dir=tmp_path / "b", stop_after=25)
    resumed = gan1d.run_gan1d(config, out_dir=tmp_path / "b")
    assert whole["history"].records == resumed["history"].records
    for a, b in zip(whole["snapshots"], resumed["snapshots"]):
        assert a["step"] == b["step"] and torch.equal(a["d"], b["d"]) and torch.equal(a["p_g"], b["p_g"])
    a = torch.load(tmp_path / "a" / CHECKPOINT, weights_only=False)["state"]
    b = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=False)["state"]
    assert_same({k: a[k] for k in ("G", "D", "opt_g", "opt_d")}, {k: b[k] for k in ("G", "D", "opt_g", "opt_d")})




def test_config_checks_and_presets():
    assert gan1d.GAN1DConfig.for_preset("full") == gan1d.GAN1DConfig.for_preset("quick")
    with pytest.raises(ValueError, match="config.loss"):
        gan1d.run_gan1d(replace(gan1d.GAN1DConfig(), loss="hinge"))
    with pytest.raises(ValueError, match="config.d_steps"):
        gan1d.run_gan1d(gan1d.GAN1DConfig(d_steps=0))


def test_plot_snapshots(learned):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = gan1d.plot_snapshots(learned)
    assert len(fig.axes) == 2 * 5  # initial, 3 snapshots, refined; each with a twin axis
    assert "refined" in fig.axes[4].get_title()
    plt.close(fig)
