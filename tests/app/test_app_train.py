"""AppTest for the Train page: the form (data preview, shape table), a real short run in
the worker process watched to the end, its results, and its model picked in the sidebar."""

import logging
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


def _finished_run(name: str) -> runs.Run:
    """A tiny run trained to the end in this process (a few seconds)."""
    import os
    from dataclasses import replace

    from cnn_explorer import runner
    from cnn_explorer.runspec import DataSpec, LayerSpec, ModelSpec, RunSpec, Settings

    spec = RunSpec(
        name=name,
        data=DataSpec(kind="shapes", size=16, count=48, val_split=0.25),
        model=ModelSpec(layers=(LayerSpec("conv", channels=4, padding=1), LayerSpec("relu"), LayerSpec("flatten"))),
        settings=Settings(epochs=1, batch_size=16),
    )
    run = runs.create_run(replace(spec, name=name))
    assert runs.claim_run(run.id, os.getpid())
    assert runner.execute(run.id).status == "done"
    return runs.get_run(run.id)


def test_every_run_is_reachable_and_a_run_stopped_at_0_epochs_says_so(app: AppTest, monkeypatch) -> None:
    from streamlit.elements.lib import policies

    first, second = _finished_run("first"), _finished_run("second")
    empty = runs.create_run(first.spec)  # stopped before its first epoch finished
    runs.claim_run(empty.id, 1)
    runs.set_status(empty.id, "stopped", message="Stopped after 0 complete epochs.")
    at = _open(app)
    picker = at.selectbox(key="train_run")
    assert picker.options == [
        f"run {empty.id} · first · stopped",
        f"run {second.id} · second · done · {second.best_val_accuracy:.1%}",
        f"run {first.id} · first · done · {first.best_val_accuracy:.1%}",
    ]
    stopped = "Stopped before the first epoch finished: no results. Start a new run"
    assert any(stopped in str(c.value) for c in at.caption)
    assert not any("Results appear when the run finishes" in str(c.value) for c in at.caption)

    picker.set_value(first.id).run()  # an earlier run: its results and actions, no deletion needed
    _assert_clean(at)
    assert any(f"run {first.id} · done" in str(m.value) for m in at.markdown)
    results = runs.read_results(first.id)
    assert any(f"**{results['val_accuracy']:.1%}**" in str(m.value) for m in at.markdown)

    # Open in Layers logs nothing: Streamlit warns (once a process, with a stack trace) when a widget gets a default
    # and its key was set through session state; AppTest has no runtime, so the check is let run as a server runs it.
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    policies._LOGGER.addHandler(handler)
    exists = policies.runtime.exists
    policies.runtime.exists = lambda: True
    try:
        at.button(key="train_open_layers").click().run()
    finally:
        policies.runtime.exists = exists
        policies._LOGGER.removeHandler(handler)
    _assert_clean(at)
    assert [str(t.value) for t in at.title] == ["Layers"]
    assert at.sidebar.selectbox(key="model_name").value == first.model_name
    assert logged == []
