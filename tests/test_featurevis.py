"""What a filter wants to see: activation maximization raises its channel, leaves the shared model as it found it,
and the top dataset images are those a plain forward pass ranks highest."""

import pytest
import torch
import torchvision.models
from torch import nn

from cnn_explorer.architectures import LeNet5, TinyVGG
from cnn_explorer.attribution import Cancelled
from cnn_explorer.featurevis import (
    REFERENCE_SETS,
    channel_scores,
    dataset_images,
    default_dataset,
    maximize_activation,
    top_images,
    visualizable_layers,
)
from cnn_explorer.layers import capture_activations
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.zoo import LoadedModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _wrap(module: nn.Module, input_size: tuple[int, int, int], preprocess: Preprocess) -> LoadedModel:
    return LoadedModel("test", module.eval(), input_size, tuple(map(str, range(10))), preprocess, "test", "test")


@pytest.fixture(scope="module")
def tinyvgg() -> LoadedModel:
    torch.manual_seed(0)
    return _wrap(TinyVGG(num_classes=10), (3, 64, 64), Preprocess(64, 64, per_image_standardization=True))


@pytest.fixture(scope="module")
def lenet() -> LoadedModel:
    torch.manual_seed(1)
    return _wrap(LeNet5(num_classes=10), (1, 32, 32), Preprocess(32, 32, grayscale=True, mean=(0.3,), std=(0.3,)))


def _untouched(model: LoadedModel, inplace: list[nn.Module] = ()) -> None:
    assert all(p.grad is None for p in model.module.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.module.modules())
    assert not model.module.training
    assert all(m.inplace for m in inplace)


@pytest.mark.parametrize(("fixture", "layer", "channel"), [("tinyvgg", "conv_2_2", 3), ("lenet", "c3", 5)])
def test_the_optimized_image_excites_its_channel_more_than_the_noise(request, fixture, layer, channel) -> None:
    model = request.getfixturevalue(fixture)
    result = maximize_activation(model, layer, channel, steps=40)
    assert result.final_activation > result.start_activation
    x = model.preprocess.scale((result.image * 255).round().to(torch.uint8))[None]  # as a saved image reads
    maps = capture_activations(model, x, [layer])[layer]
    assert float(maps[0, channel].mean()) == pytest.approx(result.final_activation, rel=0.05, abs=0.05)
    assert result.image.shape == model.input_size
    assert float(result.image.min()) >= 0 and float(result.image.max()) <= 1
    assert len(result.history) == 40 and result.params["steps"] == 40
    _untouched(model)


def test_a_class_unit_can_be_visualized(tinyvgg: LoadedModel) -> None:
    result = maximize_activation(tinyvgg, "output", 2, steps=30)
    assert result.final_activation > result.start_activation
    with pytest.raises(ValueError, match="A dense layer needs the model's input size, 64×64"):
        maximize_activation(tinyvgg, "output", 2, size=32)


def test_the_same_seed_gives_the_same_image(tinyvgg: LoadedModel) -> None:
    first = maximize_activation(tinyvgg, "conv_1_2", 1, steps=5, seed=3)
    assert torch.equal(first.image, maximize_activation(tinyvgg, "conv_1_2", 1, steps=5, seed=3).image)
    assert not torch.equal(first.start, maximize_activation(tinyvgg, "conv_1_2", 1, steps=5, seed=4).start)


def test_a_torchvision_model_with_in_place_relus() -> None:
    torch.manual_seed(0)
    module = torchvision.models.resnet18(weights=None)
    model = _wrap(module, (3, 64, 64), Preprocess(64, 64, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)))
    inplace = [m for m in module.modules() if getattr(m, "inplace", False)]
    assert inplace
    result = maximize_activation(model, "layer1.0.conv2", 7, steps=20, size=48)
    assert result.image.shape == (3, 48, 48)
    assert result.final_activation > result.start_activation
    _untouched(model, inplace)


def test_progress_cancel_and_errors(tinyvgg: LoadedModel) -> None:
    fractions = []
    maximize_activation(tinyvgg, "conv_1_1", 0, steps=4, progress=fractions.append)
    assert fractions == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(Cancelled):
        maximize_activation(tinyvgg, "conv_1_1", 0, should_stop=lambda: True)
    _untouched(tinyvgg)
    with pytest.raises(ValueError, match="'relu_1_1' is not a conv or dense layer"):
        maximize_activation(tinyvgg, "relu_1_1", 0)
    with pytest.raises(ValueError, match=r"conv_1_1 has channels 0…9; got 10"):
        maximize_activation(tinyvgg, "conv_1_1", 10)
    with pytest.raises(ValueError, match="steps ≥ 1"):
        maximize_activation(tinyvgg, "conv_1_1", 0, steps=0)


def test_visualizable_layers(tinyvgg: LoadedModel) -> None:
    assert visualizable_layers(tinyvgg) == ["conv_1_1", "conv_1_2", "conv_2_1", "conv_2_2", "output"]


def test_channel_scores_and_the_top_images(tinyvgg: LoadedModel) -> None:
    images = dataset_images("shapes", 20)
    scores = channel_scores(tinyvgg, "conv_2_1", images, batch=8)
    x = torch.cat([tinyvgg.preprocess(image) for image in images])
    expected = capture_activations(tinyvgg, x, ["conv_2_1"])["conv_2_1"].mean(dim=(2, 3))
    torch.testing.assert_close(scores, expected)
    top = top_images(scores, 4, k=9)
    order = torch.argsort(expected[:, 4], descending=True)[:9]
    assert top.indices == tuple(order.tolist())
    assert top.scores == pytest.approx(expected[order, 4].tolist())
    assert len(top_images(scores[:3], 4).indices) == 3  # fewer images than asked for
    with pytest.raises(ValueError, match="Channel 10 is not a column"):
        top_images(scores, 10)
    _untouched(tinyvgg)


def test_the_top_images_say_when_they_do_not_activate_the_channel() -> None:
    # Twelve images, three hand-built channels: never active, active on four images, active on every image.
    never = [-0.5, -0.1, -2.0, -0.3, -0.05, -1.0, -0.7, -0.2, -0.9, -0.4, -3.0, -0.6]
    four = [-1.0, 0.2, -0.5, 1.5, -0.3, 0.0, -2.0, 0.7, -0.1, -0.4, 3.0, -0.8]
    always = [value + 4.0 for value in never]
    scores = torch.tensor([never, four, always]).T
    none_active = top_images(scores, 0)
    assert none_active.indices == (4, 1, 7, 3, 9, 0, 11, 6, 8)  # the least negative first
    assert (none_active.activating, none_active.searched) == (0, 12)
    assert none_active.note == (
        "No image of the 12 activates this channel on average over its map (every mean is below zero): these are "
        "the least negative, the ones that switch it off least."
    )
    some = top_images(scores, 1)
    assert some.indices[:4] == (10, 3, 7, 1) and some.activating == 4  # 0.0 is not an activation
    assert some.note == (
        "Only 4 of the 12 images activate this channel on average over its map (a mean above zero); the other 5 "
        "shown are the least negative."
    )
    assert top_images(scores, 2).note is None
    assert top_images(scores, 1, k=4).note is None  # the four shown all activate it


def test_the_image_collections() -> None:
    assert [image.size for image in dataset_images("shapes", 3)] == [(64, 64)] * 3
    assert [image.size for image in dataset_images("digits", 2)] == [(8, 8)] * 2
    assert len(dataset_images("samples", 1000)) >= 5
    assert set(REFERENCE_SETS) == {"shapes", "digits", "samples"}
    with pytest.raises(ValueError, match="Unknown image collection 'cifar'"):
        dataset_images("cifar", 3)


def test_default_collections(tinyvgg: LoadedModel, lenet: LoadedModel) -> None:
    assert default_dataset(tinyvgg) == "shapes"
    assert default_dataset(lenet) == "digits"
