"""Time the playground: the convolution view's rerun on a 512-pixel image, activation maximization, FGSM and PGD.

Usage: ``python bench/bench_playground.py [--repeats N] [--steps N] [--no-page]``. It prints the median seconds of

- what the convolution view recomputes when a kernel value changes, on the astronaut sample at 512 pixels (grey and
  each colour, 3×3 and 5×5): ``convolve``, one ``conv_step``, colouring the output, and encoding the input and output
  as PNG for the browser; then, unless ``--no-page``, the whole page rerun after a kernel change, measured with
  AppTest (the server's side of an interaction, without the browser; goal: well under a second);
- ``maximize_activation`` on tinyvgg-shapes (``--steps`` steps, channel 3 of ``conv_2_2``) and per step;
- ``attack`` with FGSM and with PGD (10 steps) at ε = 4/255 on tinyvgg-shapes' default sample, and
  ``smallest_flip`` with FGSM.

The models are the shipped tinyvgg-shapes; nothing downloads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script (`python bench/bench_playground.py`), Python puts bench/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.bench_layers import median_time
from bench.summary import record
from cnn_explorer import render
from cnn_explorer.featurevis import maximize_activation
from cnn_explorer.images import default_sample, load_sample
from cnn_explorer.pixels import image_pixels
from cnn_explorer.playground import KERNELS, ConvSettings, conv_step, convolve, image_tensor
from cnn_explorer.robustness import attack, smallest_flip
from cnn_explorer.zoo import load_model

PAGE_GOAL_S = 1.0
PHOTO = "astronaut"
MODEL = "tinyvgg-shapes"


def bench_convolution(repeats: int) -> None:
    print(f"\nconvolution view on {PHOTO} at 512 px, {torch.get_num_threads()} torch threads")
    image = load_sample(PHOTO)
    settings = ConvSettings(padding=1, padding_mode="reflect")
    for mode in ("grey", "rgb"):
        picture = image_tensor(image, mode, 512)
        for size in (3, 5):
            kernel = KERNELS["sobel_x"].kernel(size)

            def rerun(picture=picture, kernel=kernel) -> None:
                output = convolve(picture, kernel, settings)
                conv_step(picture, kernel, settings, output.shape[-2] // 2, output.shape[-1] // 2)
                shown = render.conv_output_image(output, kernel)
                render.to_png_bytes(shown.image)
                render.to_png_bytes(render.pixels_image(picture))

            shape = "×".join(map(str, picture.shape))
            convolve_s = median_time(
                lambda picture=picture, kernel=kernel: convolve(picture, kernel, settings), repeats
            )
            rerun_s = median_time(rerun, repeats)
            print(
                f"  {mode:<4} {shape:<12} {size}×{size}: convolve {convolve_s * 1e3:7.1f} ms, "
                f"+ step, colours and PNGs {rerun_s * 1e3:7.1f} ms"
            )


def bench_page(repeats: int) -> None:
    """The Playground page rerun after a kernel change, on the astronaut at 512 px, through AppTest."""
    import os

    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    original_init = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:  # as a running server: every run goes through app.py's navigation
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("CNN_EXPLORER_OFFLINE", "1")
        os.environ.setdefault("CNN_EXPLORER_HOME", home)
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=300)
        at.run()
        at.sidebar.selectbox(key="sample").select(PHOTO).run()
        at.switch_page("pages/playground.py").run()
        at.selectbox(key="conv_side").select(512).run()
        presets = ["sobel_x", "gaussian", "laplacian", "sharpen"]
        times = []
        for i in range(max(repeats, len(presets))):
            at.selectbox(key="conv_preset").select(presets[i % len(presets)])
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
        if at.exception:
            raise RuntimeError(f"the page failed: {[e.value for e in at.exception]}")
    median = statistics.median(times)
    verdict = "under" if median < PAGE_GOAL_S else "OVER"
    print(
        f"  page rerun after a kernel change (AppTest)  {median * 1e3:7.1f} ms  ({verdict} the {PAGE_GOAL_S:g} s goal)"
    )
    record("playground", "page rerun after a kernel change", f"{median * 1e3:.0f} ms", f"< {PAGE_GOAL_S:g} s",
           median < PAGE_GOAL_S)  # fmt: skip


def bench_model(repeats: int, steps: int) -> None:
    model = load_model(MODEL)
    pixels = image_pixels(model, load_sample(default_sample(MODEL)))
    print(f"\n{MODEL}, {torch.get_num_threads()} torch threads")
    runs = max(1, repeats // 5)
    vis_s = median_time(lambda: maximize_activation(model, "conv_2_2", 3, steps=steps), runs)
    print(f"  maximize_activation, {steps} steps        {vis_s:8.2f} s   ({vis_s / steps * 1e3:.1f} ms per step)")
    fgsm_s = median_time(lambda: attack(model, pixels, "fgsm", 4 / 255), repeats)
    print(f"  FGSM, ε = 4/255                          {fgsm_s * 1e3:8.1f} ms")
    pgd_s = median_time(lambda: attack(model, pixels, "pgd", 4 / 255, steps=10), repeats)
    print(f"  PGD, ε = 4/255, 10 steps                 {pgd_s * 1e3:8.1f} ms")
    search = smallest_flip(model, pixels, "fgsm")
    flip_s = median_time(lambda: smallest_flip(model, pixels, "fgsm"), runs)
    found = f"flips at {search.epsilon * 255:.2f}/255" if search.epsilon is not None else "no flip up to 32/255"
    print(f"  smallest_flip, FGSM ({len(search.probes)} attacks)        {flip_s * 1e3:8.1f} ms   ({found})")
    record("playground", f"activation maximization, {steps} steps, {MODEL}", f"{vis_s:.2f} s")
    record("playground", f"FGSM / PGD (10 steps), {MODEL}", f"{fgsm_s * 1e3:.0f} / {pgd_s * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per figure")
    parser.add_argument("--steps", type=int, default=120, help="activation maximization steps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-page", action="store_true", help="skip the AppTest rerun of the page")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bench_convolution(args.repeats)
    if not args.no_page:
        bench_page(args.repeats)
    bench_model(args.repeats, args.steps)


if __name__ == "__main__":
    main()
