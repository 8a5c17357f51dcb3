"""AppTest for "Add your own model" in the sidebar: upload a state_dict or a TorchScript file, pick it, and every page
either works with it or says why it cannot (a TorchScript model's layers cannot be hooked)."""

import dataclasses
import io
import tomllib
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnn_explorer import user_models
from cnn_explorer.images import sample_bytes
from cnn_explorer.ui.views import VIEWS, missing
from cnn_explorer.zoo import available_models, load_model

PAGES = ["pages/home.py", "pages/layers.py", "pages/explain.py", "pages/playground.py", "pages/robustness.py"]
PLAYGROUND_VIEWS = ["convolution", "pooling", "activations", "sharing", "filters"]
CLASSES = ["circle", "square", "triangle", "star", "heart", "cross", "ring", "arrow", "moon", "bolt"]


def _texts(at: AppTest) -> str:
    elements = [*at.title, *at.markdown, *at.caption, *at.error, *at.warning, *at.info, *at.success]
    return "\n".join(str(element.value) for element in elements)


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in _texts(at)
    assert not at.error, [e.value for e in at.error]


def _state_dict_file() -> bytes:
    buffer = io.BytesIO()
    torch.save(load_model("tinyvgg-shapes").module.state_dict(), buffer)
    return buffer.getvalue()


def _torchscript_file() -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(load_model("tinyvgg-shapes").module), buffer)
    return buffer.getvalue()


def _add(at: AppTest, kind: str, content: bytes, file_name: str, *, class_names: bytes | None = None) -> AppTest:
    at.sidebar.segmented_control(key="own_kind").set_value(kind).run()
    at.sidebar.file_uploader(key="own_file_0").upload(file_name, content).run()
    if kind == "state_dict":
        at.sidebar.selectbox(key="own_architecture").select("TinyVGG")
        at.sidebar.number_input(key="own_classes").set_value(10)
    else:
        at.sidebar.selectbox(key="own_channels").select(3)
        at.sidebar.number_input(key="own_side").set_value(64)
    if class_names is not None:
        at.sidebar.file_uploader(key="own_class_file_0").upload("classes.txt", class_names, "text/plain")
    at.sidebar.checkbox(key="own_standardize").check()  # the shipped model's normalization
    at.sidebar.text_input(key="own_name").input("Shapes again")
    at.sidebar.button(key="own_add").click().run()
    _assert_clean(at)
    return at


def test_a_state_dict_uploaded_in_the_sidebar_is_selected_and_predicts(app: AppTest, expected) -> None:
    at = _add(app, "state_dict", _state_dict_file(), "shapes.pt", class_names="\n".join(CLASSES).encode())
    assert available_models()[-1] == "my-shapes-again"
    assert at.sidebar.selectbox(key="model_name").value == "my-shapes-again"
    assert any("Added as **my-shapes-again**" in str(s.value) for s in at.sidebar.success)
    model = load_model("my-shapes-again")
    assert model.class_names == tuple(CLASSES)
    sample = at.sidebar.selectbox(key="sample").value
    name, probability = expected.top(model, sample_bytes(sample))
    assert str(at.title[0].value) == f"{name} · {probability:.1%}"
    # The same weights as the shipped model, so the same probability under our own class names.
    shipped_name, shipped_probability = expected.top(load_model("tinyvgg-shapes"), sample_bytes(sample))
    assert model.preprocess == load_model("tinyvgg-shapes").preprocess
    assert probability == shipped_probability
    assert CLASSES[load_model("tinyvgg-shapes").class_names.index(shipped_name)] == name
    assert "your TinyVGG (state_dict)" in _texts(at)


def test_after_an_add_the_form_is_empty_for_the_next_model(app: AppTest) -> None:
    at = _add(app, "state_dict", _state_dict_file(), "shapes.pt", class_names="\n".join(CLASSES).encode())
    assert at.sidebar.selectbox(key="model_name").value == "my-shapes-again"
    assert at.sidebar.file_uploader(key="own_file_1").value is None
    assert at.sidebar.file_uploader(key="own_class_file_1").value is None
    assert at.sidebar.text_input(key="own_name").value == ""
    assert not [u for u in at.sidebar.file_uploader if u.key in ("own_file_0", "own_class_file_0")]
    assert at.sidebar.button(key="own_add").disabled  # nothing to add until a new file is chosen
    at.sidebar.file_uploader(key="own_file_1").upload("again.pt", _state_dict_file()).run()
    at.sidebar.checkbox(key="own_standardize").check()
    at.sidebar.button(key="own_add").click().run()
    _assert_clean(at)
    assert at.sidebar.selectbox(key="model_name").value == "my-again"


def test_a_bad_file_gets_a_message_and_no_model(app: AppTest) -> None:
    at = app
    at.sidebar.file_uploader(key="own_file_0").upload("photo.pt", b"\x89PNG not a model at all").run()
    at.sidebar.button(key="own_add").click().run()
    assert not at.exception
    assert any("not a PyTorch file" in str(e.value) for e in at.sidebar.error)
    assert not [name for name in available_models() if name.startswith("my-")]
    assert at.sidebar.selectbox(key="model_name").value == "tinyvgg-shapes"


def test_mismatched_weights_list_the_keys(app: AppTest) -> None:
    at = app
    at.sidebar.file_uploader(key="own_file_0").upload("shapes.pt", _state_dict_file()).run()
    at.sidebar.selectbox(key="own_architecture").select("LeNet5")
    at.sidebar.button(key="own_add").click().run()
    assert not at.exception
    message = str(at.sidebar.error[0].value)
    assert "missing keys: c1.weight" in message and "unexpected keys: conv_1_1.weight" in message


@pytest.mark.parametrize("kind", ["state_dict", "torchscript"])
def test_every_page_works_or_says_why(app: AppTest, kind: str) -> None:
    content = _state_dict_file() if kind == "state_dict" else _torchscript_file()
    at = _add(app, kind, content, f"shapes.{kind}")
    name = at.sidebar.selectbox(key="model_name").value
    assert name.startswith("my-shapes-again")
    scripted = kind == "torchscript"
    for page in PAGES:
        at.switch_page(page).run()
        _assert_clean(at)
        assert at.sidebar.selectbox(key="model_name").value == name
        if page == "pages/playground.py":
            for view in PLAYGROUND_VIEWS:
                at.segmented_control(key="playground_view").set_value(view).run()
                _assert_clean(at)
                if view == "pooling":
                    at.segmented_control(key="pool_source").set_value("feature map").run()
                    _assert_clean(at)
                if view in ("sharing", "filters", "pooling"):
                    assert ("is a TorchScript model" in _texts(at)) == scripted
    # The Layers page says why it cannot show a TorchScript model, and what to do instead.
    at.switch_page("pages/layers.py").run()
    if scripted:
        assert not at.title
        assert "ScriptModules, which accept no forward hooks" in str(at.info[0].value)
        assert "state_dict" in str(at.info[0].value)
    else:
        assert [str(t.value) for t in at.title] == ["Layers"]
    at.switch_page("pages/explain.py").run()
    offered = at.multiselect(key="explain_methods").options
    assert ("Grad-CAM" in offered) != scripted
    assert ("Guided backpropagation" in offered) != scripted
    assert "Saliency (vanilla gradient)" in offered


def test_removing_the_model_returns_to_the_default(app: AppTest) -> None:
    at = _add(app, "state_dict", _state_dict_file(), "shapes.pt")
    at.sidebar.button(key="own_remove").click().run()
    _assert_clean(at)
    assert at.sidebar.selectbox(key="model_name").value == "tinyvgg-shapes"
    assert "my-shapes-again" not in available_models()
    assert not user_models.list_user_models()


def test_the_model_uploader_states_its_true_limit(app: AppTest) -> None:
    # Streamlit writes a limit over 512 MB as "1GB per file"; a style (a page-wide element) writes the true one.
    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    limit_mb = config["server"]["maxUploadSize"]
    assert limit_mb == user_models.MAX_BYTES // 2**20 == 600
    (uploader,) = [u for u in app.sidebar.get("file_uploader") if u.proto.label == "Model file"]
    assert uploader.proto.max_upload_size_mb == limit_mb
    styles = [h.proto.body for h in app.get("html") if "stFileUploaderDropzoneInstructions" in h.proto.body]
    assert len(styles) == 1 and '[class*="st-key-own_file_"]' in styles[0]
    assert 'content: "600 MB per file"' in styles[0]


def test_each_view_declares_what_it_needs_and_a_closed_model_says_why() -> None:
    """The views that need a model's layers are unavailable on a TorchScript model (it declares no hooks), each with the
    model's reason and what to do; a model that allows hooks misses none."""
    eager = load_model("tinyvgg-shapes")
    closed = dataclasses.replace(eager, capabilities=user_models.TORCHSCRIPT)
    reasons = missing(closed)
    assert set(reasons) == {view.key for view in VIEWS if view.needs_hooks}
    assert {"layers", "cam", "guided_backprop", "trust", "feature_maps", "transfer"} == set(reasons)
    assert all(
        reason.endswith(user_models.TORCHSCRIPT.instead) and "state_dict" in reason for reason in reasons.values()
    )
    assert reasons["layers"].startswith("A TorchScript archive is compiled code: its layers are ScriptModules")
    assert missing(closed, "predict", "cam") == {"cam": reasons["cam"]}
    assert missing(eager) == {} and missing(eager, "layers") == {}
