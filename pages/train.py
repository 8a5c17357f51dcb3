"""Train: set up a small training run, watch it learn live, study its mistakes, and open the result everywhere.

Runs execute in a worker process (cnn_explorer.jobs); their state lives in the run store, so a refresh, a second
tab or an app restart finds them.
"""

import streamlit as st

from cnn_explorer import ui

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
    ui.new_run_form()

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
