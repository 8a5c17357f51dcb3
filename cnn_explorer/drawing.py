"""Drawing your own image: the canvases a person can draw on, and which one suits a model.

A digit model learnt light strokes on a dark square (scikit-learn's digits, MNIST), so digits are drawn white on
black, centred and large; the shape model learnt filled shapes, so shapes are drawn with a broad dark pen on white
paper. The sidebar's Draw source presets its canvas from :func:`canvas_for`; the drawing then goes through
``load_image`` like any other image. No UI here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cnn_explorer.data import DIGIT_CLASSES, SHAPE_CLASSES
from cnn_explorer.images import kin

__all__ = ["CANVASES", "CANVAS_SIZE", "CanvasPreset", "canvas_for"]

CANVAS_SIZE = 224
"""Side of the square canvas in CSS pixels: small enough for the sidebar, large enough to draw with a finger."""


@dataclass(frozen=True)
class CanvasPreset:
    """A canvas to draw on: its colours, its pen and what to tell the person.

    Attributes:
        key: ``"digit"``, ``"shape"`` or ``"neutral"``.
        title: What the canvas picker shows.
        ink: The pen's colour, ``#rrggbb``.
        paper: The background's colour, ``#rrggbb``.
        brush: The pen's width in canvas pixels (of :data:`CANVAS_SIZE`).
        hint: One sentence under the canvas.
    """

    key: str
    title: str
    ink: str
    paper: str
    brush: int
    hint: str


CANVASES: dict[str, CanvasPreset] = {
    preset.key: preset
    for preset in (
        CanvasPreset(
            "digit",
            "Digit · white on black",
            ink="#ffffff",
            paper="#000000",
            brush=18,
            hint="Draw one digit large, in the middle of the square, as the digits the model learnt from.",
        ),
        CanvasPreset(
            "shape",
            "Shape · dark on white",
            ink="#1e2a78",
            paper="#ffffff",
            brush=14,
            hint="Draw one shape large, in the middle of the square; colour it in for a filled shape.",
        ),
        CanvasPreset(
            "neutral",
            "Plain · black on white",
            ink="#000000",
            paper="#ffffff",
            brush=8,
            hint="Draw anything; the model sees the square as it sees any image.",
        ),
    )
}
"""The canvases by key, in the order the picker lists them."""

# A built-in model, or a run trained on its kind of data (see images.kin), and the canvas its data was drawn like.
_CANVAS_OF_MODEL = {"lenet5-digits": "digit", "tinyvgg-shapes": "shape"}


def canvas_for(model_name: str, class_names: Sequence[str] = ()) -> CanvasPreset:
    """The canvas that suits a model: digits on the digit canvas, shapes on the shape canvas, else the plain one.

    Args:
        model_name: A registry name; a run trained on the built-in digits, MNIST or shapes counts as their model's.
        class_names: The model's classes: ten classes named 0–9 (``"7"``, or MNIST's ``"7 - seven"``) are digits,
            and classes all among the built-in shapes are shapes, whatever the model is called.
    """
    for name in sorted(kin(model_name)):
        if name in _CANVAS_OF_MODEL:
            return CANVASES[_CANVAS_OF_MODEL[name]]
    names = [str(name).strip() for name in class_names]
    if len(names) == len(DIGIT_CLASSES) and all(
        name.split(" ", 1)[0] == digit for name, digit in zip(names, DIGIT_CLASSES, strict=True)
    ):
        return CANVASES["digit"]
    if names and set(names) <= set(SHAPE_CLASSES):
        return CANVASES["shape"]
    return CANVASES["neutral"]
