"""lazy.lazy_names: a package's names imported from their module on first use, then kept."""

import pytest

from cnn_explorer.lazy import lazy_names
from cnn_explorer.render import figures


def test_a_name_is_its_module_s_and_kept_after_first_use() -> None:
    namespace: dict = {}
    getattr_, dir_ = lazy_names("cnn_explorer.render", {"figures": ("top_k_figure", "colourbar_figure")}, namespace)
    assert dir_() == ["colourbar_figure", "top_k_figure"]
    assert getattr_("top_k_figure") is figures.top_k_figure
    assert namespace == {"top_k_figure": figures.top_k_figure}
    with pytest.raises(AttributeError, match=r"module 'cnn_explorer\.render' has no attribute 'vector_figure'"):
        getattr_("vector_figure")  # in the module, but not one of the names given
