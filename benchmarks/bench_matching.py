"""Cost of the four template-matching measures, as ratios measured in one run.

Reports, for several template sizes on the 512x512 greyscale `astronaut`:
each method's time relative to plain correlation, the FFT path relative to the
direct-convolution path, and our NCC relative to scikit-image's.
Run: ``.venv/bin/python benchmarks/bench_matching.py``. Ratios, not seconds, are
what to compare across machines.
"""
from __future__ import annotations

import time

import numpy as np
from skimage.feature import match_template as skimage_ncc

from perceptlab import data, matching


def median_time(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    image = data.load_image("astronaut", gray=True)[0, 0]
    f64 = image.double()
    print(f"{'template':>9} | {'zero_mean':>9} {'ssd':>6} {'ncc':>6}  (x corr) | {'fft/direct':>10} | {'ours/skimage ncc':>16}")
    for side in (8, 16, 32, 64):
        tpl = image[100:100 + side, 200:200 + side].clone()
        t = {m: median_time(lambda m=m: matching.match_template(image, tpl, m)) for m in matching.METHODS}
        t_direct = median_time(lambda: matching.correlate(f64[None], tpl.double()[None], use_fft=False))
        t_fft = median_time(lambda: matching.correlate(f64[None], tpl.double()[None], use_fft=True))
        img_np, tpl_np = f64.numpy(), tpl.double().numpy()
        t_sk = median_time(lambda: skimage_ncc(img_np, tpl_np, pad_input=False))
        print(f"{side:>6}^2  | {t['zero_mean'] / t['corr']:9.2f} {t['ssd'] / t['corr']:6.2f} {t['ncc'] / t['corr']:6.2f}"
              f"           | {t_fft / t_direct:10.2f} | {t['ncc'] / t_sk:16.2f}")


if __name__ == "__main__":
    main()
