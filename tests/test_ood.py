"""The out-of-distribution check: Mahalanobis distances against a direct computation, the calibrated false-alarm
rate, the detector file, which models have one, and the shipped detectors on images from elsewhere."""

import math
import threading
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from sklearn.covariance import LedoitWolf
from torch import nn

from cnn_explorer import ood, zoo
from cnn_explorer.clutter import clutter
from cnn_explorer.images import default_sample, load_sample, samples_for
from cnn_explorer.ood_check import SAMPLE_PHOTOS, drawn_shapes
from cnn_explorer.sources.builtin import ASSETS_MODELS


def _tiny_model(dims: int = 2, classes: int = 2, name: str = "tiny") -> SimpleNamespace:
    """A model whose penultimate features are its input: the input of the final linear layer."""
    module = nn.Sequential(nn.Identity(), nn.Linear(dims, classes)).eval()
    return SimpleNamespace(name=name, module=module, lock=threading.RLock())


def _items(points: torch.Tensor, labels: list[int]) -> list[tuple[torch.Tensor, int]]:
    return [(p, y) for p, y in zip(points, labels, strict=True)]


def _two_classes(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, list[int]]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.tensor(
        [[2.0, 0.5], [0.0, 0.7]], dtype=torch.float64
    )
    b = torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1.0, -0.3], [0.0, 1.5]], dtype=torch.float64
    )
    return torch.cat([a + torch.tensor([3.0, 0.0]), b - torch.tensor([0.0, 4.0])]).float(), [0] * n + [1] * n


def test_the_distance_is_the_mahalanobis_distance_to_the_nearest_mean_under_the_shrunk_shared_covariance():
    points, labels = _two_classes()
    model = _tiny_model()
    detector = ood.fit(model, _items(points, labels), _items(points, labels), trained_on="dots", calibration_text="")
    assert detector.layers == [("1", "input")]  # the final nn.Linear's input, found from the structure

    # Directly: class means, the pooled within-class covariance shrunk by scikit-learn's Ledoit-Wolf, its inverse.
    x = points.to(torch.float64)
    y = torch.tensor(labels)
    means = torch.stack([x[y == c].mean(0) for c in (0, 1)])
    shrunk = torch.from_numpy(LedoitWolf(assume_centered=True).fit((x - means[y]).numpy()).covariance_)
    queries = torch.tensor([[3.0, 0.0], [0.0, 0.0], [10.0, 10.0], [0.5, -4.0]], dtype=torch.float64)
    z = queries[:, None, :] - means[None]
    squared = torch.einsum("nkd,de,nke->nk", z, torch.linalg.inv(shrunk), z)
    expected = squared.min(dim=1).values.sqrt()

    assert torch.allclose(detector.parts[0].distances(queries), expected, rtol=1e-5)
    part = detector.parts[0]
    assert torch.allclose(detector.scores([queries]), (expected - part.center) / part.scale, rtol=1e-5)
    [feats] = ood.features(model, queries.float())
    assert torch.allclose(feats, queries, atol=1e-6)


def test_a_low_rank_detector_keeps_the_leading_directions_and_averages_the_rest():
    g = torch.Generator().manual_seed(1)
    points = (torch.randn(300, 4, generator=g) * torch.tensor([5.0, 2.0, 1.0, 0.5])).to(torch.float64)
    labels = [i % 3 for i in range(300)]
    model = _tiny_model(dims=4, classes=3)
    items = _items(points.float(), labels)
    low = ood.fit(model, items, items, trained_on="", calibration_text="", rank=2)
    full = ood.fit(model, items, items, trained_on="", calibration_text="", rank=4)
    # The low-rank covariance: the full one's eigenvalues, the two smallest replaced by their mean.
    full, low = full.parts[0], low.parts[0]
    values, vectors = torch.linalg.eigh(
        full.basis.double() @ torch.diag(full.variances.double()) @ full.basis.double().T
    )
    values[:2] = values[:2].mean()
    covariance = vectors @ torch.diag(values) @ vectors.T
    queries = torch.randn(6, 4, generator=g, dtype=torch.float64) * 3
    z = queries[:, None, :] - full.means.double()[None]
    expected = torch.einsum("nkd,de,nke->nk", z, torch.linalg.inv(covariance), z).min(1).values.sqrt()
    assert torch.allclose(low.distances(queries), expected, rtol=1e-4)
    assert low.basis.shape == (4, 2)


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.2])
def test_the_threshold_flags_the_stated_share_of_the_calibration_images(rate):
    points, labels = _two_classes(n=50)
    calibration, calibration_labels = _two_classes(n=50, seed=7)  # 100 held-out points
    model = _tiny_model()
    detector = ood.fit(
        model,
        _items(points, labels),
        _items(calibration, calibration_labels),
        trained_on="dots",
        calibration_text="100 points",
        false_alarm_rate=rate,
    )
    flagged = int((detector.scores([calibration]) > detector.threshold).sum())
    assert flagged == round(rate * 100)
    assert detector.false_alarm_rate == rate


def test_a_detector_round_trips_through_a_weights_only_file(tmp_path: Path):
    points, labels = _two_classes()
    model = _tiny_model()
    detector = ood.fit(model, _items(points, labels), _items(points, labels), trained_on="dots", calibration_text="x")
    path = tmp_path / "tiny.ood.pt"
    ood.save(detector, path)
    raw = torch.load(path, weights_only=True)  # plain tensors and strings: no code runs
    assert set(raw) == {
        "parts",
        "threshold",
        "false_alarm_rate",
        "trained_on",
        "calibration",
        "weights_digest",
        "clutter_threshold",
    }
    loaded = ood.load(path)
    for name in ("means", "basis", "variances"):
        assert torch.equal(getattr(loaded.parts[0], name), getattr(detector.parts[0], name))
    assert loaded.parts[0].center == detector.parts[0].center
    assert (loaded.threshold, loaded.trained_on, loaded.layers) == (detector.threshold, "dots", [("1", "input")])


def test_a_detector_file_from_before_the_clutter_check_loads_without_it(tmp_path: Path):
    points, labels = _two_classes()
    detector = ood.fit(
        _tiny_model(), _items(points, labels), _items(points, labels), trained_on="", calibration_text=""
    )
    state = asdict(detector)
    del state["clutter_threshold"]
    torch.save(state, tmp_path / "old.ood.pt")
    assert ood.load(tmp_path / "old.ood.pt").clutter_threshold is None


def _picture(seed: int, busy: bool = False, size: int = 16) -> torch.Tensor:
    """A dark disc on light paper at a random place ``[3, size, size]``, or (busy) uniform noise."""
    g = torch.Generator().manual_seed(seed)
    if busy:
        return torch.rand(3, size, size, generator=g)
    cy, cx = (torch.rand(2, generator=g) * size / 2 + size / 4).tolist()
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = (((yy - cy) ** 2 + (xx - cx) ** 2) <= (size / 4) ** 2).float()
    return (0.9 - 0.7 * disc)[None].expand(3, size, size).clone()


def test_the_clutter_check_flags_what_the_features_let_through_and_says_why():
    model = SimpleNamespace(name="dots", module=nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2)).eval())
    model.lock = threading.RLock()
    items = [(_picture(i), i % 2) for i in range(40)]
    detector = ood.fit(model, items, items, trained_on="discs", calibration_text="")
    assert detector.clutter_threshold is None and detector.clutters(_picture(0)[None]) is None
    calibration = torch.stack([x for x, _ in items])
    checked = ood.with_clutter_check(replace(detector, threshold=math.inf), calibration)  # features flag nothing
    values = torch.tensor([clutter(x) for x in calibration], dtype=torch.float64)
    assert checked.clutter_threshold == pytest.approx(ood.CLUTTER_MARGIN * float(torch.quantile(values, 0.99)))

    noise = ood.verdict(model, _picture(99, busy=True)[None], checked)
    assert noise.out_of_distribution is True and noise.clutter == pytest.approx(clutter(_picture(99, busy=True)))
    assert noise.message.startswith(
        "dots was trained on discs; this image looks unlike them, so its answer means little here: it is not one ink "
        "on one paper ("
    )
    disc = ood.verdict(model, _picture(123)[None], checked)
    assert disc.out_of_distribution is False and disc.clutter == 0.0
    assert ood.verdict(model, _picture(99, busy=True)[None], detector).clutter is None  # the check off: not computed
    flags = replace(checked, threshold=1.0).flags(torch.tensor([0.0, 0.0, 2.0]), torch.tensor([1.0, 0.0, 0.0]))
    assert flags.tolist() == [True, False, True]


def test_imagenet_models_get_no_score_and_say_what_they_learnt_from():
    model = SimpleNamespace(
        name="resnet18", module=nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), lock=threading.RLock()
    )
    assert ood.detector_for(model) is None
    verdict = ood.verdict(model, torch.zeros(1, 3, 2, 2))
    assert (verdict.score, verdict.threshold, verdict.out_of_distribution) == (None, None, None)
    assert "ImageNet-1K" in verdict.message and "1,000" in verdict.message


def test_a_detector_fitted_to_other_weights_is_not_used():
    shapes = zoo.load_model("tinyvgg-shapes")
    assert ood.detector_for(shapes) is not None
    changed = zoo.load_model("tinyvgg-shapes")
    with torch.no_grad():
        changed.module.output.bias.add_(0.01)
    assert ood.detector_for(changed) is None


# ── the shipped detectors ───────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def shapes_model() -> zoo.LoadedModel:
    return zoo.load_model("tinyvgg-shapes")


@pytest.mark.parametrize("photo", ["cat", "astronaut"])
def test_the_shapes_model_says_a_photo_is_unlike_its_drawn_shapes(shapes_model, photo):
    verdict = ood.verdict(shapes_model, shapes_model.preprocess(load_sample(photo)))
    assert verdict.out_of_distribution is True
    detector = ood.detector_for(shapes_model)
    assert verdict.score > verdict.threshold or verdict.clutter > detector.clutter_threshold
    assert verdict.message.startswith("tinyvgg-shapes was trained on 10 kinds of drawn shapes; this image looks unlike")


def test_the_shapes_model_passes_its_shape_samples_drawn_every_way(shapes_model):
    # The generator's own ten, and the independent renderers' flat fill, outline, pen sketch, photographed cutout and
    # chalk: the model shipped before issue 15 flagged the pen-drawn star (it knew only filled shapes), the sketched
    # one the pen-drawn arrow (its features at a 2 % false-alarm rate); this one passes every one.
    keys = samples_for("tinyvgg-shapes", made_for_it=True)
    assert len([key for key in keys if key.startswith("shape-")]) == 10
    assert {"pen-star", "pen-arrow", "outline-triangle", "photo-heart", "flat-circle", "chalk-star"} <= set(keys)
    flagged = {
        key for key in keys if ood.verdict(shapes_model, shapes_model.preprocess(load_sample(key))).out_of_distribution
    }
    assert flagged == set()


def test_the_shipped_shapes_detector_flags_the_photos_and_few_independently_drawn_shapes(shapes_model):
    detector = ood.detector_for(shapes_model)
    assert detector.clutter_threshold is not None  # its features alone let photos through (README)

    def flagged(x: torch.Tensor) -> int:
        return int(detector.flags(detector.scores(ood.features(shapes_model, x)), detector.clutters(x)).sum())

    photos = torch.cat([shapes_model.preprocess(load_sample(key)) for key in SAMPLE_PHOTOS])
    drawn = torch.cat([shapes_model.preprocess(img) for img, _ in drawn_shapes(100, seed=3)])
    assert flagged(photos) == len(SAMPLE_PHOTOS)
    assert flagged(drawn) <= 10


def test_the_digit_model_passes_its_digits_and_flags_the_cat():
    model = zoo.load_model("lenet5-digits")
    for key in samples_for("lenet5-digits", made_for_it=True):
        assert ood.verdict(model, model.preprocess(load_sample(key))).out_of_distribution is False, key
    verdict = ood.verdict(model, model.preprocess(load_sample("cat")))
    assert verdict.out_of_distribution is True
    assert "handwritten, typed and drawn digits" in verdict.message


def test_the_detector_files_stay_small():
    for name in ("tinyvgg-shapes", "lenet5-digits"):
        # 16 kept directions of 2,704 penultimate features and ten class means: under 400 KB, the model and its
        # detector together under the 1 MB a shipped model may take.
        assert (ASSETS_MODELS / f"{name}{ood.FILE_SUFFIX}").stat().st_size < 400_000
        assert (ASSETS_MODELS / f"{name}{ood.FILE_SUFFIX}").stat().st_size + (
            ASSETS_MODELS / f"{name}.pt"
        ).stat().st_size < 2**20


def test_run_training_data_is_named_in_the_warning():
    assert ood.trained_on("shapes", ()) == "10 kinds of drawn shapes"
    assert ood.trained_on("folder", ("cats", "dogs")) == "your own images of 2 classes (cats, dogs)"


def test_an_unknown_model_name_gets_no_score():
    model = SimpleNamespace(name="my-thing", module=nn.Linear(2, 2), lock=threading.RLock())
    verdict = ood.verdict(model, torch.zeros(1, 2))
    assert verdict.score is None and "has no out-of-distribution check here" in verdict.message


def test_a_shapes_run_starts_on_a_shape_sample(monkeypatch, tmp_path):
    from cnn_explorer import runs
    from cnn_explorer.runspec import preset

    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path))
    run = runs.create_run(preset("tinyvgg-shapes"))
    assert default_sample(run.model_name).startswith("shape-")
    assert samples_for(run.model_name, made_for_it=True) == samples_for("tinyvgg-shapes", made_for_it=True)
    digits = runs.create_run(preset("lenet5-digits"))
    assert default_sample(digits.model_name).startswith("digit-")


def test_a_finished_run_has_its_own_detector_calibrated_on_its_validation_images(monkeypatch, tmp_path):
    from cnn_explorer import jobs, runner
    from cnn_explorer.runspec import preset

    monkeypatch.setenv("CNN_EXPLORER_HOME", str(tmp_path))
    outcome = jobs.train_foreground(preset("lenet5-digits", epochs=1))
    assert outcome.status == "done", outcome.message
    model = zoo.load_model(f"run-{outcome.run_id}")
    detector = ood.detector_for(model)  # fitted to the best checkpoint, the weights the zoo loads
    assert detector is not None
    assert detector.trained_on == "handwritten, typed and drawn digits"  # the preset's kind, digits_mixed
    val = runner.validation_set(outcome.run_id)
    scores = detector.scores(ood.dataset_features(model, val)[0])
    assert detector.false_alarm_rate == 0.02
    assert int((scores > detector.threshold).sum()) == int(0.02 * len(val))


def test_the_shapes_model_reads_its_first_pool_and_its_penultimate_features(shapes_model):
    assert ood.feature_layers(shapes_model.module) == [("max_pool_1", "output"), ("output", "input")]
    assert ood.detector_for(shapes_model).layers == [("max_pool_1", "output"), ("output", "input")]


def test_the_shapes_model_says_a_digit_is_unlike_its_shapes(shapes_model):
    # The penultimate features alone took every held-out digit for a shape (0 of 360 flagged). The scanned digits
    # (a typed black "7" on white paper is much like a pen-drawn shape, and is not asked about here).
    for key in [k for k in samples_for("lenet5-digits", made_for_it=True) if k.startswith("digit-")]:
        assert ood.verdict(shapes_model, shapes_model.preprocess(load_sample(key))).out_of_distribution is True, key
