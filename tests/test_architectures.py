"""Tests for cnn_explorer.architectures: stacks described without building match the built modules exactly,
impossible stacks are refused naming the layer, and transfer learning freezes exactly what it says."""

from __future__ import annotations

import pytest
import torch
import torchvision.models
from torch import nn

from cnn_explorer.architectures import (
    MAX_STACK_PARAMS,
    StackError,
    _check_input_fits,
    build_model,
    build_stack,
    describe_stack,
    train_mode,
    transfer,
)
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.runspec import LAYER_TYPES, PRESETS, LayerSpec, ModelSpec
from cnn_explorer.sources.imagenet import transfer_base
from cnn_explorer.zoo import LoadedModel, load_model


def _conv(channels: int, kernel: int = 3, stride: int = 1, padding: int = 0) -> LayerSpec:
    return LayerSpec("conv", channels=channels, kernel=kernel, stride=stride, padding=padding)


def _pool(kernel: int = 2, stride: int | None = None, mode: str = "max") -> LayerSpec:
    return LayerSpec("pool", kernel=kernel, stride=stride, mode=mode)


RELU, FLAT = LayerSpec("relu"), LayerSpec("flatten")

STACKS = {
    **{name: (spec.model.layers, 1 if spec.data.grayscale else 3, spec.data.size) for name, spec in PRESETS.items()},
    "every-type": (
        (
            _conv(4, 5, stride=2, padding=2),
            LayerSpec("batchnorm"),
            LayerSpec("leaky_relu", slope=0.2),
            _pool(3, stride=1, mode="avg"),
            _conv(6, 3),
            LayerSpec("sigmoid"),
            LayerSpec("dropout", p=0.1),
            FLAT,
            LayerSpec("linear", width=7),
            LayerSpec("batchnorm"),
            LayerSpec("tanh"),
            LayerSpec("linear", width=5),
        ),
        2,
        20,
    ),
    "linear-without-flatten": ((_conv(3), RELU, LayerSpec("linear", width=8), RELU), 1, 9),
    "convs-only": ((_conv(2), RELU), 3, 6),
    "no-layers": ((), 1, 4),
}


def _outputs(module: nn.Sequential, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [
        child.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
        for name, child in module.named_children()
    ]
    try:
        module.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


# --- describe_stack against the built module --------------------------------------------------------------------


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("stack", STACKS)
def test_describe_stack_matches_the_built_module_layer_by_layer(stack: str, dropout: float) -> None:
    layers, channels, size = STACKS[stack]
    rows = describe_stack(layers, channels, size, 10, dropout)
    module = build_stack(layers, channels, size, 10, dropout)
    children = dict(module.named_children())
    assert [row.name for row in rows] == list(children)
    shapes = _outputs(module, torch.randn(2, channels, size, size))
    for row in rows:
        child = children[row.name]
        assert row.kind == type(child).__name__
        assert row.output_shape == shapes[row.name], row.name
        assert row.params == sum(p.numel() for p in child.parameters()), row.name
    assert sum(row.params for row in rows) == sum(p.numel() for p in module.parameters())
    assert rows[-1].output_shape == (10,) and rows[-1].name == "output"
    assert ("head_dropout" in children) == (dropout > 0)


@pytest.mark.parametrize("layer_type", LAYER_TYPES)
def test_every_layer_type_builds_as_described(layer_type: str) -> None:
    layers = (LayerSpec(layer_type),) if layer_type != "linear" else (FLAT, LayerSpec("linear", width=3))
    rows = describe_stack(layers, 2, 8, 4)
    module = build_stack(layers, 2, 8, 4)
    assert [row.name for row in rows] == [name for name, _ in module.named_children()]
    assert module(torch.randn(3, 2, 8, 8)).shape == (3, 4)


def test_presets_match_their_reference_modules() -> None:
    # TinyVGG and LeNet-5 as stacks have the parameter counts of the hand-written classes (LeNet-5's C5 is a 5×5
    # conv on a 5×5 map, the preset's flatten + linear(120): the same weights).
    tinyvgg = describe_stack(PRESETS["tinyvgg-shapes"].model.layers, 3, 64, 10)
    assert sum(r.params for r in tinyvgg) == 19_920  # assets/models/tinyvgg-shapes.json
    lenet = describe_stack(PRESETS["lenet5-digits"].model.layers, 1, 32, 10)
    assert sum(r.params for r in lenet) == 61_706  # assets/models/lenet5-digits.json


def test_layers_are_named_by_type_and_number() -> None:
    layers = (_conv(2), RELU, _pool(), _conv(2), RELU, FLAT, LayerSpec("linear", width=4), RELU)
    names = [row.name for row in describe_stack(layers, 1, 12, 3, dropout=0.5)]
    assert names == [
        "conv1",
        "relu1",
        "pool1",
        "conv2",
        "relu2",
        "flatten",
        "fc1",
        "relu3",
        "head_dropout",
        "output",
    ]


def test_flatten_is_inserted_before_a_linear_layer_and_at_the_end() -> None:
    rows = describe_stack((_conv(2), LayerSpec("linear", width=4)), 1, 5, 3)
    assert [(r.name, r.output_shape) for r in rows] == [
        ("conv1", (2, 3, 3)),
        ("flatten", (18,)),
        ("fc1", (4,)),
        ("output", (3,)),
    ]
    assert [r.name for r in describe_stack((_conv(2),), 1, 5, 3)] == ["conv1", "flatten", "output"]


def test_dense_params_by_hand() -> None:
    # conv 1→2 channels, 3×3, on a 4×4 grey image: output 2×2×2 = 8 values.
    # Conv: 2 filters × (9 weights + 1 bias) = 20. Dense: 8 outputs × (16 inputs + 1 bias) = 136.
    row = describe_stack((_conv(2),), 1, 4, 2)[0]
    assert (row.output_shape, row.params, row.dense_params) == ((2, 2, 2), 20, 136)
    # With padding 1 and stride 2: output 2×(2×2); same 8 values, same dense count, same conv weights.
    row = describe_stack((_conv(2, 3, stride=2, padding=1),), 1, 4, 2)[0]
    assert (row.output_shape, row.params, row.dense_params) == ((2, 2, 2), 20, 136)
    # Only convolutions carry a dense count.
    rows = describe_stack((_conv(2), RELU, _pool(2), LayerSpec("linear", width=3)), 1, 4, 2)
    assert [r.dense_params for r in rows] == [136, None, None, None, None, None]


def test_describe_stack_builds_nothing_even_for_a_huge_stack() -> None:
    layers = (_conv(64, padding=1), FLAT, LayerSpec("linear", width=100_000))
    rows = describe_stack(layers, 3, 64, 10)  # a 26-billion-parameter layer: instant, nothing allocated
    assert rows[2].params == (64 * 64 * 64 + 1) * 100_000
    with pytest.raises(StackError, match=r"more than the 50,000,000 .* fc1 alone has 26,214,500,000"):
        build_stack(layers, 3, 64, 10)
    assert MAX_STACK_PARAMS == 50_000_000


def test_built_stacks_have_no_in_place_or_shared_modules() -> None:
    layers, channels, size = STACKS["every-type"]
    module = build_stack(layers, channels, size, 10, 0.2)
    leaves = [m for m in module.modules() if not list(m.children())]
    assert len({id(m) for m in leaves}) == len(leaves) == len(list(module.children()))
    assert not any(getattr(m, "inplace", False) for m in leaves)


# --- refusals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layers", "size", "message"),
    [
        ((_conv(4), _conv(4), _pool(), _conv(4)), 8, r"^conv3: a 3×3 kernel does not fit a 2×2 input"),
        ((_conv(4, 5),), 4, r"^conv1: a 5×5 kernel does not fit a 4×4 input"),
        ((_conv(4, 7, padding=1),), 4, r"^conv1: a 7×7 kernel does not fit a 4×4 input with padding 1"),
        ((_pool(2), _pool(2), _pool(2)), 6, r"^pool3: a 2×2 pool is bigger than its 1×1 input"),
        ((_pool(5),), 4, r"^pool1: a 5×5 pool is bigger than its 4×4 input"),
        ((_conv(0),), 8, r"^conv1: channels must be at least 1, got 0"),
        ((_conv(4, 0),), 8, r"^conv1: kernel must be at least 1"),
        ((_conv(4), _conv(4, stride=-1)), 8, r"^conv2: stride must be at least 1"),
        ((_conv(4, padding=-1),), 8, r"^conv1: padding must be 0 or more"),
        ((_pool(0),), 8, r"^pool1: size must be at least 1"),
        ((_pool(2, mode="median"),), 8, r"^pool1: unknown pooling mode 'median'"),
        ((FLAT, _conv(2)), 8, r"^conv1: a convolution needs a feature map, but its input is already flat \(64"),
        ((FLAT, _pool()), 8, r"^pool1: pooling needs a feature map"),
        ((LayerSpec("linear", width=0),), 8, r"^fc1: width must be at least 1"),
        ((LayerSpec("dropout", p=1.0),), 8, r"^dropout1: the drop probability"),
        ((RELU, LayerSpec("softmax")), 8, r"^Layer 2: unknown type 'softmax'"),
    ],
)
def test_impossible_stacks_are_refused_naming_the_layer(layers: tuple, size: int, message: str) -> None:
    with pytest.raises(StackError, match=message):
        describe_stack(layers, 1, size, 10)
    with pytest.raises(StackError, match=message):
        build_stack(layers, 1, size, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_channels": 0}, "the input: channels"),
        ({"input_size": 0}, "the input: size"),
        ({"num_classes": 0}, "the output: classes"),
        ({"dropout": 1.0}, "dropout before the classifier"),
        ({"dropout": -0.1}, "dropout before the classifier"),
    ],
)
def test_bad_stack_arguments_are_refused(kwargs: dict, message: str) -> None:
    arguments = {"layers": (_conv(2),), "in_channels": 1, "input_size": 8, "num_classes": 3, **kwargs}
    with pytest.raises(StackError, match=message):
        describe_stack(**arguments)


def test_layers_feeding_a_relu_start_with_he_initialization_and_the_rest_as_pytorch_has_them() -> None:
    layers = (_conv(64), LayerSpec("relu"), _conv(64), LayerSpec("leaky_relu", slope=0.2), _conv(64))
    layers += (LayerSpec("tanh"), LayerSpec("linear", width=256), LayerSpec("relu"))
    torch.manual_seed(0)
    stack = build_stack(layers, 3, 16, 10)
    for name, slope in (("conv1", 0.0), ("conv2", 0.2), ("fc1", 0.0)):
        layer = stack.get_submodule(name)
        fan_in = layer.weight[0].numel()
        he_std = (2 / ((1 + slope**2) * fan_in)) ** 0.5
        assert layer.weight.std().item() == pytest.approx(he_std, rel=0.05), name
        assert not layer.bias.any(), name
    # before a tanh and at the output: PyTorch's own uniform bounds, biases not zero
    for name in ("conv3", "output"):
        layer = stack.get_submodule(name)
        bound = 1 / layer.weight[0].numel() ** 0.5
        assert layer.weight.abs().max().item() <= bound and layer.bias.any(), name


def test_stack_error_is_a_value_error() -> None:
    assert issubclass(StackError, ValueError)


# --- transfer ---------------------------------------------------------------------------------------------------


def _torchvision(name: str) -> LoadedModel:
    """A torchvision architecture with meta-device weights: its real structure, no memory, no download."""
    with torch.device("meta"):
        module = torchvision.models.get_model(name, weights=None)
    return LoadedModel(name, module.eval(), (3, 224, 224), (), Preprocess(224, 224), summary=name, card="")


def _trainable(module: nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters() if p.requires_grad}


def _params_under(module: nn.Module, *prefixes: str) -> set[str]:
    return {name for name, _ in module.named_parameters() if name.startswith(tuple(f"{p}." for p in prefixes))}


@pytest.mark.parametrize(
    ("name", "head", "last_1", "last_3"),
    [
        ("resnet18", "fc", ["layer4.1"], ["layer3.1", "layer4.0", "layer4.1"]),
        ("alexnet", "classifier.6", ["classifier.4"], ["features.10", "classifier.1", "classifier.4"]),
        ("vgg16", "classifier.6", ["classifier.3"], ["features.28", "classifier.0", "classifier.3"]),
        ("mobilenet_v3_small", "classifier.3", ["classifier.0"], ["features.11", "features.12", "classifier.0"]),
    ],
)
def test_transfer_replaces_the_imagenet_head_and_freezes_exactly_what_it_says(
    name: str, head: str, last_1: list[str], last_3: list[str]
) -> None:
    base = _torchvision(name)
    old_head = base.module.get_submodule(head)
    for trainable, blocks in [("head", []), ("last", last_1), ("last", last_3)]:
        module = transfer(base, 7, trainable, last_n=len(blocks) or 1)
        new_head = module.get_submodule(head)
        assert isinstance(new_head, nn.Linear)
        assert (new_head.in_features, new_head.out_features) == (old_head.in_features, 7)
        assert _trainable(module) == _params_under(module, head, *blocks), (trainable, blocks)
    everything = transfer(base, 7, "all")
    assert _trainable(everything) == {n for n, _ in everything.named_parameters()}
    # the base is untouched: its head, its flags
    assert base.module.get_submodule(head) is old_head and old_head.out_features == 1000
    assert all(p.requires_grad for p in base.module.parameters())


@pytest.mark.parametrize(("name", "head", "last_2"), [("tinyvgg-shapes", "output", ["conv_2_1", "conv_2_2"])])
def test_transfer_of_a_builtin_model_trains_and_predicts_the_new_classes(name: str, head: str, last_2: list) -> None:
    base = load_model(name)
    module = transfer(base, 4, "last", last_n=2)
    assert _trainable(module) == _params_under(module, head, *last_2)
    assert module(torch.randn(2, *base.input_size)).shape == (2, 4)
    # every parameter is a copy: training the new model cannot change the shared base
    base_pointers = {p.data_ptr() for p in base.module.parameters()}
    assert not base_pointers & {p.data_ptr() for p in module.parameters()}
    torch.testing.assert_close(
        module.get_submodule("conv_1_1").weight, base.module.get_submodule("conv_1_1").weight, rtol=0, atol=0
    )


def test_transfer_with_dropout_puts_it_before_the_new_head() -> None:
    base = load_model("lenet5-digits")
    module = transfer(base, 3, "head", dropout=0.4)
    head = module.get_submodule("output")
    assert [type(m).__name__ for m in head.children()] == ["Dropout", "Linear"]
    assert head.dropout.p == 0.4 and head.linear.out_features == 3
    assert _trainable(module) == {"output.linear.weight", "output.linear.bias"}


def test_transfer_of_a_transferred_model_replaces_its_head_again() -> None:
    first = transfer(load_model("tinyvgg-shapes"), 4, "head", dropout=0.2)
    again = LoadedModel("run", first.eval(), (3, 64, 64), tuple("abcd"), Preprocess(64, 64), summary="", card="")
    module = transfer(again, 2, "last", last_n=1)
    assert module.get_submodule("output.linear").out_features == 2
    assert _trainable(module) == _params_under(module, "output.linear", "conv_2_2")


def test_last_n_beyond_the_blocks_trains_everything() -> None:
    module = transfer(load_model("lenet5-digits"), 10, "last", last_n=99)
    assert _trainable(module) == {n for n, _ in module.named_parameters()}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trainable": "middle"}, "Unknown trainable 'middle'"),
        ({"trainable": "last", "last_n": 0}, "last_n must be at least 1"),
        ({"num_classes": 0}, "classes must be at least 1"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_transfer_refuses_bad_arguments(kwargs: dict, message: str) -> None:
    arguments = {"num_classes": 3, "trainable": "head", **kwargs}
    with pytest.raises(StackError, match=message):
        transfer(load_model("lenet5-digits"), **arguments)


def test_train_mode_keeps_frozen_batch_norm_in_eval_mode() -> None:
    base = _torchvision("resnet18")
    module = train_mode(transfer(base, 2, "last", last_n=1))
    norms = {name: m for name, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert {name for name, m in norms.items() if m.training} == {"layer4.1.bn1", "layer4.1.bn2"}
    assert module.training and module.layer4.training and module.fc.training
    assert all(m.training for m in train_mode(transfer(base, 2, "all")).modules())


# --- build_model ------------------------------------------------------------------------------------------------


def test_build_model_builds_a_stack() -> None:
    spec = PRESETS["tinyvgg-shapes"].model
    module = build_model(spec, 3, 64, 10, dropout=0.1)
    reference = build_stack(spec.layers, 3, 64, 10, 0.1)
    assert [n for n, _ in module.named_children()] == [n for n, _ in reference.named_children()]
    assert module(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_build_model_transfers_a_zoo_model() -> None:
    spec = ModelSpec(kind="transfer", base="tinyvgg-shapes", trainable="head")
    module = build_model(spec, 3, 64, 5, dropout=0.0, base=load_model("tinyvgg-shapes"))
    assert module(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    assert _trainable(module) == {"output.weight", "output.bias"}


def test_build_model_builds_an_imagenet_architecture_without_its_weights() -> None:
    # CNN_EXPLORER_OFFLINE is set for the tests and nothing is cached: pretrained=False must not need the download.
    spec = ModelSpec(kind="transfer", base="resnet18", trainable="last", last_n=1)
    module = build_model(spec, 3, 64, 3, base=transfer_base("resnet18", pretrained=False))
    assert module.fc.out_features == 3
    assert _trainable(module) == _params_under(module, "fc", "layer4.1")


@pytest.mark.parametrize(
    ("spec", "channels", "size", "message"),
    [
        (ModelSpec(kind="transfer", base="tinyvgg-shapes"), 3, 32, r"tinyvgg-shapes cannot take 32×32 .* 64×64"),
        (ModelSpec(kind="transfer", base="tinyvgg-shapes"), 1, 64, r"takes 3-channel images but the data has 1"),
        (ModelSpec(kind="transfer", base=None), 3, 64, "needs a base model"),
        (ModelSpec(kind="mystery"), 3, 64, "Unknown model kind 'mystery'"),
        (ModelSpec(layers=(_conv(4, 9),)), 3, 8, "conv1: a 9×9 kernel does not fit"),
    ],
)
def test_build_model_refuses_what_cannot_work(spec: ModelSpec, channels: int, size: int, message: str) -> None:
    base = load_model(spec.base) if spec.base else None  # the caller loads the base model
    with pytest.raises(StackError, match=message):
        build_model(spec, channels, size, 4, base=base)


def test_a_transfer_base_that_is_not_registered_is_named() -> None:
    with pytest.raises(KeyError, match="Unknown model 'nonet'"):
        transfer_base("nonet")


@pytest.mark.parametrize(
    ("name", "size", "fits"), [("alexnet", 32, False), ("alexnet", 64, True), ("vgg16", 16, False)]
)
def test_the_input_size_check_runs_the_model_on_shapes_only(name: str, size: int, fits: bool) -> None:
    module = _torchvision(name).module.train()  # meta weights: shapes are all there is
    if fits:
        _check_input_fits(module, name, (3, size, size), 1000, (224, 224))
    else:
        with pytest.raises(StackError, match=rf"{name} cannot take {size}×{size} images .* trained on, 224×224"):
            _check_input_fits(module, name, (3, size, size), 1000, (224, 224))
    assert module.training  # its mode is restored
