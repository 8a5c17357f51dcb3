"""Widgets and views of the Train page: the run form, the live monitor, time-lapse, results, all runs."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, replace

import pandas as pd
import streamlit as st
import torch
from torch import Tensor

from cnn_explorer import render, user_models
from cnn_explorer.architectures import TRAINABLE, StackError, describe_stack
from cnn_explorer.attribution import (
    explain,
)
from cnn_explorer.data import TRAINING_DATASETS as TRAINING_DATA
from cnn_explorer.data import (
    DatasetError,
    DatasetUnavailable,
    LabelledImages,
    Prepared,
    datasets_home,
    extract_zip,
    imbalance,
    preview,
)
from cnn_explorer.data import prepare as prepare_data
from cnn_explorer.diagnostics import SEVERITIES, Diagnostic, diagnose, run_diagnostics
from cnn_explorer.jobs import poll as poll_jobs
from cnn_explorer.jobs import stop as stop_job
from cnn_explorer.jobs import submit as submit_job
from cnn_explorer.runner import validation_set
from cnn_explorer.runs import (
    FINISHED,
    Run,
    RunError,
    RunNotFound,
    delete_run,
    export_run,
    get_run,
    list_runs,
    read_metrics,
    read_model_info,
    read_progress,
    read_results,
    read_timelapse,
    rename_run,
)
from cnn_explorer.runspec import LAYER_TYPES, DataSpec, LayerSpec, ModelSpec, RunSpec, Settings
from cnn_explorer.ui.core import _UPLOAD_MB, _model_label, cached_model
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
_LIVE_S = 1.0  # the live view refreshes this often while a run trains


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
        max_upload_size=_UPLOAD_MB,
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
    # A TorchScript model's classifier cannot be replaced (user_models.TORCHSCRIPT_VIEWS): not offered.
    names = [n for n in available_models() if model_entry(n).is_ready() and not user_models.is_torchscript(n)]
    base_col, trainable_col, last_col = st.columns([2, 2, 1])
    base = base_col.selectbox("Start from", names, key=f"{key}_base", format_func=_model_label)
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


def current_run_id() -> str | None:
    """The run the page shows: the one picked this session, else the newest."""
    chosen = st.session_state.get("train_run")
    known = {run.id for run in list_runs()}
    if chosen in known:
        return chosen
    newest = max(known, key=int, default=None)
    return newest


def run_picker() -> str | None:
    """A picker of every run, newest first (a new run is picked when it starts); returns the run to show."""
    all_runs = list_runs()
    if not all_runs:
        return None
    labels = {run.id: _run_label(run) for run in all_runs}
    # The choice lives in session state (start_run and Delete set it): a default given to the widget as well would
    # make Streamlit warn that the key was set twice.
    if st.session_state.get("train_run") not in labels:
        st.session_state["train_run"] = all_runs[0].id
    return st.selectbox("Run", list(labels), format_func=labels.get, key="train_run")


def _run_label(run: Run) -> str:
    accuracy = f" · {run.best_val_accuracy:.1%}" if run.best_val_accuracy is not None else ""
    return f"run {run.id} · {run.name} · {run.status}{accuracy}"


def run_monitor(run_id: str) -> None:
    """The live view of one run: status, progress, curves, stop. While the run is queued or training, it re-reads
    the store every second (a fragment: the rest of the page stays still); when the run ends, the whole page
    reruns once so its results, time-lapse and actions appear."""
    poll_jobs()
    try:
        live = get_run(run_id).status in ("queued", "running")
    except RunNotFound:
        st.info("This run was deleted.")
        return
    st.fragment(_monitor, run_every=_LIVE_S if live else None)(run_id)


def _monitor(run_id: str) -> None:
    poll_jobs()
    try:
        run = get_run(run_id)
    except RunNotFound:
        st.info("This run was deleted.")
        return
    live = run.status in ("queued", "running")
    watched = f"train_live_{run.id}"
    if st.session_state.get(watched) and not live:
        st.session_state[watched] = False
        st.rerun()  # the run just ended: redraw the page with its results
    st.session_state[watched] = live
    head, stop_col = st.columns([5, 1])
    head.markdown(f"#### {run.name} · run {run.id} · {run.status}")
    if live:
        stop_col.button(
            "Stop",
            key=f"train_stop_{run.id}",
            icon=":material/stop:",
            on_click=stop_job,
            args=(run.id,),
            kwargs={"wait": False},
        )
    if run.status == "queued":
        st.info("Queued: one run trains at a time on this machine; it starts when the current one ends.")
    progress = read_progress(run.id) or {}
    if run.status == "running" and "epoch" in progress:
        fraction = ((progress["epoch"] - 1) + progress.get("batch", 0) / max(progress.get("batches", 1), 1)) / max(
            run.spec.settings.epochs, 1
        )
        st.progress(
            min(max(fraction, 0.0), 1.0),
            text=f"epoch {progress['epoch']}/{run.spec.settings.epochs} · batch {progress.get('batch', 0)}/"
            f"{progress.get('batches', 0)} · {progress.get('images_per_second') or 0:,.0f} images/s · "
            f"{_duration(progress.get('seconds_left'))} left",
        )
    elif run.status == "running" and progress.get("phase"):
        st.progress(_phase_fraction(progress), text=_phase_text(progress))
    if run.status == "failed":
        st.error(f"The run failed: {run.message}")
    elif run.status == "stopped" and run.message:
        st.warning(run.message)
    metrics = read_metrics(run.id)
    if metrics:
        _curves(metrics)
        diagnostics_view(run_diagnostics(run.id))
    elif live:
        st.caption("Curves appear after the first epoch.")


def _phase_fraction(progress: dict) -> float:
    done, total = (
        progress.get("images") or progress.get("bytes"),
        progress.get("total_images") or progress.get("total_bytes"),
    )
    return min(max(done / total, 0.0), 1.0) if done and total else 0.0


def _phase_text(progress: dict) -> str:
    """The work before the first epoch, in words: ``"reading images: 4,000 / 11,000"``."""
    phase = progress["phase"]
    if phase == "reading images" and progress.get("total_images"):
        return f"Reading images: {progress['images']:,} / {progress['total_images']:,}"
    if phase == "downloading data" and progress.get("bytes") is not None:
        total = progress.get("total_bytes")
        return f"Downloading data: {progress['bytes'] / 2**20:.1f}" + (f" / {total / 2**20:.1f} MB" if total else " MB")
    return f"{phase[:1].upper()}{phase[1:]}…"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _curves(metrics: list[dict]) -> None:
    epochs = [m["epoch"] for m in metrics]
    loss_col, acc_col = st.columns(2)
    loss = {"training": [m["train_loss"] for m in metrics]}
    accuracy = {"training": [m["train_accuracy"] for m in metrics]}
    if metrics[0].get("val_loss") is not None:
        loss["validation"] = [m["val_loss"] for m in metrics]
        accuracy["validation"] = [m["val_accuracy"] for m in metrics]
    loss_col.pyplot(render.curves_figure(epochs, loss, "Loss", "epoch", "cross-entropy"), width="stretch")
    acc_col.pyplot(render.curves_figure(epochs, accuracy, "Accuracy", "epoch", "share correct"), width="stretch")


def diagnostics_view(diagnostics: Sequence[Diagnostic]) -> None:
    """What went wrong in the run, each with what to change (the same sentences as its message and model card)."""
    show = dict(zip(SEVERITIES, (st.error, st.warning, st.info), strict=True))
    for diagnostic in diagnostics:
        show[diagnostic.severity](f"{diagnostic.sentence} **{diagnostic.advice}**", icon=":material/troubleshoot:")


def overfitting_note(metrics: list[dict]) -> str | None:
    """A note when validation loss has risen for two epochs while training loss kept falling."""
    found = diagnose(metrics, classes=2, lr=0.0, optimizer="") if metrics else ()
    return next((d.text for d in found if d.kind == "overfitting"), None)


def timelapse_view(run_id: str) -> None:
    """The probe image through training: first-layer filters, one layer's maps, Grad-CAM and the probabilities at
    every epoch, scrubbed with a slider."""
    frames = read_timelapse(run_id)
    if len(frames) < 2 and get_run(run_id).status in FINISHED:  # epoch 0 alone: no epoch finished
        st.caption("No time-lapse: the run ended before its first epoch finished.")
        return
    if not frames:
        st.caption("The time-lapse appears after the first epoch.")
        return
    info = read_model_info(run_id)
    class_names = info.get("class_names", [])
    epoch = st.select_slider(
        "Epoch",
        [f["epoch"] for f in frames],
        value=frames[-1]["epoch"],
        key=f"train_timelapse_{run_id}",
        help="Epoch 0 is the network before training.",
    )
    frame = next(f for f in frames if f["epoch"] == epoch)
    filters, maps, cam = st.columns(3)
    if "filters" in frame:
        grid = render.kernel_grid(frame["filters"], cell=40)
        filters.image(grid.image, caption=f"first-layer filters ({frame.get('filters_layer', '')})")
    if "features" in frame:
        grid = render.feature_grid(frame["features"], "layer", cell=48, max_width=420)
        maps.image(grid.image, caption=f"feature maps of {frame.get('features_layer', '')} for the probe image")
    if "gradcam" in frame:
        picture = _validation_images(run_id).image(frame.get("probe_index", 0)).convert("RGB")
        cam.image(
            render.for_display(render.heat_overlay(picture, frame["gradcam"]).image, 200),
            caption="Grad-CAM for the probe's true class",
        )
    probabilities = frame.get("probabilities")
    if probabilities is not None and class_names:
        best = int(probabilities.argmax())
        st.caption(f"At epoch {epoch} the probe is **{class_names[best]}** with {float(probabilities[best]):.1%}.")


def results_view(run_id: str) -> None:
    """Confusion matrix (pick a cell to see its images with saliency), per-class accuracy, the most confidently
    wrong validation images."""
    results = read_results(run_id)
    if results is None:
        st.caption(_no_results(get_run(run_id), len(read_metrics(run_id))))
        return
    names = list(results["class_names"])
    labels, probabilities = results["labels"], results["probabilities"]
    predicted = probabilities.argmax(dim=1)
    matrix = torch.zeros(len(names), len(names), dtype=torch.long)
    matrix.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    st.markdown(
        f"Best checkpoint (epoch {results.get('epoch')}): **{results['val_accuracy']:.1%}** of "
        f"{len(labels):,} validation images right."
    )
    table, classes = st.columns([5, 2])
    frame = pd.DataFrame(matrix.numpy(), index=[f"{n} →" for n in names], columns=names)
    table.caption("Rows: the true class; columns: what the model said.")
    # A static table: ten or more class columns fit the page (a data grid would hide the last behind a scroll bar).
    table.table(frame.style.background_gradient(cmap="Blues", axis=None))
    per_class = pd.DataFrame({"class": names, "accuracy": [float(a) for a in results["per_class_accuracy"]]})
    classes.dataframe(
        per_class,
        hide_index=True,
        width="stretch",
        column_config={
            "accuracy": st.column_config.ProgressColumn("accuracy", min_value=0.0, max_value=1.0, format="percent")
        },
    )
    true_col, pred_col = st.columns(2)
    confusions = matrix.clone().fill_diagonal_(-1)  # start on the most frequent mistake
    worst_true, worst_pred = divmod(int(confusions.argmax()), len(names))
    true_name = true_col.selectbox("True class", names, index=worst_true, key=f"train_cell_true_{run_id}")
    pred_name = pred_col.selectbox("Predicted as", names, index=worst_pred, key=f"train_cell_pred_{run_id}")
    t, p = names.index(true_name), names.index(pred_name)
    indices = torch.nonzero((labels == t) & (predicted == p)).flatten().tolist()
    st.caption(f"{len(indices)} validation images of {true_name} predicted as {pred_name}" + (":" if indices else "."))
    if indices:
        _cell_images(run_id, indices[:8], probabilities, names)
    wrong = torch.nonzero(predicted != labels).flatten()
    if len(wrong):
        confidence = probabilities[wrong, predicted[wrong]]
        worst = wrong[confidence.argsort(descending=True)][:8].tolist()
        st.markdown("**Most confidently wrong**")
        _cell_images(run_id, worst, probabilities, names, with_truth=labels)


def _no_results(run: Run, epochs: int) -> str:
    """Why a run has no results, and what to do."""
    if run.status in ("queued", "running"):
        return "Results appear when the run finishes."
    again = "Start a new run (New run, above)"
    if run.status == "stopped" and not epochs:
        return f"Stopped before the first epoch finished: no results. {again} and let it finish at least one epoch."
    if run.status == "stopped":
        return (
            f"Stopped after {epochs} epoch{'s' * (epochs != 1)}; its results were skipped (they did not fit in the "
            f"2 s after Stop). Its best checkpoint opens in the other pages; for the results here, {again[0].lower()}"
            f"{again[1:]} and let it finish."
        )
    if run.status == "failed":
        return f"No results: the run failed ({run.message.rstrip('.')}). {again} with what the message suggests."
    return f"No results: the run had no validation images to test on. {again} with a validation share above zero."


def _cell_images(run_id: str, indices: list[int], probabilities: Tensor, names: list[str], with_truth=None) -> None:
    """Validation images with their prediction and saliency map (the run's model explains itself)."""
    images = _validation_images(run_id)
    model = cached_model(f"run-{run_id}")
    columns = st.columns(8)  # a fixed width per image, however few there are
    for column, index in zip(columns, indices, strict=False):
        x, _ = images[index]
        x = x[None]
        best = int(probabilities[index].argmax())
        saliency = explain(model, x, "saliency", target=best)
        picture = images.image(index).convert("RGB")
        column.image(render.for_display(render.heat_overlay(picture, saliency.heatmap).image, 96))
        truth = f"true {names[int(with_truth[index])]} · " if with_truth is not None else ""
        column.caption(f"{truth}{names[best]} {float(probabilities[index, best]):.0%}")


@st.cache_resource(max_entries=4, show_spinner=False)
def _validation_images(run_id: str) -> LabelledImages:
    """The run's validation images as its worker saw them (row ``i`` of its results is item ``i``)."""
    return validation_set(run_id)


def runs_overview() -> None:
    """Every run with its settings and best validation accuracy; curves of chosen runs overlaid; pick, rename,
    delete, export, open in the other pages."""
    all_runs = list_runs()
    if not all_runs:
        st.caption("No runs yet.")
        return
    table = pd.DataFrame(
        [
            {
                "run": run.id,
                "name": run.name,
                "status": run.status,
                "data": run.spec.data.kind,
                "model": run.spec.model.base
                if run.spec.model.kind == "transfer"
                else f"{len(run.spec.model.layers)} layers",
                "epochs": run.spec.settings.epochs,
                "lr": run.spec.settings.lr,
                "best val acc": run.best_val_accuracy,
            }
            for run in all_runs
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={"best val acc": st.column_config.NumberColumn(format="percent")},
    )
    ids = [run.id for run in all_runs]
    chosen = st.multiselect(
        "Overlay the curves of",
        ids,
        default=ids[-2:],
        key="train_overlay",
        format_func=lambda i: f"{i} · {next(r.name for r in all_runs if r.id == i)}",
    )
    if chosen:
        curves = {
            f"{i} val" if read_metrics(i) and read_metrics(i)[0].get("val_accuracy") is not None else f"{i} train": [
                m.get("val_accuracy") or m["train_accuracy"] for m in read_metrics(i)
            ]
            for i in chosen
        }
        longest = max((len(c) for c in curves.values()), default=0)
        if longest:
            padded = {k: v + [float("nan")] * (longest - len(v)) for k, v in curves.items()}
            st.pyplot(
                render.curves_figure(
                    list(range(1, longest + 1)), padded, "Accuracy by epoch", "epoch", "share correct"
                ),
                width="content",
            )


def run_actions(run_id: str) -> None:
    """Open the run's model in the other pages, export it, rename or delete it."""
    run = get_run(run_id)
    open_layers, open_explain, export, rename, delete = st.columns(5)
    if run.in_zoo:
        open_layers.button(
            "Open in Layers",
            key="train_open_layers",
            on_click=_open_run,
            args=(run.model_name, "pages/layers.py"),
            icon=":material/layers:",
        )
        open_explain.button(
            "Explain it",
            key="train_open_explain",
            on_click=_open_run,
            args=(run.model_name, "pages/explain.py"),
            icon=":material/psychology_alt:",
        )
        export.download_button(
            "Export zip",
            export_run(run.id),
            file_name=f"{run.model_name}.zip",
            mime="application/zip",
            key="train_export",
            icon=":material/download:",
        )
    with rename.popover("Rename"):
        new_name = st.text_input("New name", run.name, key=f"train_rename_{run.id}")
        st.button("Save", key="train_rename_save", on_click=_rename, args=(run.id, new_name))
    if run.status not in ("queued", "running"):
        delete.button("Delete", key="train_delete", on_click=_delete, args=(run.id,), icon=":material/delete:")


def _open_run(model_name: str, page: str) -> None:
    st.session_state["model_name"] = model_name
    st.session_state["train_switch_to"] = page


def _rename(run_id: str, name: str) -> None:
    try:
        rename_run(run_id, name)
    except RunError as error:
        st.session_state["train_message"] = str(error)


def _delete(run_id: str) -> None:
    try:
        delete_run(run_id)
    except RunError as error:
        st.session_state["train_message"] = str(error)
    st.session_state.pop("train_run", None)


def start_run(spec: RunSpec) -> None:
    """Queue the run (it starts at once when nothing else trains) and show it."""
    st.session_state["train_run"] = submit_job(spec)
