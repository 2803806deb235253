"""Helpers shared by the homework tests (test_grading.py, test_hw2.py ... test_hw7.py)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[1]


def expected_scores(points: dict[str, float], maxima: dict[str, float]) -> dict:
    """The expected result of :func:`perceptlab.course.grading.grade`, given the points earned per question."""
    questions = {q: {"points": points[q], "max": m} for q, m in maxima.items()}
    return {"questions": questions, "total": sum(points.values()), "max": sum(maxima.values())}


@pytest.fixture(autouse=True)
def kernels_find_perceptlab(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels inherit the environment: let them import the library from this checkout."""
    paths = [str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


def read(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=4)


def cell_by_id(nb: NotebookNode, cell_id: str) -> NotebookNode:
    return next(cell for cell in nb.cells if cell.get("id") == cell_id)


def check_cells(nb: NotebookNode) -> dict[str, NotebookNode]:
    """Check cells by grading id."""
    return {cell.metadata["grading"]["id"]: cell for cell in nb.cells if "grading" in cell.metadata}


def release_and_check(source_path: Path, out_dir: Path, regions: int) -> tuple[NotebookNode, NotebookNode]:
    """Release ``source_path`` into ``out_dir`` and check what every student version must be:
    valid, no outputs, no solutions (each of the ``regions`` solution regions replaced by a stub),
    valid (I)Python.  Returns (source, student)."""
    from IPython.core.inputtransformer2 import TransformerManager

    from perceptlab.course import grading

    source = read(source_path)
    out = grading.release(source_path, out_dir)
    assert out == out_dir / source_path.name.replace("_source", "")
    student = read(out)
    nbformat.validate(student)
    assert student.metadata.kernelspec.name == "python3"
    code = [cell for cell in student.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert not any("BEGIN SOLUTION" in cell.source or "END SOLUTION" in cell.source for cell in student.cells)
    assert sum(cell.source.count(grading.BEGIN_SOLUTION) for cell in source.cells) == regions
    assert sum(cell.source.count(grading.STUB) for cell in code) == regions
    for cell in code:  # valid (I)Python
        compile(TransformerManager().transform_cell(cell.source), cell.get("id", "cell"), "exec")
    return source, student


def with_answers(source_path: Path, tmp_path: Path, answers: dict) -> Path:
    """The reference ``source_path`` with some cells (by id) changed, written to ``tmp_path``: a string
    replaces the cell's solution regions, a function maps the cell's whole source to the new one."""
    from perceptlab.course import grading

    nb = read(source_path)
    for cell_id, answer in answers.items():
        cell = cell_by_id(nb, cell_id)
        cell.source = answer(cell.source) if callable(answer) else grading.strip_solutions(cell.source, answer)
    path = tmp_path / source_path.name.replace("_source", "")
    nbformat.write(nb, path)
    return path


def failed_checks(report) -> set[str]:
    """The ids of the check cells a :class:`perceptlab.course.grading.GradeReport` failed."""
    return {r.check.id for r in report.results if not r.passed}


HW1_SOURCE = ROOT / "chapters" / "01_template_matching" / "homework" / "hw1_source.ipynb"
# The second cell of every homework, after the title: it installs the course library on Colab.
# The repository it installs from is the book's (_config.yml), as in every chapter notebook.
COLAB_CELL = "\n".join([
    "# Colab: install the course library (keeps Colab's own torch). Does nothing elsewhere.",
    "import sys",
    'if "google.colab" in sys.modules:',
    f'    %pip install -q "perceptlab @ git+{yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]}"',
])


def assert_source_layout(source_path: Path, title: str, checks: dict[str, str], maxima: dict[str, float]) -> None:
    """An executed source notebook: ``title`` first, in a cell that also says how to submit, then the Colab
    cell, check cells with valid grading metadata (``checks``: check id -> question; ``maxima``: question
    -> points), 10 points."""
    from perceptlab.course import grading

    source = read(source_path)
    assert source.metadata.kernelspec.name == "python3"
    assert source.cells[0].source.startswith(title + "\n")
    assert "\n**Submitting.** Hand in this notebook, " in source.cells[0].source
    assert source.cells[1].source == COLAB_CELL  # the Colab cell, after the title
    found = grading.reference_checks(source)  # executed, valid metadata
    assert {c.id: c.question for c, _ in found} == checks
    assert {c.question: c.points for c, _ in found} == maxima
    assert sum(maxima.values()) == 10


def assert_checks_print_cleanly(source_path: Path) -> None:
    """Every check cell of the executed source printed to stdout only, and no nan, inf or False."""
    import re

    for cell_id, cell in check_cells(read(source_path)).items():
        assert cell.outputs, cell_id
        assert all(o.output_type == "stream" and o.name == "stdout" for o in cell.outputs), cell_id
        text = "".join(o.text for o in cell.outputs)
        assert not re.search(r"\b(nan|inf|False)\b", text), cell_id


def assert_release_matches_committed(source_path: Path, committed_path: Path, tmp_path: Path, regions: int,
                                     solutions: dict[str, tuple[str, ...]]) -> None:
    """Release the source: only the instructor's discussion is dropped, check cells are unchanged, each solution
    cell keeps its functions with stubs, and the committed student notebook is that release, unexecuted."""
    from perceptlab.course import grading

    source, student = release_and_check(source_path, tmp_path, regions=regions)
    assert [c.id for c in source.cells if "solution" in c.metadata.get("tags", [])] == ["reflection-discussion"]
    assert not any("solution" in cell.metadata.get("tags", []) for cell in student.cells)
    assert {k: (c.source, c.metadata) for k, c in check_cells(student).items()} == \
        {k: (c.source, c.metadata) for k, c in check_cells(source).items()}
    for cell_id, names in solutions.items():
        text = cell_by_id(student, cell_id).source
        assert all(f"def {name}(" in text for name in names) and grading.STUB in text
    committed = read(committed_path)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in student.cells]
    assert [c.metadata for c in committed.cells] == [c.metadata for c in student.cells]
    assert all(c.outputs == [] and c.execution_count is None for c in committed.cells if c.cell_type == "code")


def two_regions(first_body: str, second_body: str):
    """An answer for a solution cell with two solution regions (two function bodies): the first region
    replaced by ``first_body``, the second by ``second_body`` (for :func:`with_answers`)."""
    from perceptlab.course import grading

    def answer(source: str) -> str:
        first, second, rest = grading.strip_solutions(source, "@@ANSWER@@").split("@@ANSWER@@")
        indent = lambda body: body.replace("\n", "\n    ")  # noqa: E731  (both regions are function bodies)
        return first + indent(first_body) + second + indent(second_body) + rest
    return answer


# --------------------------------------------------------------------------- the printout formats each question shows

_FENCE = re.compile(r"^```text\n(.*?)^```$", re.S | re.M)
_PLACEHOLDER = re.compile(r"<[^<>\n]+>")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def printout_formats(nb: NotebookNode) -> dict[str, list[str]]:
    """The printout formats each question's text shows: its cell ``q<N>-text``'s fenced ``text`` blocks, by question."""
    return {cell.id.removesuffix("-text"): _FENCE.findall(cell.source)
            for cell in nb.cells if cell.cell_type == "markdown" and re.fullmatch(r"q\d+-text", cell.get("id", ""))}


def _line_pattern(line: str) -> re.Pattern:
    """A line of a format as a regular expression: ``<...>`` is any value, ``True/False`` either of the two,
    and spaces are one or more (values are padded to align columns)."""
    parts = re.split(r"(<[^<>\n]+>|True/False)", line)
    regex = "".join(".+?" if p.startswith("<") else "(True|False)" if p == "True/False"
                    else " +".join(map(re.escape, re.split(" +", p))) for p in parts)
    return re.compile(regex)


def format_matches(block: str, printout: str) -> bool:
    """Whether ``printout`` has the format ``block``: line by line, a line ``...`` standing for one or
    more further lines of the form of the line before it."""
    lines, patterns = printout.splitlines(), block.splitlines()
    i = 0
    for k, line in enumerate(patterns):
        if line == "...":
            previous = _line_pattern(patterns[k - 1])
            if not (i < len(lines) and previous.fullmatch(lines[i])):
                return False
            while i < len(lines) and previous.fullmatch(lines[i]) and not (
                    k + 1 < len(patterns) and _line_pattern(patterns[k + 1]).fullmatch(lines[i])):
                i += 1
            continue
        if not (i < len(lines) and _line_pattern(line).fullmatch(lines[i])):
            return False
        i += 1
    return i == len(lines)


def _label_numbers(code: str) -> set[str]:
    """The numbers in the string literals of ``code`` (the labels a check cell prints)."""
    import ast

    strings = [node.value for node in ast.walk(ast.parse(code))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    return {number for text in strings for number in _NUMBER.findall(text)}


def assert_formats_shown(source_path: Path) -> None:
    """Each question's text shows the format of what its check cells print, one ``text`` block per check
    cell in their order, that the reference printout matches; and no value: outside the ``<...>``
    placeholders a block holds only numbers that its check cell prints as labels (in string literals)."""
    source = read(source_path)
    formats = printout_formats(source)
    by_question: dict[str, list[NotebookNode]] = {}
    for cell in check_cells(source).values():
        by_question.setdefault(cell.metadata["grading"]["question"], []).append(cell)
    assert set(formats) == set(by_question)
    for question, cells in by_question.items():
        assert len(formats[question]) == len(cells), question
        for block, cell in zip(formats[question], cells):
            cell_id = cell.metadata["grading"]["id"]
            printout = "".join(o.text for o in cell.outputs if o.output_type == "stream")
            assert format_matches(block, printout), (cell_id, block, printout)
            shown = set(_NUMBER.findall(_PLACEHOLDER.sub("", block)))
            assert shown <= _label_numbers(cell.source), (cell_id, shown - _label_numbers(cell.source))
