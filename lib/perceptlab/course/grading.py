"""Release and grade homework notebooks: one instructor source, a student version, nbval checks.

Notebook conventions
--------------------
A homework is written once, as an instructor *source* notebook ``<name>_source.ipynb``
that is executed and saved **with its outputs**: those outputs are the expected answers.

* **Solution regions.**  In a code cell, the lines from ``### BEGIN SOLUTION`` to
  ``### END SOLUTION`` (marker lines included) are the instructor's answer.  The student
  version replaces each region by ``raise NotImplementedError(...)`` at the indentation
  of the ``BEGIN`` line, so a function body stays valid Python.
* **Solution-only cells.**  Cells tagged ``solution`` (typically markdown with a worked
  answer) are left out of the student version.
* **Check cells.**  Code cells tagged ``check`` whose metadata holds::

      "grading": {"id": "q1-toy", "question": "q1", "points": 3}

  ``id`` names the check cell, uniquely and stably: a submission's check cells are found
  by this id, never by position or output.  ``question`` is the question it checks; a
  question may have several check cells and earns its ``points`` only if all of them
  pass.  ``points`` are the question's points, written (equal) on each of its check
  cells.  A check cell prints deterministic results (seeded, rounded numbers, shapes,
  locations); it should not emit warnings, as stderr is compared too.

Grading
-------
:func:`grade` copies the submission, drops every output it carries, puts the reference's
source (and metadata) back into each of its check cells, runs it top to bottom in a fresh
``python3`` kernel (nbclient, a per-cell timeout, errors allowed) and compares the new
outputs of each check cell with the reference's stored outputs using nbval's own strict
comparison (:func:`nbval.plugin.coalesce_streams`, then
:meth:`nbval.plugin.IPyNbCell.compare_outputs`: text and data must be equal; images,
metadata, tracebacks and execution counts are ignored).  A check cell missing from the
submission fails.  A cell that raises only fails the checks that depend on it.  A cell
that runs past the timeout is interrupted (``KeyboardInterrupt``); if the kernel stays
busy or dies, it is restarted and the cells that had run without error are replayed, so
later questions that do not depend on the failing cell can still be scored.

The whole submission has a time limit too (``total_timeout``): cells that would start after
it are not run and fail.  A submission that is not a valid notebook (not JSON, a JSON list,
an unknown ``nbformat``, a cell whose source is not text) is graded, not crashed on: zero
points, with the reason in the report.

Isolation.  The notebook runs in a worker process of its own session, which starts the
kernel (itself in a new session): a cell that kills its parent process or signals its
process group ends the worker, not the grader, which then judges the cells that had run
and fails the rest, saying why.  Before each check cell the kernel silently restores the
builtins (and removes names that shadow them, such as a redefined ``print``) and puts back
every function and class of perceptlab that the submission replaced
(:mod:`perceptlab.course._guard`).  This is not a sandbox: student code runs with the
grader's permissions and can still read or write files, replace ``__import__`` or use up
memory.  Grade untrusted submissions in a container.

Command line (exit status 0 once a submission is graded, malformed or not; 2 for a bad
reference, a missing file or bad arguments)::

    python -m perceptlab.course.grading release SOURCE --out DIR
    python -m perceptlab.course.grading grade SUBMISSION --reference SOURCE [--json] [--timeout SECONDS]
                                        [--total-timeout SECONDS]
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from time import monotonic
from types import SimpleNamespace
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat import NotebookNode
from nbformat.reader import NotJSONError
from nbval.plugin import IPyNbCell, coalesce_streams, nocolors

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
STUB = 'raise NotImplementedError("Replace this line with your solution.")'
CHECK_TAG = "check"
SOLUTION_TAG = "solution"
SOURCE_SUFFIX = "_source"
KERNEL_NAME = "python3"
DEFAULT_TIMEOUT = 60
DEFAULT_TOTAL_TIMEOUT = 900  # seconds for the whole submission
_TOTAL_TIMEOUT_ENAME = "TotalTimeoutError"
_GUARD_SETUP = '__import__("perceptlab.course._guard", fromlist=["_"]).snapshot()'
_GUARD_RESTORE = '__import__("perceptlab.course._guard", fromlist=["_"]).restore(get_ipython().user_ns)'
# What nbval's strict mode (``--nbval`` without ``--nbdime``) leaves out of the comparison:
# the defaults of ``nbval.plugin.IPyNbFile.skip_compare``, which only a pytest collector can build.
NBVAL_SKIP_COMPARE = (
    "metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
    "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg",
)
_PROBE_SECONDS = 5.0  # how long an interrupted kernel may take to answer again before a restart
_TIMEOUT_ENAME = "CellTimeoutError"


class NotebookFormatError(ValueError):
    """A source notebook breaks the conventions of this module (markers, check metadata, outputs)."""


@dataclass(frozen=True)
class Check:
    """One check cell's grading metadata."""

    id: str
    question: str
    points: float


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``message`` says why it failed ("" if it passed)."""

    check: Check
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class GradeReport:
    """Results of all checks of a submission, in the reference's order.

    ``errors`` describes the errors raised by the submission's other cells (for feedback only).
    """

    results: tuple[CheckResult, ...]
    errors: tuple[str, ...] = ()

    def questions(self) -> dict[str, dict[str, float]]:
        """``{question: {"points": earned, "max": possible}}`` in order of first appearance."""
        out: dict[str, dict[str, float]] = {}
        for result in self.results:
            q = result.check.question
            entry = out.setdefault(q, {"points": result.check.points, "max": result.check.points})
            if not result.passed:
                entry["points"] = 0
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON structure ``{"questions": {q: {"points", "max"}}, "total", "max"}``."""
        questions = self.questions()
        return {
            "questions": questions,
            "total": sum(q["points"] for q in questions.values()),
            "max": sum(q["max"] for q in questions.values()),
        }

    def format(self) -> str:
        """Human-readable lines: points per question, why failed checks failed, the total."""
        failures: dict[str, list[CheckResult]] = {}
        for result in self.results:
            if not result.passed:
                failures.setdefault(result.check.question, []).append(result)
        lines = []
        for question, entry in self.questions().items():
            lines.append(f"{question}: {entry['points']:g}/{entry['max']:g}")
            for result in failures.get(question, []):
                reason = result.message.strip().splitlines() or ["failed"]
                lines.append(f"    check {result.check.id}: {reason[0]}")
                lines.extend(f"      {line}" for line in reason[1:6])
        if self.errors:
            lines.append("errors in other cells:")
            lines.extend(f"    {error}" for error in self.errors)
        summary = self.to_dict()
        lines.append(f"total: {summary['total']:g}/{summary['max']:g}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- release


def strip_solutions(source: str, replacement: str = STUB) -> str:
    """Replace every solution region of a cell source by ``replacement``, indented like its BEGIN line.

    Raises:
        NotebookFormatError: on a nested, unclosed or unopened region.
    """
    out: list[str] = []
    indent: str | None = None  # indentation of the open region's BEGIN line; None outside regions
    for line in source.split("\n"):
        marker = line.strip()
        if marker == BEGIN_SOLUTION:
            if indent is not None:
                raise NotebookFormatError(f"nested {BEGIN_SOLUTION!r} in:\n{source}")
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + stub_line for stub_line in replacement.split("\n"))
        elif marker == END_SOLUTION:
            if indent is None:
                raise NotebookFormatError(f"{END_SOLUTION!r} without {BEGIN_SOLUTION!r} in:\n{source}")
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise NotebookFormatError(f"{BEGIN_SOLUTION!r} without {END_SOLUTION!r} in:\n{source}")
    return "\n".join(out)


def student_version(source: NotebookNode) -> NotebookNode:
    """The student notebook: solutions stubbed, ``solution`` cells dropped, no outputs or counts."""
    nb = copy.deepcopy(source)
    nb.cells = [cell for cell in nb.cells if SOLUTION_TAG not in _tags(cell)]
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
            cell.outputs = []
            cell.execution_count = None
    return nb


def release(source_path: str | Path, out_dir: str | Path) -> Path:
    """Write the student version of ``<name>_source.ipynb`` to ``out_dir/<name>.ipynb`` and return its path.

    The source must be executed (its check cells hold the expected outputs).
    """
    source_path = Path(source_path)
    source = nbformat.read(source_path, as_version=4)
    reference_checks(source)
    target = Path(out_dir) / (source_path.stem.removesuffix(SOURCE_SUFFIX) + ".ipynb")
    if target.resolve() == source_path.resolve():
        raise NotebookFormatError(f"releasing {source_path} would overwrite it: name it "
                                  f"<name>{SOURCE_SUFFIX}.ipynb or choose another --out")
    student = student_version(source)
    nbformat.validate(student)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(student, target)
    return target


# --------------------------------------------------------------------------- check metadata


def _tags(cell: NotebookNode) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return tags if isinstance(tags, list) else []


def _grading_id(cell: NotebookNode) -> str | None:
    """The ``grading.id`` of a code cell, or None (a submission's cells are matched by it)."""
    meta = cell.get("metadata", {}).get("grading")
    if cell.cell_type != "code" or not isinstance(meta, dict):
        return None
    value = meta.get("id")
    return value if isinstance(value, str) else None


def reference_checks(reference: NotebookNode) -> list[tuple[Check, NotebookNode]]:
    """The check cells of an executed source notebook with their metadata, validated.

    Raises:
        NotebookFormatError: a tagged cell without complete ``grading`` metadata (or the
            reverse), a duplicated id, unequal points within a question, a check cell
            that was not executed, printed nothing or raised, or no check cell at all.
    """
    checks: list[tuple[Check, NotebookNode]] = []
    points: dict[str, float] = {}
    for index, cell in enumerate(reference.cells):
        meta = cell.get("metadata", {}).get("grading")
        if CHECK_TAG not in _tags(cell) and meta is None:
            continue
        where = f"cell {index}"
        if cell.cell_type != "code" or CHECK_TAG not in _tags(cell) or not isinstance(meta, dict):
            raise NotebookFormatError(f"{where}: a check cell is a code cell tagged {CHECK_TAG!r} "
                                      f"with 'grading' metadata")
        missing = {"id", "question", "points"} - meta.keys()
        if missing:
            raise NotebookFormatError(f"{where}: grading metadata lacks {sorted(missing)}")
        check = Check(meta["id"], meta["question"], meta["points"])
        if not all(isinstance(value, str) and value for value in (check.id, check.question)):
            raise NotebookFormatError(f"{where}: grading id and question must be non-empty strings")
        if not isinstance(check.points, (int, float)) or isinstance(check.points, bool) or check.points < 0:
            raise NotebookFormatError(f"{where}: points must be a number >= 0, got {check.points!r}")
        if any(other.id == check.id for other, _ in checks):
            raise NotebookFormatError(f"{where}: duplicated check id {check.id!r}")
        if points.setdefault(check.question, check.points) != check.points:
            raise NotebookFormatError(f"{where}: question {check.question!r} is worth "
                                      f"{points[check.question]} in another check cell, not {check.points}")
        if cell.execution_count is None or not cell.outputs:
            raise NotebookFormatError(f"{where} ({check.id}): the source must be executed and each "
                                      f"check cell must print its expected result")
        if any(output.output_type == "error" for output in cell.outputs):
            raise NotebookFormatError(f"{where} ({check.id}): the check cell raised in the source")
        checks.append((check, cell))
    if not checks:
        raise NotebookFormatError(f"no check cell (code cell tagged {CHECK_TAG!r} with 'grading' metadata)")
    return checks


# --------------------------------------------------------------------------- comparison


class _NbvalCell:
    """Just enough of nbval's ``IPyNbCell`` for its own ``compare_outputs`` to run outside pytest."""

    colors = nocolors
    compare_outputs = IPyNbCell.compare_outputs
    sanitize = IPyNbCell.sanitize

    def __init__(self) -> None:
        self.parent = SimpleNamespace(skip_compare=NBVAL_SKIP_COMPARE, sanitize_patterns={})
        self.comparison_traceback: list[str] = []

    def format_output_compare(self, key: str, left: Any, right: Any) -> None:
        """Record a mismatch (nbval's version needs pytest's assertion hooks)."""
        self.comparison_traceback.append(f"{key!r} differs: expected {_shorten(left)}, got {_shorten(right)}")


def _shorten(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def compare_outputs(test: list[NotebookNode], reference: list[NotebookNode]) -> tuple[bool, str]:
    """Compare a cell's new outputs with reference outputs as ``pytest --nbval`` does.

    Returns ``(equal, explanation)``; the inputs are not modified.
    """
    cell = _NbvalCell()
    equal = cell.compare_outputs(coalesce_streams(copy.deepcopy(test)), coalesce_streams(copy.deepcopy(reference)))
    return bool(equal), "\n".join(cell.comparison_traceback)


# --------------------------------------------------------------------------- execution


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])


class _Runner:
    """Runs a notebook's code cells in one kernel, surviving errors, timeouts and kernel deaths.

    Errors are recorded as error outputs.  A cell past ``timeout`` seconds is interrupted;
    if the kernel does not answer within a few seconds, or it died, it is restarted and the
    cells that had run without error are replayed (their new outputs discarded).
    """

    OK, FAILED, RESTARTED = "ok", "failed", "restarted"

    def __init__(self, nb: NotebookNode, timeout: int, cwd: Path, kernel_name: str,
                 total_timeout: float | None = None, progress: Path | None = None) -> None:
        evalue = f"cell ran longer than {timeout} s"
        self._timeout_error = _error_output(_TIMEOUT_ENAME, evalue)  # recorded in a cell that timed out
        self._timed_out = False
        self._cell_timeout = timeout
        self._deadline = None if total_timeout is None else monotonic() + total_timeout
        self._total_timeout = total_timeout
        self._progress = progress
        self.client = NotebookClient(
            nb, timeout=timeout, kernel_name=kernel_name, allow_errors=True, interrupt_on_timeout=True,
            error_on_timeout={"ename": _TIMEOUT_ENAME, "evalue": evalue, "traceback": []},
            shutdown_kernel="immediate", record_timing=False,
            on_cell_error=self._on_cell_error, resources={"metadata": {"path": str(cwd)}},
        )

    def _on_cell_error(self, cell: NotebookNode, cell_index: int, execute_reply: dict[str, Any]) -> None:
        if execute_reply["content"].get("ename") == _TIMEOUT_ENAME:
            self._timed_out = True

    def run(self) -> None:
        """Execute every code cell in order, filling in their outputs."""
        cells = self.client.nb.cells
        with self.client.setup_kernel():
            self._write_kernel_pid()
            self._silent(_GUARD_SETUP)
            completed: list[int] = []
            for index, cell in enumerate(cells):
                if cell.cell_type != "code":
                    continue
                left = None if self._deadline is None else self._deadline - monotonic()
                if left is not None and left <= 0:
                    cell.outputs.append(_error_output(
                        _TOTAL_TIMEOUT_ENAME, f"the submission ran past its total time limit of "
                                              f"{self._total_timeout:g} s; this cell was not run"))
                    continue
                self.client.timeout = self._cell_timeout if left is None else max(1, min(self._cell_timeout,
                                                                                         math.ceil(left)))
                if CHECK_TAG in cell.metadata.get("tags", []):
                    self._silent(_GUARD_RESTORE)
                status = self._run_cell(cell, index)
                if status == self.OK:
                    completed.append(index)
                elif status == self.RESTARTED:
                    self._replay(completed)
                self._save_progress()

    def _write_kernel_pid(self) -> None:
        """Leave the kernel's pid beside the progress file, so the grader can end it if this worker is killed."""
        if self._progress is not None:
            pid = getattr(getattr(self.client.km, "provisioner", None), "pid", None)
            if pid is not None:
                self._progress.with_suffix(".kernel").write_text(str(pid))

    def _save_progress(self) -> None:
        if self._progress is not None:
            tmp = self._progress.with_suffix(".tmp")
            nbformat.write(self.client.nb, tmp)
            os.replace(tmp, self._progress)

    async def _async_silent(self, code: str, wait: float = 30.0) -> bool:
        """Run ``code`` in the kernel without outputs or history; whether it answered within ``wait`` seconds."""
        kc = self.client.kc
        msg_id = await ensure_async(kc.execute(code, silent=True, store_history=False))
        deadline = monotonic() + wait
        while (left := deadline - monotonic()) > 0:
            try:
                msg = await ensure_async(kc.shell_channel.get_msg(timeout=left))
            except Empty:
                return False
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False

    _silent = run_sync(_async_silent)

    def _run_cell(self, cell: NotebookNode, index: int) -> str:
        self._timed_out = False
        try:
            self.client.execute_cell(cell, index)
        except DeadKernelError:
            cell.outputs.append(_error_output("DeadKernelError", "the kernel died while running this cell"))
            self._restart()
            return self.RESTARTED
        if self._timed_out:
            cell.outputs.append(copy.deepcopy(self._timeout_error))
            if not self._responsive(_PROBE_SECONDS):
                self._restart()
                return self.RESTARTED
            return self.FAILED
        return self.FAILED if any(out.output_type == "error" for out in cell.outputs) else self.OK

    def _replay(self, indices: list[int]) -> None:
        """Re-run cells in a restarted kernel to rebuild its state, keeping their recorded outputs."""
        cells = self.client.nb.cells
        for index in indices:
            original = cells[index]
            status = self._run_cell(copy.deepcopy(original), index)
            cells[index] = original  # execute_cell stores the copy in the notebook
            if status == self.RESTARTED:
                break

    async def _async_responsive(self, wait: float) -> bool:
        """Whether the kernel answers a trivial request within ``wait`` seconds."""
        return await self._async_silent("pass", wait)

    async def _async_restart(self) -> None:
        """Kill and restart the kernel (same working directory) with a new client; the guard is set up again."""
        self.client.kc.stop_channels()
        await ensure_async(self.client.km.restart_kernel(now=True))
        await self.client.async_start_new_kernel_client()
        self._write_kernel_pid()
        await self._async_silent(_GUARD_SETUP)

    _responsive = run_sync(_async_responsive)
    _restart = run_sync(_async_restart)


def execute(nb: NotebookNode, timeout: int = DEFAULT_TIMEOUT, cwd: str | Path = ".",
            kernel_name: str = KERNEL_NAME, total_timeout: float | None = None,
            progress: Path | None = None) -> NotebookNode:
    """Execute ``nb`` in place in this process (see :class:`_Runner`: errors recorded, timeouts survived).

    ``total_timeout`` limits the whole notebook; ``progress``, a file the notebook is saved to
    after each cell.  Returns ``nb``.
    """
    _Runner(nb, max(1, math.ceil(timeout)), Path(cwd), kernel_name, total_timeout, progress).run()
    return nb


def execute_isolated(nb: NotebookNode, timeout: int = DEFAULT_TIMEOUT, cwd: str | Path = ".",
                     kernel_name: str = KERNEL_NAME,
                     total_timeout: float = DEFAULT_TOTAL_TIMEOUT) -> tuple[NotebookNode, str | None]:
    """:func:`execute` in a worker process of its own session; returns (executed notebook, problem).

    The submission cannot end the caller: if it kills the worker (or the worker overruns the
    total time by a minute), the cells that had run keep their outputs, the others none, and
    ``problem`` says what happened (None when the worker finished normally).
    """
    with tempfile.TemporaryDirectory(prefix="perceptlab-grade-") as tmp:
        source, progress = Path(tmp) / "submission.ipynb", Path(tmp) / "executed.ipynb"
        nbformat.write(nb, source)
        command = [sys.executable, "-m", "perceptlab.course.grading", "_execute", str(source), str(progress),
                   "--timeout", str(timeout), "--total-timeout", str(total_timeout), "--cwd", str(cwd),
                   "--kernel", kernel_name]
        worker = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        problem = None
        try:
            _, stderr = worker.communicate(timeout=total_timeout + 60)
        except subprocess.TimeoutExpired:
            _kill_group(worker.pid)
            _, stderr = worker.communicate()
            problem = f"the grading worker ran past the total time limit ({total_timeout:g} s) and was stopped"
        if worker.returncode and problem is None:
            how = (f"was killed by signal {signal.Signals(-worker.returncode).name}" if worker.returncode < 0
                   else f"exited with status {worker.returncode}")
            problem = (f"the grading worker {how} (did the submission end its parent process?); cells that had "
                       f"not run get no points. {stderr.decode(errors='replace').strip()[-300:]}").strip()
        kernel = progress.with_suffix(".kernel")
        if kernel.exists():  # a worker that was killed leaves its kernel behind
            _kill_group(int(kernel.read_text()))
        executed = nbformat.read(progress, as_version=4) if progress.exists() else nb
    return executed, problem


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- grading


def _prepare_submission(submission: NotebookNode, checks: list[tuple[Check, NotebookNode]]) -> NotebookNode:
    """A copy without outputs whose check cells carry the reference's source and metadata."""
    reference_cells = {check.id: cell for check, cell in checks}
    nb = copy.deepcopy(submission)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        reference = reference_cells.get(_grading_id(cell))
        if reference is not None:
            cell.source = reference.source
            cell.metadata = copy.deepcopy(reference.metadata)
    return nb


def _judge(check: Check, reference: NotebookNode, cells: list[NotebookNode], problem: str | None = None) -> CheckResult:
    """Pass if the submission has the check cell and every copy of it printed the reference's outputs."""
    if not cells:
        return CheckResult(check, False, "check cell missing from the submission")
    if problem and not any(cell.get("outputs") for cell in cells):
        return CheckResult(check, False, f"not run: {problem}")
    for cell in cells:
        errors = [out for out in cell.outputs if out.output_type == "error"]
        if errors:
            return CheckResult(check, False, f"{errors[-1].ename}: {errors[-1].evalue}")
        equal, explanation = compare_outputs(cell.outputs, reference.outputs)
        if not equal:
            return CheckResult(check, False, explanation or "outputs differ")
    return CheckResult(check, True)


def _read_submission(path: Path) -> tuple[NotebookNode | None, str | None]:
    """The submission as a notebook, or (None, why it is not one)."""
    try:
        text = path.read_text()
        raw = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"the submission is not a readable JSON notebook ({type(exc).__name__}: {exc})"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return None, f"the submission is not a notebook (a JSON {type(raw).__name__} without a list of cells)"
    if raw.get("nbformat") != 4:
        return None, f"the submission has nbformat {raw.get('nbformat')!r}; only nbformat 4 notebooks are graded"
    for number, cell in enumerate(raw["cells"], start=1):
        source = cell.get("source") if isinstance(cell, dict) else None
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw") or not (
                isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            return None, f"cell {number} of the submission is malformed (its source must be text)"
    try:
        return nbformat.reads(text, as_version=4), None
    except Exception as exc:  # anything nbformat cannot make a notebook of
        return None, f"the submission is not a valid notebook ({type(exc).__name__}: {exc})"


def grade_report(submission_path: str | Path, reference_path: str | Path, timeout: int = DEFAULT_TIMEOUT,
                 kernel_name: str = KERNEL_NAME, total_timeout: float = DEFAULT_TOTAL_TIMEOUT) -> GradeReport:
    """Execute a submission and judge each check cell against the reference (see the module docstring).

    Args:
        submission_path: the student's notebook; its stored outputs are ignored.  A malformed
            one scores zero, with the reason in ``errors`` and in every check's message.
        reference_path: the executed instructor source.
        timeout: seconds allowed to each cell.
        kernel_name: the Jupyter kernel to run the submission in.
        total_timeout: seconds allowed to the whole submission.
    """
    reference = nbformat.read(Path(reference_path), as_version=4)
    checks = reference_checks(reference)
    submission_path = Path(submission_path)
    submission, why = _read_submission(submission_path)
    if submission is None:
        return GradeReport(tuple(CheckResult(check, False, why) for check, _ in checks), (why,))
    nb = _prepare_submission(submission, checks)
    nb, problem = execute_isolated(nb, timeout=timeout, cwd=submission_path.resolve().parent,
                                   kernel_name=kernel_name, total_timeout=total_timeout)
    by_id: dict[str | None, list[NotebookNode]] = {}
    errors = [problem] if problem else []
    for number, cell in enumerate(nb.cells, start=1):
        by_id.setdefault(_grading_id(cell), []).append(cell)
        failures = [out for out in cell.get("outputs", []) if out.output_type == "error"]
        if failures and _grading_id(cell) not in {check.id for check, _ in checks}:
            first_line = _shorten(cell.source.strip().split("\n")[0], 50)
            errors.append(f"cell {number} ({first_line}): {failures[-1].ename}: {failures[-1].evalue}")
    results = tuple(_judge(check, cell, by_id.get(check.id, []), problem) for check, cell in checks)
    return GradeReport(results, tuple(errors))


def grade(submission_path: str | Path, reference_path: str | Path, timeout: int = DEFAULT_TIMEOUT,
          kernel_name: str = KERNEL_NAME, total_timeout: float = DEFAULT_TOTAL_TIMEOUT) -> dict[str, Any]:
    """Grade a submission: ``{"questions": {q: {"points": p, "max": m}}, "total": t, "max": M}``.

    See :func:`grade_report` for the arguments.
    """
    return grade_report(submission_path, reference_path, timeout, kernel_name, total_timeout).to_dict()


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    """Command line: ``release`` a source notebook or ``grade`` a submission (exit 0 once graded)."""
    parser = argparse.ArgumentParser(prog="python -m perceptlab.course.grading", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_release = commands.add_parser("release", help="write the student version of a source notebook")
    p_release.add_argument("source", type=Path, help="instructor notebook <name>_source.ipynb, executed")
    p_release.add_argument("--out", type=Path, required=True, help="folder for <name>.ipynb")
    p_grade = commands.add_parser("grade", help="execute a submission and score its check cells")
    p_grade.add_argument("submission", type=Path, help="the student's notebook")
    p_grade.add_argument("--reference", type=Path, required=True, help="the executed source notebook")
    p_grade.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per cell (default %(default)s)")
    p_grade.add_argument("--total-timeout", type=float, default=DEFAULT_TOTAL_TIMEOUT,
                         help="seconds for the whole submission (default %(default)s)")
    p_grade.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p_exec = commands.add_parser("_execute", help=argparse.SUPPRESS)  # the isolated worker of grade
    p_exec.add_argument("source", type=Path)
    p_exec.add_argument("progress", type=Path)
    p_exec.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT)
    p_exec.add_argument("--total-timeout", type=float, default=DEFAULT_TOTAL_TIMEOUT)
    p_exec.add_argument("--cwd", type=Path, default=Path("."))
    p_exec.add_argument("--kernel", default=KERNEL_NAME)
    args = parser.parse_args(argv)
    if args.command == "_execute":
        nb = nbformat.read(args.source, as_version=4)
        execute(nb, args.timeout, args.cwd, args.kernel, args.total_timeout, progress=args.progress)
        nbformat.write(nb, args.progress)
        return
    try:
        if args.command == "release":
            print(release(args.source, args.out))
        else:
            if args.timeout <= 0 or args.total_timeout <= 0:
                parser.error("--timeout and --total-timeout must be positive")
            report = grade_report(args.submission, args.reference, timeout=args.timeout,
                                  total_timeout=args.total_timeout)
            print(json.dumps(report.to_dict()) if args.json else report.format())
    except (NotebookFormatError, FileNotFoundError, nbformat.ValidationError, NotJSONError) as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
