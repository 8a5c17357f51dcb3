"""Widgets of the Train page's run form: the data, its preview, the layer stack or the model to transfer from, the
settings, and starting the run. The views of runs (monitor, time-lapse, results, all runs) are in ``run_views``."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, replace

import pandas as pd
import streamlit as st

from cnn_explorer import render, user_models
from cnn_explorer.architectures import TRAINABLE, StackError, describe_stack
from cnn_explorer.data import TRAINING_DATASETS as TRAINING_DATA
from cnn_explorer.data import (
    DatasetError,
    DatasetUnavailable,
    Prepared,
    datasets_home,
    extract_zip,
    imbalance,
    preview,
)
from cnn_explorer.data import prepare as prepare_data
from cnn_explorer.jobs import submit as submit_job
from cnn_explorer.runspec import LAYER_TYPES, PRESETS, DataSpec, LayerSpec, ModelSpec, RunSpec, Settings
from cnn_explorer.ui.core import UPLOAD_MB, cached_model, model_label
from cnn_explorer.zoo import available_models, model_entry

# Every preset's rate among them, and rates far too high (1, 10), so a class can see what divergence looks like and
# read what the run's diagnostics say about it.
_LEARNING_RATES = (1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 7e-3, 1e-2, 2e-2, 3e-2, 0.1, 0.3, 1.0, 10.0)
_BATCH_SIZES = (8, 16, 32, 64, 128, 256)
_WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 0.02, 0.05, 0.1)
#: The columns of the stack editor that mean something for each layer type (the others are left empty).
_RELEVANT = {
    "conv": ("channels", "kernel", "stride", "padding"),
    "pool": ("kernel", "stride", "mode"),
    "dropout": ("p",),
    "linear": ("width",),
}
_STACK_COLUMNS = ("type", "channels", "kernel", "stride", "padding", "mode", "p", "width")


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_prepared(data_json: str, seed: int, base_name: str | None) -> Prepared:
    """A run's data (unaugmented), for the preview and the shape table; keyed on the DataSpec's JSON."""
    base = cached_model(base_name).preprocess if base_name else None
    return prepare_data(DataSpec(**json.loads(data_json)), seed, base_preprocess=base)


def _json(spec: DataSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


def data_form(start: DataSpec, key: str) -> DataSpec:
    """Widgets for the dataset: kind, size, count, validation share, limit; a zip upload for "your images"."""
    kinds = list(TRAINING_DATA)
    kind_col, size_col, count_col, split_col = st.columns(4)
    kind = kind_col.selectbox(
        "Dataset", kinds, index=kinds.index(start.kind), format_func=lambda k: TRAINING_DATA[k].title, key=f"{key}_kind"
    )
    caption = TRAINING_DATA[kind].description
    if kind == "shapes":  # whether they are drawn fresh has no widget: it is the preset's
        caption += " Drawn fresh every epoch." if start.fresh else " Drawn once: every epoch sees the same shapes."
    st.caption(caption)
    size = size_col.select_slider("Image side", [16, 28, 32, 48, 64, 96, 128], value=start.size, key=f"{key}_size")
    count = count_col.select_slider(
        "Shapes per epoch" if start.fresh else "Shapes",
        sorted({500, 1000, 2000, 4000, 8000, start.count}),
        value=start.count,
        key=f"{key}_count",
        disabled=kind != "shapes",
    )
    val_split = split_col.slider("Validation share", 0.05, 0.5, start.val_split, 0.05, key=f"{key}_val")
    path, grayscale = start.path, TRAINING_DATA[kind].channels == 1
    if kind == "folder":
        path = _uploaded_folder(key)
    # replace(): what has no widget (whether shapes are drawn fresh, a limit) stays as the preset has it
    return replace(start, kind=kind, size=size, count=count, path=path, val_split=val_split, grayscale=grayscale)


def _uploaded_folder(key: str) -> str | None:
    upload = st.file_uploader(
        "A zip of class folders (one folder of images per class)",
        type=["zip"],
        key=f"{key}_zip",
        max_upload_size=UPLOAD_MB,
        help="Up to 20,000 images and 500 MB unpacked; files that are not images are skipped and counted.",
    )
    if upload is None:
        return None
    content = upload.getvalue()
    folder = datasets_home() / "uploads" / hashlib.sha256(content).hexdigest()[:16]
    if not folder.exists():
        try:
            report = extract_zip(content, folder)
        except DatasetError as error:
            st.error(f"{upload.name}: {error}")
            return None
        if report.skipped:
            st.info(f"{report.skipped} entries of {upload.name} were skipped (not images, or outside class folders).")
    return str(folder)


def data_preview(spec: DataSpec, seed: int, base: str | None) -> Prepared | None:
    """Samples of each class, the class counts and an imbalance warning; None (with a message) when the data
    cannot be loaded. Downloads wait for a click."""
    if spec.kind == "folder" and not spec.path:
        st.info("Upload a zip of class folders to train on your own images.")
        return None
    if TRAINING_DATA[spec.kind].source == "download" and not st.session_state.get(f"train_load_{spec.kind}"):
        st.button(
            f"Load {TRAINING_DATA[spec.kind].title}",
            key=f"train_load_button_{spec.kind}",
            on_click=st.session_state.__setitem__,
            args=(f"train_load_{spec.kind}", True),
            help="Read from disk when present, else downloaded (needs internet).",
        )
        return None
    try:
        with st.spinner(f"Loading {TRAINING_DATA[spec.kind].title} …"):
            prepared = cached_prepared(_json(spec), seed, base)
    except (DatasetError, DatasetUnavailable) as error:
        st.error(str(error))
        return None
    counts = prepared.counts
    st.caption(
        f"{len(prepared.train):,} training · {len(prepared.val):,} validation images · {len(counts)} classes · "
        f"input {list(prepared.input_size)}"
    )
    if warning := imbalance(counts):
        st.warning(warning)
    rows = preview(prepared, per_class=8)
    for name, images in rows[:12]:
        label, strip = st.columns([1, 6])
        label.markdown(f"**{name}**  \n{counts.get(name, 0):,} images")
        strip.image([render.for_display(img.convert("RGB"), 64) for img in images], width=64)
    if len(rows) > 12:
        st.caption(f"… and {len(rows) - 12} more classes.")
    return prepared


def stack_editor(layers: Sequence[LayerSpec], key: str) -> tuple[LayerSpec, ...]:
    """The layer stack as an editable table (add, delete, reorder rows); the class layer is added by the run."""
    rows = [
        {c: getattr(layer, c) if c == "type" or c in _RELEVANT.get(layer.type, ()) else None for c in _STACK_COLUMNS}
        for layer in layers
    ]
    frame = pd.DataFrame(rows, columns=_STACK_COLUMNS)
    edited = st.data_editor(
        frame,
        key=key,
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        column_config={
            "type": st.column_config.SelectboxColumn("layer", options=list(LAYER_TYPES), required=True),
            "channels": st.column_config.NumberColumn("channels (conv)", min_value=1, max_value=512, step=1),
            "kernel": st.column_config.NumberColumn("kernel / window", min_value=1, max_value=15, step=1),
            "stride": st.column_config.NumberColumn("stride (empty: window)", min_value=1, max_value=8, step=1),
            "padding": st.column_config.NumberColumn("padding (conv)", min_value=0, max_value=7, step=1),
            "mode": st.column_config.SelectboxColumn("pool", options=["max", "avg"]),
            "p": st.column_config.NumberColumn("dropout p", min_value=0.0, max_value=0.9, step=0.05),
            "width": st.column_config.NumberColumn("width (linear)", min_value=1, max_value=4096, step=1),
        },
    )
    defaults = LayerSpec("conv")
    stack = []
    for row in edited.to_dict("records"):
        if not row.get("type"):
            continue
        values = {c: row[c] for c in _STACK_COLUMNS[1:] if row.get(c) is not None and not pd.isna(row[c])}
        for name in ("channels", "kernel", "stride", "padding", "width"):
            if name in values:
                values[name] = int(values[name])
        if row["type"] == "pool" and "stride" not in values:
            values["stride"] = None
        stack.append(replace(defaults, type=row["type"], **values))
    return tuple(stack)


def stack_summary(layers: Sequence[LayerSpec], prepared: Prepared, dropout: float) -> bool:
    """Every layer's output shape and parameters next to a dense layer's; False (with the reason) if impossible."""
    channels, size = prepared.input_size[0], prepared.input_size[-1]
    try:
        rows = describe_stack(layers, channels, size, len(prepared.class_names), dropout)
    except StackError as error:
        st.error(str(error))
        return False
    table = pd.DataFrame(
        [
            {
                "layer": row.name,
                "kind": row.kind,
                "output": " × ".join(map(str, row.output_shape)),
                "parameters": row.params,
                "dense layer instead": row.dense_params,
            }
            for row in rows
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    total = sum(row.params for row in rows)
    dense = sum(row.dense_params or row.params for row in rows)
    st.caption(
        f"**{total:,} parameters.** The same network with every convolution replaced by a fully connected layer "
        f"of the same input and output sizes would need {dense:,} — weight sharing and local connections save "
        f"{dense / max(total, 1):,.0f}×."
    )
    return True


def settings_form(start: Settings, key: str) -> Settings:
    """Optimizer, learning rate, batch size, epochs, regularization, early stopping, seed and augmentation."""
    a, b, c, d = st.columns(4)
    optimizer = a.selectbox(
        "Optimizer",
        ["adam", "adamw", "sgd"],
        index=["adam", "adamw", "sgd"].index(start.optimizer),
        key=f"{key}_opt",
        format_func={"adam": "Adam", "adamw": "AdamW", "sgd": "SGD + momentum"}.get,
    )
    lr = b.select_slider(
        "Learning rate",
        _LEARNING_RATES,
        value=_nearest(_LEARNING_RATES, start.lr),
        key=f"{key}_lr",
        format_func=lambda v: f"{v:g}",
    )
    batch = c.select_slider("Batch size", _BATCH_SIZES, value=start.batch_size, key=f"{key}_batch")
    epochs = d.slider("Epochs", 1, 60, start.epochs, key=f"{key}_epochs")
    a, b, c, d = st.columns(4)
    weight_decay = a.select_slider(
        "Weight decay",
        _WEIGHT_DECAYS,
        value=_nearest(_WEIGHT_DECAYS, start.weight_decay),
        key=f"{key}_wd",
        format_func=lambda v: f"{v:g}",
    )
    dropout = b.slider("Dropout before the classifier", 0.0, 0.7, start.dropout, 0.05, key=f"{key}_dropout")
    patience = c.slider("Early stopping patience (0: off)", 0, 10, start.patience, key=f"{key}_patience")
    seed = d.number_input("Seed", 0, 2**31 - 1, start.seed, key=f"{key}_seed")
    a, b, c, d = st.columns(4)
    flip = a.toggle("Mirror left–right", start.augmentation.flip, key=f"{key}_flip")
    rotation = b.slider("Rotate up to ±°", 0, 45, int(start.augmentation.rotation), key=f"{key}_rot")
    crop = c.slider("Random crop: keep ≥ (0: off)", 0.0, 0.95, start.augmentation.crop, 0.05, key=f"{key}_crop")
    jitter = d.slider("Colour jitter", 0.0, 0.5, start.augmentation.color_jitter, 0.05, key=f"{key}_jitter")
    # replace(): what has no widget (warm-up, precision, Adam's β2, quarter turns) stays as the preset has it
    return replace(
        start,
        epochs=epochs,
        batch_size=batch,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        dropout=dropout,
        patience=patience,
        seed=int(seed),
        augmentation=replace(start.augmentation, flip=flip, rotation=float(rotation), crop=crop, color_jitter=jitter),
    )


def _nearest(options: Sequence[float], value: float) -> float:
    """``value`` when it is one of the slider's options, else the option nearest to it on a log scale."""
    if value in options:
        return value
    return min((o for o in options if o > 0), key=lambda option: abs(math.log(option) - math.log(max(value, 1e-12))))


def transfer_form(key: str) -> ModelSpec:
    """Start from a zoo model: which one, and what trains."""
    # A TorchScript model's classifier cannot be replaced (it declares no hooks: ui/views.py): not offered.
    names = [n for n in available_models() if model_entry(n).is_ready() and not user_models.is_torchscript(n)]
    base_col, trainable_col, last_col = st.columns([2, 2, 1])
    base = base_col.selectbox("Start from", names, key=f"{key}_base", format_func=model_label)
    trainable = (
        trainable_col.segmented_control(
            "Train",
            list(TRAINABLE),
            default="head",
            key=f"{key}_trainable",
            format_func={"head": "the new head only", "last": "the last blocks + head", "all": "everything"}.get,
        )
        or "head"
    )
    last_n = last_col.number_input("Last blocks", 1, 8, 1, key=f"{key}_last_n", disabled=trainable != "last")
    return ModelSpec(kind="transfer", base=base, trainable=trainable, last_n=int(last_n))


def start_run(spec: RunSpec) -> None:
    """Queue the run (it starts at once when nothing else trains) and show it."""
    st.session_state["train_run"] = submit_job(spec)


def new_run_form(key_prefix: str = "train") -> None:
    """The form of a new run, from a preset: data, model (a stack to build or a zoo model to transfer from),
    settings, a name, and the Start button (disabled until the data and the stack are usable)."""
    preset_name = st.selectbox(
        "Start from a preset", list(PRESETS), format_func=lambda k: PRESETS[k].name, key=f"{key_prefix}_preset"
    )
    preset = PRESETS[preset_name]
    key = f"{key_prefix}_{preset_name}"
    st.markdown("##### Data")
    data = data_form(preset.data, key)
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
    settings = settings_form(preset.settings, key)
    base = None
    if kind == "transfer":
        model = transfer_form(key)
        base = model.base
    prepared = data_preview(data, settings.seed, base) if data else None
    ready = prepared is not None
    if kind == "stack":
        st.markdown("##### Architecture")
        st.caption("Edit the layers (add, delete, reorder rows). The last linear layer, to the classes, is added.")
        layers = stack_editor(preset.model.layers, f"{key}_stack")
        model = ModelSpec(layers=layers)
        ready = ready and stack_summary(layers, prepared, settings.dropout)
    name = st.text_input("Run name", preset.name, key=f"{key}_name")
    spec = RunSpec(name=name or preset.name, data=data, model=model, settings=settings)
    st.button(
        "Start training",
        type="primary",
        disabled=not ready,
        key="train_start",
        icon=":material/play_arrow:",
        on_click=start_run,
        args=(spec,),
    )
