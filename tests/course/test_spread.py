"""Tests of perceptlab.spread: the seed-spread registry, its measurement and report, and the CLI."""
import json
import statistics
import subprocess
import sys

import nbformat
import pytest
import torch

from perceptlab.course import spread


def test_every_outcome_names_its_checks_and_users():
    for name, outcome in spread.OUTCOMES.items():
        assert outcome.checks and outcome.about and outcome.used_by, name


def test_failed_checks_name_the_check_and_its_values():
    metrics = {"jsd_init": 0.6, "jsd_final": 0.2, "gap_final": 0.1, "gap_refined": 0.05,
               "gap_data_mean_refined": 0.06}
    failed = spread.failed_checks("gan1d", metrics)
    assert failed == ["jsd_final < 0.25 * jsd_init  with {'jsd_init': 0.6, 'jsd_final': 0.2}"]
    assert spread.failed_checks("gan1d", {**metrics, "jsd_final": 0.1}) == []
    assert spread.failed_checks("gan1d", {"a": 1.0}, ["a > 2"]) == ["a > 2  with {'a': 1.0}"]  # explicit checks


def test_measure_runs_every_seed_and_thread_count_and_restores_threads():
    before = torch.get_num_threads()
    lines = []
    runs = spread.measure(["gim"], seeds=[0, 1], threads=[1, 2], log=lines.append)
    assert torch.get_num_threads() == before
    records = runs["gim"]
    assert [(r["seed"], r["threads"]) for r in records] == [(0, 1), (1, 1), (0, 2), (1, 2)]
    assert all(r["failed"] == [] and r["checks"] == list(spread.OUTCOMES["gim"].checks) for r in records)
    assert len(lines) == 4 and lines[0].startswith("gim seed 0 threads 1:") and lines[0].endswith("ok")
    values = [r["metrics"]["sharpness_l2"] for r in records]
    summary = spread.summarize(records)["sharpness_l2"]
    assert summary == pytest.approx({"mean": statistics.fmean(values), "std": statistics.stdev(values),
                                     "min": min(values), "max": max(values)})
    text = spread.format_summary("gim", records)
    assert "4 runs (seeds [0, 1], threads [1, 2])" in text and "[ok] sharpness_l2 < sharpness_l1 < 1.0: holds on 4/4" in text
    with pytest.raises(ValueError, match="unknown outcome"):
        spread.measure(["no-such-outcome"])


def test_notebook_names_resolve_to_the_chapter_notebooks():
    assert spread.notebook_path("nb:03a_the_game").name == "03a_the_game.ipynb"
    assert spread.notebook_path("nb:03a") == spread.notebook_path("nb:03a_the_game")
    with pytest.raises(ValueError, match="names 0 chapter notebooks"):
        spread.notebook_path("nb:99z")
    names = spread.notebook_names()
    assert "nb:03a_the_game" in names and "nb:01a_template_matching" not in names  # 01a has no seeded run


def test_run_notebook_sets_the_seed_and_collects_the_recorded_claims(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import os, torch\nfrom perceptlab.course import report\nfrom perceptlab.experiments.gan1d import GAN1DConfig\n"
        "report.claims('t', {'seed': GAN1DConfig().seed, 'threads': torch.get_num_threads()}, ['seed >= 0'])\n"
        "report.claims('t', {'x': 1.0}, ['x < 0'])")]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    values, checks = spread.run_notebook(path, seed=3, threads=1, timeout=120)
    assert values == {"seed": 3.0, "threads": 1.0, "x": 1.0} and checks == ["seed >= 0", "x < 0"]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), path)
    with pytest.raises(ValueError, match="recorded no claims"):
        spread.run_notebook(path, seed=0, threads=1, timeout=120)


def test_spread_command_prints_the_summary_and_writes_json(tmp_path):
    out = tmp_path / "spread.json"
    proc = subprocess.run([sys.executable, "-m", "perceptlab", "spread", "gim", "--seeds", "0", "--threads", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CPU: ") and "== gim:" in proc.stdout and "holds on 1/1" in proc.stdout
    runs = json.loads(out.read_text())
    assert list(runs) == ["gim"] and runs["gim"][0]["seed"] == 0
