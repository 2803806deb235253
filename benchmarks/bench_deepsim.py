"""Cost of one DeePSiM training step relative to one SE step, as ratios measured in one run.

One step is ``perceptlab.losses.deepsim_step``, as the autoencoder experiment runs it
(:func:`perceptlab.experiments.deepsim.train_generator`), on one batch of random images
(``torch.rand``; the autoencoder's input is also its target):

- SE: the autoencoder's forward, the mean squared error, G's backward and Adam step (no D);
- DeePSiM (one row per comparator): the same generator forward, then D's half (D's logits of the
  real and the detached fake batch, L_discr, its backward and Adam step), then G's loss of eq. 1
  (the comparator's features of output and target, D's logits of the output for L_adv, the pixel
  term), its backward through D and the comparator to G, and G's Adam step.  The objective and the
  discriminator are built by ``experiments.deepsim.ae_objective``, exactly as in training.

Every variant gets its own copy of the same initial generator and its own optimisers; the batch
is shared.  Section 3.2's pause rule (D is not updated while L_discr / L_adv < 0.1) is switched
off by default (threshold 0), so every timed DeePSiM step includes D's update, the step's full
cost; ``--pause-rule`` keeps the training threshold, and the table says how often D was updated.

Presets (``--preset``):

- quick: ``AEConfig()`` (32 x 32 crops, autoencoder width 0.5, discriminator width 0.25, batch 32);
  comparators the Exemplar-CNN at relu3 (trained by the library on first use and cached, about a
  minute on a CPU) and a seeded random AlexNet at relu2.  ``--comparator alexnet-random`` skips
  the Exemplar-CNN.
- full: ``AEConfig.for_preset("full")`` (64 x 64, Tables 1 and 2 exactly: widths 1, batch 64);
  comparator AlexNet at relu3.  The paper's AlexNet has ImageNet weights, which are not available
  offline: a seeded random AlexNet stands in (same architecture and shapes, so the same time and
  memory).  The full Exemplar-CNN needs STL-10 and is not offered.

Run from the repository root::

    .venv/bin/python benchmarks/bench_deepsim.py                              # quick, CPU
    .venv/bin/python benchmarks/bench_deepsim.py --comparator alexnet-random  # no Exemplar-CNN training
    .venv/bin/python benchmarks/bench_deepsim.py --preset full --device cuda --out deepsim.json

What is measured
----------------
Time: wall-clock time of one step, bracketed by a device synchronisation on CUDA/MPS.  Every
variant first runs ``--warmup`` untimed steps (Adam's state is created on the first); then, in each
of ``--repeats`` rounds, every variant runs one step, round-robin (the starting variant rotates each
round), so that slow phases of a shared machine hit all variants alike.  Reported: the median over
rounds, and its ratio to SE's median (``--out`` also keeps every round).  Ratios are what to compare
across machines; the milliseconds are for reference.  The CPU thread count is printed.

Peak memory: the most memory held at any moment of one extra, untimed step *beyond* what was held
before it, i.e. excluding the batch, the networks' weights and Adam's state, but including the
activations kept for backward, the gradients the step creates (the previous step's gradients are
released just before it: ``zero_grad(set_to_none=True)``, which the step does itself anyway) and
the temporaries of the optimiser steps.

- CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus
  ``memory_allocated()`` at the start: the caching allocator's allocated blocks (cuDNN workspaces
  included), not memory reserved by the cache nor the CUDA context.
- CPU: the torch profiler's memory records (``torch.profiler.profile(profile_memory=True)``), in
  time order, summed to a running total of live bytes; the maximum of that total.  This counts the
  tensor storages PyTorch's CPU allocator hands out (requested sizes).  It does not count memory
  that libraries allocate on their own (oneDNN/MKL scratch buffers), Python objects, or allocator
  overhead and fragmentation, so it is a lower bound on the growth of the process's RSS; it is
  exact for what autograd and the optimisers keep alive, which is what differs between the
  variants.  (``tracemalloc`` does not see torch's CPU allocations, and ``ru_maxrss`` would be
  dominated by the interpreter, the libraries and the weights.)
- other devices (MPS, ...): not measured (n/a).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from dataclasses import replace

import perceptlab
import torch
from perceptlab.experiments.deepsim import AEConfig, ae_objective
from perceptlab.losses import DeePSiMLoss, deepsim_step
from perceptlab.models.deepsim import AutoEncoder

from bench_losses import _fmt, step_memory, synchronize  # the sibling script: one memory measurement

BASELINE = "SE"
#: --comparator choices per preset: name -> (AEConfig.loss, config overrides).
COMPARATORS = {
    "quick": {"exemplar": ("deepsim-exemplar", {}),
              "alexnet-random": ("deepsim-alexnet", {})},
    "full": {"alexnet-random": ("deepsim-alexnet", {"alexnet": "alexnet-random", "alexnet_layer": "relu3"})},
}
DEFAULTS = {"repeats": 20, "warmup": 2}
REFERENCE_IMAGES = 256  # random images that set lambda_feat's scale (training uses 256 crops)


class Variant:
    """One generator, its objective and optimisers: ``step()`` is one ``deepsim_step`` on the shared batch."""

    def __init__(self, name: str, generator: torch.nn.Module, objective, discriminator, config: AEConfig,
                 batch: torch.Tensor):
        self.name, self.generator, self.objective, self.batch = name, generator, objective, batch
        betas = (0.9, 0.999)
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = None
        if discriminator is not None:
            self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=betas)
            discriminator.train()
        generator.train()
        self.d_updates: list[float] = []  # d_updated of every timed step (DeePSiM only)

    @property
    def label(self) -> str:
        if isinstance(self.objective, DeePSiMLoss):
            o = self.objective
            return (f"{o.comparator.label}; lambda feat/adv/img {o.lambda_feat:.3g}/{o.lambda_adv:g}/"
                    f"{o.lambda_img:g}; pause threshold {o.threshold:g}")
        return "mean squared error, no discriminator"

    def step(self) -> dict[str, float]:
        return deepsim_step(self.generator, self.objective, self.opt_g, self.opt_d, self.batch, self.batch)

    def release_grads(self) -> None:
        for opt in (self.opt_g, self.opt_d):
            if opt is not None:
                opt.zero_grad(set_to_none=True)

    def timed_step(self, device: torch.device) -> float:
        synchronize(device)
        t = time.perf_counter()
        record = self.step()
        synchronize(device)
        elapsed = time.perf_counter() - t
        if "d_updated" in record:
            self.d_updates.append(record["d_updated"])
        return elapsed


def build(preset: str, comparators: list[str], device: torch.device, pause_rule: bool) -> tuple[list[Variant], dict]:
    config = AEConfig.for_preset(preset)
    s = config.image_size
    g = torch.Generator().manual_seed(0)
    batch = torch.rand(config.batch, 3, s, s, generator=g).to(device)
    reference = torch.rand(REFERENCE_IMAGES, 3, s, s, generator=g).to(device)
    torch.manual_seed(0)
    generator = AutoEncoder(3, s, config.code_channels, config.width).to(device)
    variants = [Variant(BASELINE, copy.deepcopy(generator), *ae_objective(replace(config, loss="se"), device,
                                                                          reference), config, batch)]
    for name in comparators:
        loss, overrides = COMPARATORS[preset][name]
        cfg = replace(config, loss=loss, **overrides)
        objective, disc = ae_objective(cfg, device, reference)
        if not pause_rule:
            objective.threshold = 0.0
        label = f"DeePSiM({name} {cfg.exemplar_layer if name == 'exemplar' else cfg.alexnet_layer})"
        variants.append(Variant(label, copy.deepcopy(generator), objective, disc, cfg, batch))
    info = {"image_size": s, "batch": config.batch, "width": config.width, "d_width": config.d_width,
            "code_channels": config.code_channels, "lr": config.lr,
            "generator_parameters": sum(p.numel() for p in generator.parameters())}
    for v in variants:
        if v.opt_d is not None:
            info["discriminator_parameters"] = sum(p.numel() for p in v.objective.discriminator.parameters())
            break
    return variants, info


def peak_memory(variant: Variant, device: torch.device) -> tuple[int, int] | None:
    """(peak, retained) bytes beyond those held before one step (bench_losses.step_memory); None where not measurable."""
    variant.release_grads()  # freed before measuring: the CPU profiler cannot size blocks allocated before it
    return step_memory(variant.step, device)


def run(preset: str, comparators: list[str], device: torch.device, repeats: int, warmup: int,
        pause_rule: bool = False) -> dict:
    start = time.perf_counter()
    variants, info = build(preset, comparators, device, pause_rule)
    setup_s = time.perf_counter() - start

    for _ in range(warmup):
        for v in variants:
            v.step()
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(repeats):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:
            times[v.name].append(v.timed_step(device))
    memory = {v.name: peak_memory(v, device) for v in variants}

    base_t = statistics.median(times[BASELINE])
    base_m = memory[BASELINE][0] if memory[BASELINE] else None
    rows = []
    for v in variants:
        t = statistics.median(times[v.name])
        m = memory[v.name]
        rows.append({
            "variant": v.name,
            "objective": v.label,
            "time_ms": 1e3 * t,
            "times_ms": [1e3 * x for x in times[v.name]],
            "time_ratio": t / base_t,
            "peak_mib": None if m is None else m[0] / 2 ** 20,
            "retained_mib": None if m is None else m[1] / 2 ** 20,
            "memory_ratio": None if m is None or not base_m else m[0] / base_m,
            "d_updates": None if v.opt_d is None else int(sum(v.d_updates)),
            "timed_steps": len(times[v.name]),
        })
    notes = []
    if preset == "full":
        notes.append("AlexNet's ImageNet weights are not available offline: the comparator is a seeded random "
                     "AlexNet at relu3 (same architecture and shapes, so the same time and memory)")
    return {
        "preset": preset,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **info,
        "dtype": "torch.float32",
        "repeats": repeats,
        "warmup": warmup,
        "pause_rule": pause_rule,
        "baseline": BASELINE,
        "setup_seconds": setup_s,
        "memory_method": {"cuda": "torch.cuda.max_memory_allocated minus allocated at start",
                          "cpu": "max running total of torch profiler memory records (CPU allocator, "
                                 "tensor storages only)"}.get(device.type, "not measured"),
        "notes": notes,
        "results": rows,
    }


def report(res: dict) -> None:
    dev = res["device"] + (f" ({res['device_name']})" if res["device_name"] else "")
    s, b = res["image_size"], res["batch"]
    print(f"preset {res['preset']}: device {dev}, torch {res['torch']}, {res['threads']} CPU threads; "
          f"batch {b}x3x{s}x{s} (torch.rand), median of {res['repeats']} round-robin repeats "
          f"after {res['warmup']} warm-up")
    pause = ("paused by the rule of Sec. 3.2 while L_discr/L_adv < 0.1" if res["pause_rule"]
             else "updated on every step (pause threshold 0)")
    print(f"one deepsim_step: autoencoder width {res['width']:g} ({res['generator_parameters']:,} parameters), "
          f"discriminator width {res['d_width']:g} ({res.get('discriminator_parameters', 0):,} parameters), "
          f"Adam; D {pause}")
    print(f"peak memory beyond the batch, weights and Adam state ({res['memory_method']})")
    width = max(len(r["variant"]) for r in res["results"])
    base = res["baseline"]
    print(f"{'variant':<{width}} | {'ms/step':>9} {'x ' + base:>6} | {'peak MiB':>9} {'x ' + base:>6} | "
          f"{'D updates':>9}")
    print("-" * (width + 48))
    for r in res["results"]:
        d = "-" if r["d_updates"] is None else f"{r['d_updates']}/{r['timed_steps']}"
        print(f"{r['variant']:<{width}} | {_fmt(r['time_ms'], '.1f', 9)} {_fmt(r['time_ratio'], '.2f', 6)} | "
              f"{_fmt(r['peak_mib'], '.1f', 9)} {_fmt(r['memory_ratio'], '.2f', 6)} | {d:>9}")
    print("objectives:")
    for r in res["results"]:
        print(f"  {r['variant']}: {r['objective']}")
    for note in res["notes"]:
        print(f"note: {note}")
    print(f"setup (networks, comparators, lambda_feat scale) took {res['setup_seconds']:.1f} s")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("quick", "full"), default="quick",
                        help="quick: AEConfig() defaults; full: 64 px, Tables 1 and 2, batch 64 (default quick)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:<n>, mps")
    parser.add_argument("--comparator", choices=("all", "exemplar", "alexnet-random"), default="all",
                        help="DeePSiM comparator(s) to run: all of the preset's (default), or one; "
                             "alexnet-random skips training the Exemplar-CNN (quick preset)")
    parser.add_argument("--repeats", type=int, default=DEFAULTS["repeats"],
                        help=f"timed rounds (default {DEFAULTS['repeats']})")
    parser.add_argument("--warmup", type=int, default=DEFAULTS["warmup"],
                        help=f"untimed rounds first (default {DEFAULTS['warmup']})")
    parser.add_argument("--pause-rule", action="store_true",
                        help="keep Sec. 3.2's pause rule (threshold 0.1) instead of updating D on every step")
    parser.add_argument("--out", "--json", dest="out", metavar="PATH", default=None,
                        help="also save the results as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1, --warmup >= 0")
    available = COMPARATORS[args.preset]
    if args.comparator == "all":
        comparators = list(available)
    elif args.comparator in available:
        comparators = [args.comparator]
    else:
        parser.error(f"--comparator {args.comparator} is not available with --preset {args.preset} "
                     f"(choose from {', '.join(available)}; the full Exemplar-CNN needs STL-10)")
    try:
        device = perceptlab.default_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))

    res = run(args.preset, comparators, device, args.repeats, args.warmup, args.pause_rule)
    report(res)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)
        print(f"saved {args.out}")
    return res


if __name__ == "__main__":
    main()
