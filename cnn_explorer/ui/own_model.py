""" "Add your own model" in the sidebar, and the notes pages show where an uploaded model cannot go."""

from __future__ import annotations

import contextlib
from typing import Any

import streamlit as st

from cnn_explorer import user_models
from cnn_explorer.ui.core import DEFAULT_MODEL
from cnn_explorer.ui.views import VIEWS, missing
from cnn_explorer.zoo import LoadedModel, model_entry

_TITLES = {view.key: view.title for view in VIEWS}

_OWN_KINDS = {"state_dict": "state_dict", "torchscript": "TorchScript"}
_MODEL_MB = user_models.MAX_BYTES // 2**20  # server.maxUploadSize in .streamlit/config.toml is the same 600
_OWN_HELP = {
    "state_dict": "A file written by torch.save(model.state_dict(), path): only tensors, for an architecture below.",
    "torchscript": "A file written by torch.jit.save(torch.jit.script(model), path). Some views need a state_dict: "
    "see the model card.",
}


def own_model_panel(current: str) -> None:
    """The sidebar's "Add your own model": a state_dict or TorchScript file with its classes, size and normalization;
    added, it becomes the selected model. When the current model is one of the user's, a button removes it."""
    with st.expander("Add your own model", icon=":material/upload_file:"):
        kind = st.segmented_control(
            "Kind", list(_OWN_KINDS), default="state_dict", format_func=_OWN_KINDS.get, key="own_kind"
        )
        kind = kind or "state_dict"  # clicking the chosen kind again clears it
        form = st.session_state.setdefault("own_form", 0)  # a new number after each model added: empty uploaders
        upload = st.file_uploader("Model file", key=f"own_file_{form}", max_upload_size=_MODEL_MB, help=_OWN_HELP[kind])
        st.html(upload_limit_style("own_file_", _MODEL_MB))
        if kind == "state_dict":
            st.selectbox(
                "Architecture",
                user_models.ARCHITECTURE_NAMES,
                key="own_architecture",
                help="The network the weights were saved from: ours, or a torchvision classification model.",
            )
            st.number_input("Classes", 1, user_models.MAX_CLASSES, 10, key="own_classes")
        else:
            channels_col, side_col = st.columns(2)
            channels_col.selectbox(
                "Channels", [3, 1], format_func={3: "3 (RGB)", 1: "1 (grey)"}.get, key="own_channels"
            )
            side_col.number_input("Input side", 1, 1024, 224, key="own_side", help="Height = width, in pixels")
        st.file_uploader(
            "Class names (optional)",
            type=["txt", "json"],
            key=f"own_class_file_{form}",
            max_upload_size=1,
            help="One name per line, or a JSON list, in output order.",
        )
        standardize = st.checkbox(
            "Standardize each image",
            key="own_standardize",
            help="Subtract the image's own mean and divide by its own std, as CNN Explainer's TinyVGG (and ours) do.",
        )
        mean_col, std_col = st.columns(2)
        mean_col.text_input("Mean (optional)", key="own_mean", placeholder="0.485, 0.456, 0.406", disabled=standardize)
        std_col.text_input("Std (optional)", key="own_std", placeholder="0.229, 0.224, 0.225", disabled=standardize)
        st.caption("Without them pixels are only scaled to [0, 1]; torchvision architectures default to ImageNet's.")
        st.text_input("Name (optional)", key="own_name", placeholder=upload.name if upload else "from the file name")
        st.button("Add model", key="own_add", on_click=_add_own_model, disabled=upload is None, type="primary")
        if (message := st.session_state.pop("own_message", None)) is not None:
            level, text = message
            (st.success if level == "success" else st.error)(text)
        if model_entry(current).family == user_models.FAMILY:
            st.button(f"Remove {current}", key="own_remove", on_click=_remove_own_model, args=(current,))


def upload_limit_style(key_prefix: str, megabytes: int) -> str:
    """CSS that makes the file uploaders whose keys start with ``key_prefix`` state their limit in MB.

    Streamlit's uploader writes any limit over 512 MB in whole GB: "1GB per file" for 600 MB. The dropzone's own text
    is hidden and the true limit written in its place, in the same small type.
    """
    scope = f'[class*="st-key-{key_prefix}"] [data-testid="stFileUploaderDropzoneInstructions"] span'
    return (
        f"<style>{scope} {{font-size: 0}} "
        f'{scope}::after {{content: "{megabytes} MB per file"; font-size: 14px; line-height: 1.6}}</style>'
    )


def _numbers(text: str, what: str) -> list[float] | None:
    if not text.strip():
        return None
    try:
        return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise user_models.ModelFileError(
            f"The {what} must be numbers separated by commas, e.g. 0.5, 0.5, 0.5."
        ) from None


def _add_own_model() -> None:
    state = st.session_state
    form = state.get("own_form", 0)
    upload, kind = state.get(f"own_file_{form}"), state.get("own_kind") or "state_dict"
    if upload is None:
        return
    try:
        class_file = state.get(f"own_class_file_{form}")
        options: dict[str, Any] = {
            "class_names": class_file.getvalue() if class_file is not None else None,
            "standardize": bool(state.get("own_standardize")),
            "name": state.get("own_name") or None,
            "file_name": upload.name,
        }
        if not options["standardize"]:
            options["mean"] = _numbers(state.get("own_mean", ""), "mean")
            options["std"] = _numbers(state.get("own_std", ""), "standard deviations")
        if kind == "state_dict":
            options |= {"architecture": state["own_architecture"], "num_classes": int(state["own_classes"])}
        else:
            options["input_size"] = (int(state["own_channels"]), int(state["own_side"]), int(state["own_side"]))
        upload.seek(0)
        with st.spinner(f"Checking {upload.name} …"):
            name = user_models.add_model(upload, kind=kind, **options)
    except user_models.ModelFileError as error:
        state["own_message"] = ("error", f"{upload.name}: {error}")
        return
    state["model_name"] = name  # the picker shows it at once
    state["own_message"] = ("success", f"Added as **{name}**. Its model card is on the Predict page.")
    # The form starts empty for the next model: new uploaders (a file widget cannot be emptied), no name or numbers.
    state["own_form"] = form + 1
    for key in ("own_name", "own_mean", "own_std"):
        state[key] = ""


def _remove_own_model(name: str) -> None:
    with contextlib.suppress(KeyError):  # removed meanwhile, e.g. from another tab
        user_models.remove_model(name)
    st.session_state["model_name"] = DEFAULT_MODEL
    st.session_state["own_message"] = ("success", f"Removed {name}.")


def unavailable(model: LoadedModel, *views: str) -> list[str]:
    """The views among ``views`` that ``model`` cannot show (what the model allows against what each view needs: see
    :mod:`cnn_explorer.ui.views`), said in one ``st.info`` with the reason and what to do; empty when all work."""
    reasons = missing(model, *views)
    if reasons:
        lines = [f"- **{_TITLES[view]}**: {reason}" for view, reason in reasons.items()]
        st.info(f"{model.name} is a {model.capabilities.kind}, so this is not available:\n" + "\n".join(lines))
    return list(reasons)


def require_view(model: LoadedModel, view: str) -> None:
    """Stop the page, saying why and what to do, when ``model`` cannot show this view (see :func:`unavailable`)."""
    if unavailable(model, view):
        st.stop()
