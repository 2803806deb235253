"""QA sets (graded distortions; user-provided LIVE/TID-style CSVs) and the BAPPS JND reader, on stand-ins."""
import pytest
import torch

from perceptlab import data

from conftest import write_bapps, write_bapps_jnd, write_iqa


def test_graded_quality_set_has_every_kind_at_every_level():
    q = data.graded_quality_set(n_refs=3, size=32, seed=0)
    assert len(q) == 3 * 4 * 5 and q.refs.shape == (3, 3, 32, 32)
    assert set(q.group) == set(data.GRADED_LEVELS) and sorted(set(q.score.tolist())) == [1.0, 2.0, 3.0, 4.0, 5.0]
    ref, dist = q.pairs()
    err = (ref - dist).pow(2).flatten(1).mean(1)
    for kind in data.GRADED_LEVELS:  # severity grows with the level, on average
        means = [err[[g == kind and s == lvl for g, s in zip(q.group, q.score.tolist())]].mean() for lvl in range(1, 6)]
        assert all(a < b for a, b in zip(means, means[1:])), kind
    assert "not human opinion" in q.source


def test_load_iqa_reads_the_documented_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    write_iqa(tmp_path)
    q = data.load_iqa("live", size=32)
    assert len(q) == 12 and q.refs.shape == (3, 3, 32, 32) and q.ref_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert q.score.tolist()[:4] == [10.0, 20.0, 30.0, 40.0] and set(q.group) == {"noise"}


def test_a_missing_iqa_set_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    with pytest.raises(data.DataUnavailableError, match=r"iqa/tid2013/scores.csv.*reference,distorted,score"):
        data.load_iqa("tid2013")
    root = tmp_path / "iqa" / "bad"
    root.mkdir(parents=True)
    (root / "scores.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        data.load_iqa("bad")


def test_bapps_jnd_reads_the_official_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    write_bapps_jnd(tmp_path)
    pairs = data.load_bapps_jnd(size=32)
    assert len(pairs) == 8 and pairs.p0.shape == (8, 3, 32, 32) and set(pairs.kind) == {"cnn", "traditional"}
    assert ((pairs.same >= 0) & (pairs.same <= 1)).all() and pairs.source == "BAPPS JND val"
    assert len(data.load_bapps_jnd(subsets=["cnn"], limit=2)) == 2


def test_bapps_2afc_and_jnd_share_one_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    write_bapps(tmp_path)
    with pytest.raises(data.DataUnavailableError, match="jnd"):
        data.load_bapps_jnd(download_ok=False)
    write_bapps_jnd(tmp_path)
    assert len(data.load_bapps("val")) == 8 and len(data.load_bapps_jnd()) == 8
    assert isinstance(data.load_dataset("bapps", "jnd-val", download_ok=False), data.BAPPSJND)
    assert torch.is_tensor(data.load_dataset("bapps", "jnd-val", download_ok=False)[0]["p0"])
