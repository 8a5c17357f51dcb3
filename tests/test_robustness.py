"""Adversarial examples: pixels ↔ model input, FGSM and PGD against captum.robust called directly, and the
smallest flipping ε on a linear model whose answer is known in closed form."""

import math

import pytest
import torch
import torch.nn.functional as F
from captum.robust import FGSM, PGD
from PIL import Image
from torch import nn

from cnn_explorer.architectures import TinyVGG
from cnn_explorer.attribution import Cancelled
from cnn_explorer.pixels import image_pixels, normalize, pixel_logits
from cnn_explorer.preprocess import Preprocess
from cnn_explorer.robustness import ATTACKS, attack, pgd_step_size, smallest_flip
from cnn_explorer.zoo import LoadedModel

# The linear model below: margin(ε) = 0.5 − 16 · 0.25 · ε between its two logits, so it flips just above ε = 1/8.
FLIP_AT = 0.125
# captum, called directly below, warns that it switched on requires_grad for the input, as an attack needs.
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _wrap(module: nn.Module, input_size: tuple[int, int, int], preprocess: Preprocess) -> LoadedModel:
    classes = module(torch.zeros(1, *input_size)).shape[1]
    return LoadedModel(
        name="test",
        module=module.eval(),
        input_size=input_size,
        class_names=tuple(f"class {i}" for i in range(classes)),
        preprocess=preprocess,
        summary="test",
        card="test",
    )


@pytest.fixture(scope="module")
def tinyvgg() -> LoadedModel:
    torch.manual_seed(0)
    return _wrap(TinyVGG(num_classes=10), (3, 64, 64), Preprocess(64, 64, per_image_standardization=True))


@pytest.fixture
def linear() -> LoadedModel:
    """Two classes; class 0 wins on a mid-grey image by a margin of 0.5, and every pixel moves it by 0.25."""
    layer = nn.Linear(16, 2)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0] = 0.25
        layer.bias.copy_(torch.tensor([-1.5, 0.0]))
    return _wrap(nn.Sequential(nn.Flatten(), layer), (1, 4, 4), Preprocess(4, 4, grayscale=True))


def _pixels(model: LoadedModel, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, *model.input_size, generator=torch.Generator().manual_seed(seed))


def _untouched(model: LoadedModel) -> None:
    assert all(p.grad is None for p in model.module.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.module.modules())
    assert not model.module.training


# ── pixels ───────────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "preprocess",
    [
        Preprocess(32, 32, per_image_standardization=True),
        Preprocess(32, 32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        Preprocess(32, 32),
        Preprocess(32, 32, grayscale=True, invert_light_background=True, mean=(0.3,), std=(0.3,)),
    ],
)
def test_normalized_pixels_are_the_preprocessed_image(preprocess: Preprocess) -> None:
    model = LoadedModel("test", nn.Identity(), (preprocess.channels, 32, 32), ("a",), preprocess, "", "")
    generator = torch.Generator().manual_seed(0)
    image = Image.fromarray(torch.randint(0, 256, (40, 48, 3), generator=generator, dtype=torch.uint8).numpy())
    pixels = image_pixels(model, image)
    assert pixels.shape == (1, preprocess.channels, 32, 32) and 0 <= float(pixels.min()) <= float(pixels.max()) <= 1
    torch.testing.assert_close(normalize(model, pixels), preprocess(image))
    batch = torch.cat([pixels, pixels * 0.5])  # each image of a batch is normalized on its own
    torch.testing.assert_close(normalize(model, batch)[1:], normalize(model, pixels * 0.5))
    torch.testing.assert_close(normalize(model, batch)[:1], preprocess(image))


def test_wrongly_shaped_pixels_are_refused(tinyvgg: LoadedModel) -> None:
    with pytest.raises(ValueError, match=r"reads pixels \[N, 3, H, W\]"):
        normalize(tinyvgg, torch.zeros(1, 1, 64, 64))


# ── the attacks ──────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("method", list(ATTACKS))
def test_epsilon_zero_changes_nothing(tinyvgg: LoadedModel, method: str) -> None:
    pixels = _pixels(tinyvgg)
    result = attack(tinyvgg, pixels, method, 0.0)
    assert torch.equal(result.adversarial, pixels[0])
    assert result.after.top == result.before.top and not result.flipped
    _untouched(tinyvgg)


@pytest.mark.parametrize("method", list(ATTACKS))
@pytest.mark.parametrize("epsilon", [1 / 255, 4 / 255, 16 / 255])
def test_the_perturbation_is_epsilon_in_the_max_norm(tinyvgg: LoadedModel, method: str, epsilon: float) -> None:
    pixels = _pixels(tinyvgg, 1).clamp(0.1, 0.9)  # no pixel at a bound, so none is clipped
    result = attack(tinyvgg, pixels, method, epsilon)
    assert float(result.perturbation.abs().max()) == pytest.approx(epsilon, abs=1e-6)
    assert float(result.adversarial.min()) >= 0 and float(result.adversarial.max()) <= 1
    with torch.no_grad():
        logits = pixel_logits(tinyvgg, result.adversarial[None])[0]
    torch.testing.assert_close(result.after.logits, logits)
    assert result.label == int(pixel_logits(tinyvgg, pixels).argmax())
    _untouched(tinyvgg)


def test_fgsm_equals_captum_called_directly(tinyvgg: LoadedModel) -> None:
    pixels, epsilon = _pixels(tinyvgg, 2), 3 / 255
    result = attack(tinyvgg, pixels, "fgsm", epsilon)
    fgsm = FGSM(lambda p: tinyvgg.module(normalize(tinyvgg, p)), _cross_entropy, lower_bound=0.0, upper_bound=1.0)
    fgsm.zero_thresh = 0.0
    expected = fgsm.perturb(pixels, epsilon, torch.tensor([result.label]))
    torch.testing.assert_close(result.adversarial, expected[0], atol=0, rtol=0)
    assert result.steps == 1 and result.step_size == epsilon


def test_pgd_equals_captum_called_directly(tinyvgg: LoadedModel) -> None:
    pixels, epsilon, steps = _pixels(tinyvgg, 3), 6 / 255, 7
    result = attack(tinyvgg, pixels, "pgd", epsilon, steps=steps)
    pgd = PGD(lambda p: tinyvgg.module(normalize(tinyvgg, p)), _cross_entropy, lower_bound=0.0, upper_bound=1.0)
    pgd.fgsm.zero_thresh = 0.0
    expected = pgd.perturb(
        pixels, radius=epsilon, step_size=2.5 * epsilon / steps, step_num=steps, target=torch.tensor([result.label])
    )
    torch.testing.assert_close(result.adversarial, expected[0], atol=0, rtol=0)
    assert result.steps == steps and result.step_size == pgd_step_size(epsilon, steps)


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


@pytest.mark.parametrize("method", list(ATTACKS))
def test_the_linear_model_flips_where_the_algebra_says(linear: LoadedModel, method: str) -> None:
    pixels = torch.full((1, 1, 4, 4), 0.5)
    assert not attack(linear, pixels, method, FLIP_AT - 0.01).flipped
    flipped = attack(linear, pixels, method, FLIP_AT + 0.01)
    assert flipped.flipped and flipped.after.top[0][0] == 1
    torch.testing.assert_close(flipped.adversarial, torch.full((1, 4, 4), 0.5 - FLIP_AT - 0.01))


@pytest.mark.parametrize("method", list(ATTACKS))
def test_the_smallest_flip_brackets_the_known_answer(linear: LoadedModel, method: str) -> None:
    pixels = torch.full((1, 1, 4, 4), 0.5)
    tolerance, top = 1e-3, 0.25
    search = smallest_flip(linear, pixels, method, max_epsilon=top, tolerance=tolerance, steps=5)
    assert search.label == 0 and search.new_class == 1
    assert search.below <= FLIP_AT < search.epsilon
    assert search.epsilon - search.below <= tolerance
    assert len(search.probes) == 1 + math.ceil(math.log2(top / tolerance))
    assert search.probes[0] == (top, 1)
    assert attack(linear, pixels, method, search.epsilon, steps=5).flipped
    assert not attack(linear, pixels, method, search.below, steps=5).flipped
    _untouched(linear)


def test_no_flip_below_the_largest_epsilon(linear: LoadedModel) -> None:
    search = smallest_flip(linear, torch.full((1, 1, 4, 4), 0.5), "fgsm", max_epsilon=0.1, tolerance=0.01)
    assert search.epsilon is None and search.new_class is None and search.below == 0.1
    assert len(search.probes) == 1


def test_progress_and_cancel(tinyvgg: LoadedModel) -> None:
    fractions = []
    attack(tinyvgg, _pixels(tinyvgg), "pgd", 2 / 255, steps=4, progress=fractions.append)
    assert fractions == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(Cancelled):
        attack(tinyvgg, _pixels(tinyvgg), "pgd", 2 / 255, should_stop=lambda: True)
    with pytest.raises(Cancelled):
        smallest_flip(tinyvgg, _pixels(tinyvgg), "fgsm", should_stop=lambda: True)
    _untouched(tinyvgg)


def test_attack_errors_say_what_to_change(tinyvgg: LoadedModel) -> None:
    pixels = _pixels(tinyvgg)
    with pytest.raises(ValueError, match=r"Unknown attack 'cw'\. Attacks: fgsm, pgd"):
        attack(tinyvgg, pixels, "cw")
    with pytest.raises(ValueError, match=r"attacked on pixels \[1, 3, 64, 64\]"):
        attack(tinyvgg, pixels[:, :1])
    with pytest.raises(ValueError, match=r"Pixels must lie in \[0, 1\]"):
        attack(tinyvgg, pixels * 2)
    with pytest.raises(ValueError, match="ε must be between 0 and 1"):
        attack(tinyvgg, pixels, epsilon=-0.1)
    with pytest.raises(ValueError, match="Steps must be a whole number"):
        attack(tinyvgg, pixels, "pgd", steps=0)
    with pytest.raises(ValueError, match="tolerance must be above 0"):
        smallest_flip(tinyvgg, pixels, tolerance=0.5, max_epsilon=0.1)
