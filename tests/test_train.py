"""Tests of perceptlab.train: seeded loop, history, checkpoints and bit-exact resume."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from perceptlab import train
from perceptlab.train import CHECKPOINT
from perceptlab.train import History
from perceptlab.train import fit

STEPS = 12
W_TRUE = torch.tensor([[1.5], [-2.0], [0.5]])


class Run:
    """A tiny regression experiment whose every step depends on all the state ``fit`` must restore:
    model weights, Adam moments, a scheduler, dropout (global torch RNG), numpy and random draws,
    and batches from the data generator."""

    def __init__(self, init_seed: int = 0):
        torch.manual_seed(init_seed)
        self.model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=0.05)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=5, gamma=0.5)
        self.state = {"model": self.model, "opt": self.opt, "sched": self.sched}
        self.steps_run: list[int] = []
        self.evals: list[int] = []

    @staticmethod
    def sample_batch(generator: torch.Generator, step: int):
        x = torch.randn(8, 3, generator=generator)
        y = x @ W_TRUE + 0.1 * torch.randn(8, 1, generator=generator)
        return x, y

    def step_fn(self, batch, step: int) -> dict:
        self.steps_run.append(step)
        x, y = batch
        self.model.train()
        loss = ((self.model(x) - y) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()
        return {"loss": loss.item(), "lr": self.sched.get_last_lr()[0],
                "np": float(np.random.rand()), "py": random.random()}

    def eval_fn(self, step: int) -> dict:
        self.evals.append(step)
        self.model.eval()
        with torch.no_grad():
            x = torch.linspace(-1, 1, 9).view(3, 3)
            return {"val": ((self.model(x) - x @ W_TRUE) ** 2).mean().item()}

    def fit(self, **kwargs) -> History:
        kwargs.setdefault("steps", STEPS)
        kwargs.setdefault("seed", 3)
        return fit(self.step_fn, self.sample_batch, state=self.state, **kwargs)


def _assert_same_state(a: Run, b: Run) -> None:
    for key in ("model",):
        sa, sb = a.state[key].state_dict(), b.state[key].state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    oa, ob = a.opt.state_dict()["state"], b.opt.state_dict()["state"]
    assert oa.keys() == ob.keys()
    assert all(torch.equal(oa[i][k], ob[i][k]) for i in oa for k in oa[i])
    assert a.sched.state_dict() == b.sched.state_dict()


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted run, without checkpoints."""
    run = Run()
    history = run.fit()
    return run, history


def test_uninterrupted_run_records_every_step(reference):
    run, history = reference
    assert [r["step"] for r in history.records] == list(range(1, STEPS + 1))
    assert run.steps_run == list(range(STEPS))
    assert set(history.records[0]) == {"step", "loss", "lr", "np", "py"}
    assert history.series("lr")[1][4:6] == [0.025, 0.025]  # StepLR halved the rate after 5 steps
    init = Run().model.state_dict()
    assert all(not torch.equal(v, init[k]) for k, v in run.model.state_dict().items())  # every tensor was updated
    assert run.opt.state_dict()["state"][0]["step"] == STEPS


def test_same_seed_same_run_different_seed_differs(reference):
    run, history = reference
    again = Run()
    assert again.fit().records == history.records
    _assert_same_state(again, run)
    other = Run()
    assert other.fit(seed=4).records != history.records


@pytest.mark.parametrize("stop_after", [8, 6], ids=["on-checkpoint", "between-checkpoints"])
def test_resume_after_death_is_bit_exact(tmp_path, reference, stop_after):
    ref_run, ref_history = reference
    dying = Run()
    partial = dying.fit(out_dir=tmp_path, ckpt_every=4, stop_after=stop_after)
    assert len(partial.records) == stop_after
    last_ckpt = stop_after // 4 * 4
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["step"] == last_ckpt

    fresh = Run(init_seed=99)  # new objects, different initial weights: everything must come from the checkpoint
    history = fresh.fit(out_dir=tmp_path, ckpt_every=4)
    assert fresh.steps_run == list(range(last_ckpt, STEPS))
    assert history.records == ref_history.records
    _assert_same_state(fresh, ref_run)
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["step"] == STEPS


def test_resume_twice_and_finished_run_does_nothing(tmp_path, reference):
    ref_run, ref_history = reference
    Run().fit(out_dir=tmp_path, ckpt_every=3, stop_after=3)
    Run(init_seed=1).fit(out_dir=tmp_path, ckpt_every=3, stop_after=7)
    third = Run(init_seed=2)
    assert third.fit(out_dir=tmp_path, ckpt_every=3).records == ref_history.records
    _assert_same_state(third, ref_run)
    done = Run(init_seed=3)
    assert done.fit(out_dir=tmp_path, ckpt_every=3).records == ref_history.records
    assert done.steps_run == []
    _assert_same_state(done, ref_run)


def test_eval_fn_called_every_eval_every_and_at_last_step(tmp_path):
    run = Run()
    history = run.fit(steps=10, eval_fn=run.eval_fn, eval_every=4)
    assert run.evals == [4, 8, 10]
    steps, values = history.series("val")
    assert steps == [4, 8, 10]
    assert values == [r["val"] for r in history.records if "val" in r]
    assert history.last("val") == values[-1]
    assert history.last("loss") == history.records[-1]["loss"]
    only_last = Run()
    only_last.fit(steps=5, eval_fn=only_last.eval_fn)
    assert only_last.evals == [5]


def test_history_series_and_last():
    h = History([{"step": 1, "a": 1.0}, {"step": 2, "a": 2.0, "b": 5.0}, {"step": 3, "a": 3.0}])
    assert h.series("a") == ([1, 2, 3], [1.0, 2.0, 3.0])
    assert h.series("b") == ([2], [5.0])
    assert h.series("c") == ([], [])
    assert h.last("a") == 3.0
    with pytest.raises(IndexError):
        h.last("c")


def test_history_at_returns_the_value_logged_at_a_step_and_names_what_is_missing():
    h = History([{"step": 1, "a": 1.0}, {"step": 2, "a": 2.0, "b": 5.0}, {"step": 3, "a": 3.0}])
    assert h.at("a", 2) == 2.0 and h.at("b", 2) == 5.0
    with pytest.raises(KeyError, match="'b' was not logged at step 3"):
        h.at("b", 3)
    with pytest.raises(KeyError, match="step 4"):
        h.at("a", 4)


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    run = Run()
    run.fit(steps=4, out_dir=tmp_path, ckpt_every=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]  # no .tmp left behind
    good = (tmp_path / CHECKPOINT).read_bytes()

    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half a checkpoint")
        raise KeyboardInterrupt("session died while saving")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train.save_checkpoint(tmp_path / CHECKPOINT, run.state, 99, torch.Generator(), History())
    monkeypatch.setattr(torch, "save", real_save)
    assert (tmp_path / CHECKPOINT).read_bytes() == good  # the good checkpoint was not replaced
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["step"] == 4


def test_resume_false_ignores_existing_checkpoint(tmp_path, reference):
    ref_run, ref_history = reference
    Run(init_seed=5).fit(out_dir=tmp_path, ckpt_every=2, stop_after=6, seed=8)  # an unrelated earlier run
    run = Run()
    history = run.fit(out_dir=tmp_path, ckpt_every=4, resume=False)
    assert run.steps_run == list(range(STEPS))
    assert history.records == ref_history.records
    _assert_same_state(run, ref_run)
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["step"] == STEPS  # overwritten


def test_checkpoint_lacking_state_key_raises(tmp_path):
    run = Run()
    fit(run.step_fn, run.sample_batch, state={"model": run.model}, steps=2, out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"lacks state for \['opt', 'sched'\]"):
        Run().fit(out_dir=tmp_path)


def test_load_checkpoint_restores_global_rngs_and_generator(tmp_path):
    run = Run()
    generator = torch.Generator().manual_seed(7)
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    train.save_checkpoint(tmp_path / CHECKPOINT, run.state, 5, generator, History([{"step": 5, "loss": 1.0}]))
    expected = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=generator))
    torch.manual_seed(100)
    np.random.seed(100)
    random.seed(100)
    other = torch.Generator().manual_seed(100)
    step, history = train.load_checkpoint(tmp_path / CHECKPOINT, Run(init_seed=4).state, other)
    assert step == 5 and history.records == [{"step": 5, "loss": 1.0}]
    got = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=other))
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and torch.equal(got[3], expected[3])


def test_seed_everything_seeds_all_and_returns_generator():
    g1 = train.seed_everything(42)
    a = (torch.rand(2), np.random.rand(2), random.random(), torch.rand(2, generator=g1))
    g2 = train.seed_everything(42)
    b = (torch.rand(2), np.random.rand(2), random.random(), torch.rand(2, generator=g2))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2] and torch.equal(a[3], b[3])
    assert torch.equal(torch.rand(2, generator=torch.Generator().manual_seed(42)), a[3])


def test_steps_validation_and_zero_steps(tmp_path):
    run = Run()
    with pytest.raises(ValueError, match="steps must be >= 0"):
        run.fit(steps=-1)
    assert run.fit(steps=0, out_dir=tmp_path).records == []
    assert run.steps_run == []


# --------------------------------------------------------------------------- the cache of trained networks


class _Evil:
    """Pickling this runs ``touch <marker>`` when it is unpickled with weights_only=False."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _trainer(calls: list):
    def train(out_dir):
        calls.append(out_dir)
        torch.manual_seed(len(calls))
        return torch.nn.Linear(3, 2), {"accuracy": 0.5, "history": [{"step": 1, "loss": 1.0}]}
    return train


def test_train_once_caches_weights_and_json_meta_and_reloads_without_training(tmp_path):
    calls = []
    model, meta = train.train_once(tmp_path / "c", lambda: torch.nn.Linear(3, 2), _trainer(calls), config={"a": 1})
    assert (tmp_path / "c" / "model.pt").exists() and (tmp_path / "c" / "meta.json").exists()
    again, meta2 = train.train_once(tmp_path / "c", lambda: torch.nn.Linear(3, 2), _trainer(calls), config={"a": 1})
    assert len(calls) == 1 and meta2 == meta == {"accuracy": 0.5, "history": [{"step": 1, "loss": 1.0}]}
    assert torch.equal(again.weight, model.weight)
    assert set(torch.load(tmp_path / "c" / "model.pt", weights_only=True)) == {"weight", "bias"}  # a state dict only


@pytest.mark.parametrize("damage, reason", [
    (lambda f: f.write_bytes(f.read_bytes()[:100] + bytes(b ^ 0xFF for b in f.read_bytes()[100:200])
                             + f.read_bytes()[200:]), "SHA-256 does not match"),
    (lambda f: f.write_bytes(b""), "SHA-256 does not match"),
    (lambda f: f.with_name("meta.json").unlink(), "cannot be used"),
])
def test_a_damaged_cache_entry_is_reported_and_rebuilt_never_used(tmp_path, damage, reason):
    calls = []
    folder = tmp_path / "c"
    train.train_once(folder, lambda: torch.nn.Linear(3, 2), _trainer(calls), config={"a": 1})
    damage(folder / "model.pt")
    with pytest.warns(UserWarning, match=f"cached network .*model.pt is not used: .*{reason}"):
        model, _ = train.train_once(folder, lambda: torch.nn.Linear(3, 2), _trainer(calls), config={"a": 1})
    assert len(calls) == 2  # trained again ...
    reloaded, _ = train.train_once(folder, lambda: torch.nn.Linear(3, 2), _trainer(calls), config={"a": 1})
    assert len(calls) == 2 and torch.equal(reloaded.weight, model.weight)  # ... and the rewritten entry is good


def test_a_cache_entry_of_another_config_or_architecture_is_not_used(tmp_path):
    calls = []
    folder = tmp_path / "c"
    train.train_once(folder, lambda: torch.nn.Linear(3, 2), _trainer(calls), config={"a": 1})
    with pytest.warns(UserWarning, match="another config"):
        train.train_once(folder, lambda: torch.nn.Linear(3, 2), _trainer(calls), config={"a": 2})
    with pytest.warns(UserWarning, match="cannot be used .*RuntimeError"):
        train.train_once(folder, lambda: torch.nn.Linear(4, 2), _trainer(calls), config={"a": 2})
    assert len(calls) == 3


def test_a_pickle_payload_in_the_cache_or_a_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "c"
    calls = []
    train.train_once(folder, lambda: torch.nn.Linear(3, 2), _trainer(calls), config=None)
    torch.save({"weight": _Evil(marker)}, folder / "model.pt")
    import json
    meta = json.loads((folder / "meta.json").read_text())
    meta["sha256"] = train._sha256(folder / "model.pt")  # an attacker can rewrite the checksum too
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="cannot be used"):
        train.train_once(folder, lambda: torch.nn.Linear(3, 2), _trainer(calls), config=None)
    assert not marker.exists() and len(calls) == 2
    bad = tmp_path / CHECKPOINT
    torch.save({"step": _Evil(marker)}, bad)
    with pytest.raises(ValueError, match=f"{bad} cannot be read as a training checkpoint.*Delete it"):
        train.load_checkpoint(bad, {}, torch.Generator())
    assert not marker.exists()


def test_an_unreadable_checkpoint_in_the_cache_restarts_training_with_a_warning(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / CHECKPOINT).write_bytes(b"left over by an older version")
    calls = []

    def resuming_trainer(out_dir):  # like the library's trainers: fit() resumes from out_dir/checkpoint.pt
        calls.append(out_dir)
        model = torch.nn.Linear(3, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def step(batch, i):
            loss = model(batch).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": loss.item()}
        fit(step, lambda g, i: torch.randn(4, 3, generator=g), state={"model": model, "opt": opt}, steps=3,
            out_dir=out_dir, ckpt_every=1)
        return model, {"steps": 3}

    with pytest.warns(UserWarning, match="cannot be read as a training checkpoint.*starts from the beginning"):
        model, meta = train.train_once(folder, lambda: torch.nn.Linear(3, 2), resuming_trainer, config=None)
    assert len(calls) == 2 and meta == {"steps": 3}  # the resume failed, then a fresh run
    assert train.load_state_file(folder / CHECKPOINT, "a training checkpoint", "")["step"] == 3  # the old file is gone
    with pytest.raises(train.CheckpointError, match="cannot be read"):  # outside the cache the error is raised
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / CHECKPOINT).write_bytes(b"junk")
        resuming_trainer(tmp_path / "run")
