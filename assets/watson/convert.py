"""Convert the Watson parameters of Czolbe et al. (2020) into the files ``perceptlab.losses.WatsonDCT/DFT`` load.

Source: ``source/*_trial0.json``, the authors' published checkpoints
(``src/loss/weights/*_trial0.pth`` of github.com/SteffenCzolbe/PerceptualSimilarity) as plain JSON
in their naming, and ``source/watson_dct_untrained.json``.  Output, next to this script:
``watson-{dct,dft}-{grey,colour}.json`` (trained on BAPPS 2AFC train) and
``watson-{dct,dft}-untrained.json`` (the code's starting values), in our naming:

    t_tild -> <channel>.log_t         alpha -> <channel>.alpha      w_tild -> <channel>.logit_r
    beta   -> <channel>.p             w_phase_tild -> <channel>.log_phase_weight
    top-level w_tild (colour) -> channel_logits;  ly., lcb., lcr. -> Y., Cb., Cr.;  grey: grey.

The checkpoints' fixed tensors are checked, not copied: ``dct.A`` must be the orthonormal DCT-II
matrix and ``to_YCbCr`` our BT.601 conversion.  Run ``python assets/watson/convert.py``; a test
checks that the shipped files are what this script writes.

Citation: S. Czolbe, O. Krause, I. Cox, C. Igel. A Loss Function for Generative Neural Networks
Based on Watson's Perceptual Model. NeurIPS 2020.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
CITATION = ("Czolbe, Krause, Cox & Igel, A Loss Function for Generative Neural Networks Based on Watson's "
            "Perceptual Model, NeurIPS 2020; checkpoints src/loss/weights/*_trial0.pth of "
            "github.com/SteffenCzolbe/PerceptualSimilarity")
RENAME = {"t_tild": "log_t", "alpha": "alpha", "w_tild": "logit_r", "beta": "p", "w_phase_tild": "log_phase_weight"}
PREFIX = {"ly.": "Y", "lcb.": "Cb", "lcr.": "Cr"}
YCBCR = ((0.299, 0.587, 0.114), (-0.1687, -0.3313, 0.5), (0.5, -0.4187, -0.0813))


def dct_matrix(n: int = 8) -> list[list[float]]:
    return [[math.sqrt((1 if i == 0 else 2) / n) * math.cos(math.pi * (2 * j + 1) * i / (2 * n)) for j in range(n)]
            for i in range(n)]


def _close(a, b, tol: float, what: str) -> None:
    flat = lambda v: [x for row in v for x in (row if isinstance(row, list) else [row])]  # noqa: E731
    if max(abs(x - y) for x, y in zip(flat(a), flat(b))) > tol:
        raise ValueError(f"{what} differs from the expected values")


def convert_checkpoint(source: dict, transform: str) -> dict:
    """One checkpoint (their names) -> our record {transform, channels, parameters}."""
    params, channels = {}, []
    colour = "ly.t_tild" in source
    for key, value in source.items():
        if key.endswith("blocksize"):
            if value != 8:
                raise ValueError(f"block size must be 8, got {value}")
            continue
        if key.endswith("dct.A"):
            _close(value, dct_matrix(), 1e-6, f"{key} (the DCT matrix)")
            continue
        if key == "to_YCbCr.transform":  # stored as M^T: column c holds output channel c
            _close(value, [list(col) for col in zip(*YCBCR)], 1e-6, "the YCbCr transform")
            continue
        if key == "to_YCbCr.bias":
            _close(value, [0.0, 0.5, 0.5], 1e-6, "the YCbCr bias")
            continue
        if colour and key == "w_tild":
            params["channel_logits"] = value
            continue
        prefix = next((p for p in PREFIX if key.startswith(p)), "")
        channel = PREFIX[prefix] if prefix else "grey"
        name = key[len(prefix):]
        if name not in RENAME:
            raise ValueError(f"unknown checkpoint entry {key!r}")
        if channel not in channels:
            channels.append(channel)
        params[f"{channel}.{RENAME[name]}"] = value
    return {"transform": transform, "channels": channels, "parameters": params}


def untrained(transform: str, table: dict) -> dict:
    """The released code's starting values, for one channel (the models copy them to every channel)."""
    logit = lambda v: math.log(v / (1 - v))  # noqa: E731
    if transform == "dct":
        params = {"grey.log_t": [[math.log(v) for v in row] for row in table["T"]], "grey.alpha": table["alpha"],
                  "grey.logit_r": logit(table["r"]), "grey.p": table["p"]}
    else:
        params = {"grey.log_t": [[0.0] * 5 for _ in range(8)], "grey.alpha": 0.1, "grey.logit_r": logit(0.2),
                  "grey.p": 1.0, "grey.log_phase_weight": [[-2.0] * 5 for _ in range(8)]}
    return {"transform": transform, "channels": ["grey"], "parameters": params}


def convert(source_dir: Path = HERE / "source", out_dir: Path = HERE) -> list[Path]:
    """Write every converted file into ``out_dir``; returns their paths."""
    written = []
    table = json.loads((source_dir / "watson_dct_untrained.json").read_text())
    for transform, theirs in (("dct", "dct"), ("dft", "fft")):
        jobs = [(f"watson-{transform}-grey.json", f"gray_watson_{theirs}_trial0.json"),
                (f"watson-{transform}-colour.json", f"rgb_watson_{theirs}_trial0.json")]
        for out_name, src_name in jobs:
            record = convert_checkpoint(json.loads((source_dir / src_name).read_text()), transform)
            record = {"citation": CITATION, "source": f"source/{src_name}", **record}
            written.append(out_dir / out_name)
            written[-1].write_text(json.dumps(record, indent=1) + "\n")
        record = {"citation": CITATION, "source": "starting values of the released code", **untrained(transform, table)}
        written.append(out_dir / f"watson-{transform}-untrained.json")
        written[-1].write_text(json.dumps(record, indent=1) + "\n")
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=HERE / "source")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    for path in convert(args.source, args.out):
        print("wrote", path)
