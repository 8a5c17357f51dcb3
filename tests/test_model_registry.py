"""The model registry (cnn_explorer.model_registry): a source registers itself and joins the zoo in its order, with
no edit to the zoo; the model types live in a leaf that imports no source."""

import ast
from pathlib import Path

import pytest

from cnn_explorer import model_registry, zoo
from cnn_explorer.model import LoadedModel, ModelEntry

PACKAGE = Path(zoo.__file__).parent


@pytest.fixture
def sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_registry, "_SOURCES", dict(model_registry._SOURCES))  # registrations end with the test


def test_a_registered_source_joins_the_zoo_in_its_order(sources) -> None:
    loaded = zoo.load_model("tinyvgg-shapes")
    entry = ModelEntry("extra", "extra", "an extra model", lambda: True, lambda progress: loaded)

    @model_registry.register_source(order=15)  # between the built-in models (10) and ImageNet's (20)
    def extra() -> dict[str, ModelEntry]:
        return {"extra": entry}

    names = zoo.available_models()
    assert names.index("lenet5-digits") < names.index("tinyvgg-shapes") < names.index("extra") < names.index("alexnet")
    assert zoo.model_entry("extra") is entry and zoo.load_model("extra") is loaded
    model_registry.register_source(order=15)(extra)  # registering again replaces it
    assert zoo.available_models().count("extra") == 1


def test_an_unknown_name_lists_the_known_models() -> None:
    with pytest.raises(KeyError, match=r"Unknown model 'nonet'\. Known models: lenet5-digits, tinyvgg-shapes, alexnet"):
        zoo.load_model("nonet")


def _imports(module: Path) -> set[str]:
    """Every cnn_explorer module ``module`` imports, those inside functions included."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("cnn_explorer.")}


def test_the_model_types_are_a_leaf_and_the_zoo_names_no_source() -> None:
    leaves = ("cnn_explorer.preprocess", "cnn_explorer.progress")  # modules that import nothing of the project
    assert {name.rpartition(".")[0] if name.count(".") > 1 else name for name in _imports(PACKAGE / "model.py")} == {
        *leaves
    }
    registry = _imports(PACKAGE / "model_registry.py")
    assert registry and all(name.startswith(("cnn_explorer.model", "cnn_explorer.progress")) for name in registry)
    assert not {name for name in _imports(PACKAGE / "zoo.py") if name.startswith("cnn_explorer.sources.")}
    assert not {name for name in _imports(PACKAGE / "architectures.py") if "zoo" in name or "sources" in name}
    assert LoadedModel is zoo.LoadedModel  # re-exported for the callers of zoo
