"""report.options: the default layers, and bad layers, methods or trust settings refused with what is allowed."""

import pytest
from PIL import Image
from report_pages import tiny_model as _tiny_model

from cnn_explorer import list_layers, load_model
from cnn_explorer.layers import UnknownLayer
from cnn_explorer.report import build_report, default_layers
from cnn_explorer.zoo import LoadedModel


def test_default_layers_are_the_first_a_middle_and_the_last_convolution(model: LoadedModel) -> None:
    assert default_layers(list_layers(model)) == ["conv_1_1", "conv_2_1", "conv_2_2"]
    assert default_layers(list_layers(load_model("lenet5-digits"))) == ["c1", "c3"]  # c5 is 1×1: no map
    assert default_layers(list_layers(_tiny_model())) == []


def test_bad_options_are_refused_with_what_is_allowed(model: LoadedModel, image: Image.Image) -> None:
    with pytest.raises(UnknownLayer, match=r"'nope'.*conv_1_1"):
        build_report(model, image, layers=["nope"])
    with pytest.raises(ValueError, match="layer names"):
        build_report(model, image, layers="conv_1_1")
    with pytest.raises(ValueError, match=r"Unknown method 'nope'\. Methods: saliency"):
        build_report(model, image, methods=["nope"])
    with pytest.raises(ValueError, match="Unknown trust setting bogus"):
        build_report(model, image, trust_settings={"bogus": 1})
