"""Model files the user brings (cnn_explorer.model_files, through user_models.add_model): state_dict and TorchScript
round trips predict exactly like the original module, and files that cannot work are refused with a message that says
why (a pickle that would run code is refused without running it)."""

import io
import pickle
from pathlib import Path

import pytest
import torch
import torchvision.models
from own_models import (
    a_photo,
    models_left,
    same_predictions,
    seeded,
    state_dict_bytes,
    torchscript_bytes,
)
from PIL import Image

from cnn_explorer import model_files, user_models
from cnn_explorer.architectures import LeNet5, TinyVGG
from cnn_explorer.attribution import METHODS, cam_layers, explain
from cnn_explorer.layers import list_layers
from cnn_explorer.user_models import ModelFileError, TorchScriptModel, add_model
from cnn_explorer.zoo import available_models, load_model


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def photo() -> Image.Image:
    return a_photo()


# ── state_dict round trips ──────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("architecture", "build", "input_size"),
    [
        ("TinyVGG", lambda: TinyVGG(num_classes=4), (3, 64, 64)),
        ("TinyVGG", lambda: TinyVGG(num_classes=4, in_channels=1, channels=6, input_size=32), (1, 32, 32)),
        ("LeNet5", lambda: LeNet5(num_classes=4), (1, 32, 32)),
    ],
)
def test_our_architectures_round_trip_with_sizes_read_from_the_weights(architecture, build, input_size, photo):
    original = seeded(build)
    name = add_model(state_dict_bytes(original), kind="state_dict", architecture=architecture, num_classes=4)
    assert name in available_models()
    model = load_model(name)
    assert model.input_size == input_size
    assert model.preprocess.grayscale == (input_size[0] == 1)
    assert model.preprocess.mean is None  # none given: pixels in [0, 1]
    assert model.class_names == ("class 0", "class 1", "class 2", "class 3")
    same_predictions(original, name, photo)


def test_a_torchvision_resnet18_round_trips_with_imagenet_preprocessing(photo):
    original = seeded(lambda: torchvision.models.resnet18(num_classes=7))
    name = add_model(
        state_dict_bytes(original), kind="state_dict", architecture="resnet18", num_classes=7, name="flowers"
    )
    assert name == "my-flowers"
    model = load_model(name)
    transforms = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    assert model.input_size == (3, 224, 224)
    assert model.preprocess.mean == tuple(transforms.mean) and model.preprocess.std == tuple(transforms.std)
    assert torch.equal(model.preprocess(photo)[0], transforms(photo))  # exactly torchvision's preprocessing
    same_predictions(original, name, photo)
    assert "resnet18" in model.summary and "7 classes" in model.summary


def test_a_torchvision_model_with_1000_classes_gets_the_imagenet_names():
    original = seeded(lambda: torchvision.models.squeezenet1_1())
    name = add_model(state_dict_bytes(original), kind="state_dict", architecture="squeezenet1_1", num_classes=1000)
    categories = torchvision.models.SqueezeNet1_1_Weights.DEFAULT.meta["categories"]
    assert load_model(name).class_names == tuple(categories)


def test_a_training_checkpoint_and_data_parallel_prefixes_are_unwrapped(photo):
    original = seeded(lambda: TinyVGG(num_classes=3))
    state = {f"module.{k}": v for k, v in original.state_dict().items()}
    checkpoint = {"epoch": 12, "state_dict": state, "optimizer": {"lr": 0.1}}
    name = add_model(state_dict_bytes(checkpoint), kind="state_dict", architecture="TinyVGG", num_classes=3)
    same_predictions(original, name, photo)
    # What is kept is the plain state_dict, readable with weights_only=True.
    kept = torch.load(user_models.models_dir() / name / "weights.pt", weights_only=True)
    assert kept.keys() == original.state_dict().keys()


def test_mean_std_and_per_image_standardization():
    weights = state_dict_bytes(seeded(lambda: TinyVGG(num_classes=2)))
    name = add_model(weights, kind="state_dict", architecture="TinyVGG", num_classes=2, mean=[0.5] * 3, std=[0.25] * 3)
    assert load_model(name).preprocess.mean == (0.5, 0.5, 0.5)
    name = add_model(weights, kind="state_dict", architecture="TinyVGG", num_classes=2, standardize=True)
    assert load_model(name).preprocess.per_image_standardization
    for bad, message in [
        ({"mean": [0.5] * 3}, "both the mean and the standard deviation"),
        ({"mean": [0.5], "std": [0.2]}, "per input channel (3)"),
        ({"mean": [0.5] * 3, "std": [0.2, 0.0, 0.2]}, "above 0"),
        ({"mean": [0.5] * 3, "std": [0.2] * 3, "standardize": True}, "not both"),
    ]:
        with pytest.raises(ModelFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
            add_model(weights, kind="state_dict", architecture="TinyVGG", num_classes=2, **bad)


# ── class names ─────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "content",
    [b"cat\ndog\nbird\n", b"\xef\xbb\xbfcat\r\n\r\ndog\r\n bird \r\n\r\n", b'["cat", "dog", "bird"]'],
    ids=["lines", "bom-crlf-blank-lines", "json"],
)
def test_a_class_names_file_one_per_line_or_json(content):
    weights = state_dict_bytes(seeded(lambda: TinyVGG(num_classes=3)))
    name = add_model(weights, kind="state_dict", architecture="TinyVGG", num_classes=3, class_names=content)
    assert load_model(name).class_names == ("cat", "dog", "bird")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"cat\ndog\n", "2 class names for 3 outputs"),
        (b"cat\ndog\ncat\n", "repeated: cat"),
        (b'["cat", 2, "bird"]', "list of strings"),
        (b'["cat", "dog"', "not valid JSON"),
        (b"\xff\xfe\x00c", "not UTF-8"),
        (b"\n\n", "holds no names"),
    ],
)
def test_class_names_that_do_not_fit_are_refused(content, message, home):
    weights = state_dict_bytes(seeded(lambda: TinyVGG(num_classes=3)))
    with pytest.raises(ModelFileError, match=message):
        add_model(weights, kind="state_dict", architecture="TinyVGG", num_classes=3, class_names=content)
    assert models_left(home) == []


# ── TorchScript ─────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("how", ["script", "trace"])
def test_a_torchscript_archive_round_trips(how, photo, home):
    original = seeded(lambda: TinyVGG(num_classes=5))
    example = torch.zeros(1, 3, 64, 64) if how == "trace" else None
    name = add_model(
        torchscript_bytes(original, example),
        kind="torchscript",
        input_size=(3, 64, 64),
        class_names=["a", "b", "c", "d", "e"],
        file_name="shapes.pt",
    )
    assert name == "my-shapes"
    assert (home / "models" / name / "model.ts").exists()
    model = load_model(name)
    assert isinstance(model.module, TorchScriptModel)
    assert model.class_names == ("a", "b", "c", "d", "e")
    assert "TorchScript" in model.summary and "What works with a TorchScript model" in model.card
    same_predictions(original, name, photo)


def test_torchscript_needs_its_input_size_and_it_must_fit():
    archive = torchscript_bytes(seeded(lambda: TinyVGG(num_classes=5)))
    with pytest.raises(ModelFileError, match="needs its input size"):
        add_model(archive, kind="torchscript")
    with pytest.raises(ModelFileError, match=r"fails on a 3×32×32 input .*Give the input size it was trained on"):
        add_model(archive, kind="torchscript", input_size=(3, 32, 32))
    with pytest.raises(ModelFileError, match="gives 5 scores, not 4"):
        add_model(archive, kind="torchscript", input_size=(3, 64, 64), num_classes=4)
    with pytest.raises(ModelFileError, match="square side"):
        add_model(archive, kind="torchscript", input_size=(3, 64, 48))


def test_what_works_on_a_torchscript_model_and_what_says_why(photo):
    original = seeded(lambda: TinyVGG(num_classes=5))
    name = add_model(torchscript_bytes(original), kind="torchscript", input_size=(3, 64, 64))
    model = load_model(name)
    x = model.preprocess(photo)
    eager = load_model(add_model(state_dict_bytes(original), kind="state_dict", architecture="TinyVGG", num_classes=5))
    # Pixel methods need only input gradients and forward passes: the same maps as on the eager module.
    for method in ("saliency", "integrated_gradients", "occlusion"):
        assert torch.allclose(explain(model, x, method).attribution, explain(eager, x, method).attribution, atol=1e-6)
    # The layers are hidden: no CAM layer, no layer table beyond the whole network, and the reasons are data.
    assert cam_layers(model) == {}
    assert [layer.kind for layer in list_layers(model)] == ["TorchScriptModel"]
    with pytest.raises(ValueError, match="no convolutional layer"):
        explain(model, x, "gradcam")
    # The model declares what it allows (the views' needs and their titles are the app's: tests/app).
    assert model.capabilities == user_models.TORCHSCRIPT and not model.capabilities.hooks
    assert "ScriptModules, which accept no forward hooks" in model.capabilities.why_not_hooks
    assert "state_dict" in model.capabilities.instead and model.capabilities.kind == "TorchScript model"
    assert eager.capabilities.hooks and eager.capabilities.task == "classification"
    assert user_models.is_torchscript(name) and not user_models.is_torchscript(eager.name)
    assert all(METHODS[key].uses_layer for key in METHODS if "cam" in key)  # hidden by cam_layers() == {}


def test_a_scripted_resnet_with_in_place_relus_explains_with_saliency():
    original = seeded(lambda: torchvision.models.resnet18(num_classes=3))
    name = add_model(torchscript_bytes(original), kind="torchscript", input_size=(3, 64, 64))
    model = load_model(name)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    result = explain(model, x, "saliency", target=1)
    x_eager = x.clone().requires_grad_(True)
    original(x_eager)[0, 1].backward()
    assert torch.allclose(result.attribution, x_eager.grad.abs(), atol=1e-6)


# ── files that are refused ──────────────────────────────────────────────────────────────────────────────────────


def test_mismatched_keys_and_shapes_are_listed(home):
    resnet = state_dict_bytes(seeded(lambda: torchvision.models.resnet18(num_classes=5)))
    with pytest.raises(ModelFileError) as refused:
        add_model(resnet, kind="state_dict", architecture="resnet18", num_classes=10)
    message = str(refused.value)
    assert "2 shape mismatches: fc.weight is [5, 512] in the file, [10, 512] in resnet18" in message
    assert "fc.bias is [5] in the file, [10] in resnet18" in message
    assert "missing" not in message and "unexpected" not in message

    with pytest.raises(ModelFileError) as refused:
        add_model(resnet, kind="state_dict", architecture="TinyVGG", num_classes=5)
    message = str(refused.value)
    assert "10 missing keys: conv_1_1.weight, conv_1_1.bias," in message
    assert "and 2 more." in message  # the first 8 are named
    assert "122 unexpected keys: conv1.weight, bn1.weight" in message and "and 114 more." in message

    tiny = seeded(lambda: TinyVGG(num_classes=3)).state_dict()
    del tiny["output.bias"]
    tiny["extra.weight"] = torch.zeros(1)
    with pytest.raises(ModelFileError, match=r"1 missing key: output\.bias\. 1 unexpected key: extra\.weight\."):
        add_model(state_dict_bytes(tiny), kind="state_dict", architecture="TinyVGG", num_classes=3)
    assert models_left(home) == []


class _CreatesAFile:
    """A pickle payload: unpickling it calls ``open(path, "w")``, creating the file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("wrapping", ["inside a torch.save dict", "a plain pickle"])
@pytest.mark.parametrize("kind", ["state_dict", "torchscript"])
def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, home, wrapping, kind):
    # The payload works: a normal unpickling creates its file.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_CreatesAFile(control))).close()
    assert control.exists()

    target = tmp_path / "pwned"
    payload = _CreatesAFile(target)
    if wrapping == "a plain pickle":
        content = pickle.dumps(payload)
    else:
        content = state_dict_bytes({"conv.weight": torch.zeros(2), "evil": payload})
    with pytest.raises(ModelFileError) as refused:
        add_model(content, kind=kind, architecture="TinyVGG", num_classes=10, input_size=(3, 64, 64))
    assert not target.exists()
    if kind == "state_dict" and wrapping != "a plain pickle":
        assert "would import and run Python code (" in str(refused.value) and "open)" in str(refused.value)
        assert "torch.save(model.state_dict(), path)" in str(refused.value)
    assert models_left(home) == []


def test_a_whole_pickled_model_is_refused_with_what_to_save_instead():
    buffer = io.BytesIO()
    torch.save(seeded(lambda: TinyVGG(num_classes=2)), buffer)
    with pytest.raises(ModelFileError, match=r"TinyVGG\), so none of it was run\. It is probably a whole model"):
        add_model(buffer.getvalue(), kind="state_dict", architecture="TinyVGG", num_classes=2)


@pytest.mark.parametrize(
    ("content", "kind", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "state_dict", "not a PyTorch file"),
        (bytes(range(256)) * 4, "torchscript", "not a TorchScript archive"),
        (b"", "state_dict", "empty"),
        ("truncated", "state_dict", "not a PyTorch file, or it is damaged"),
        ("torchscript", "state_dict", "add it as TorchScript"),
        ("state_dict", "torchscript", "add it as a state_dict"),
        ("tensor", "state_dict", "holds a Tensor, not a state_dict"),
    ],
)
def test_garbage_damaged_and_the_wrong_kind_get_a_clear_message(content, kind, message, home):
    module = seeded(lambda: TinyVGG(num_classes=2))
    content = {
        "truncated": state_dict_bytes(module)[:5000],
        "torchscript": torchscript_bytes(module),
        "state_dict": state_dict_bytes(module),
        "tensor": _tensor_bytes(),
    }.get(content, content)
    with pytest.raises(ModelFileError, match=message):
        add_model(content, kind=kind, architecture="TinyVGG", num_classes=2, input_size=(3, 64, 64))
    assert models_left(home) == []


def _tensor_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save(torch.zeros(3), buffer)
    return buffer.getvalue()


def test_files_over_the_size_cap_are_refused_while_copying(monkeypatch, home, tmp_path):
    weights = state_dict_bytes(seeded(lambda: TinyVGG(num_classes=2)))
    monkeypatch.setattr(model_files, "MAX_BYTES", len(weights) - 1)
    path = tmp_path / "weights.pt"
    path.write_bytes(weights)
    for source in (weights, path, io.BytesIO(weights)):
        with pytest.raises(ModelFileError, match="larger than"):
            add_model(source, kind="state_dict", architecture="TinyVGG", num_classes=2)
    assert models_left(home) == []


def test_arguments_are_checked_before_the_file_is_read():
    with pytest.raises(ModelFileError, match="Unknown kind"):
        add_model(b"x", kind="onnx")
    with pytest.raises(ModelFileError, match=r"Unknown architecture 'ResNet-18'.*resnet18"):
        add_model(b"x", kind="state_dict", architecture="ResNet-18", num_classes=2)
    with pytest.raises(ModelFileError, match="number of classes"):
        add_model(b"x", kind="state_dict", architecture="TinyVGG")
    with pytest.raises(ModelFileError, match="from 1 to"):
        add_model(b"x", kind="state_dict", architecture="TinyVGG", num_classes=0)
