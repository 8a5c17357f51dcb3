"""What the app must know of torchvision's classification models before it imports torchvision.

Importing any part of torchvision imports all of it — its models, detection ops and ``torch._dynamo`` — about a
second of the app's cold start on a laptop, spent before the first page even when the page shows a built-in model.
The model picker needs only names, which ImageNet models are downloaded, and a line about each: they are written
here, and a test checks them against torchvision itself (``tests/test_torchvision_catalog.py``). Everything else
(building a model, its weights' preprocessing and class names) imports torchvision through :func:`models`, when it is
needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

__all__ = ["CLASSIFIERS", "DEFAULT_WEIGHTS", "DefaultWeights", "models"]


@dataclass(frozen=True)
class DefaultWeights:
    """A model's default torchvision weights, as ``torchvision.models.get_model_weights(name).DEFAULT`` describes them.

    Attributes:
        name: The weights' name (``str(weights)``), e.g. ``"ResNet18_Weights.IMAGENET1K_V1"``.
        file: The checkpoint's file name (the last part of ``weights.url``), as torch's hub cache stores it.
        parameters: ``weights.meta["num_params"]``.
        top1: ``weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]``, in percent.
    """

    name: str
    file: str
    parameters: int
    top1: float


DEFAULT_WEIGHTS: dict[str, DefaultWeights] = {
    "alexnet": DefaultWeights("AlexNet_Weights.IMAGENET1K_V1", "alexnet-owt-7be5be79.pth", 61_100_840, 56.522),
    "vgg16": DefaultWeights("VGG16_Weights.IMAGENET1K_V1", "vgg16-397923af.pth", 138_357_544, 71.592),
    "resnet18": DefaultWeights("ResNet18_Weights.IMAGENET1K_V1", "resnet18-f37072fd.pth", 11_689_512, 69.758),
    "mobilenet_v3_small": DefaultWeights(
        "MobileNet_V3_Small_Weights.IMAGENET1K_V1", "mobilenet_v3_small-047dcff4.pth", 2_542_856, 67.668
    ),
}
"""The default weights of the ImageNet models the app offers, by model name."""

CLASSIFIERS: tuple[str, ...] = (
    *("alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny"),
    *("densenet121", "densenet161", "densenet169", "densenet201"),
    *(f"efficientnet_b{i}" for i in range(8)),
    *("efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t"),
    *("mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "mobilenet_v3_large"),
    "mobilenet_v3_small",
    *("regnet_x_16gf", "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_400mf", "regnet_x_800mf"),
    *("regnet_x_8gf", "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf", "regnet_y_32gf", "regnet_y_3_2gf"),
    *("regnet_y_400mf", "regnet_y_800mf", "regnet_y_8gf"),
    *("resnet101", "resnet152", "resnet18", "resnet34", "resnet50"),
    *("resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d"),
    *("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"),
    *("squeezenet1_0", "squeezenet1_1", "swin_b", "swin_s", "swin_t", "swin_v2_b", "swin_v2_s", "swin_v2_t"),
    *("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"),
    *("vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2"),
)
"""torchvision's classification models, ``torchvision.models.list_models(module=torchvision.models)``, in its order."""


def models() -> ModuleType:
    """``torchvision.models``, imported on first use (through the project's guard for a CPU torch beside a CUDA
    torchvision, :mod:`cnn_explorer._compat`, which the package's ``__init__`` has already run)."""
    import torchvision.models

    return torchvision.models
