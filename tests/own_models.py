"""Shared by the tests of the user's own models (tests/test_user_models.py, tests/test_model_files.py): a photo, and
model files made from seeded modules."""

import io
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from cnn_explorer.zoo import load_model


def a_photo() -> Image.Image:
    """A 120×90 photo of seeded noise."""
    pixels = torch.randint(0, 256, (90, 120, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return Image.fromarray(pixels.numpy())


def seeded(build, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build().eval()


def state_dict_bytes(module: nn.Module | dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(module.state_dict() if isinstance(module, nn.Module) else module, buffer)
    return buffer.getvalue()


def torchscript_bytes(module: nn.Module, example: torch.Tensor | None = None) -> bytes:
    buffer = io.BytesIO()
    scripted = torch.jit.trace(module, example) if example is not None else torch.jit.script(module)
    torch.jit.save(scripted, buffer)
    return buffer.getvalue()


def same_predictions(original: nn.Module, name: str, photo: Image.Image) -> None:
    model = load_model(name)
    x = model.preprocess(photo)
    assert x.shape == (1, *model.input_size)
    with torch.no_grad():
        assert torch.equal(model.module(x), original(x))


def models_left(home: Path) -> list[str]:
    folder = home / "models"
    return sorted(p.name for p in folder.iterdir() if p.name != ".names") if folder.exists() else []
