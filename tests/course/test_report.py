"""Tests of perceptlab.report: glue outside a book build, tables, and the prose's claims."""
import json
import math

import pytest

from perceptlab.course import report


def test_table_renders_rows_and_escapes_html():
    html = report.table([{"metric": "<l2>", "score": 0.5}, {"metric": "ssim", "score": 0.875}], floatfmt="{:.2f}").data
    assert "&lt;l2&gt;" in html and "0.50" in html and "0.88" in html
    assert "no rows" in report.table([]).data


def test_check_claim_evaluates_expressions_over_values_only():
    values = {"a": 1.0, "b": 2.0}
    assert report.check_claim("a < b and abs(a - b) == 1 and max(a, b) == b", values)
    assert not report.check_claim("a > b", values)
    assert not report.check_claim("a < nan", {**values, "nan": math.nan})  # NaN fails every comparison
    with pytest.raises(NameError):
        report.check_claim("__import__('os')", values)  # no builtins beyond abs, min, max
    with pytest.raises(NameError):
        report.check_claim("c > 0", values)


def test_claims_print_each_claim_and_return_results(capsys, monkeypatch):
    monkeypatch.delenv("PERCEPTLAB_CLAIMS", raising=False)
    monkeypatch.delenv("PERCEPTLAB_STRICT_CLAIMS", raising=False)
    with pytest.warns(UserWarning):
        out = report.claims("nb", {"gap": 0.1, "final": 0.3}, ["gap < final", "gap < 0.05"])
    assert out == {"gap < final": True, "gap < 0.05": False}
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["holds: gap < final", "DOES NOT HOLD on this run: gap < 0.05"]


def test_a_failed_claim_warns_and_raises_only_in_strict_mode(monkeypatch):
    monkeypatch.delenv("PERCEPTLAB_CLAIMS", raising=False)
    monkeypatch.delenv("PERCEPTLAB_STRICT_CLAIMS", raising=False)
    with pytest.warns(UserWarning, match=r"does not support .*gap < 0.05.*'gap': 0.1"):
        report.claims("nb", {"gap": 0.1}, ["gap < 0.05"])
    monkeypatch.setenv("PERCEPTLAB_STRICT_CLAIMS", "1")
    with pytest.raises(report.ClaimError, match="nb: this run does not support"):
        report.claims("nb", {"gap": 0.1}, ["gap < 0.05"])
    assert report.claims("nb", {"gap": 0.01}, ["gap < 0.05"]) == {"gap < 0.05": True}


def test_claims_are_recorded_for_the_spread_command_without_raising(tmp_path, monkeypatch):
    record = tmp_path / "claims.jsonl"
    monkeypatch.setenv("PERCEPTLAB_CLAIMS", str(record))
    monkeypatch.setenv("PERCEPTLAB_STRICT_CLAIMS", "1")
    report.claims("nb", {"gap": 0.1, "x": math.nan}, ["gap < 0.05"])  # fails, but only recorded
    report.claims("nb", {"y": 2}, ["y > 1"])
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert lines == [{"notebook": "nb", "values": {"gap": 0.1, "x": None}, "checks": ["gap < 0.05"]},
                     {"notebook": "nb", "values": {"y": 2.0}, "checks": ["y > 1"]}]
