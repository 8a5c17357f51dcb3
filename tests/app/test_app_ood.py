"""AppTest: the warning that the model is out of its depth, next to the prediction on Predict, Explain and Layers."""

from streamlit.testing.v1 import AppTest


def _warnings(at: AppTest) -> list[str]:
    return [str(w.value) for w in at.warning]


def _pick_sample(at: AppTest, key: str) -> AppTest:
    at.sidebar.selectbox(key="sample").select(key).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_photo_on_the_shapes_model_is_flagged_on_every_page_and_a_shape_is_not(app: AppTest) -> None:
    at = app
    assert at.sidebar.selectbox(key="model_name").value == "tinyvgg-shapes"
    assert at.sidebar.selectbox(key="sample").value.startswith("shape-")
    assert not any("drawn shapes" in text for text in _warnings(at))

    _pick_sample(at, "cat")
    for page in (None, "pages/explain.py", "pages/layers.py"):
        if page is not None:
            at.switch_page(page).run()
            assert not at.exception, [e.value for e in at.exception]
        flagged = [text for text in _warnings(at) if "trained on 10 kinds of drawn shapes" in text]
        assert len(flagged) == 1, (page, _warnings(at))
        assert "this image looks unlike them, so its answer means little here" in flagged[0]

    _pick_sample(at, "shape-star")
    assert not any("drawn shapes" in text for text in _warnings(at))
