"""Tests of perceptlab.course.grading: releasing a homework and grading submissions with nbval's comparison.

Homework 1 itself is graded a few times (reference, student version, a wrong answer,
pasted outputs, an edited check cell); errors, timeouts and dead kernels are tested on
small synthetic notebooks, whose reference outputs are written by hand.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from perceptlab.course import grading

from homework import (COLAB_CELL, assert_formats_shown, assert_source_layout, cell_by_id,  # noqa: F401
                      check_cells, expected_scores, format_matches, kernels_find_perceptlab, read,
                      release_and_check)

ROOT = Path(__file__).resolve().parents[2]
HOMEWORK = ROOT / "chapters" / "01_template_matching" / "homework"
HW1_SOURCE = HOMEWORK / "hw1_source.ipynb"
HW1 = HOMEWORK / "hw1.ipynb"
HW1_MAX = {"q1": 3, "q2": 3, "q3": 2, "q4": 2}
HW1_CHECKS = {"check-q1-small": "q1", "check-q1-eye": "q1", "check-q2": "q2", "check-q3": "q3", "check-q4": "q4"}
KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def scores(points: dict[str, float]) -> dict:
    return expected_scores(points, HW1_MAX)


# --------------------------------------------------------------------------- release


def test_strip_solutions_keeps_indentation_and_valid_python() -> None:
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\nz = 3"
    stripped = grading.strip_solutions(source)
    assert stripped == f"def f(x):\n    y = 1\n    {grading.STUB}\n\nz = 3"
    compile(stripped, "<cell>", "exec")
    assert grading.strip_solutions(source, "return 0") == "def f(x):\n    y = 1\n    return 0\n\nz = 3"


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1",
    "x = 1\n### END SOLUTION",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
])
def test_strip_solutions_rejects_unbalanced_markers(source: str) -> None:
    with pytest.raises(grading.NotebookFormatError):
        grading.strip_solutions(source)


def test_release_hw1(tmp_path: Path) -> None:
    source, student = release_and_check(HW1_SOURCE, tmp_path, regions=4)
    # solution-only cells are gone, check cells are kept as they are
    assert any("solution" in cell.metadata.get("tags", []) for cell in source.cells)
    assert not any("solution" in cell.metadata.get("tags", []) for cell in student.cells)
    assert {k: (c.source, c.metadata) for k, c in check_cells(student).items()} == \
        {k: (c.source, c.metadata) for k, c in check_cells(source).items()}
    # the committed student version is exactly what release produces
    committed = read(HW1)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in student.cells]
    assert [c.metadata for c in committed.cells] == [c.metadata for c in student.cells]
    assert all(c.outputs == [] for c in committed.cells if c.cell_type == "code")


def test_hw1_source_has_the_title_then_the_colab_cell_and_ten_points() -> None:
    assert_source_layout(HW1_SOURCE, "# Homework 1: template matching", HW1_CHECKS, HW1_MAX)
    assert cell_by_id(read(HW1_SOURCE), "colab-install").source == COLAB_CELL  # its id kept


def test_hw1_questions_show_the_format_of_their_checks_not_the_values() -> None:
    assert_formats_shown(HW1_SOURCE)


def test_format_matches_reads_placeholders_true_false_and_repeated_lines() -> None:
    block = "shape: (<rows>, <cols>)\nk=<k>: True/False\n...\nmean:  <value>"
    assert format_matches(block, "shape: (26, 35)\nk=3: True\nk=4: False\nmean: 0.5\n")
    assert format_matches(block, "shape: (26, 35)\nk=3: True\nk=4: True\nk=5: False\nmean:     0.5\n")  # padded
    assert not format_matches(block, "shape: (26, 35)\nk=3: True\nmean: 0.5\n")  # ... is one more line or more
    assert not format_matches(block, "shape: (26, 35)\nk=3: yes\nmean: 0.5\n")  # neither True nor False
    assert not format_matches(block, "shape: (26, 35)\nk=3: True\n")  # a line missing
    assert not format_matches(block, "shape: (26, 35)\nk=3: True\nmean: 0.5\nextra\n")  # one too many
    assert not format_matches(block, "size: (26, 35)\nk=3: True\nmean: 0.5\n")  # another label


def test_release_refuses_to_overwrite_its_source(tmp_path: Path) -> None:
    path = tmp_path / "hw.ipynb"
    nbformat.write(synthetic(), path)
    with pytest.raises(grading.NotebookFormatError, match="overwrite"):
        grading.release(path, tmp_path)


def test_release_requires_an_executed_source(tmp_path: Path) -> None:
    nb = synthetic()
    nb.cells[3].outputs, nb.cells[3].execution_count = [], None
    path = tmp_path / "hw_source.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(grading.NotebookFormatError, match="executed"):
        grading.release(path, tmp_path)


@pytest.mark.parametrize("edit, message", [
    (lambda meta: meta.pop("points"), "lacks"),
    (lambda meta: meta.update(id="c2"), "duplicated"),
    (lambda meta: meta.update(question="q2"), "worth"),
])
def test_reference_checks_validate_metadata(edit, message: str) -> None:
    nb = synthetic()
    edit(nb.cells[3].metadata["grading"])
    with pytest.raises(grading.NotebookFormatError, match=message):
        grading.reference_checks(nb)


# --------------------------------------------------------------------------- nbval comparison


def test_compare_outputs_follows_nbval() -> None:
    def stream(text: str, name: str = "stdout") -> NotebookNode:
        return new_output("stream", name=name, text=text)

    reference = [stream("1\n2\n")]
    assert grading.compare_outputs([stream("1\n"), stream("2\n")], reference) == (True, "")  # streams coalesced
    equal, why = grading.compare_outputs([stream("1\n3\n")], reference)
    assert not equal and "differs" in why
    assert not grading.compare_outputs([stream("1\n2\n", "stderr")], reference)[0]
    assert not grading.compare_outputs([new_output("error", ename="E", evalue="", traceback=[])], reference)[0]
    figure = {"image/png": "AAAA", "text/plain": "<Figure>"}
    other = {"image/png": "BBBB", "text/plain": "<Figure>"}
    assert grading.compare_outputs([new_output("display_data", data=other)],
                                   [new_output("display_data", data=figure)])[0]  # images are not compared
    assert reference == [stream("1\n2\n")]  # inputs untouched


# --------------------------------------------------------------------------- grading HW1


def test_reference_scores_full_marks() -> None:
    assert grading.grade(HW1_SOURCE, HW1_SOURCE) == scores(HW1_MAX)


def test_untouched_student_version_scores_zero() -> None:
    assert grading.grade(HW1, HW1_SOURCE) == scores(dict.fromkeys(HW1_MAX, 0))


def test_one_wrong_answer_loses_exactly_its_points(tmp_path: Path) -> None:
    nb = read(HW1_SOURCE)
    cell = cell_by_id(nb, "q3-solution")
    cell.source = grading.strip_solutions(cell.source, "return 0, 0")
    path = tmp_path / "hw1.ipynb"
    nbformat.write(nb, path)
    assert grading.grade(path, HW1_SOURCE) == scores({**HW1_MAX, "q3": 0})


def test_pasted_outputs_earn_nothing(tmp_path: Path) -> None:
    nb = read(HW1)
    reference = check_cells(read(HW1_SOURCE))
    for check_id, cell in check_cells(nb).items():
        cell.outputs = copy.deepcopy(reference[check_id].outputs)
        cell.execution_count = reference[check_id].execution_count
    path = tmp_path / "hw1.ipynb"
    nbformat.write(nb, path)
    assert grading.grade(path, HW1_SOURCE) == scores(dict.fromkeys(HW1_MAX, 0))


def test_edited_check_cells_earn_nothing(tmp_path: Path) -> None:
    nb = read(HW1)
    reference = check_cells(read(HW1_SOURCE))
    for check_id, cell in check_cells(nb).items():
        expected = "".join(out.text for out in reference[check_id].outputs)
        cell.source = f"print({expected!r}, end='')"  # would print exactly the expected answer
    path = tmp_path / "hw1.ipynb"
    nbformat.write(nb, path)
    assert grading.grade(path, HW1_SOURCE) == scores(dict.fromkeys(HW1_MAX, 0))


# --------------------------------------------------------------------------- errors and timeouts


def _check_cell(check_id: str, question: str, points: int, source: str, expected: str) -> NotebookNode:
    cell = new_code_cell(source, metadata={"tags": ["check"],
                                           "grading": {"id": check_id, "question": question, "points": points}})
    cell.execution_count = 1
    cell.outputs = [new_output("stream", name="stdout", text=expected)]
    return cell


def synthetic(q1_solution: str = "answer1 = 1") -> NotebookNode:
    """A small homework: q1 (2 points) prints ``answer1``; q2 (3 points) needs the first cell's ``x``.

    With the default ``q1_solution`` it is the (executed) reference; otherwise a submission.
    Cell 2 is q1's solution, cell 3 its check cell.
    """
    return new_notebook(cells=[
        new_markdown_cell("# A small homework"),
        new_code_cell("x = 2"),
        new_code_cell(f"### BEGIN SOLUTION\n{q1_solution}\n### END SOLUTION"),
        _check_cell("c1", "q1", 2, "print(answer1)", "1\n"),
        new_code_cell("### BEGIN SOLUTION\nanswer2 = x + 2\n### END SOLUTION"),
        _check_cell("c2", "q2", 3, "print(answer2)", "4\n"),
    ], metadata=KERNELSPEC)


def write_pair(tmp_path: Path, q1_solution: str) -> tuple[Path, Path]:
    """Write the synthetic reference and a submission with ``q1_solution``; return (submission, reference)."""
    reference, submission = tmp_path / "ref_source.ipynb", tmp_path / "submission.ipynb"
    nbformat.write(synthetic(), reference)
    nbformat.write(synthetic(q1_solution), submission)
    return submission, reference


SYNTHETIC_Q1_LOST = {"questions": {"q1": {"points": 0, "max": 2}, "q2": {"points": 3, "max": 3}},
                     "total": 3, "max": 5}


def test_missing_check_cell_fails_its_question(tmp_path: Path) -> None:
    submission, reference = write_pair(tmp_path, "answer1 = 1")
    nb = read(submission)
    nb.cells = [cell for cell in nb.cells if cell.metadata.get("grading", {}).get("id") != "c1"]
    nbformat.write(nb, submission)
    report = grading.grade_report(submission, reference)
    assert report.to_dict() == SYNTHETIC_Q1_LOST
    assert "missing" in report.format()


def test_raising_cell_loses_only_its_question(tmp_path: Path) -> None:
    submission, reference = write_pair(tmp_path, "answer1 = 1 / 0")
    report = grading.grade_report(submission, reference)
    assert report.to_dict() == SYNTHETIC_Q1_LOST
    text = report.format()
    assert "check c1: NameError" in text  # the check cell could not find answer1
    assert "ZeroDivisionError" in text.split("errors in other cells:")[1]


def test_interruptible_infinite_loop_times_out(tmp_path: Path) -> None:
    submission, reference = write_pair(tmp_path, "while True:\n    pass")
    start = time.monotonic()
    assert grading.grade(submission, reference, timeout=3) == SYNTHETIC_Q1_LOST
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("q1_solution", [
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
    "import os\nos._exit(1)",
], ids=["deaf-to-interrupts", "kills-the-kernel"])
def test_kernel_restarted_and_state_replayed(tmp_path: Path, q1_solution: str) -> None:
    submission, reference = write_pair(tmp_path, q1_solution)
    start = time.monotonic()
    assert grading.grade(submission, reference, timeout=3) == SYNTHETIC_Q1_LOST  # q2 needs x from cell 1
    assert time.monotonic() - start < 60


# --------------------------------------------------------------------------- command line


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perceptlab.course.grading", *map(str, args)],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)


def test_cli_grade_json(tmp_path: Path) -> None:
    submission, reference = write_pair(tmp_path, "answer1 = 1")
    result = run_cli("grade", submission, "--reference", reference, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"questions": {"q1": {"points": 2, "max": 2}, "q2": {"points": 3, "max": 3}},
                                         "total": 5, "max": 5}


def test_cli_release_then_grade_a_loop_without_hanging(tmp_path: Path) -> None:
    _, reference = write_pair(tmp_path, "answer1 = 1")
    released = run_cli("release", reference, "--out", tmp_path / "student")
    assert released.returncode == 0, released.stderr
    student = tmp_path / "student" / "ref.ipynb"
    assert released.stdout.strip() == str(student)
    nb = read(student)
    nb.cells[2].source = "while True:\n    pass"  # q1's solution
    nbformat.write(nb, student)
    result = run_cli("grade", student, "--reference", reference, "--timeout", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "q1: 0/2"
    assert result.stdout.splitlines()[-1] == "total: 0/5"  # the released q2 is not solved either
    assert "CellTimeoutError" in result.stdout


# --------------------------------------------------------------------------- hostile and malformed submissions (issue 11)


SYNTHETIC_ZERO = {"questions": {"q1": {"points": 0, "max": 2}, "q2": {"points": 0, "max": 3}}, "total": 0, "max": 5}


@pytest.mark.parametrize("content, reason", [
    ("[1, 2, 3]", "not a notebook"),
    ('{"nbformat": 5, "nbformat_minor": 0, "metadata": {}, "cells": []}', "nbformat 5"),
    ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code", "source": 42, '
     '"metadata": {}, "outputs": [], "execution_count": null}]}', "cell 1 of the submission is malformed"),
    ("not json at all", "not a readable JSON notebook"),
])
def test_a_malformed_submission_gets_zero_points_and_the_reason(tmp_path: Path, content: str, reason: str) -> None:
    _, reference = write_pair(tmp_path, "answer1 = 1")
    bad = tmp_path / "bad.ipynb"
    bad.write_text(content)
    report = grading.grade_report(bad, reference)
    assert report.to_dict() == SYNTHETIC_ZERO
    assert reason in report.errors[0] and all(reason in r.message for r in report.results)
    result = run_cli("grade", bad, "--reference", reference, "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == SYNTHETIC_ZERO  # graded, exit 0


def test_the_whole_submission_has_a_time_limit(tmp_path: Path) -> None:
    reference, submission = tmp_path / "ref_source.ipynb", tmp_path / "submission.ipynb"
    nbformat.write(synthetic(), reference)
    nb = synthetic("answer1 = 1")
    loops = [new_code_cell("while True:\n    pass") for _ in range(4)]
    nb.cells[1:1] = loops  # four looping cells before everything else
    nbformat.write(nb, submission)
    start = time.monotonic()
    report = grading.grade_report(submission, reference, timeout=3, total_timeout=5)
    assert time.monotonic() - start < 60  # not 4 x 3 s of loops plus the rest, and no hang
    assert report.to_dict() == SYNTHETIC_ZERO
    assert any("TotalTimeoutError" in e for e in report.errors)


def test_a_cell_that_kills_its_parent_does_not_kill_the_grader(tmp_path: Path) -> None:
    submission, reference = write_pair(tmp_path, "answer1 = 1")
    nb = read(submission)
    nb.cells.insert(4, new_code_cell("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"))  # after check c1
    nbformat.write(nb, submission)
    report = grading.grade_report(submission, reference, timeout=20)
    assert report.to_dict() == {"questions": {"q1": {"points": 2, "max": 2}, "q2": {"points": 0, "max": 3}},
                                "total": 2, "max": 5}  # q1 ran before the kill and keeps its points
    assert "SIGKILL" in report.errors[0] and "not run" in report.results[1].message


def test_a_redefined_print_or_patched_library_does_not_pass_a_check(tmp_path: Path) -> None:
    reference, submission = tmp_path / "ref_source.ipynb", tmp_path / "submission.ipynb"
    ref = synthetic()
    ref.cells.append(_check_cell("c3", "q3", 1, "from perceptlab import metrics\n"
                                 "print(metrics.frechet_distance([0.0], [[1.0]], [2.0], [[1.0]]))", "4.0\n"))
    nbformat.write(ref, reference)
    cheat = synthetic("import sys\ndef print(*args, **kwargs):\n    sys.stdout.write('1\\n')")
    cheat.cells.insert(3, new_code_cell("import perceptlab.metrics.distributions as d, perceptlab.metrics as m\n"
                                        "d.frechet_distance = m.frechet_distance = lambda *a: 4.0"))
    cheat.cells.append(_check_cell("c3", "q3", 1, "", ""))
    nbformat.write(cheat, submission)
    report = grading.grade_report(submission, reference, timeout=30)
    questions = report.to_dict()["questions"]
    assert questions["q1"]["points"] == 0  # the real print ran: answer1 is not defined
    assert questions["q3"]["points"] == 1  # the real frechet_distance ran, and it gives 4.0
    ref.cells[-1].outputs[0].text = "999\n"  # a reference the patched function would have matched
    nbformat.write(ref, reference)
    cheat.cells[3].source = cheat.cells[3].source.replace("4.0", "999")
    nbformat.write(cheat, submission)
    assert grading.grade(submission, reference, timeout=30)["questions"]["q3"]["points"] == 0
