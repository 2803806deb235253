"""A seeded training loop with progress, history, periodic checkpoints and exact resume.

Exact resume: a run stopped after any checkpoint and started again with the same
arguments ends with bit-identical weights and history, because the checkpoint
holds everything the next step depends on: every ``state_dict`` (models,
optimisers, schedulers), the step counter, the history, the data generator that
draws batches and the global RNG states (torch, CUDA, numpy, random).  Colab
sessions die; call :func:`fit` again with the same ``out_dir`` and it goes on.
"""
from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perceptlab.config import progress

CHECKPOINT = "checkpoint.pt"


@dataclass
class History:
    """Per-step records (dicts with ``step`` and the step function's metrics)."""

    records: list[dict] = field(default_factory=list)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric, skipping steps where it was not logged."""
        pairs = [(r["step"], r[key]) for r in self.records if key in r]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def last(self, key: str) -> float:
        return self.series(key)[1][-1]


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch (CPU and CUDA), numpy and random; return a fresh generator for data sampling."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: Mapping[str, Any], step: int, generator: torch.Generator, history: History) -> None:
    """Write a checkpoint atomically (a half-written file never replaces a good one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "step": step,
        "state": {k: v.state_dict() for k, v in state.items()},
        "generator": generator.get_state(),
        "rng": _rng_state(),
        "history": history.records,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, state: Mapping[str, Any], generator: torch.Generator) -> tuple[int, History]:
    """Restore ``state`` objects, the generator and global RNGs from ``path``; return (step, history)."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    missing = set(state) - set(payload["state"])
    if missing:
        raise ValueError(f"checkpoint {path} lacks state for {sorted(missing)}; was it written by another experiment?")
    for k, obj in state.items():
        obj.load_state_dict(payload["state"][k])
    generator.set_state(payload["generator"])
    _set_rng_state(payload["rng"])
    return payload["step"], History(payload["history"])


def fit(
    step_fn: Callable[[Any, int], Mapping[str, float]],
    sample_batch: Callable[[torch.Generator, int], Any],
    *,
    state: Mapping[str, Any],
    steps: int,
    seed: int = 0,
    out_dir: str | Path | None = None,
    ckpt_every: int = 0,
    resume: bool = True,
    eval_fn: Callable[[int], Mapping[str, float]] | None = None,
    eval_every: int = 0,
    stop_after: int | None = None,
    desc: str = "training",
) -> History:
    """Run ``steps`` optimisation steps with checkpoints and exact resume.

    Args:
        step_fn: ``step_fn(batch, step) -> {metric: float}``; performs one update.
        sample_batch: ``sample_batch(generator, step) -> batch``; must draw all its
            randomness from ``generator`` so that resumed runs see the same data.
        state: objects with ``state_dict``/``load_state_dict`` to checkpoint, e.g.
            ``{"model": net, "opt": optimizer}``.
        steps: total number of steps of the run (not the number still to do).
        seed: seeds the global RNGs and the data generator at a fresh start.
        out_dir: where ``checkpoint.pt`` lives; ``None`` disables checkpoints.
        ckpt_every: checkpoint period in steps (the last step is always saved).
        resume: continue from ``out_dir/checkpoint.pt`` if it exists.
        eval_fn: ``eval_fn(step) -> {metric: float}`` merged into the record every
            ``eval_every`` steps and at the last step.
        stop_after: stop after this many steps in total, as if the session died
            (used to test and demonstrate resuming).
    Returns:
        The :class:`History` of the whole run, including steps before a resume.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    generator = seed_everything(seed)
    history, start = History(), 0
    ckpt = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    if ckpt is not None and resume and ckpt.exists():
        start, history = load_checkpoint(ckpt, state, generator)
    bar = progress(range(start, steps), desc=desc, initial=start, total=steps)
    for step in bar:
        batch = sample_batch(generator, step)
        record = {"step": step + 1, **{k: float(v) for k, v in step_fn(batch, step).items()}}
        done = step + 1
        if eval_fn is not None and ((eval_every and done % eval_every == 0) or done == steps):
            record.update({k: float(v) for k, v in eval_fn(done).items()})
        history.records.append(record)
        bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "step"}, refresh=False)
        if ckpt is not None and ((ckpt_every and done % ckpt_every == 0) or done == steps):
            save_checkpoint(ckpt, state, done, generator, history)
        if stop_after is not None and done >= stop_after:
            break
    return history


def classification_step(model: torch.nn.Module, opt: torch.optim.Optimizer,
                        sched: Any = None) -> Callable[[Any, int], dict]:
    """A ``step_fn`` for :func:`fit`: one cross-entropy update on an ``(x, y)`` batch.

    Logs the batch ``loss`` and ``accuracy`` (fraction of argmax predictions equal to y).
    """
    import torch.nn.functional as F

    def step_fn(batch, step: int) -> dict:
        x, y = batch
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        return {"loss": loss.item(), "accuracy": (logits.argmax(1) == y).float().mean().item()}
    return step_fn


def config_key(config: Any, version: int) -> str:
    """A short hash of a config dataclass and a code ``version``, naming a cache folder."""
    import hashlib
    import json
    from dataclasses import asdict

    text = json.dumps({"version": version, **asdict(config)}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def train_once(folder: Path, build: Callable[[], torch.nn.Module],
               train: Callable[[Path | None], tuple[torch.nn.Module, dict]],
               cache: bool = True, retrain: bool = False) -> tuple[torch.nn.Module, dict]:
    """A network the library trains for others to use, trained once and cached: returns (model, meta).

    With ``cache`` and ``folder/model.pt`` present (and not ``retrain``), loads it into ``build()``.
    Otherwise calls ``train(out_dir)``, with ``out_dir = folder`` so an interrupted run resumes
    from ``folder/checkpoint.pt`` (``retrain`` deletes that first), and writes ``model.pt`` atomically.
    """
    final = folder / "model.pt"
    if cache and final.exists() and not retrain:
        payload = torch.load(final, map_location="cpu", weights_only=False)
        model = build()
        model.load_state_dict(payload["state"])
        return model, payload["meta"]
    if retrain and (folder / CHECKPOINT).exists():
        (folder / CHECKPOINT).unlink()
    model, meta = train(folder if cache else None)
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = final.with_suffix(".tmp")
        torch.save({"state": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta}, tmp)
        os.replace(tmp, final)
    return model, meta
