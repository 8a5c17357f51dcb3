"""Shared by the report tests: the model they report on, a parser of the page, the library's own top class, and a
tiny network with nothing to draw (fixtures are in conftest.py)."""

from html.parser import HTMLParser

import torch
from PIL import Image
from torch import nn

from cnn_explorer.preprocess import Preprocess
from cnn_explorer.zoo import LoadedModel

MODEL = "tinyvgg-shapes"


class Page(HTMLParser):
    """Every start tag with its attributes, the text, and the text of each table row keyed by its method."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def plain(self) -> str:
        return " ".join("".join(self.text).split())


def direct_top(model: LoadedModel, image: Image.Image) -> tuple[int, str, float]:
    with torch.no_grad():
        probabilities = torch.softmax(model.module(model.preprocess(image))[0], dim=0)
    best = int(probabilities.argmax())
    return best, model.class_names[best], float(probabilities[best])


def tiny_model() -> LoadedModel:
    """A grey 8×8 network whose only convolution ends at 1×1: no feature map to draw, no layer for a CAM."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 2, 8), nn.Flatten(), nn.Linear(2, 2)).eval()
    return LoadedModel(
        name="tiny",
        module=module,
        input_size=(1, 8, 8),
        class_names=("left", "right"),
        preprocess=Preprocess(resize=8, crop=8, grayscale=True),
        summary="a tiny test network",
        card="### tiny\n\n- **Data:** none",
    )
