"""AppTest for the Train page: the form (data preview, shape table), a real short run in
the worker process watched to the end, its results, and its model picked in the sidebar."""

import time

import pytest
from streamlit.testing.v1 import AppTest

from cnn_explorer import runs
from cnn_explorer.architectures import describe_stack
from cnn_explorer.runspec import PRESETS

PAGE = "pages/train.py"
KEY = "train_tinyvgg-shapes"


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _open(at: AppTest) -> AppTest:
    at.switch_page(PAGE).run()
    _assert_clean(at)
    assert [str(t.value) for t in at.title] == ["Train"]
    return at


def _wait_until_finished(at: AppTest, run_id: str, timeout_s: float = 240) -> runs.Run:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = runs.get_run(run_id)
        if run.status in runs.FINISHED:
            at.run()
            return run
        time.sleep(0.5)
    pytest.fail(f"run {run_id} did not finish in {timeout_s} s: {runs.get_run(run_id)}")


def test_the_form_shows_the_data_and_the_stack(app: AppTest) -> None:
    at = _open(app)
    preset = PRESETS["tinyvgg-shapes"]
    (table,) = [d.value for d in at.dataframe if "parameters" in d.value.columns]
    rows = describe_stack(preset.model.layers, 3, 64, 10)
    assert list(table["layer"]) == [row.name for row in rows]
    assert list(table["parameters"]) == [row.params for row in rows]
    total = sum(row.params for row in rows)
    assert any(f"**{total:,} parameters.**" in str(c.value) for c in at.caption)
    counts = f"{preset.data.count:,} training · {round(preset.data.count * preset.data.val_split):,} validation images"
    assert any(f"{counts} · 10 classes" in str(c.value) for c in at.caption)
    assert any("Drawn once: every epoch sees the same shapes." in str(c.value) for c in at.caption)  # not fresh
    assert at.select_slider(key=f"{KEY}_count").label == "Shapes"
    assert not at.button(key="train_start").disabled


def _form_as_given(name: str) -> None:
    import streamlit as st

    from cnn_explorer.runspec import PRESETS
    from cnn_explorer.ui.training import settings_form

    st.session_state["settings"] = settings_form(PRESETS[name].settings, "form")


@pytest.mark.parametrize("name", PRESETS)
def test_the_settings_form_starts_from_every_presets_settings_unchanged(name: str) -> None:
    at = AppTest.from_function(_form_as_given, args=(name,)).run()
    _assert_clean(at)
    assert at.session_state["settings"] == PRESETS[name].settings


def test_a_short_run_trains_in_the_background_and_opens_everywhere(app: AppTest) -> None:
    at = _open(app)
    at.select_slider(key=f"{KEY}_count").set_value(500)
    at.slider(key=f"{KEY}_epochs").set_value(2).run()
    at.button(key="train_start").click().run()
    _assert_clean(at)
    (run,) = runs.list_runs()
    assert run.spec.settings.epochs == 2 and run.spec.data.count == 500
    assert any(f"run {run.id}" in str(m.value) for m in at.markdown)

    run = _wait_until_finished(at, run.id)
    assert run.status == "done", run.message
    _assert_clean(at)
    assert any(f"run {run.id} · done" in str(m.value) for m in at.markdown)
    results = runs.read_results(run.id)
    assert any(f"**{results['val_accuracy']:.1%}**" in str(m.value) for m in at.markdown)

    at.button(key="train_open_layers").click().run()
    _assert_clean(at)
    assert at.sidebar.selectbox(key="model_name").value == run.model_name
    assert [str(t.value) for t in at.title] == ["Layers"]
