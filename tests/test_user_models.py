"""The user's own models, kept (cnn_explorer.user_models): added models are listed, loadable by every page through the
zoo, described in plain JSON and removable; names never reach the file system unchecked. The checks of the files
themselves are in tests/test_model_files.py."""

import json
from pathlib import Path

import pytest
import torch
from own_models import (
    a_photo,
    models_left,
    seeded,
    state_dict_bytes,
    torchscript_bytes,
)
from PIL import Image

import cnn_explorer
from cnn_explorer import user_models
from cnn_explorer.architectures import TinyVGG
from cnn_explorer.user_models import add_model, remove_model
from cnn_explorer.zoo import ModelUnavailable, available_models, load_model, model_entry


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def photo() -> Image.Image:
    return a_photo()


# ── the registry: listing, loading, removing ────────────────────────────────────────────────────────────────────


def test_added_models_are_listed_loaded_and_removed(home, photo):
    weights = state_dict_bytes(seeded(lambda: TinyVGG(num_classes=2)))
    first = add_model(weights, kind="state_dict", architecture="TinyVGG", num_classes=2, name="My Shapes!")
    second = add_model(weights, kind="state_dict", architecture="TinyVGG", num_classes=2, name="my shapes")
    assert (first, second) == ("my-shapes", "my-shapes-2")  # a taken name gets a number
    assert available_models()[-2:] == [second, first]  # newest first, after every other model
    assert model_entry(first).family == "your model" and model_entry(first).is_ready()
    assert [m.name for m in user_models.list_user_models()] == [second, first]
    assert cnn_explorer.load_model(first).name == first  # the public API

    remove_model(first)
    assert first not in available_models()
    with pytest.raises(KeyError):
        load_model(first)
    with pytest.raises(KeyError):
        remove_model(first)
    # Names are never reused: caches keyed by name never show the removed model for a new one.
    assert add_model(weights, kind="state_dict", architecture="TinyVGG", num_classes=2, name="My Shapes!") == (
        "my-shapes-3"
    )
    assert models_left(home) == ["my-shapes-2", "my-shapes-3"]


@pytest.mark.parametrize("name", ["../runs", "my-../../etc", "my-", "tinyvgg-shapes", "my-Shapes"])
def test_names_outside_the_user_s_models_never_reach_the_file_system(name, home):
    with pytest.raises(KeyError):
        remove_model(name)
    with pytest.raises(KeyError):
        user_models.load_user_model(name)


def test_a_damaged_stored_model_is_unavailable_with_what_to_do(home):
    name = add_model(
        state_dict_bytes(seeded(lambda: TinyVGG(num_classes=2))),
        kind="state_dict",
        architecture="TinyVGG",
        num_classes=2,
    )
    (home / "models" / name / "weights.pt").write_bytes(b"damaged")
    with pytest.raises(ModelUnavailable, match="Remove it and add the file again"):
        load_model(name)
    (home / "models" / name / "model.json").write_text("{")
    assert name not in available_models()  # a damaged description is not offered


def test_the_description_is_plain_json(home):
    name = add_model(
        state_dict_bytes(seeded(lambda: TinyVGG(num_classes=2))),
        kind="state_dict",
        architecture="TinyVGG",
        num_classes=2,
        class_names=["yes", "no"],
        file_name="weights.pth",
    )
    description = json.loads((home / "models" / name / "model.json").read_text())
    assert description["kind"] == "state_dict" and description["architecture"] == "TinyVGG"
    assert description["architecture_args"] == {"in_channels": 3, "channels": 10, "input_size": 64}
    assert description["class_names"] == ["yes", "no"] and description["input_size"] == [3, 64, 64]
    assert description["file"]["name"] == "weights.pth" and len(description["file"]["sha256"]) == 64


@pytest.mark.parametrize("kind", ["state_dict", "torchscript"])
def test_every_added_model_meets_the_zoo_contract(kind, photo):
    module = seeded(lambda: TinyVGG(num_classes=3))
    content = state_dict_bytes(module) if kind == "state_dict" else torchscript_bytes(module)
    name = add_model(content, kind=kind, architecture="TinyVGG", num_classes=3, input_size=(3, 64, 64))
    model = load_model(name)
    assert model.name == name
    assert all(not m.training for m in model.module.modules())
    x = model.preprocess(photo)
    assert x.shape == (1, *model.input_size) and x.dtype == torch.float32
    with torch.no_grad():
        assert model.module(x).shape == (1, len(model.class_names))
    assert model.summary and model.card
