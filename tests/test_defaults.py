"""Shipping a default model: a preset's run, trained by the run path, becomes the zoo's named architecture."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnn_explorer import data, defaults, digits, jobs, ood, runner, runs, zoo
from cnn_explorer.__main__ import main
from cnn_explorer.architectures import LeNet5, TinyVGG
from cnn_explorer.defaults import ShipError, copy_by_position, ship
from cnn_explorer.runspec import DataSpec, preset
from cnn_explorer.sources.builtin import ASSETS_MODELS, load_builtin
from cnn_explorer.training import evaluate


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One epoch of the lenet5-digits preset, through the command line's code path."""
    home = tmp_path_factory.mktemp("digits-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNN_EXPLORER_HOME", str(home))
        outcome = jobs.train_foreground(preset("lenet5-digits", epochs=1))
    assert outcome.status == "done", outcome.message
    return home, outcome.run_id


def test_a_shipped_run_predicts_exactly_like_the_run(digits_run, monkeypatch, tmp_path):
    home, run_id = digits_run
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(home))
    accuracy = ship(run_id, "lenet5-digits", out_dir=tmp_path, log=lambda line: None)

    info = runs.read_model_info(run_id)
    trained = runner.build_module(runs.get_run(run_id).spec.model, info["build"])
    trained.load_state_dict(runs.load_checkpoint(run_id, "last"))
    trained.eval()
    shipped = load_builtin(tmp_path / "lenet5-digits.json")
    assert isinstance(shipped.module, LeNet5)
    x = torch.randn(5, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(shipped.module(x), trained(x), atol=1e-6)

    meta = json.loads((tmp_path / "lenet5-digits.json").read_text())
    _, expected = evaluate(shipped.module, defaults.heldout_dataset("lenet5-digits", shipped.preprocess))
    assert accuracy == meta["heldout"]["accuracy"] == expected
    assert meta["heldout"]["images"] == 360
    assert meta["run"]["settings"]["epochs"] == 1
    assert len(meta["history"]) == 1
    card = (tmp_path / "lenet5-digits.md").read_text()
    assert "`python -m cnn_explorer train --preset lenet5-digits --epochs 15 --ship`" in card
    assert f"{accuracy:.2%}" in card
    # Shipping also fits the out-of-distribution detector of these weights and measures it on the card.
    detector = ood.load(tmp_path / "lenet5-digits.ood.pt")
    assert detector.weights_digest == ood._weights_digest(shipped.module)
    assert meta["ood"]["false_alarm_rate"] == detector.false_alarm_rate == 0.02
    assert "**Out-of-distribution check**" in card
    assert "| the sample photos (astronaut, cat, coffee, rocket, hubble_deep_field) (detected) |" in card
    # Accuracy per source, each recomputable; the held-out source's row marked on the card.
    sources = {source["key"]: source for source in meta["sources"]}
    assert set(sources) == set(digits.SOURCES)
    [strokes] = digits.accuracy_per_source(shipped.module, shipped.preprocess, n=500, keys=["strokes"])
    assert sources["strokes"]["accuracy"] == strokes.accuracy and sources["strokes"]["images"] == 500
    held_out = sources[digits.HELD_OUT_SOURCE]
    assert held_out["held_out"] and [key for key, s in sources.items() if s["held_out"]] == [digits.HELD_OUT_SOURCE]
    assert (
        "**Accuracy per source**" in card and f"| {digits.SOURCES['strokes'].title} | {strokes.accuracy:.1%} |" in card
    )
    assert (
        f"| **{held_out['title']}** (held out: no training run sees this source) | **{held_out['accuracy']:.1%}** |"
        in card
    )


def test_only_a_finished_run_of_the_defaults_preset_ships(digits_run, monkeypatch, tmp_path):
    home, run_id = digits_run
    monkeypatch.setenv("CNN_EXPLORER_HOME", str(home))
    with pytest.raises(ShipError, match="not trained on the tinyvgg16-photographed-shapes preset's data"):
        ship(run_id, "tinyvgg-shapes", out_dir=tmp_path)
    with pytest.raises(ShipError, match="'small-vgg-bn' is not a default model"):
        ship(run_id, "small-vgg-bn", out_dir=tmp_path)
    queued = runs.create_run(preset("lenet5-digits"))
    with pytest.raises(ShipError, match=f"Run {queued.id} is queued"):
        ship(queued.id, "lenet5-digits", out_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_copy_by_position_refuses_a_different_network():
    with pytest.raises(ShipError, match=r"2 weight tensors, TinyVGG 10"):
        copy_by_position(torch.nn.Linear(2, 2).state_dict(), TinyVGG())
    message = r"c1.weight has shape \(6, 1, 5, 5\); TinyVGG's conv_1_1.weight has \(10, 3, 3, 3\)"
    with pytest.raises(ShipError, match=message):
        copy_by_position(LeNet5().state_dict(), TinyVGG())  # as many tensors, other shapes
    state = TinyVGG().state_dict()
    state["conv_1_1.weight"] = state["conv_1_1.weight"].transpose(0, 1)  # as many numbers, another shape
    with pytest.raises(ShipError, match=r"has shape \(3, 10, 3, 3\)"):
        copy_by_position(state, TinyVGG())


def test_ship_on_a_preset_that_is_no_default_is_refused_before_training(home, capsys):
    assert main(["train", "--preset", "small-vgg-bn", "--ship"]) == 2
    assert "small-vgg-bn is not a default model" in capsys.readouterr().err
    assert runs.list_runs() == []


def test_the_presets_stacks_are_the_default_architectures_layer_for_layer():
    for name, default in defaults.DEFAULTS.items():
        spec = preset(default.preset_name)
        stack = runner.build_module(
            spec.model,
            {
                "in_channels": 1 if name == "lenet5-digits" else 3,
                "input_size": spec.data.size,
                "num_classes": 10,
                "dropout": 0.0,
            },
        )
        target = {"TinyVGG": TinyVGG, "LeNet5": LeNet5}[default.architecture](**default.architecture_args)
        copy_by_position(stack.state_dict(), target)
        x = torch.randn(2, *((1, 32, 32) if name == "lenet5-digits" else (3, 64, 64)))
        with torch.no_grad():
            assert torch.allclose(target.eval()(x), stack.eval()(x), atol=1e-6), name


def test_runs_never_train_on_the_shipped_held_out_shapes():
    heldout = data.SyntheticShapes(4, seed=1)
    prepared = data.prepare(DataSpec(kind="shapes", count=4, val_split=0.5, fresh=True), seed=0)
    for epoch in range(3):
        images = prepared.train_for_epoch(epoch)
        for i in range(4):
            assert not np.array_equal(np.asarray(images.image(i)), np.asarray(heldout[i][0])), (epoch, i)


def test_the_shapes_card_reports_every_independent_renderer_reproducibly():
    from cnn_explorer import renderers

    model = zoo.load_model("tinyvgg-shapes")
    meta = json.loads((ASSETS_MODELS / "tinyvgg-shapes.json").read_text())
    measured = defaults.renderer_accuracies(model.module, model.preprocess)
    assert set(measured) == set(renderers.RENDERERS)
    for name, accuracy in measured.items():
        assert accuracy == pytest.approx(meta["renderers"][name], abs=1e-9), name
        assert f"| {name} | {renderers.RENDERERS[name].description} |" in model.card
        assert f"{accuracy:.1%} |" in model.card
    held_out = [name for name, r in renderers.RENDERERS.items() if r.held_out]
    assert held_out and "held out: never trained on in any form" in model.card


def test_samples_include_shapes_drawn_by_the_independent_renderers(tmp_path):
    from cnn_explorer import renderers

    entries = {e["key"]: e for e in defaults.write_samples(tmp_path)}
    for number, (renderer, shape, _) in enumerate(defaults._RENDERER_SAMPLES):
        entry = entries[f"{renderer}-{shape}"]
        assert entry["licence"] == "CC0 (drawn by CNN Explorer's independent renderer)"
        assert entry["models"] == ["tinyvgg-shapes"]
        img = Image.open(tmp_path / entry["file"])
        assert img.size == (128, 128)
        # The file is what the renderer draws for that seed.
        rng = np.random.default_rng([defaults._RENDERER_SAMPLE_SEED, number])
        expected = renderers.render(renderer, renderers.CLASSES.index(shape), rng, 128)
        assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(expected))
    shipped = json.loads((Path(ASSETS_MODELS).parent / "samples" / "samples.json").read_text())
    assert {e["key"] for e in shipped} >= {f"{r}-{s}" for r, s, _ in defaults._RENDERER_SAMPLES}


def test_the_train_pages_tinyvgg_preset_stays_cnn_explainers_on_plain_shapes():
    # The Train page's TinyVGG preset is CNN Explainer's network, 10 maps per conv, on filled shapes. The shipped
    # tinyvgg-shapes (issue 15) is the same network 16 maps wide, trained by its own preset on shapes drawn many ways,
    # sketched and photographed, and says so on its card.
    page = preset("tinyvgg-shapes")
    assert [layer.channels for layer in page.model.layers if layer.type == "conv"] == [10, 10, 10, 10]
    assert not page.data.varied and not page.data.sketched
    assert sum(p.numel() for p in TinyVGG().parameters()) == 19_920
    shipped = defaults.DEFAULTS["tinyvgg-shapes"]
    assert shipped.preset_name == "tinyvgg16-photographed-shapes" and shipped.architecture_args == {"channels": 16}
    photographed = preset("tinyvgg16-photographed-shapes")
    assert [layer.channels for layer in photographed.model.layers if layer.type == "conv"] == [16, 16, 16, 16]
    assert photographed.data.sketched and photographed.data.photographed
    assert preset("tinyvgg16-varied-shapes").data.varied
    meta = json.loads((ASSETS_MODELS / "tinyvgg-shapes.json").read_text())
    assert meta["parameters"] == sum(p.numel() for p in TinyVGG(channels=16).parameters()) == 34_458
    assert "--preset tinyvgg16-photographed-shapes" in meta["command"]
    assert (
        "16 feature maps per convolution instead of CNN Explainer's 10"
        in (ASSETS_MODELS / "tinyvgg-shapes.md").read_text()
    )
    assert (ASSETS_MODELS / "tinyvgg-shapes.pt").stat().st_size <= 2**20


def test_the_shapes_card_says_how_its_training_shapes_are_drawn():
    spec = preset(defaults.DEFAULTS["tinyvgg-shapes"].preset_name)
    card = (ASSETS_MODELS / "tinyvgg-shapes.md").read_text()
    assert spec.data.shape_styles_text() in card and "40 % of all of them then photographed" in card
    assert "`draw_shape(sketched=True)`" in preset("tinyvgg16-sketched-shapes").data.shape_styles_text()
    assert preset("tinyvgg-shapes").data.shape_styles_text() == ""  # CNN Explainer's plain shapes


def test_the_shapes_detector_flags_half_a_percent_of_its_validation_images_and_its_card_says_so():
    # Its clutter check catches photos and digits; its features are held to fewer false alarms on drawings.
    detector = ood.load(ASSETS_MODELS / "tinyvgg-shapes.ood.pt")
    assert defaults.DEFAULTS["tinyvgg-shapes"].false_alarm_rate == detector.false_alarm_rate == 0.005
    assert defaults.DEFAULTS["lenet5-digits"].false_alarm_rate == 0.02
    data = preset(defaults.DEFAULTS["tinyvgg-shapes"].preset_name).data
    validation = round(data.count * data.val_split)  # 3,000 of the preset's 30,000
    assert (
        f"set so that 0.5% of the preset's {validation:,} validation images are flagged"
        in (ASSETS_MODELS / "tinyvgg-shapes.md").read_text()
    )
    assert [defaults._percent(r) for r in (0.02, 0.005, 0.125)] == ["2%", "0.5%", "12.5%"]
