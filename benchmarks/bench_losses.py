"""Cost of the Chapter 2 losses, forward + backward, as ratios to L2 measured in one run.

For each loss in ``LOSSES`` this times ``loss(x, y).backward()`` with x requiring grad and y a
fixed target, on a batch of (N, 3, S, S) float32 images in [0, 1] (default 128x3x64x64), and
measures the peak extra memory of one such call.  Ratios to L2 (mean squared error) are what to
compare across machines; the absolute milliseconds are printed for reference only.  This table is
the baseline later losses (Watson, patch-MMD) are compared against: add them to ``LOSSES``
(name -> constructor, one line each).

Run from the repository root::

    .venv/bin/python benchmarks/bench_losses.py                  # 128x3x64x64 on default_device()
    .venv/bin/python benchmarks/bench_losses.py --quick          # 4x3x32x32, one repeat: a smoke run
    .venv/bin/python benchmarks/bench_losses.py --device cpu --json losses.json

What is measured
----------------
Time: wall-clock time of one call ``x.grad = None; loss(x, y).backward()`` (the forward passes of
x *and* y, since the losses recompute the target's features on every call, plus the backward to
x), bracketed by a device synchronisation on CUDA/MPS.  Each loss is first run ``--warmup`` times;
then, in each of ``--repeats`` rounds, every loss runs once, round-robin (the starting loss
rotates each round), so that slow phases of a shared machine hit all losses alike.  Reported: the
median over rounds, and the ratio of that median to L2's (``--json`` also keeps every round).
On a CPU shared with other jobs, each parallel op can stall while its OpenMP threads wait for a
core; that inflates cheap, many-op losses (L2, SSIM) most, so their ratios are least reliable
there.  The thread count is printed; compare ``OMP_NUM_THREADS=1`` runs on such machines.

Peak memory: the most memory held at any moment of one call *beyond* what was allocated before
it, i.e. excluding the inputs x, y and the loss's own parameters (backbone weights), but
including the gradient x.grad it creates (the same 4 N 3 S^2 bytes for every loss).

- CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus
  ``memory_allocated()`` at the start.  Counts the caching allocator's allocated blocks (cuDNN
  workspaces included), not memory reserved by the cache nor the CUDA context.
- CPU: the torch profiler's memory accounting (``torch.profiler.profile(profile_memory=True)``):
  its allocation and free records, in time order, summed to a running total of live bytes;
  the maximum of that total.  This counts the tensor storages PyTorch's CPU allocator hands out
  (requested sizes) on the threads the profiler follows.  It does not count memory that libraries
  allocate on their own (e.g. oneDNN/MKL scratch buffers), Python objects, or allocator overhead
  and fragmentation, so it is a lower bound on the growth of the process's RSS; it is exact for
  what autograd keeps alive, which is what differs between these losses.  The profiled call is a
  separate, untimed call.
- other devices (MPS, ...): not measured (reported as n/a).

Weights: the backbones of FeatureLoss and LPIPS use seeded *random* weights, so the benchmark
runs offline; ImageNet weights would take the same time and memory (same architecture and
shapes; the only data-dependent cost is rare denormal arithmetic on CPU).  LPIPS uses the lpips
v0.1 linear weights shipped in the ``lpips`` package.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable

import torch
from torch import nn

import perceptlab
from perceptlab import losses

BACKBONE_WEIGHTS = "random"

#: name -> constructor of a loss ``fn(x, y) -> scalar``, built by the metric registry
#: (``losses.registry``) where it has an offline entry.  The first entry is the baseline of the ratios.
LOSSES: dict[str, Callable[[], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "L2": lambda: losses.registry.make("l2", "mean"),
    "SSIM": lambda: losses.registry.make("ssim", "mean"),
    "FeatureLoss(vgg16)": lambda: losses.registry.make("vgg-random", "mean"),
    # the registry's LPIPS entries need ImageNet trunks; offline, a random trunk with the official linear weights
    "LPIPS(vgg)": lambda: losses.LPIPS("vgg", backbone_weights=BACKBONE_WEIGHTS, lin_weights="v0.1"),
}
BASELINE = next(iter(LOSSES))

QUICK = {"batch": 4, "size": 32, "repeats": 1, "warmup": 1}
DEFAULTS = {"batch": 128, "size": 64, "repeats": 5, "warmup": 1}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def step(fn, x: torch.Tensor, y: torch.Tensor) -> None:
    """One forward + backward of ``fn(x, y)`` w.r.t. x."""
    x.grad = None
    fn(x, y).backward()


def timed_step(fn, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    synchronize(device)
    t = time.perf_counter()
    step(fn, x, y)
    synchronize(device)
    return time.perf_counter() - t


@contextlib.contextmanager
def _silence_stderr():
    """Silence the C++ profiler's start/stop log lines (fd 2); used around start/stop only."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak_bytes(run_step: Callable[[], None]) -> tuple[int, int] | None:
    """(peak, retained) live bytes of the CPU allocator during ``run_step()``, from the profiler's records."""
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
    with _silence_stderr():
        prof.start()
    try:
        run_step()
    finally:
        with _silence_stderr():
            prof.stop()
    results = getattr(getattr(prof, "profiler", None), "kineto_results", None)
    if results is None:  # the profiler's internals moved: say so rather than guess
        print("note: this torch's profiler exposes no kineto_results; CPU memory not measured", file=sys.stderr)
        return None
    records = sorted((e.start_ns(), e.nbytes()) for e in results.events()
                     if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    live = peak = 0
    for _, nbytes in records:
        live += nbytes
        peak = max(peak, live)
    return peak, live


def step_memory(run_step: Callable[[], None], device: torch.device) -> tuple[int, int] | None:
    """(peak, retained) bytes beyond those allocated before ``run_step()``; None where not measurable.

    Free what the step would free (e.g. old gradients) before calling: the CPU profiler cannot
    size blocks allocated before it started.  Shared by the benchmarks (bench_deepsim imports it).
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run_step()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base, torch.cuda.memory_allocated(device) - base
    if device.type == "cpu":
        return _cpu_peak_bytes(run_step)
    return None


def peak_memory(fn, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> tuple[int, int] | None:
    """:func:`step_memory` of one forward + backward of ``fn(x, y)``."""
    x.grad = None
    return step_memory(lambda: step(fn, x, y), device)


def label(name: str, fn) -> str:
    if isinstance(fn, nn.Module):
        return getattr(fn, "label", repr(fn))
    return "no parameters"


def run(names: list[str], device: torch.device, batch: int, size: int, repeats: int, warmup: int,
        table: dict | None = None) -> dict:
    """Time and memory of each loss in ``names`` (constructors from ``table``, default :data:`LOSSES`);
    ratios are to ``names[0]``.  Shared by the benchmarks (bench_patch_mmd calls it with its own table)."""
    table = LOSSES if table is None else table
    baseline = names[0]
    torch.manual_seed(0)
    fns = {}
    for name in names:
        fn = table[name]()
        fns[name] = fn.to(device) if isinstance(fn, nn.Module) else fn
    x = torch.rand(batch, 3, size, size, device=device, requires_grad=True)
    y = torch.rand(batch, 3, size, size, device=device)

    for _ in range(warmup):
        for name in names:
            step(fns[name], x, y)
    times = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(timed_step(fns[name], x, y, device))
    memory = {name: peak_memory(fns[name], x, y, device) for name in names}

    base_t = statistics.median(times[baseline])
    base_m = memory[baseline][0] if memory[baseline] else None
    rows = []
    for name in names:
        t = statistics.median(times[name])
        m = memory[name]
        rows.append({
            "loss": name,
            "weights": label(name, fns[name]),
            "time_ms": 1e3 * t,
            "times_ms": [1e3 * s for s in times[name]],
            "time_ratio": t / base_t,
            "peak_mb": None if m is None else m[0] / 2 ** 20,
            "retained_mb": None if m is None else m[1] / 2 ** 20,
            "memory_ratio": None if m is None or not base_m else m[0] / base_m,
        })
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": [batch, 3, size, size],
        "dtype": str(x.dtype),
        "repeats": repeats,
        "warmup": warmup,
        "baseline": baseline,
        "backbone_weights": BACKBONE_WEIGHTS,
        "memory_method": {"cuda": "torch.cuda.max_memory_allocated minus allocated at start",
                          "cpu": "max running total of torch profiler memory records"}.get(device.type,
                                                                                             "not measured"),
        "results": rows,
    }


def _fmt(value: float | None, spec: str, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:{width}{spec}}"


def report(res: dict) -> None:
    dev = res["device"] + (f" ({res['device_name']})" if res["device_name"] else "")
    print(f"device {dev}, torch {res['torch']}, {res['threads']} CPU threads; "
          f"batch {'x'.join(map(str, res['shape']))} {res['dtype']}; "
          f"median of {res['repeats']} round-robin repeats after {res['warmup']} warm-up")
    print(f"forward + backward of loss(x, y) w.r.t. x; peak memory beyond the inputs "
          f"({res['memory_method']})")
    width = max(len(r["loss"]) for r in res["results"])
    print(f"{'loss':<{width}} | {'time ms':>9} {'x ' + res['baseline']:>7} | {'peak MB':>9} {'x ' + res['baseline']:>7}")
    print("-" * (width + 40))
    for r in res["results"]:
        print(f"{r['loss']:<{width}} | {_fmt(r['time_ms'], '.1f', 9)} {_fmt(r['time_ratio'], '.2f', 7)} | "
              f"{_fmt(r['peak_mb'], '.1f', 9)} {_fmt(r['memory_ratio'], '.2f', 7)}")
    print(f"weights ({res['backbone_weights']} backbone weights; ImageNet ones would cost the same time and memory):")
    for r in res["results"]:
        print(f"  {r['loss']}: {r['weights']}")


# ------------------------------------------------------------------ shared by the chapter benchmarks


def session_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of a chapter benchmark: --device, --quick, --repeats, --sessions N, --json."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 2, 32x32, one repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--sessions", type=int, default=1, help="repeat the whole measurement in this many fresh "
                        "processes and record each (default 1)")
    parser.add_argument("--json", metavar="PATH", default=None)
    return parser


def without_options(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``argv`` less the given options and their values (``--opt value`` or ``--opt=value``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not a.startswith(tuple(o + "=" for o in options)):
            out.append(a)
    return out


def run_sessions(script: str, argv: list[str], n: int, describe: Callable[[dict], str] = str) -> list[dict]:
    """Run ``script`` with ``argv`` (less --sessions and --json) ``n`` times, each in a fresh Python process
    (a new allocator and thread pool), and return each session's JSON result; ``describe`` prints a line each."""
    inner = without_options(argv, ("--sessions", "--json"))
    out = []
    for i in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "session.json"
            subprocess.run([sys.executable, script, *inner, "--json", str(path)], check=True, stdout=subprocess.DEVNULL)
            out.append(json.loads(path.read_text()))
        print(f"session {i + 1}/{n}: {describe(out[-1])}")
    return out


def session_main(doc: str, script: str, argv: list[str] | None, *, measure: Callable, report: Callable,
                 checks: Callable, describe: Callable[[dict], str], quick: dict, defaults: dict,
                 add_arguments: Callable | None = None, adjust: Callable | None = None,
                 after_sessions: Callable[[list[dict]], None] | None = None,
                 print_checks: Callable[[dict], None] | None = None) -> dict:
    """The main of a chapter benchmark with checks: parse :func:`session_parser`'s command line (plus
    ``add_arguments(parser)``), then either run ``--sessions N`` fresh processes of ``script`` and check every
    session's ``summary`` with ``checks(summaries)`` (``after_sessions(summaries)`` may print more), or measure
    once: ``measure(device, opts)`` with ``quick`` or ``defaults`` (``--repeats``, then ``adjust(opts, args)``).
    Prints with ``report(res)`` and the checks (``print_checks(res["checks"])``, or one line per check of a
    {name: bool} dict), saves ``--json``, returns the result."""
    parser = session_parser(doc)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.sessions < 1 or (args.repeats is not None and args.repeats < 1):
        parser.error("--sessions and --repeats must be >= 1")
    if args.sessions > 1:
        runs = run_sessions(script, argv if argv is not None else sys.argv[1:], args.sessions, describe)
        res = {**runs[0], "sessions": [r["summary"] for r in runs]}
        res["checks"] = checks(res["sessions"])
        print("results of session 1:")
        report(res)
        if after_sessions is not None:
            after_sessions(res["sessions"])
    else:
        opts = dict(quick if args.quick else defaults)
        if args.repeats:
            opts["repeats"] = args.repeats
        if adjust is not None:
            adjust(opts, args)
        res = measure(perceptlab.default_device(args.device), opts)
        report(res)
        print(describe(res))
    if print_checks is not None:
        print_checks(res["checks"])
    else:
        for name, ok in res["checks"].items():
            print(f"  {'holds' if ok else 'DOES NOT HOLD'}: {name}")
    save(res, args.json)
    return res


def save(res: dict, path: str | None) -> None:
    """Write ``res`` as JSON to ``path`` (if given) and say so."""
    if path:
        Path(path).write_text(json.dumps(res, indent=2))
        print(f"saved {path}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="torch device (default: perceptlab.default_device())")
    parser.add_argument("--batch", type=int, default=None, help=f"batch size (default {DEFAULTS['batch']})")
    parser.add_argument("--size", type=int, default=None, help=f"image side in pixels (default {DEFAULTS['size']})")
    parser.add_argument("--repeats", type=int, default=None, help=f"timed rounds (default {DEFAULTS['repeats']})")
    parser.add_argument("--warmup", type=int, default=None, help=f"untimed rounds first (default {DEFAULTS['warmup']})")
    parser.add_argument("--losses", nargs="+", choices=list(LOSSES), default=list(LOSSES),
                        help=f"losses to run ({BASELINE}, the baseline, is always included)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch {batch}, size {size}, {repeats} repeat after {warmup} warm-up "
                             "(explicit options still win)".format(**QUICK))
    parser.add_argument("--json", metavar="PATH", default=None, help="also save the results as JSON")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    opts = {k: preset[k] if getattr(args, k) is None else getattr(args, k) for k in DEFAULTS}
    if opts["batch"] < 1 or opts["size"] < 1 or opts["repeats"] < 1 or opts["warmup"] < 0:
        parser.error("--batch, --size and --repeats must be >= 1, --warmup >= 0")
    names = [BASELINE] + [n for n in LOSSES if n in args.losses and n != BASELINE]

    res = run(names, perceptlab.default_device(args.device), **opts)
    report(res)
    save(res, args.json)
    return res


if __name__ == "__main__":
    main()
