"""Tests of perceptlab.losses.deepsim: eq. 1 from its three terms (eqs. 2, 4, 5), D's loss (eq. 3), the
pause rule of Sec. 3.2 and one DeePSiM training step (Dosovitskiy & Brox 2016)."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.losses.deepsim import (
    PAUSE_THRESHOLD,
    DeePSiMLoss,
    deepsim_loss,
    deepsim_step,
    deepsim_terms,
    make_comparator,
    should_update_discriminator,
)


class Counting(nn.Module):
    """A small fixed feature map C(x) that counts its calls."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 4, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.tanh(self.conv(x))


class TinyD(nn.Module):
    """A deterministic discriminator (no dropout): one logit per image; counts its calls."""

    def __init__(self, size: int = 8):
        super().__init__()
        torch.manual_seed(2)
        self.fc = nn.Linear(3 * size * size, 1)
        self.calls = 0

    def forward(self, x, features=None):
        self.calls += 1
        return self.fc(x.flatten(1)).squeeze(1) * 3


def _batch(seed: int = 0, n: int = 4, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 3, size, size, generator=g)
    output = (target + 0.3 * torch.randn(n, 3, size, size, generator=g)).requires_grad_(True)  # may leave [0, 1]
    return output, target


# --------------------------------------------------------------------------- eq. 1


@pytest.mark.parametrize("lambdas", [(1.0, 1.0, 1.0), (0.5, 0.01, 2.0), (3.0, 0.0, 0.0), (0.0, 0.0, 1.0)])
def test_deepsim_loss_is_eq_1_computed_by_hand_from_its_three_terms(lambdas):
    lf, la, li = lambdas
    comp, d = Counting(), TinyD()
    output, target = _batch()
    loss = DeePSiMLoss(comp, d, lf, la, li)(output, target)
    with torch.no_grad():
        feat = ((comp(output) - comp(target)) ** 2).mean()  # eq. 2: a mean over the batch and features
        adv = -torch.log(torch.sigmoid(d(output))).mean()  # eq. 4
        img = ((output - target) ** 2).mean()  # eq. 5
    expected = lf * feat + la * adv + li * img
    assert float(loss) == pytest.approx(float(expected), rel=1e-5, abs=1e-7)
    assert float(deepsim_loss(output, target, comp, d(output), lf, la, li)) == pytest.approx(float(expected), rel=1e-5,
                                                                                          abs=1e-7)


def test_terms_are_recorded_and_are_per_sample_means():
    comp, d = Counting(), TinyD()
    output, target = _batch(3)
    objective = DeePSiMLoss(comp, d, 1.0, 1.0, 1.0)
    objective(output, target)
    with torch.no_grad():
        per_sample_feat = (comp(output) - comp(target)).pow(2).flatten(1).mean(1)
        per_sample_img = (output - target).pow(2).flatten(1).mean(1)
    assert objective.terms["feat"] == pytest.approx(float(per_sample_feat.mean()), rel=1e-5)
    assert objective.terms["img"] == pytest.approx(float(per_sample_img.mean()), rel=1e-5)
    assert objective.terms["adv"] == pytest.approx(float(F.softplus(-d(output)).mean()), rel=1e-5)
    terms = deepsim_terms(output, target, comp, d(output))
    assert {k: float(v) for k, v in terms.items()} == pytest.approx(objective.terms, rel=1e-5)


def test_feature_term_gets_no_gradient_through_the_target():
    comp = Counting()
    output, target = _batch()
    target = target.clone().requires_grad_(True)
    DeePSiMLoss(comp, None, 1.0, 0.0, 0.0)(output, target).backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert target.grad is None


def test_adversarial_term_is_minus_mean_log_sigmoid_of_the_logit():
    d = TinyD()
    output, target = _batch(1)
    adv = DeePSiMLoss(None, d, 0.0, 1.0, 0.0)(output, target)
    logits = d(output)
    bce = F.binary_cross_entropy(torch.sigmoid(logits), torch.ones_like(logits))
    assert float(adv) == pytest.approx(float(-torch.log(torch.sigmoid(logits)).mean()), rel=1e-5)
    assert float(adv) == pytest.approx(float(bce), rel=1e-5)
    assert float(adv) == pytest.approx(float(F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))),
                                       rel=1e-6)


def test_adversarial_term_is_finite_for_a_confident_discriminator():
    """log sigmoid on logits: no log(0) when D is sure the fakes are fake."""
    output, target = _batch()
    adv = deepsim_terms(output, target, None, torch.full((4,), -200.0), need=("adv",))["adv"]
    assert math.isfinite(float(adv)) and float(adv) == pytest.approx(200.0)


def test_zero_weight_terms_are_skipped():
    comp, d = Counting(), TinyD()
    output, target = _batch()
    DeePSiMLoss(comp, d, 0.0, 1.0, 1.0)(output, target)
    assert comp.calls == 0 and d.calls == 1  # the comparator is never called when lambda_feat = 0
    DeePSiMLoss(comp, d, 1.0, 0.0, 1.0)(output, target)
    assert d.calls == 1 and comp.calls == 2  # nor D when lambda_adv = 0; C sees output and target
    # without the terms, neither network is needed at all
    loss = DeePSiMLoss(None, None, 0.0, 0.0, 1.0)(output, target)
    assert float(loss) == pytest.approx(float(((output - target) ** 2).mean()))
    deepsim_loss(output, target, comp, None, 0.0, 0.0, 1.0)
    assert comp.calls == 2


# --------------------------------------------------------------------------- the pause rule (Sec. 3.2)


def test_pause_threshold_is_the_papers_0_1():
    assert PAUSE_THRESHOLD == 0.1
    assert DeePSiMLoss(None, TinyD(), 0, 1, 0).threshold == 0.1


def test_should_update_discriminator_at_below_and_above_the_threshold():
    # ratio L_discr / L_adv = 1.0 / 4.0 = 0.25
    assert should_update_discriminator(1.0, 4.0, threshold=0.25)  # at the threshold: not below it, D is updated
    assert should_update_discriminator(1.0, 4.0, threshold=0.2)  # ratio above the threshold
    assert not should_update_discriminator(1.0, 4.0, threshold=0.3)  # ratio below: D is paused
    assert should_update_discriminator(0.05, 1.0, threshold=0.0)  # threshold 0 never pauses
    assert not should_update_discriminator(0.05, 1.0)  # default 0.1
    assert should_update_discriminator(0.2, 1.0)


def test_should_update_discriminator_rejects_bad_inputs():
    with pytest.raises(ValueError, match="threshold"):
        should_update_discriminator(1.0, 1.0, threshold=-0.1)
    with pytest.raises(ValueError, match="threshold"):
        should_update_discriminator(1.0, 1.0, threshold=float("nan"))
    with pytest.raises(ValueError, match="loss_discr"):
        should_update_discriminator(float("nan"), 1.0)
    with pytest.raises(ValueError, match="loss_adv"):
        should_update_discriminator(1.0, float("inf"))


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_discriminator_step_paused_leaves_d_unchanged():
    d = TinyD()
    before = _params(d)
    opt = torch.optim.Adam(d.parameters(), lr=0.1)
    output, target = _batch()
    record = DeePSiMLoss(None, d, 0.0, 1.0, 0.0, threshold=1e9).discriminator_step(output, target, opt)
    assert record["d_updated"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, _params(d)))
    assert all(p.grad is None for p in d.parameters())


def test_discriminator_step_with_threshold_0_updates_d_on_eq_3():
    d = TinyD()
    before = _params(d)
    opt = torch.optim.SGD(d.parameters(), lr=0.1)
    output, target = _batch()
    record = DeePSiMLoss(None, d, 0.0, 1.0, 0.0, threshold=0.0).discriminator_step(output, target, opt)
    assert record["d_updated"] == 1.0
    assert not all(torch.equal(a, b) for a, b in zip(before, _params(d)))
    # the recorded losses are eqs. 3 and 4 (batch means) with D before its update
    ref = copy.deepcopy(d)
    with torch.no_grad():
        for p, b in zip(ref.parameters(), before):
            p.copy_(b)
    real, fake = ref(target), ref(output.detach())
    l_discr = -(torch.log(torch.sigmoid(real)) + torch.log(1 - torch.sigmoid(fake))).mean()
    assert record["loss_discr"] == pytest.approx(float(l_discr), rel=1e-5)
    assert record["loss_adv"] == pytest.approx(float(-torch.log(torch.sigmoid(fake)).mean()), rel=1e-5)
    # SGD: the step is exactly -lr * grad of L_discr
    grads = torch.autograd.grad(l_discr, list(ref.parameters()))
    for b, g, p in zip(before, grads, d.parameters()):
        assert torch.allclose(p.detach(), b - 0.1 * g, atol=1e-6)
    assert output.grad is None  # the fakes are detached for D's step


def test_discriminator_step_needs_a_discriminator():
    with pytest.raises(ValueError, match="discriminator"):
        DeePSiMLoss(None, None, 0.0, 0.0, 1.0).discriminator_step(*_batch(), torch.optim.SGD([nn.Parameter(
            torch.zeros(1))], lr=0.1))


# --------------------------------------------------------------------------- one training step


class TinyG(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


def _step_setup(threshold: float):
    G, d, comp = TinyG(), TinyD(), Counting()
    objective = DeePSiMLoss(comp, d, 1.0, 1.0, 1.0, threshold=threshold)
    opt_g = torch.optim.SGD(G.parameters(), lr=0.1)
    opt_d = torch.optim.SGD(d.parameters(), lr=0.5)
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    return G, d, objective, opt_g, opt_d, x


def test_deepsim_step_g_part_leaves_no_gradient_in_d_when_d_is_paused():
    G, d, objective, opt_g, opt_d, x = _step_setup(threshold=1e9)
    g_before, d_before = _params(G), _params(d)
    record = deepsim_step(G, objective, opt_g, opt_d, x, x)
    assert record["d_updated"] == 0.0
    assert all(p.grad is None for p in d.parameters())  # G's backward went through D without touching it
    assert all(torch.equal(a, b) for a, b in zip(d_before, _params(d)))
    assert not all(torch.equal(a, b) for a, b in zip(g_before, _params(G)))  # G did take its step
    assert all(p.requires_grad for p in d.parameters())  # D is trainable again afterwards


def test_deepsim_step_g_part_does_not_change_ds_gradients_after_ds_update():
    G, d, objective, opt_g, opt_d, x = _step_setup(threshold=0.0)
    seen = {}
    step = opt_d.step

    def spy_step(*args, **kwargs):  # D's gradients of L_discr, just before D's update
        seen["grads"] = [p.grad.clone() for p in d.parameters()]
        return step(*args, **kwargs)

    opt_d.step = spy_step
    record = deepsim_step(G, objective, opt_g, opt_d, x, x)
    assert record["d_updated"] == 1.0
    assert all(torch.equal(p.grad, g) for p, g in zip(d.parameters(), seen["grads"]))


def test_deepsim_step_updates_d_before_computing_gs_loss():
    G, d, objective, opt_g, opt_d, x = _step_setup(threshold=0.0)
    G0, d0 = copy.deepcopy(G), copy.deepcopy(d)
    record = deepsim_step(G, objective, opt_g, opt_d, x, x)
    with torch.no_grad():
        out = G0(x)  # G's output before G's step
        adv_after = float(F.softplus(-d(out)).mean())  # D after its update
        adv_before = float(F.softplus(-d0(out)).mean())
        img = float(((out - x) ** 2).mean())
        feat = float(((objective.comparator(out) - objective.comparator(x)) ** 2).mean())
    assert abs(adv_after - adv_before) > 1e-4  # D's update changed the logits
    assert record["adv"] == pytest.approx(adv_after, rel=1e-5)
    assert record["loss"] == pytest.approx(feat + adv_after + img, rel=1e-5)
    # the recorded D losses are those of D before its update
    assert record["loss_adv"] == pytest.approx(adv_before, rel=1e-5)
    assert set(record) == {"loss", "feat", "adv", "img", "loss_discr", "loss_adv", "d_updated"}


def test_deepsim_step_restores_ds_trainable_flags_as_they_were():
    G, d, objective, opt_g, opt_d, x = _step_setup(threshold=0.0)
    d.fc.bias.requires_grad_(False)  # a parameter frozen on purpose stays frozen
    deepsim_step(G, objective, opt_g, opt_d, x, x)
    assert d.fc.weight.requires_grad and not d.fc.bias.requires_grad


def test_deepsim_step_with_a_plain_loss_has_no_discriminator():
    G = TinyG()
    opt_g = torch.optim.SGD(G.parameters(), lr=0.1)
    x = torch.rand(2, 3, 8, 8)
    record = deepsim_step(G, lambda o, t: (o - t).pow(2).mean(), opt_g, None, x, x)
    assert set(record) == {"loss"}


def test_deepsim_step_with_an_adversarial_term_needs_opt_d():
    G, d, objective, opt_g, opt_d, x = _step_setup(threshold=0.1)
    with pytest.raises(ValueError, match="opt_d"):
        deepsim_step(G, objective, opt_g, None, x, x)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("name", ["lambda_feat", "lambda_adv", "lambda_img", "threshold"])
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), True, "1"])
def test_bad_weights_raise_naming_the_argument(name, value):
    kwargs = dict(lambda_feat=1.0, lambda_adv=1.0, lambda_img=1.0, threshold=0.1)
    kwargs[name] = value
    with pytest.raises(ValueError, match=name):
        DeePSiMLoss(Counting(), TinyD(), **kwargs)
    if name != "threshold":
        output, target = _batch()
        kwargs.pop("threshold")
        with pytest.raises(ValueError, match=name):
            deepsim_loss(output, target, Counting(), None, **kwargs)


def test_bad_images_raise_naming_the_argument():
    from perceptlab.models.deepsim import Discriminator

    objective = DeePSiMLoss(Counting(), Discriminator(3, 8, width=0.125), 1.0, 1.0, 1.0)
    output, target = _batch()
    with pytest.raises(ValueError, match="target"):
        objective(output, target + 1.5)
    with pytest.raises(ValueError, match="target"):
        objective(output, target - 0.5)
    nan = output.detach().clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="output"):
        objective(nan, target)
    with pytest.raises(ValueError, match="output and target must have the same shape"):
        objective(output[:3], target)
    with pytest.raises(ValueError, match="output"):
        DeePSiMLoss(Counting(), None, 1.0, 0.0, 1.0)(output[0], target[0])
    # outputs outside [0, 1] are legal (linear output layers)
    assert math.isfinite(float(objective(output * 3 - 1, target)))


def test_shape_mismatch_with_the_table_1_discriminator_raises_naming_output_and_target():
    from perceptlab.models.deepsim import Discriminator

    objective = DeePSiMLoss(Counting(), Discriminator(3, 16, width=0.125), 1.0, 1.0, 1.0)
    output, target = _batch(size=16)
    with pytest.raises(ValueError, match="output and target must have the same shape"):
        objective(output[:, :, :8, :8], target)


def test_bad_images_are_rejected_before_the_discriminator_runs():
    """A discriminator for one image size (fc on the flattened image) must not turn a shape mismatch
    into torch's RuntimeError: the inputs are checked first."""
    d = TinyD(8)
    objective = DeePSiMLoss(Counting(), d, 1.0, 1.0, 1.0)
    output, target = _batch(size=8)
    with pytest.raises(ValueError, match="output and target must have the same shape"):
        objective(torch.rand(4, 3, 6, 6), target)
    assert d.calls == 0


def test_discriminator_step_rejects_a_target_outside_0_1_without_updating_d():
    d = TinyD()
    before = _params(d)
    opt = torch.optim.SGD(d.parameters(), lr=0.1)
    output, target = _batch()
    with pytest.raises(ValueError, match="target"):
        DeePSiMLoss(None, d, 0.0, 1.0, 0.0, threshold=0.0).discriminator_step(output, target * 255, opt)
    assert all(torch.equal(a, b) for a, b in zip(before, _params(d)))


def test_missing_networks_raise_naming_the_argument():
    with pytest.raises(ValueError, match="discriminator"):
        DeePSiMLoss(Counting(), None, 1.0, 0.5, 1.0)
    with pytest.raises(ValueError, match="comparator"):
        DeePSiMLoss(None, TinyD(), 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="comparator"):
        DeePSiMLoss(42, TinyD(), 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="comparator"):
        deepsim_loss(*_batch(), None, None, 1.0, 0.0, 0.0)


def test_adversarial_weight_without_logits_raises_instead_of_dropping_the_term():
    """deepsim_loss with lambda_adv > 0 but no discriminator logits must not silently return a loss
    without L_adv (as a missing comparator with lambda_feat > 0 raises)."""
    output, target = _batch()
    with pytest.raises(ValueError, match="fake_logits"):
        deepsim_loss(output, target, None, None, lambda_feat=0.0, lambda_adv=1.0, lambda_img=1.0)


def test_make_comparator_rejects_unknown_metrics_and_layers():
    with pytest.raises(ValueError, match="name must be a registered metric"):
        make_comparator("alexnet-imagenette", "relu2")
    with pytest.raises(ValueError, match="name must be a feature metric"):
        make_comparator("l2", "relu2")
    with pytest.raises(ValueError, match="layer"):
        make_comparator("alexnet-random", "relu9")
    with pytest.raises(ValueError, match="layer"):
        DeePSiMLoss(("alexnet-random", "fc9"), None, 1.0, 0.0, 0.0)


def test_comparator_given_by_name_and_layer_is_built_and_frozen():
    objective = DeePSiMLoss(("alexnet-random", "relu2"), None, 1.0, 0.0, 1.0)
    assert "alexnet" in objective.comparator.label and "relu2" in objective.comparator.label
    assert not any(p.requires_grad for p in objective.comparator.parameters())
    output = torch.rand(2, 3, 32, 32, requires_grad=True)
    objective(output, torch.rand(2, 3, 32, 32)).backward()
    assert output.grad.abs().sum() > 0
    assert "lambda_feat=1.0" in repr(objective)
