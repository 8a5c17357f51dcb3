"""The one UI helper for long computations (cnn_explorer/ui/long_task.py), on a script of its own: a result is
computed once and then read from the shared store; Cancel leaves a Compute button; an error is shown with its
prefix; a computation on request waits for its button. The Explain page, the Playground and Fool the model all go
through it (their pages' tests cover it there)."""

from streamlit.testing.v1 import AppTest


def _script() -> None:
    import streamlit as st

    from cnn_explorer.ui.long_task import computed, request_button

    calls = st.session_state.setdefault("calls", [])
    mode = st.session_state.get("mode", "at once")
    key = ("sum", mode)

    def compute(progress):
        calls.append(progress is not None)
        if mode == "failing":
            raise ValueError("ε must be positive.")
        progress(0.5)
        if mode == "stopped once" and len(calls) == 1:
            st.stop()  # what Cancel's click does to a running computation: Streamlit stops the script
        return 42

    if mode == "on request":
        request_button("Add them", [key], "sum_run")
    value = computed(key, "Adding", compute, "sum", on_request=mode == "on request", error_prefix="Sum: ")
    st.markdown(f"value={value}")


def _app(mode: str) -> AppTest:
    at = AppTest.from_function(_script, default_timeout=60)
    at.session_state["mode"] = mode
    return at.run()


def _value(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("value="))


def test_a_result_is_computed_once_with_progress_then_read_from_the_store() -> None:
    at = _app("at once")
    assert _value(at) == "value=42" and at.session_state["calls"] == [True]
    assert not [b for b in at.button if b.key in ("sum_cancel", "sum_compute")]  # the bar and Cancel are gone
    at.run()
    assert _value(at) == "value=42" and at.session_state["calls"] == [True]


def test_cancel_leaves_a_compute_button_that_runs_it_again() -> None:
    at = _app("stopped once")
    at.button(key="sum_cancel").click().run()
    assert [i.value for i in at.info] == ["Adding was cancelled."]
    assert _value(at) == "value=None" and len(at.session_state["calls"]) == 1
    at.button(key="sum_compute").click().run()
    assert _value(at) == "value=42" and len(at.session_state["calls"]) == 2
    assert not at.info


def test_a_library_error_is_shown_with_its_prefix_and_nothing_is_stored() -> None:
    at = _app("failing")
    assert [e.value for e in at.error] == ["Sum: ε must be positive."]
    assert _value(at) == "value=None"
    at.run()
    assert len(at.session_state["calls"]) == 2  # not stored: tried again


def test_on_request_it_waits_for_its_button_which_then_disappears() -> None:
    at = _app("on request")
    assert _value(at) == "value=None" and at.session_state["calls"] == []
    at.button(key="sum_run").click().run()
    assert _value(at) == "value=42" and at.session_state["calls"] == [True]
    assert not [b for b in at.button if b.key == "sum_run"]
