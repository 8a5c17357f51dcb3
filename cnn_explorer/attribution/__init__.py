"""Explanation methods: which input pixels, or which regions of a layer, made the model output a class.

``METHODS`` describes every method as data (paper, parameters with default and range) and :func:`explain` runs one.
The gradient and perturbation methods are captum's (``captum.attr``); the CAM family is TorchCAM's
(``torchcam.methods``); guided Grad-CAM is their product, as the paper defines it.

One module per concern; this ``__init__`` only re-exports them, so ``attribution.explain`` and friends keep working:

- :mod:`~cnn_explorer.attribution.registry`: the methods as data (:class:`Param`, :class:`MethodSpec`, ``METHODS``)
  and the result, :class:`Explanation`.
- :mod:`~cnn_explorer.attribution.targets`: the class explained and the layers a CAM can be computed at.
- :mod:`~cnn_explorer.attribution.methods`: one function per method, computing raw attributions for a batch.
- :mod:`~cnn_explorer.attribution.running`: :func:`explain` and :func:`explain_batch`, which run a method under
  ``model.lock`` and leave the shared model exactly as found (hooks removed, flags and modes restored).
- :mod:`~cnn_explorer.attribution.gradcam_walkthrough`: Grad-CAM step by step, computed by hand with autograd.

A cancelled explanation raises :class:`~cnn_explorer.progress.Cancelled`, re-exported here.
"""

from cnn_explorer.attribution.gradcam_walkthrough import GradCamSteps, gradcam_steps
from cnn_explorer.attribution.methods import blurred
from cnn_explorer.attribution.registry import CONSTANT_TOLERANCE, METHODS, Explanation, MethodSpec, Param
from cnn_explorer.attribution.running import explain, explain_batch
from cnn_explorer.attribution.targets import ACTIVATIONS, cam_layers, default_cam_layer, resolve_target
from cnn_explorer.progress import Cancelled

__all__ = [
    "ACTIVATIONS",
    "CONSTANT_TOLERANCE",
    "METHODS",
    "Cancelled",
    "Explanation",
    "GradCamSteps",
    "MethodSpec",
    "Param",
    "blurred",
    "cam_layers",
    "default_cam_layer",
    "explain",
    "explain_batch",
    "gradcam_steps",
    "resolve_target",
]
