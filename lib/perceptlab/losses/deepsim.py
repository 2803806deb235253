"""DeePSiM (Dosovitskiy & Brox 2016): feature + adversarial + pixel loss, and its discriminator rule.

    L = lambda_feat L_feat + lambda_adv L_adv + lambda_img L_img                       (eq. 1)
    L_feat = sum_i ||C(G(x_i)) - C(y_i)||^2                                           (eq. 2)
    L_discr = -sum_i log D(y_i) + log(1 - D(G(x_i)))                                  (eq. 3)
    L_adv = -sum_i log D(G(x_i))                                                      (eq. 4)
    L_img = sum_i ||G(x_i) - y_i||^2                                                  (eq. 5)

Sums over the batch become means here, and each squared norm is a mean over its elements,
so the three weights do not depend on batch or image size (the paper's lambdas, for sums in
caffe, are not comparable with ours).  D's terms are computed on logits with softplus
(:mod:`perceptlab.losses.adversarial`), which is exact and never takes log(0).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from perceptlab.losses.adversarial import discriminator_loss, generator_loss
from perceptlab.losses.registry import REGISTRY, make
from perceptlab.models.deepsim import Comparator, check_generator_output
from perceptlab.validate import check_image, check_same_shape

#: Section 3.2: D is not updated while L_discr / L_adv is below this ("0.1 in most experiments").
PAUSE_THRESHOLD = 0.1


def _check_weight(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def _check_pair(output: torch.Tensor, target: torch.Tensor) -> None:
    """Validate a generator's output and its target before any network sees them."""
    check_generator_output(output, "output")
    check_image(target, "target")
    check_same_shape(output, target, "output", "target")


def make_comparator(name: str, layer: str) -> Comparator:
    """The comparator C: layer ``layer`` of the network of the registered feature metric ``name``.

    ``name`` is a key of the metric registry whose metric is a feature loss, e.g. "exemplar"
    (the Exemplar-CNN the library trains itself; layers conv1 ... relu3, "gap"), "alexnet-random"
    (seeded random AlexNet; conv1 ... pool5, "gap", fc6, fc7, fc8) or "alexnet-imagenet"
    (torchvision's ImageNet weights; a clear error offline).
    """
    from perceptlab.models.backbones import HEAD_LAYERS, backbone_head

    if name not in REGISTRY:
        raise ValueError(f"name must be a registered metric, one of {sorted(REGISTRY)}, got {name!r}")
    metric = make(name)
    net = getattr(metric, "net", None)
    if net is None or not hasattr(net, "layer_names"):
        raise ValueError(f"name must be a feature metric (a network's layers), got {name!r} ({metric.label})")
    head = None
    if net.name in HEAD_LAYERS and layer in dict(HEAD_LAYERS[net.name]):
        head = backbone_head(net.name, getattr(metric, "weights_policy", "random"), seed=getattr(metric, "seed", 0))
    return Comparator(net, layer, head)


def deepsim_terms(output: torch.Tensor, target: torch.Tensor, comparator: nn.Module | None,
                  fake_logits: torch.Tensor | None, need: tuple[str, ...] = ("feat", "adv", "img")) -> dict[str, torch.Tensor]:
    """The three generator terms, each a scalar: ``feat`` (eq. 2), ``adv`` (eq. 4), ``img`` (eq. 5).

    ``output``: the generator's images (N, C, H, W), any range (linear output layer);
    ``target``: (N, C, H, W) in [0, 1]; ``fake_logits``: D's logits of ``output`` (N,).
    Terms not in ``need`` (weight 0) are not computed and are returned as 0.
    """
    check_generator_output(output, "output")
    check_image(target, "target")
    check_same_shape(output, target, "output", "target")
    zero = output.new_zeros(())
    terms = {"feat": zero, "adv": zero, "img": zero}
    if "feat" in need:
        if comparator is None:
            raise ValueError("comparator must be given when the feature term is used")
        with torch.no_grad():
            c_target = comparator(target)
        terms["feat"] = (comparator(output) - c_target).pow(2).flatten(1).mean(1).mean()
    if "img" in need:
        terms["img"] = (output - target).pow(2).flatten(1).mean(1).mean()
    if "adv" in need:
        if fake_logits is None:
            raise ValueError("fake_logits must be given when the adversarial term is used (lambda_adv > 0)")
        terms["adv"] = generator_loss(fake_logits)
    return terms


def deepsim_loss(output: torch.Tensor, target: torch.Tensor, comparator: nn.Module, fake_logits: torch.Tensor | None,
                 lambda_feat: float = 1.0, lambda_adv: float = 1.0, lambda_img: float = 1.0) -> torch.Tensor:
    """Eq. 1: lambda_feat L_feat + lambda_adv L_adv + lambda_img L_img (see :func:`deepsim_terms`), a scalar."""
    w = [_check_weight(v, n) for v, n in ((lambda_feat, "lambda_feat"), (lambda_adv, "lambda_adv"),
                                          (lambda_img, "lambda_img"))]
    need = tuple(k for k, v in zip(("feat", "adv", "img"), w) if v > 0)
    t = deepsim_terms(output, target, comparator, fake_logits, need)
    return w[0] * t["feat"] + w[1] * t["adv"] + w[2] * t["img"]


def should_update_discriminator(loss_discr: float, loss_adv: float, threshold: float = PAUSE_THRESHOLD) -> bool:
    """Section 3.2's rule: update D unless L_discr / L_adv < ``threshold`` (D is far ahead of G).

    Both losses are the batch means of eqs. 3 and 4 (their ratio is the ratio of the sums).
    A threshold of 0 never pauses D.
    """
    _check_weight(threshold, "threshold")
    if not (math.isfinite(loss_discr) and math.isfinite(loss_adv)):
        raise ValueError(f"loss_discr and loss_adv must be finite, got {loss_discr} and {loss_adv}")
    return loss_discr >= threshold * loss_adv


class DeePSiMLoss(nn.Module):
    """The DeePSiM objective (eq. 1) for any generator, comparator and discriminator.

    Args:
        comparator: a module C(x) (e.g. :func:`make_comparator`), or a registered metric name
            and layer as ``("exemplar", "relu3")``; frozen.
        discriminator: D(x) -> logits (N,), or None when ``lambda_adv`` is 0.
        lambda_feat, lambda_adv, lambda_img: the non-negative weights of eq. 1.
        threshold: D is paused while L_discr / L_adv < threshold (Sec. 3.2).

    ``forward(output, target)`` is the generator's loss (scalar) and records the last terms in
    ``self.terms``; :meth:`discriminator_step` is D's half of a training step.
    """

    def __init__(self, comparator: nn.Module | tuple[str, str] | None, discriminator: nn.Module | None,
                 lambda_feat: float = 1.0, lambda_adv: float = 1.0, lambda_img: float = 1.0,
                 threshold: float = PAUSE_THRESHOLD):
        super().__init__()
        self.lambda_feat = _check_weight(lambda_feat, "lambda_feat")
        self.lambda_adv = _check_weight(lambda_adv, "lambda_adv")
        self.lambda_img = _check_weight(lambda_img, "lambda_img")
        self.threshold = _check_weight(threshold, "threshold")
        if isinstance(comparator, tuple):
            comparator = make_comparator(*comparator)
        if comparator is None and self.lambda_feat > 0:
            raise ValueError("comparator must be given when lambda_feat > 0")
        if comparator is not None and not callable(comparator):
            raise ValueError(f"comparator must be a module C(x) or a (metric name, layer) pair, got {comparator!r}")
        if discriminator is None and self.lambda_adv > 0:
            raise ValueError("discriminator must be given when lambda_adv > 0")
        self.comparator = comparator
        if comparator is not None:
            comparator.requires_grad_(False)
        self.discriminator = discriminator
        self.terms: dict[str, float] = {}

    def forward(self, output: torch.Tensor, target: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        _check_pair(output, target)
        logits = None
        if self.discriminator is not None and self.lambda_adv > 0:
            logits = self.discriminator(output, features) if features is not None else self.discriminator(output)
        need = tuple(k for k, w in (("feat", self.lambda_feat), ("adv", self.lambda_adv), ("img", self.lambda_img))
                     if w > 0)
        t = deepsim_terms(output, target, self.comparator, logits, need)
        self.terms = {k: float(v.detach()) for k, v in t.items()}
        return self.lambda_feat * t["feat"] + self.lambda_adv * t["adv"] + self.lambda_img * t["img"]

    def discriminator_step(self, output: torch.Tensor, target: torch.Tensor, optimizer: torch.optim.Optimizer,
                           features: torch.Tensor | None = None) -> dict[str, float]:
        """D's update with the pause rule: computes L_discr (eq. 3) on real ``target`` and fake
        ``output`` (detached) and L_adv (eq. 4) on the fakes; steps ``optimizer`` only if
        :func:`should_update_discriminator`.  Returns ``loss_discr``, ``loss_adv``, ``d_updated`` (0/1)."""
        d = self.discriminator
        if d is None:
            raise ValueError("discriminator_step needs a discriminator")
        _check_pair(output, target)
        extra = () if features is None else (features,)
        real_logits, fake_logits = d(target, *extra), d(output.detach(), *extra)
        loss_d = discriminator_loss(real_logits, fake_logits)
        loss_adv = float(generator_loss(fake_logits.detach()))
        update = should_update_discriminator(float(loss_d.detach()), loss_adv, self.threshold)
        optimizer.zero_grad(set_to_none=True)
        if update:
            loss_d.backward()
            optimizer.step()
        return {"loss_discr": float(loss_d.detach()), "loss_adv": loss_adv, "d_updated": float(update)}

    def extra_repr(self) -> str:
        return (f"lambda_feat={self.lambda_feat}, lambda_adv={self.lambda_adv}, lambda_img={self.lambda_img}, "
                f"threshold={self.threshold}, comparator={getattr(self.comparator, 'label', self.comparator)}")


def deepsim_step(generator: nn.Module, objective: DeePSiMLoss | Callable, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer | None, inputs: torch.Tensor, targets: torch.Tensor,
                 d_features: torch.Tensor | None = None,
                 extra_loss: Callable[[], torch.Tensor] | None = None) -> dict[str, float]:
    """One training step of Sec. 3.2: D's update (skipped while L_discr / L_adv < threshold), then G's.

    ``objective`` is a :class:`DeePSiMLoss` or a plain ``loss(output, target)`` (SE, L1; then
    there is no D).  G's loss uses D *after* its update; D's parameters get no gradient from
    G's step.  Returns ``loss`` (G's) and, for DeePSiM, ``feat``, ``adv``, ``img`` and, with a
    discriminator, ``loss_discr``, ``loss_adv`` (before G's step) and ``d_updated`` (1 or 0).
    ``extra_loss()``, called after G's forward pass, is added to G's loss and logged as ``extra``
    (the VAE's weighted KL term, eq. 7).
    """
    output = generator(inputs)
    record: dict[str, float] = {}
    deepsim = isinstance(objective, DeePSiMLoss)
    disc = objective.discriminator if deepsim and objective.lambda_adv > 0 else None
    if disc is not None:
        if opt_d is None:
            raise ValueError("opt_d must be given: the objective has an adversarial term")
        record.update(objective.discriminator_step(output, targets, opt_d, d_features))
        trainable = [p for p in disc.parameters() if p.requires_grad]  # restored as they were
        for p in trainable:
            p.requires_grad_(False)
    try:
        loss = objective(output, targets, d_features) if deepsim else objective(output, targets)
        if extra_loss is not None:
            extra = extra_loss()
            record["extra"] = float(extra.detach())
            loss = loss + extra
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
    finally:
        if disc is not None:
            for p in trainable:
                p.requires_grad_(True)
    record["loss"] = float(loss.detach())
    if deepsim:
        record.update(objective.terms)
    return record
