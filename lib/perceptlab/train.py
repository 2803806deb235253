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
import pickle
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

    def at(self, key: str, step: int) -> float:
        """The value of ``key`` logged at ``step``; a KeyError names both if it was not logged there."""
        for r in self.records:
            if r["step"] == step and key in r:
                return r[key]
        raise KeyError(f"{key!r} was not logged at step {step}")


class GeneratorState:
    """A ``torch.Generator`` as a checkpointable object (``state_dict``/``load_state_dict``), e.g. the
    seeded generator of a loss that draws random offsets at every call, so that resuming is exact."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def state_dict(self) -> dict:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["state"])


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch (CPU and CUDA), numpy and random; return a fresh generator for data sampling."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


def _rng_state() -> dict:
    """The global RNG states, as tensors, ints and tuples only (so that ``weights_only=True`` loads them)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                      int(has_gauss), float(cached)),
             "random": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
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


def load_state_file(path: Path, what: str, fix: str) -> dict:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never pickled code.

    A damaged file (empty, truncated, random bytes), one with pickled objects, or one that holds
    anything but a dict raises a ValueError naming the file, ``what`` it should hold and ``fix``.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # RuntimeError (PytorchStreamReader), EOFError, UnpicklingError, ...
        reason = ("it holds pickled Python objects, which are never loaded (weights_only=True), or is damaged"
                  if isinstance(exc, pickle.UnpicklingError) else str(exc).splitlines()[0][:160] if str(exc) else "")
        raise ValueError(f"{path} cannot be read as {what} ({type(exc).__name__}: {reason}). {fix}") from exc
    if not isinstance(payload, dict):
        raise ValueError(f"{path} does not hold {what} (a dict) but a {type(payload).__name__}. {fix}")
    return payload


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from: unreadable, or written by another experiment."""


def load_checkpoint(path: Path, state: Mapping[str, Any], generator: torch.Generator) -> tuple[int, History]:
    """Restore ``state`` objects, the generator and global RNGs from ``path``; return (step, history).

    Raises :class:`CheckpointError` for a file that cannot be resumed from.
    """
    try:
        payload = load_state_file(path, "a training checkpoint", "Delete it to start the run from the beginning.")
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    missing = set(state) - set(payload.get("state", {}))
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks state for {sorted(missing)}; was it written by another "
                              "experiment?")
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


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_cached_model(folder: Path, build: Callable[[], torch.nn.Module], config: dict | None = None
                      ) -> tuple[torch.nn.Module, dict] | None:
    """The cached network in ``folder`` (``model.pt`` + ``meta.json``), or None if there is none or it is bad.

    ``meta.json`` records the SHA-256 of ``model.pt`` and the config it was trained with; the
    weights are loaded with ``weights_only=True`` into ``build()``.  A missing or unreadable
    ``meta.json``, a checksum that does not match (a damaged or replaced file), another config,
    an unreadable ``model.pt`` or weights that do not fit the architecture are reported with a
    warning naming the file, and the entry is not used (the caller retrains and rewrites it).
    """
    import json
    import warnings

    final, meta_path = folder / "model.pt", folder / "meta.json"
    if not final.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        problem = None
        if meta.get("sha256") != _sha256(final):
            problem = f"its SHA-256 does not match the one recorded in {meta_path} (damaged or replaced)"
        elif config is not None and meta.get("config") != json.loads(json.dumps(config)):
            problem = f"it was trained with another config than {config}"
        else:
            model = build()
            model.load_state_dict(load_state_file(final, "a state dict of cached weights", ""))
            return model, meta["meta"]
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # missing/bad JSON, bad file, wrong architecture
        problem = f"it cannot be used ({type(exc).__name__}: {str(exc)[:200]})"
    warnings.warn(f"the cached network {final} is not used: {problem}. It is trained again and the cache "
                  f"entry rewritten.", stacklevel=3)
    return None


def train_once(folder: Path, build: Callable[[], torch.nn.Module],
               train: Callable[[Path | None], tuple[torch.nn.Module, dict]],
               cache: bool = True, retrain: bool = False, config: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """A network the library trains for others to use, trained once and cached: returns (model, meta).

    With ``cache`` and a good cache entry in ``folder`` (and not ``retrain``), loads it into
    ``build()`` (:func:`load_cached_model`: checksum, config and architecture are checked; a bad
    entry is reported and rebuilt, never used).  Otherwise calls ``train(out_dir)``, with
    ``out_dir = folder`` so an interrupted run resumes from ``folder/checkpoint.pt`` (``retrain``
    deletes that first), and writes ``model.pt`` (the state dict only) and ``meta.json`` (its
    SHA-256, ``config`` and the JSON-able ``meta``) atomically.
    """
    import json

    if cache and not retrain:
        cached = load_cached_model(folder, build, config)
        if cached is not None:
            return cached
    checkpoint = folder / CHECKPOINT
    if retrain and checkpoint.exists():
        checkpoint.unlink()  # the library's own file in its cache folder
    try:  # an interrupted training resumes from the cache's own checkpoint
        model, meta = train(folder if cache else None)
    except CheckpointError as exc:
        if not cache:
            raise
        import warnings

        warnings.warn(f"{exc} The cache's checkpoint is not used: training starts from the beginning.", stacklevel=2)
        checkpoint.unlink()
        model, meta = train(folder)
    meta = json.loads(json.dumps(meta))  # plain JSON types, the same whether trained now or loaded later
    if cache:
        save_cached_model(folder, model, config, meta)
    return model, meta


def save_cached_model(folder: Path, model: torch.nn.Module, config: dict | None, meta: dict) -> None:
    """Write a cache entry that :func:`load_cached_model` accepts: ``model.pt`` (the state dict) and
    ``meta.json`` (its SHA-256, ``config`` and the JSON-able ``meta``), each replaced atomically.

    :func:`train_once` calls it after training; a notebook that trained the same network with the
    same config by other means (e.g. with evaluation hooks) can call it so that later users load it.
    """
    import json

    folder.mkdir(parents=True, exist_ok=True)
    final, tmp = folder / "model.pt", folder / "model.tmp"
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    record = {"sha256": _sha256(tmp), "config": json.loads(json.dumps(config)), "meta": json.loads(json.dumps(meta))}
    (folder / "meta.tmp").write_text(json.dumps(record))
    os.replace(tmp, final)
    os.replace(folder / "meta.tmp", folder / "meta.json")
