"""Built-in models: the networks shipped in ``assets/models`` (``NAME.json`` describes one, ``NAME.pt`` holds its
weights, ``NAME.md`` its model card), registered as the family ``"built-in"``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch

from cnn_explorer.architectures import ARCHITECTURES
from cnn_explorer.model import LoadedModel, ModelEntry, ModelUnavailable
from cnn_explorer.model_registry import register_source
from cnn_explorer.preprocess import Preprocess

__all__ = ["ASSETS_MODELS", "entries", "load_builtin"]

ASSETS_MODELS = Path(__file__).resolve().parent.parent.parent / "assets" / "models"


@register_source(order=10)
@cache
def entries() -> dict[str, ModelEntry]:
    """The models shipped in :data:`ASSETS_MODELS`, one per ``NAME.json`` (read once)."""
    entries = {}
    for meta_path in sorted(ASSETS_MODELS.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        entries[meta["name"]] = ModelEntry(
            name=meta["name"],
            family="built-in",
            summary=meta["summary"],
            is_ready=lambda meta_path=meta_path: meta_path.with_suffix(".pt").exists(),
            load=lambda progress, meta_path=meta_path: load_builtin(meta_path),
        )
    return entries


def load_builtin(meta_path: Path) -> LoadedModel:
    """Load the shipped model described by ``NAME.json`` (its weights in ``NAME.pt``, its card in ``NAME.md``)."""
    meta = json.loads(meta_path.read_text())
    module = ARCHITECTURES[meta["architecture"]](**meta["architecture_args"])
    weights_path = meta_path.with_suffix(".pt")
    try:
        module.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    except Exception as err:  # a damaged file raises anything from OSError to UnpicklingError
        raise ModelUnavailable(
            f"The weights of {meta['name']} at {weights_path} are missing or damaged ({err}). "
            "Restore them with `git checkout assets/models` or retrain with `make train-defaults`."
        ) from err
    preprocess = Preprocess.from_dict(meta["preprocess"])
    card_path = meta_path.with_suffix(".md")
    return LoadedModel(
        name=meta["name"],
        module=module.eval(),
        input_size=(preprocess.channels, preprocess.crop, preprocess.crop),
        class_names=tuple(meta["class_names"]),
        preprocess=preprocess,
        summary=meta["summary"],
        card=card_path.read_text() if card_path.exists() else meta["summary"],
    )
