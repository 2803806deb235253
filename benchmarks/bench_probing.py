"""Cost of probing a whole network with gratings (Chapter 7), as ratios measured in one run.

:func:`perceptlab.probing.probe` renders every stimulus of a tuning-curve set (concentric gratings at
each frequency and oriented gratings at each orientation, each at every phase), sends them through
the network in one batched pass, and reads every requested layer from that same pass.  The baseline
of the ratios is **one forward pass** of the same stimulus batch through VGG16 up to relu4_3 (the
stimuli already rendered): the least any probe of those layers can cost.  Rows:

- ``probe`` (the library): rendering + one batched pass + tuning curves, mu1, mu2 and PE of the four
  layers relu1_2, relu2_2, relu3_3, relu4_3;
- ``one pass per layer``: the same, but a separate batched pass for each layer (what a probe that
  hooks one layer at a time does);
- ``one image at a time``: the four layers from one pass, but one stimulus per forward call.

Recorded on this course's 2-core CPU (``benchmarks/results/bench_probing_quick_cpu.json``, 3 sessions): the
probe costs 1.12-1.16 forward passes, a pass per layer 2.35-2.60 times the probe; one image at a time
costs the same as the batch (0.89-0.93 times the probe): on a CPU a convolution's cost grows linearly with
the batch, so batching saves nothing there; it is on a GPU that one batch beats 96 small calls.

The stimulus set is the chapter's quick one (``ProbeConfig``: 64 x 64 gratings at 32 pixels per
degree, 12 frequencies, 12 orientations, 4 phases: 96 images); ``--full`` uses the full preset's
(224 x 224, 24 frequencies and orientations, 8 phases: 384 images).  Random VGG16 weights (the cost
does not depend on the weights).  Each row is the median of ``repeats`` rounds, the rows interleaved
round-robin so that a slow spell of the machine hits all of them.

Run from the repository root::

    .venv/bin/python benchmarks/bench_probing.py                       # the quick stimulus set, CPU
    .venv/bin/python benchmarks/bench_probing.py --quick               # a smoke run
    .venv/bin/python benchmarks/bench_probing.py --sessions 3 --json benchmarks/results/bench_probing_quick_cpu.json
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_losses  # noqa: E402

from perceptlab import probing  # noqa: E402
from perceptlab.experiments.probing import ProbeConfig  # noqa: E402
from perceptlab.models import backbone  # noqa: E402

LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
DEFAULTS = {"repeats": 5, "preset": "quick", "n_freqs": None}
QUICK = {"repeats": 1, "preset": "quick", "n_freqs": 4}


def stimulus_set(opts: dict) -> probing.Stimuli:
    config = ProbeConfig.for_preset(opts["preset"])
    if opts["n_freqs"]:
        config = ProbeConfig.for_preset(opts["preset"], n_freqs=opts["n_freqs"], n_thetas=opts["n_freqs"], n_phases=2)
    return config.stimuli()


def measure(device: torch.device, opts: dict) -> dict:
    net = backbone("vgg16", "random", seed=0).to(device)
    stimuli = stimulus_set(opts)
    images = torch.cat(stimuli.images()).to(device)
    batch = len(images)  # the whole stimulus set in one pass

    def forward_once():
        with torch.no_grad():
            net(images, ["relu4_3"])

    def library():
        probing.probe(net, LAYERS, stimuli, batch=batch, device=device)

    def per_layer():
        for layer in LAYERS:
            probing.probe(net, layer, stimuli, batch=batch, device=device)

    def per_image():
        probing.probe(net, LAYERS, stimuli, batch=1, device=device)

    rows = {"one forward pass to relu4_3": forward_once, "probe": library, "one pass per layer": per_layer,
            "one image at a time": per_image}
    for fn in rows.values():  # warm-up
        fn()
    times = {name: [] for name in rows}
    for _ in range(opts["repeats"]):
        for name, fn in rows.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    median = {name: statistics.median(v) for name, v in times.items()}
    base = median["one forward pass to relu4_3"]
    summary = {"probe_vs_forward": median["probe"] / base,
               "per_layer_vs_probe": median["one pass per layer"] / median["probe"],
               "per_image_vs_probe": median["one image at a time"] / median["probe"]}
    return {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "stimuli": {"images": len(images), "size": stimuli.size, "ppd": stimuli.ppd,
                        "freqs": len(stimuli.freqs), "thetas": len(stimuli.thetas), "phases": len(stimuli.phases)},
            "layers": list(LAYERS), "repeats": opts["repeats"],
            "seconds": median, "ratio_to_forward": {n: t / base for n, t in median.items()}, "summary": summary,
            "checks": checks([summary])}


def checks(sessions: list[dict]) -> dict:
    """What the chapter relies on, in every session: the probe costs at most 1.5 forward passes (rendering
    and the scores are cheap next to the network), and it is faster than a pass per layer."""
    return {"probe at most 1.5x one forward pass": all(s["probe_vs_forward"] <= 1.5 for s in sessions),
            "one pass per layer slower than the probe": all(s["per_layer_vs_probe"] > 1.0 for s in sessions)}


def report(res: dict) -> None:
    s = res["stimuli"]
    print(f"probing VGG16 ({', '.join(res['layers'])}) with {s['images']} gratings of {s['size']}x{s['size']} "
          f"on {res['device']} ({res['threads']} threads), median of {res['repeats']}:")
    for name, t in res["seconds"].items():
        print(f"  {name:28s} {t * 1000:9.1f} ms   {res['ratio_to_forward'][name]:6.2f} x one forward pass")


def _describe(res: dict) -> str:
    s = res["summary"]
    return (f"probe {s['probe_vs_forward']:.2f}x a forward pass; a pass per layer {s['per_layer_vs_probe']:.2f}x "
            f"and one image at a time {s['per_image_vs_probe']:.2f}x the probe")


def main(argv: list[str] | None = None) -> dict:
    def full_option(parser):
        parser.add_argument("--full", action="store_true", help="the full preset's stimulus set (224 pixels, 384 images)")

    def adjust(opts, args):
        if args.full:
            opts["preset"] = "full"

    return bench_losses.session_main(__doc__, __file__, argv, measure=measure, report=report, checks=checks,
                                     describe=_describe, quick=QUICK, defaults=DEFAULTS, add_arguments=full_option,
                                     adjust=adjust)


if __name__ == "__main__":
    main()
