"""attribution.registry: every method documents itself and checks its parameters; a constant map is marked."""

import dataclasses

import torch

from cnn_explorer import METHODS, explain


def test_a_constant_map_is_marked_constant(tinyvgg, shape_input):
    found = explain(tinyvgg, shape_input, "gradcam")
    assert not found.is_constant
    assert dataclasses.replace(found, attribution=torch.zeros(26, 26)).is_constant
    assert dataclasses.replace(found, attribution=torch.full((26, 26), 3.5)).is_constant
    almost = torch.full((26, 26), 3.5)
    almost[0, 0] = 3.5 + 1e-3  # a real (if faint) difference
    assert not dataclasses.replace(found, attribution=almost).is_constant


def test_every_method_documents_itself():
    for key, spec in METHODS.items():
        assert spec.key == key and spec.url.startswith("https://") and spec.summary and spec.paper
        for param in spec.params:
            assert spec.checked({param.name: param.default})[param.name] == param.default
