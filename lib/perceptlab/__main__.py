"""Command line: ``python -m perceptlab run <experiment> --preset full --device cuda --out runs/<name>``."""
from __future__ import annotations

import argparse
import json
import sys

from perceptlab.experiments import EXPERIMENTS, parse_overrides, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perceptlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")
    p = sub.add_parser("run", help="run one experiment")
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument("--preset", choices=("quick", "full"), default=None,
                   help="default: PERCEPTLAB_PRESET, else full with CUDA and quick without")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--out", default=None, help="folder for config.json, metrics.json, images and checkpoints")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields (JSON values)")
    s = sub.add_parser("spread", help="rerun the seeded stochastic experiments over seeds and thread counts, "
                                      "print each outcome's mean and spread and whether its checks hold")
    s.add_argument("outcomes", nargs="*", help="outcome names (default: all): keys of perceptlab.spread.OUTCOMES, "
                                                   "or nb:<notebook> (e.g. nb:03a_the_game) for a chapter notebook's claims")
    s.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    s.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch thread counts to try")
    s.add_argument("--json", default=None, metavar="FILE", help="also write every run's metrics to FILE")
    args = parser.parse_args(argv)
    if args.command == "spread":
        return _spread(args)
    if args.command == "list":
        for name, exp in sorted(EXPERIMENTS.items()):
            print(f"{name:12s} {exp.description}")
        return 0
    import torch

    from perceptlab.config import default_device

    print(f"running on {default_device(args.device)} (torch {torch.__version__})", file=sys.stderr)
    result = run(args.experiment, args.preset, args.device, args.out, **parse_overrides(args.set))
    print(json.dumps(result["metrics"], indent=2))
    return 0


def _spread(args: argparse.Namespace) -> int:
    import platform

    import torch

    from perceptlab.course import spread

    import os

    os.environ.setdefault("PERCEPTLAB_QUIET", "1")  # one status line per run instead of progress bars
    names = args.outcomes or [*spread.OUTCOMES, *spread.notebook_names()]
    print(f"CPU: {_cpu_model() or platform.processor() or 'unknown'}; torch {torch.__version__}")
    runs = spread.measure(names, args.seeds, args.threads, log=lambda line: print(line, file=sys.stderr, flush=True))
    for name in names:
        print(spread.format_summary(name, runs[name]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    return int(any(r["failed"] for records in runs.values() for r in records))


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
