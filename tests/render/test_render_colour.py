"""render.colour: the colour scopes of SCALES, scale ranges, the default colour map and the network's range."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from render_samples import maps as _maps

from cnn_explorer import render
from cnn_explorer.render import SCALES, scale_range


def test_scales_registry_holds_the_three_scopes_with_text_for_the_page():
    assert list(SCALES) == ["map", "layer", "global"]
    for name, scale in SCALES.items():
        assert scale.name == name and scale.label and scale.description.endswith(".")


def test_scale_range_follows_each_scope_definition():
    maps = _maps(4, 5, 6)
    array = maps.double().numpy()
    per_map = scale_range(maps, "map")
    assert per_map == [(float(m.min()), float(m.max())) for m in array]
    assert scale_range(maps, "layer") == [(float(array.min()), float(array.max()))] * 4
    assert scale_range(maps, "global", (-10.0, 20.0)) == [(-10.0, 20.0)] * 4
    symmetric = scale_range(maps, "map", symmetric=True)
    assert symmetric == [(-max(abs(lo), abs(hi)), max(abs(lo), abs(hi))) for lo, hi in per_map]


@pytest.mark.parametrize(
    ("scope", "global_range", "match"),
    [("global", None, "global_range"), ("global", (2.0, 1.0), "vmin ≤ vmax"), ("unit", None, "Unknown colour scope")],
)
def test_scale_range_rejects_what_it_cannot_honour(scope, global_range, match):
    with pytest.raises(ValueError, match=match):
        scale_range(_maps(2, 3, 3), scope, global_range)


def test_default_cmap_is_diverging_for_signed_data_and_sequential_otherwise():
    assert render.default_cmap(torch.tensor([-0.1, 2.0])) == "RdBu_r"
    assert render.default_cmap(torch.tensor([0.0, 2.0])) == "viridis"
    assert render.default_cmap(np.zeros((2, 2))) == "viridis"


def test_network_range_spans_every_tensor():
    acts = {"a": torch.tensor([0.5, 3.0]), "b": torch.tensor([[-2.0, 1.0]])}
    assert render.network_range(acts) == (-2.0, 3.0)
    assert render.network_range(acts.values()) == (-2.0, 3.0)
