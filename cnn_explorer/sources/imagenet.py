"""torchvision's ImageNet models (family ``"ImageNet"``): their weights come from torch's hub cache, downloaded on
first use (:mod:`cnn_explorer.hub`); class names, preprocessing and figures come from torchvision's weights metadata.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import torch

from cnn_explorer.hub import _checkpoint_path, _download, checkpoint_file, weights_preprocess
from cnn_explorer.model import LoadedModel, ModelEntry, ModelUnavailable
from cnn_explorer.model_registry import load, register_source
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.progress import ByteProgress
from cnn_explorer.torchvision_catalog import DEFAULT_WEIGHTS, models

if TYPE_CHECKING:
    import torchvision.models

__all__ = ["IMAGENET_MODELS", "entries", "transfer_base"]

IMAGENET_MODELS = ("alexnet", "vgg16", "resnet18", "mobilenet_v3_small")


@register_source(order=20)
@cache
def entries() -> dict[str, ModelEntry]:
    """The :data:`IMAGENET_MODELS`, offered even while their weights still need a download (described from
    :mod:`~cnn_explorer.torchvision_catalog`: listing them imports no torchvision)."""
    return {
        name: ModelEntry(
            name=name,
            family="ImageNet",
            summary=_imagenet_summary(name),
            is_ready=lambda name=name: checkpoint_file(DEFAULT_WEIGHTS[name].file).exists(),
            load=lambda progress, name=name: _load_imagenet(name, progress),
        )
        for name in IMAGENET_MODELS
    }


def _imagenet_summary(name: str) -> str:
    weights = DEFAULT_WEIGHTS[name]
    return (
        f"{name} · torchvision {weights.name} · {weights.parameters / 1e6:.1f} M parameters · "
        f"1000 ImageNet classes · top-1 {weights.top1:.1f} %"
    )


def _load_imagenet(name: str, progress: ByteProgress | None) -> LoadedModel:
    weights = models().get_model_weights(name).DEFAULT
    path = _checkpoint_path(weights)
    if not path.exists():
        _download(weights.url, path, progress, name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module = models().get_model(name, weights=None)
        module.load_state_dict(state)
    except Exception as err:  # a damaged or hostile file raises anything from OSError to UnpicklingError
        raise ModelUnavailable(
            f"The cached weights for {name} at {path} are damaged ({err}). Delete the file and load the model "
            "again to download a fresh copy."
        ) from err
    preprocess = weights_preprocess(weights)
    return LoadedModel(
        name=name,
        module=module.eval(),
        input_size=(3, preprocess.crop, preprocess.crop),
        class_names=tuple(weights.meta["categories"]),
        preprocess=preprocess,
        summary=_imagenet_summary(name),
        card=_imagenet_card(name, weights, preprocess),
    )


def _imagenet_card(name: str, weights: torchvision.models.WeightsEnum, preprocess: Preprocess) -> str:
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    steps = "\n".join(f"{i}. {step}" for i, step in enumerate(preprocess.steps(), 1))
    return (
        f"### {name} (torchvision `{weights}`)\n\n"
        f"- **Data:** ImageNet-1K, 1000 classes\n"
        f"- **Parameters:** {weights.meta['num_params']:,}\n"
        f"- **Accuracy (ImageNet-1K validation):** top-1 {metrics['acc@1']:.2f} %, top-5 {metrics['acc@5']:.2f} %\n"
        f"- **Training recipe:** {weights.meta.get('recipe', 'see torchvision')}\n"
        f"- **Weights:** {weights.url}\n\n"
        f"**Preprocessing**\n\n{steps}\n"
    )


def transfer_base(name: str, progress: ByteProgress | None = None, pretrained: bool = True) -> LoadedModel:
    """The base model of a transfer run, loaded for :func:`~cnn_explorer.architectures.build_model`.

    Args:
        name: Any registered model.
        progress: Called with (bytes done, total) while ImageNet weights download.
        pretrained: False gives an ImageNet model's architecture without its weights (no download): to rebuild a
            finished transfer run whose own checkpoint holds every weight. Other models load as they are.

    Raises:
        KeyError: Unknown name.
        ModelUnavailable: The weights are neither cached nor downloadable.
    """
    if pretrained or name not in IMAGENET_MODELS:
        return load(name, progress)
    crop = models().get_model_weights(name).DEFAULT.transforms().crop_size[0]
    module = models().get_model(name, weights=None).eval()
    return LoadedModel(name, module, (3, crop, crop), (), Preprocess(crop, crop), summary=name, card="")
