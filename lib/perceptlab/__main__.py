"""Command line: ``python -m perceptlab run <experiment> --preset full --device cuda --out runs/<name>``."""
from __future__ import annotations

import argparse
import json
import sys

from .experiments import EXPERIMENTS, parse_overrides, run


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
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, exp in sorted(EXPERIMENTS.items()):
            print(f"{name:12s} {exp.description}")
        return 0
    import torch

    from .config import default_device

    print(f"running on {default_device(args.device)} (torch {torch.__version__})", file=sys.stderr)
    result = run(args.experiment, args.preset, args.device, args.out, **parse_overrides(args.set))
    print(json.dumps(result["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
