"""The model registry: one contract over every registered model, the shipped accuracy, the hub cache."""

import errno
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision.models
from PIL import Image

from cnn_explorer import hub
from cnn_explorer.defaults import heldout_dataset
from cnn_explorer.sources.builtin import ASSETS_MODELS
from cnn_explorer.sources.imagenet import IMAGENET_MODELS
from cnn_explorer.training import evaluate
from cnn_explorer.zoo import ModelUnavailable, available_models, load_model, model_entry, predict

BUILTIN = ("tinyvgg-shapes", "lenet5-digits")


@pytest.fixture
def photo() -> Image.Image:
    rng = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (300, 400, 3), dtype=torch.uint8, generator=rng)
    return Image.fromarray(pixels.numpy())


def test_registry_lists_builtin_and_imagenet_models():
    names = available_models()
    assert set(BUILTIN) | set(IMAGENET_MODELS) <= set(names)
    assert names.index("tinyvgg-shapes") < names.index("alexnet")  # built-in first


@pytest.mark.parametrize("name", [*BUILTIN, *IMAGENET_MODELS])
def test_every_model_meets_the_contract(name, cached_hub, photo):
    model = load_model(name)
    assert model.name == name
    assert not model.module.training
    assert all(not m.training for m in model.module.modules())
    x = model.preprocess(photo)
    assert x.shape == (1, *model.input_size)
    assert x.dtype == torch.float32
    with torch.no_grad():
        logits = model.module(x)
    assert logits.shape == (1, len(model.class_names))
    assert len(set(model.class_names)) == len(model.class_names)
    assert model.summary and model.card
    assert all(p.device.type == "cpu" for p in model.module.parameters())


@pytest.mark.parametrize("name", IMAGENET_MODELS)
def test_imagenet_preprocessing_and_classes_come_from_the_weights(name, cached_hub, photo):
    weights = torchvision.models.get_model_weights(name).DEFAULT
    model = load_model(name)
    assert model.class_names == tuple(weights.meta["categories"])
    assert torch.equal(model.preprocess(photo)[0], weights.transforms()(photo))
    # The weights really are the cached file's.
    cached = torch.load(hub._checkpoint_path(weights), weights_only=True)
    for key, value in model.module.state_dict().items():
        assert torch.equal(value, cached[key]), key


@pytest.mark.parametrize("name", BUILTIN)
def test_shipped_models_reproduce_their_reported_heldout_accuracy(name):
    model = load_model(name)
    meta = json.loads((ASSETS_MODELS / f"{name}.json").read_text())
    _, accuracy = evaluate(model.module, heldout_dataset(name, model.preprocess))
    assert accuracy == pytest.approx(meta["heldout"]["accuracy"], abs=1e-9)
    assert accuracy >= 0.95  # the goal of both shipped models
    assert f"{accuracy:.2%}" in model.card


def test_predict_ranks_softmax_of_the_logits():
    model = load_model("lenet5-digits")
    x = torch.randn(1, *model.input_size, generator=torch.Generator().manual_seed(1))
    prediction = predict(model, x, k=3)
    with torch.no_grad():
        expected = torch.softmax(model.module(x)[0], dim=0)
    assert torch.allclose(prediction.probabilities, expected)
    assert prediction.probabilities.sum().item() == pytest.approx(1.0, abs=1e-6)
    top = expected.argsort(descending=True)[:3].tolist()
    assert [index for index, _, _ in prediction.top] == top
    assert [name for _, name, _ in prediction.top] == [model.class_names[i] for i in top]


def test_unknown_model_names_the_known_ones():
    with pytest.raises(KeyError, match=r"lenet5-digits.*alexnet"):
        load_model("resnet1000")


def test_offline_and_not_cached_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("CNN_EXPLORER_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable) as raised:
        load_model("resnet18")
    weights = torchvision.models.get_model_weights("resnet18").DEFAULT
    assert str(raised.value) == (
        "resnet18's weights are not on this computer and could not be downloaded (no internet connection). "
        "To use it: connect to the internet and choose it again, or put the file resnet18-f37072fd.pth "
        f"(from {weights.url}) in {tmp_path / 'hub' / 'checkpoints'}."
    )
    assert time.perf_counter() - started < 5
    assert not list(tmp_path.rglob("*.pth")) and not list(tmp_path.rglob(".resnet18*"))  # no partial file
    assert not model_entry("resnet18").is_ready()


def test_offline_flag_refuses_without_trying(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("CNN_EXPLORER_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried the network"))
    with pytest.raises(ModelUnavailable) as raised:
        load_model("alexnet")
    assert str(raised.value).startswith(
        "alexnet's weights are not on this computer and could not be downloaded (the app is set to work offline). "
        "To use it: start the app online without CNN_EXPLORER_OFFLINE set, or put the file alexnet-"
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")), "no internet connection"),
        (urllib.error.URLError(OSError(errno.ENETUNREACH, "Network is unreachable")), "no internet connection"),
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "no internet connection"),
        (urllib.error.URLError(TimeoutError("timed out")), "the download timed out"),
        (TimeoutError("The read operation timed out"), "the download timed out"),
        (urllib.error.HTTPError("https://x", 404, "Not Found", {}, None), "the server answered 404 Not Found"),
        (OSError(errno.ENOSPC, "No space left on device"), "it could not be saved: no space left on device"),
        (urllib.error.URLError(ssl.SSLError(1, "certificate verify failed")), "the connection failed"),
    ],
)
def test_a_failed_download_says_why_in_words(tmp_path, monkeypatch, error: Exception, reason: str) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("CNN_EXPLORER_OFFLINE", raising=False)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    with pytest.raises(ModelUnavailable) as raised:
        load_model("resnet18")
    message = str(raised.value)
    assert message.startswith(f"resnet18's weights are not on this computer and could not be downloaded ({reason}).")
    assert "urlopen" not in message and "Errno" not in message and "<" not in message


def test_damaged_cached_weights_say_how_to_recover(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.get_model_weights("resnet18").DEFAULT
    path = hub._checkpoint_path(weights)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable, match="Delete the file"):
        load_model("resnet18")


def test_a_malicious_pickle_is_not_executed(tmp_path, monkeypatch):
    # weights_only=True refuses arbitrary objects: loading must fail cleanly, never run the payload.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT
    path = hub._checkpoint_path(weights)
    path.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"weight": Payload()}, path)
    with pytest.raises(ModelUnavailable):
        load_model("mobilenet_v3_small")
    assert not marker.exists()
