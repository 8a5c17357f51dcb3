"""What does a filter want to see? Activation maximization and the dataset images that excite a channel most.

:func:`maximize_activation` starts from seeded noise and changes the pixels, by gradient ascent, to raise one
channel's mean activation, with the regularizers of Yosinski et al. 2015 ("Understanding Neural Networks Through
Deep Visualization", https://arxiv.org/abs/1506.06579) and Olah et al. 2017 ("Feature Visualization",
https://distill.pub/2017/feature-visualization/): random jitter of the image at every step, a total-variation
penalty, and a slight blur every few steps, which keep the high-frequency patterns that fool a network out of the
picture. :func:`channel_scores` and :func:`top_images` find the images of a built-in dataset that activate a channel
most, as the Deep Visualization Toolbox shows next to the optimized image.

The optimization changes pixels in ``[0, 1]`` (:mod:`cnn_explorer.pixels`), so the result is an image in the
model's own input space. Only the input gets gradients: the shared module's parameters are never written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from cnn_explorer import data
from cnn_explorer.hooks import ForwardHooks, StopForward, run_until_stopped
from cnn_explorer.images import SAMPLES, load_sample
from cnn_explorer.layers import inplace_disabled, list_layers
from cnn_explorer.model import LoadedModel
from cnn_explorer.pixels import normalize
from cnn_explorer.progress import Progress, StopFn, stop_if

__all__ = [
    "REFERENCE_SETS",
    "ReferenceSet",
    "TopImages",
    "Visualization",
    "channel_scores",
    "dataset_images",
    "default_dataset",
    "maximize_activation",
    "top_images",
    "visualizable_layers",
]


_SHAPES_SEED = 1  # the held-out seed of tinyvgg-shapes: images it was never trained on
_BLUR_RADIUS = 2  # taps on each side of the blur kernel (σ ≤ 1 px)


# ── which layers, and the forward pass up to one ────────────────────────────────────────────────────────────────


def visualizable_layers(model: LoadedModel) -> list[str]:
    """The conv and dense layers whose channels (units) can be visualized, in execution order."""
    return [info.name for info in list_layers(model) if info.kind in ("Conv2d", "Linear") and info.call == 1]


@contextmanager
def _layer_output(model: LoadedModel, layer: str) -> Iterator[Callable[[Tensor], Tensor]]:
    """``run(x)`` → the output of ``layer`` (checked by the caller) for ``x``, the forward pass stopped right after
    the layer. The hook ignores other threads' forward passes through the shared module, and is removed on exit.
    """
    found: dict[str, Tensor] = {}

    def keep(_module: nn.Module, _inputs: object, output: Tensor) -> None:
        found["output"] = output
        raise StopForward

    def run(x: Tensor) -> Tensor:
        found.clear()
        run_until_stopped(model.module, x)
        return found["output"]

    with ForwardHooks() as hooks:
        hooks.after(model.module.get_submodule(layer), keep)
        yield run


def _channel_means(output: Tensor) -> Tensor:
    """``[N, C, h, w]`` or ``[N, C]`` → ``[N, C]``: each channel's mean activation (a dense unit is its value)."""
    return output.flatten(2).mean(dim=2) if output.dim() > 2 else output


def _check_layer(model: LoadedModel, layer: str) -> None:
    if layer not in visualizable_layers(model):
        raise ValueError(
            f"{layer!r} is not a conv or dense layer of {model.name}. Layers: {', '.join(visualizable_layers(model))}."
        )


def _check_channel(model: LoadedModel, layer: str, channel: int) -> int:
    _check_layer(model, layer)
    module = model.module.get_submodule(layer)
    count = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
    if not 0 <= channel < count:
        raise ValueError(f"{layer} has channels 0…{count - 1}; got {channel}.")
    return count


# ── activation maximization ─────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Visualization:
    """An image optimized to excite one channel.

    Attributes:
        layer: The layer.
        channel: The channel (or dense unit).
        image: The optimized pixels ``[C, H, W]`` in ``[0, 1]``.
        start: The noise it started from, ``[C, H, W]``.
        start_activation: The channel's mean activation for ``start``.
        final_activation: The channel's mean activation for ``image`` (without jitter).
        history: The objective at every step (on the jittered image).
        params: The settings used.
        seconds: Wall time.
    """

    layer: str
    channel: int
    image: Tensor
    start: Tensor
    start_activation: float
    final_activation: float
    history: tuple[float, ...]
    params: dict[str, float | int]
    seconds: float = field(default=0.0, compare=False)


def _total_variation(x: Tensor) -> Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def _blur(x: Tensor, sigma: float) -> Tensor:
    taps = torch.arange(-_BLUR_RADIUS, _BLUR_RADIUS + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    out = F.conv2d(
        F.pad(x, (_BLUR_RADIUS,) * 2 + (0, 0), mode="replicate"),
        kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1),
        groups=channels,
    )
    return F.conv2d(
        F.pad(out, (0, 0) + (_BLUR_RADIUS,) * 2, mode="replicate"),
        kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1),
        groups=channels,
    )


def maximize_activation(
    model: LoadedModel,
    layer: str,
    channel: int,
    *,
    steps: int = 120,
    lr: float = 0.05,
    jitter: int | None = None,
    tv_weight: float = 0.5,
    blur_every: int = 4,
    blur_sigma: float = 0.5,
    size: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
) -> Visualization:
    """Optimize an image from noise to maximize one channel's mean activation.

    Each step: shift the image by a random offset of up to ``jitter`` pixels (wrapping around), run the network up
    to ``layer``, and take an Adam step on the pixels that raises the channel's mean activation minus
    ``tv_weight`` × its size × the image's total variation (so the penalty keeps its weight whatever the layer's
    scale); then clip the pixels to ``[0, 1]`` and, every ``blur_every`` steps, blur them slightly.

    Args:
        model: The model; runs under ``model.lock``, in-place flags restored, no hook left behind.
        layer: A conv or dense layer (:func:`visualizable_layers`).
        channel: The output channel (or dense unit) to excite.
        steps: Gradient steps.
        lr: Adam's learning rate, in pixel units.
        jitter: Largest random shift; default 1/16 of the image side (at least 1).
        tv_weight: Weight of the smoothness penalty.
        blur_every: Blur every this many steps (0: never).
        blur_sigma: Standard deviation of the blur, in pixels.
        size: Side of the optimized image; default the model's input size. A conv layer works at any size; a
            dense layer needs the model's.
        seed: Seeds the starting noise and the jitter.
        progress: Called with the fraction done after every step.
        should_stop: Polled before every step; True raises :class:`~cnn_explorer.progress.Cancelled`.

    Raises:
        ValueError: Unknown layer, channel out of range, or a setting out of range.
        Cancelled: ``should_stop`` returned True.
    """
    _check_channel(model, layer, channel)
    channels, height, width = model.input_size
    side = size or height
    if side != height and isinstance(model.module.get_submodule(layer), nn.Linear):
        raise ValueError(f"A dense layer needs the model's input size, {height}×{width}; got {side}.")
    if steps < 1 or lr <= 0 or tv_weight < 0 or blur_every < 0 or blur_sigma <= 0 or side < 8:
        raise ValueError(
            f"Need steps ≥ 1, lr > 0, tv_weight ≥ 0, blur_every ≥ 0, blur_sigma > 0 and size ≥ 8; got steps={steps}, "
            f"lr={lr}, tv_weight={tv_weight}, blur_every={blur_every}, blur_sigma={blur_sigma}, size={side}."
        )
    jitter = max(1, side // 16) if jitter is None else jitter
    params = {
        "steps": steps,
        "lr": lr,
        "jitter": jitter,
        "tv_weight": tv_weight,
        "blur_every": blur_every,
        "blur_sigma": blur_sigma,
        "size": side,
        "seed": seed,
    }
    generator = torch.Generator().manual_seed(seed)
    start = (0.5 + 0.1 * torch.randn(1, channels, side, side, generator=generator)).clamp(0, 1)
    shifts = torch.randint(-jitter, jitter + 1, (steps, 2), generator=generator).tolist()
    pixels = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([pixels], lr=lr)
    history = []
    started = time.perf_counter()
    with model.lock, inplace_disabled(model.module), _layer_output(model, layer) as run:
        with torch.no_grad():
            start_activation = float(_channel_means(run(normalize(model, start)))[0, channel])
        with torch.enable_grad():
            for step, (dy, dx) in enumerate(shifts):
                stop_if(should_stop, "The visualization was cancelled.")
                jittered = torch.roll(pixels, shifts=(dy, dx), dims=(2, 3))
                objective = _channel_means(run(normalize(model, jittered)))[0, channel]
                scale = objective.detach().abs().clamp_min(1.0)
                loss = -objective + tv_weight * scale * _total_variation(pixels)
                (pixels.grad,) = torch.autograd.grad(loss, pixels)
                optimizer.step()
                with torch.no_grad():
                    pixels.clamp_(0, 1)
                    if blur_every and (step + 1) % blur_every == 0:
                        pixels.copy_(_blur(pixels, blur_sigma))
                history.append(float(objective.detach()))
                if progress is not None:
                    progress((step + 1) / steps)
        image = pixels.detach()
        with torch.no_grad():
            final_activation = float(_channel_means(run(normalize(model, image)))[0, channel])
    return Visualization(
        layer=layer,
        channel=channel,
        image=image[0],
        start=start[0],
        start_activation=start_activation,
        final_activation=final_activation,
        history=tuple(history),
        params=params,
        seconds=time.perf_counter() - started,
    )


# ── the dataset images that excite a channel most ───────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class ReferenceSet:
    """A built-in image collection to search for a channel's favourite images.

    Attributes:
        key: Registry key.
        name: Display name.
        description: Where the images come from.
        load: ``count`` → that many images (or all, when fewer exist).
    """

    key: str
    name: str
    description: str
    load: Callable[[int], list[Image.Image]] = field(repr=False)


def _shapes(count: int) -> list[Image.Image]:
    shapes = data.SyntheticShapes(count, seed=_SHAPES_SEED)
    return [shapes[i][0] for i in range(count)]


def _digits(count: int) -> list[Image.Image]:
    split = data.digits_split()
    return list(split.test_images[:count])


def _samples(count: int) -> list[Image.Image]:
    return [load_sample(key) for key in list(SAMPLES)[:count]]


#: The collections, keyed by name.
REFERENCE_SETS: dict[str, ReferenceSet] = {
    spec.key: spec
    for spec in (
        ReferenceSet(
            "shapes",
            "Synthetic shapes",
            f"The held-out synthetic shapes (seed {_SHAPES_SEED}), never seen in training.",
            _shapes,
        ),
        ReferenceSet(
            "digits",
            "Handwritten digits",
            "The held-out 20 % of scikit-learn's handwritten digits, never seen in training.",
            _digits,
        ),
        ReferenceSet(
            "samples",
            "Sample images",
            "The app's sample images (photos, shapes and digits).",
            _samples,
        ),
    )
}


def default_dataset(model: LoadedModel) -> str:
    """Digits for a grey model, shapes otherwise."""
    return "digits" if model.input_size[0] == 1 else "shapes"


def dataset_images(key: str, count: int) -> list[Image.Image]:
    """Up to ``count`` images of the collection ``key`` (deterministic)."""
    if key not in REFERENCE_SETS:
        raise ValueError(f"Unknown image collection {key!r}. Collections: {', '.join(REFERENCE_SETS)}.")
    if count < 1:
        raise ValueError(f"Ask for at least one image; got {count}.")
    return REFERENCE_SETS[key].load(count)


def channel_scores(
    model: LoadedModel,
    layer: str,
    images: Sequence[Image.Image],
    *,
    batch: int = 64,
    progress: Progress | None = None,
    should_stop: StopFn | None = None,
) -> Tensor:
    """Every channel's mean activation at ``layer`` for each image, ``[N, C]`` (the network stops after the layer).

    Raises:
        ValueError: Unknown layer or no images.
        Cancelled: ``should_stop`` returned True.
    """
    if not images:
        raise ValueError("Give at least one image.")
    _check_layer(model, layer)
    rows = []
    with model.lock, torch.no_grad(), _layer_output(model, layer) as run:
        for first in range(0, len(images), batch):
            stop_if(should_stop, "The search was cancelled.")
            x = torch.cat([model.preprocess(image) for image in images[first : first + batch]])
            rows.append(_channel_means(run(x)))
            if progress is not None:
                progress(min(first + batch, len(images)) / len(images))
    return torch.cat(rows)


@dataclass(frozen=True)
class TopImages:
    """The images that activate a channel most.

    Attributes:
        channel: The channel.
        indices: Positions in the image list, strongest first.
        scores: The channel's mean activation for each.
        activating: How many images of the whole list activate the channel (a mean activation above zero).
        searched: How many images were searched.
    """

    channel: int
    indices: tuple[int, ...]
    scores: tuple[float, ...]
    activating: int = 0
    searched: int = 0

    @property
    def note(self) -> str | None:
        """What the images shown are when some of them do not activate the channel at all; None when all do."""
        if self.activating >= len(self.indices):
            return None
        if self.activating == 0:
            return (
                f"No image of the {self.searched} activates this channel on average over its map (every mean is "
                "below zero): these are the least negative, the ones that switch it off least."
            )
        return (
            f"Only {self.activating} of the {self.searched} images activate this channel on average over its map "
            f"(a mean above zero); the other {len(self.indices) - self.activating} shown are the least negative."
        )


def top_images(scores: Tensor, channel: int, k: int = 9) -> TopImages:
    """The ``k`` images with the largest ``scores[:, channel]`` (from :func:`channel_scores`), strongest first, and
    how many of all the images activate the channel at all (a channel before its ReLU is often negative on every
    image; then the "top" images are only the least negative, and :attr:`TopImages.note` says so)."""
    if scores.dim() != 2 or not 0 <= channel < scores.shape[1]:
        raise ValueError(f"Channel {channel} is not a column of scores shaped {tuple(scores.shape)}.")
    column = scores[:, channel]
    values, indices = column.topk(min(k, scores.shape[0]))
    return TopImages(
        channel,
        tuple(int(i) for i in indices),
        tuple(float(v) for v in values),
        activating=int((column > 0).sum()),
        searched=scores.shape[0],
    )
