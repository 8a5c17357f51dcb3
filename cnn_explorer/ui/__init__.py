"""The only part of the library that imports streamlit: cached loaders, the shared sidebar, and each page's widgets.

Pages call :func:`selection` (or :func:`require_selection`) for the model and image chosen in the sidebar and never
load either themselves. One module per page's views: ``core`` (caches, the selection), ``sidebar``, ``layers`` (and
``arithmetic``, its one-value section, and ``layer_cache``, its capture and pictures), ``explain``, ``playground``
(and ``playground_views``, its table of views), ``robustness`` (Fool the model), ``training`` (and ``run_views``),
``own_model``, ``report``; and ``long_task``, the one helper for long computations (a stored result, or computed with
progress and Cancel).

The names below are imported from their module on first use (PEP 562), so a page loads only the modules it
calls: the Predict page never imports the Layers, Explain, Playground or Train views, nor pandas and Altair with
them (about half a second of the app's cold start).
"""

from __future__ import annotations

from cnn_explorer.lazy import lazy_names

_MODULES: dict[str, tuple[str, ...]] = {
    "arithmetic": (
        "show_arithmetic",
        "unit_arithmetic_view",
    ),
    "core": (
        "cached_cam_layers",
        "cached_layer_table",
        "DEFAULT_MODEL",
        "Selection",
        "cached_input",
        "cached_prediction",
        "context_of",
        "follow_default",
        "require_selection",
        "selection",
        "user_chose",
    ),
    "explain": (
        "ExplainChoice",
        "HeatDisplay",
        "chips_wrap",
        "explain_controls",
        "explanation",
        "explanation_card",
        "explanation_grid",
        "gradcam_walkthrough",
        "heat_display_controls",
        "method_params",
        "trust_panel",
    ),
    "layers": (
        "ShownOutput",
        "bounded_number",
        "cached_effective_field",
        "filters_and_statistics",
        "grid_picker",
        "grid_table",
        "layer_downloads",
        "layer_output_view",
        "layer_overview",
        "layer_stepper",
        "network_picture",
        "receptive_field_view",
        "stack_strip",
        "strongest_unit",
        "styled_table",
        "unit_position",
    ),
    "layer_cache": (
        "LayerCapture",
        "cached_capture",
        "prepare_next_layer",
        "wait_for_prepared_layers",
    ),
    "long_task": (
        "computed",
        "request_button",
    ),
    "ood": (
        "cached_verdict",
        "ood_warning",
    ),
    "own_model": (
        "own_model_panel",
        "require_view",
        "unavailable",
    ),
    "playground": (
        "activations_view",
        "cached_dataset_images",
        "cached_gradient_flow",
        "cached_picture",
        "cached_pixels",
        "cached_translation",
        "cached_visualizable_layers",
        "cached_weight_sharing",
        "convolution_view",
        "filter_view",
        "kernel_editor",
        "playground_selection",
        "pooling_view",
        "weight_sharing_view",
        "without_model_note",
    ),
    "playground_views": ("playground_view",),
    "report": ("report_export",),
    "robustness": (
        "attack_panels",
        "attack_result",
        "attack_settings",
        "attack_view",
        "flip_search_result",
        "flip_search_view",
        "gradcam_pair",
    ),
    "run_views": (
        "current_run_id",
        "diagnostics_view",
        "overfitting_note",
        "results_view",
        "run_actions",
        "run_monitor",
        "run_picker",
        "runs_overview",
        "timelapse_view",
    ),
    "sidebar": ("sidebar",),
    "training": (
        "cached_prepared",
        "data_form",
        "data_preview",
        "new_run_form",
        "settings_form",
        "stack_editor",
        "stack_summary",
        "start_run",
        "transfer_form",
    ),
}
__all__ = sorted(name for names in _MODULES.values() for name in names)

__getattr__, __dir__ = lazy_names(__name__, _MODULES, globals())
