"""The warning that a model is out of its depth: shown next to the prediction on Predict, Explain and Layers."""

from __future__ import annotations

import streamlit as st
from torch import Tensor

from cnn_explorer import ood
from cnn_explorer.model import LoadedModel


@st.cache_data(max_entries=64, show_spinner=False)
def cached_verdict(model_name: str, digest: str, _model: LoadedModel, _x: Tensor) -> ood.Verdict:
    """Whether (model, image) is like the model's training data, computed once per (model name, image digest)."""
    return ood.verdict(_model, _x)


def ood_warning(model: LoadedModel, x: Tensor, digest: str, *, say_no_score: bool = False) -> ood.Verdict:
    """A warning naming the training data when the image is unlike it; with ``say_no_score``, a caption saying what
    a model without a detector (ImageNet, your own) was trained on."""
    verdict = cached_verdict(model.name, digest, model, x)
    if verdict.out_of_distribution:
        st.warning(verdict.message, icon=":material/warning:")
    elif verdict.score is None and say_no_score:
        st.caption(verdict.message)
    return verdict
