"""Train: set up a small training run, watch it learn live, study its mistakes, and open the result everywhere.

Runs execute in a worker process (cnn_explorer.jobs); their state lives in the run store, so a refresh, a second
tab or an app restart finds them.
"""

import streamlit as st

from cnn_explorer import ui
from cnn_explorer.runspec import PRESETS, ModelSpec, RunSpec

if page := st.session_state.pop("train_switch_to", None):  # "Open in Layers" / "Explain it" was clicked
    st.switch_page(page)

st.title("Train")
st.caption(
    "Train a small CNN from the browser and watch it learn. Change the architecture or the learning rate and see "
    "what happens; then open the trained model in the layer explorer and ask it why it erred."
)
if message := st.session_state.pop("train_message", None):
    st.error(message)

run_id = ui.current_run_id()
with st.expander("New run", expanded=run_id is None, icon=":material/add:"):
    preset_name = st.selectbox(
        "Start from a preset", list(PRESETS), format_func=lambda k: PRESETS[k].name, key="train_preset"
    )
    preset = PRESETS[preset_name]
    key = f"train_{preset_name}"
    st.markdown("##### Data")
    data = ui.data_form(preset.data, key)
    kind = (
        st.segmented_control(
            "Model",
            ["stack", "transfer"],
            default="stack",
            key=f"{key}_model_kind",
            format_func={"stack": "Build a CNN", "transfer": "Transfer from a zoo model"}.get,
        )
        or "stack"
    )
    settings = ui.settings_form(preset.settings, key)
    base = None
    if kind == "transfer":
        model = ui.transfer_form(key)
        base = model.base
    prepared = ui.data_preview(data, settings.seed, base) if data else None
    ready = prepared is not None
    if kind == "stack":
        st.markdown("##### Architecture")
        st.caption("Edit the layers (add, delete, reorder rows). The last linear layer, to the classes, is added.")
        layers = ui.stack_editor(preset.model.layers, f"{key}_stack")
        model = ModelSpec(layers=layers)
        ready = ready and ui.stack_summary(layers, prepared, settings.dropout)
    name = st.text_input("Run name", preset.name, key=f"{key}_name")
    spec = RunSpec(name=name or preset.name, data=data, model=model, settings=settings)
    st.button(
        "Start training",
        type="primary",
        disabled=not ready,
        key="train_start",
        icon=":material/play_arrow:",
        on_click=ui.start_run,
        args=(spec,),
    )

if run_id is not None:
    run_id = ui.run_picker()
    ui.run_monitor(run_id)
    ui.run_actions(run_id)
    with st.expander("Time-lapse: one validation image through training", icon=":material/movie:"):
        ui.timelapse_view(run_id)
    with st.expander("Results: what it gets wrong", expanded=True, icon=":material/grid_on:"):
        ui.results_view(run_id)
with st.expander("All runs", icon=":material/history:"):
    ui.runs_overview()
