"""CNN Explorer: ``streamlit run app.py``. Page config, the shared sidebar, and navigation over pages/."""

import streamlit as st

from cnn_explorer import cores, heap, ui

st.set_page_config(page_title="CNN Explorer", page_icon="🧠", layout="wide")
cores.share_with_training()  # half the cores while a run trains: the worker keeps the rest

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Predict", icon=":material/image_search:", default=True),
        st.Page("pages/layers.py", title="Layers", icon=":material/layers:"),
        st.Page("pages/explain.py", title="Explain", icon=":material/psychology_alt:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/playground.py", title="Playground", icon=":material/toys:"),
        st.Page("pages/robustness.py", title="Fool the model", icon=":material/bug_report:"),
    ],
)
ui.sidebar()
try:
    navigation.run()
finally:  # a page that stops early has imported its modules too
    heap.freeze_imports()  # the collection Streamlit runs after every run then skips torch and the other modules
