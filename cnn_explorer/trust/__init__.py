"""Can I trust this map? Checks of an explanation against the model it claims to explain.

Three independent questions, each answered by a published test:

- **Faithfulness** — :func:`deletion_insertion` (Petsiuk, Das & Saenko 2018, RISE,
  https://arxiv.org/abs/1806.07421): remove the pixels the map calls most important first and watch the class
  probability fall (deletion), or reveal them first on a blurred image and watch it rise (insertion). The same
  curves for a random pixel order give the yardstick.
- **Dependence on the model** — :func:`randomization_check` (Adebayo et al. 2018, Sanity Checks for Saliency Maps,
  https://arxiv.org/abs/1810.03292): randomize the weights layer by layer from the output down, on a copy of the
  model, and measure how similar the map stays. A map that survives randomization shows the image, not the model.
- **Infidelity and sensitivity** — :func:`infidelity` and :func:`sensitivity` (Yeh et al. 2019, On the
  (In)fidelity and Sensitivity of Explanations, https://arxiv.org/abs/1901.09392), computed by captum's
  ``captum.metrics``.

:func:`trust_report` runs all of them for one method; ``METRICS`` says, as data, how to read each number. Every
forward pass on the shared model runs under ``model.lock``; the randomization check works on a deep copy, so the
shared model is never modified.

One module per concern; this ``__init__`` only re-exports them, so ``trust.trust_report`` and friends keep working:

- :mod:`~cnn_explorer.trust.faithfulness`: deletion and insertion curves against a random pixel order.
- :mod:`~cnn_explorer.trust.randomization`: the cascading model-randomization check, and :func:`spearman`.
- :mod:`~cnn_explorer.trust.infidelity_sensitivity`: captum's infidelity and max-sensitivity.
- :mod:`~cnn_explorer.trust.report`: ``METRICS``, :class:`TrustReport` and :func:`trust_report`, for the page.
- :mod:`~cnn_explorer.trust.checks`: the argument checks the others share.
"""

from cnn_explorer.trust.faithfulness import WORSE_THAN_RANDOM, Curve, DeletionInsertion, deletion_insertion
from cnn_explorer.trust.infidelity_sensitivity import infidelity, sensitivity
from cnn_explorer.trust.randomization import (
    RANDOMIZED_KINDS,
    SIMILAR_RHO,
    RandomizationCheck,
    RandomizationStep,
    randomization_check,
    randomization_order,
    spearman,
)
from cnn_explorer.trust.report import METRICS, Metric, TrustReport, trust_report

__all__ = [
    "METRICS",
    "RANDOMIZED_KINDS",
    "SIMILAR_RHO",
    "WORSE_THAN_RANDOM",
    "Curve",
    "DeletionInsertion",
    "Metric",
    "RandomizationCheck",
    "RandomizationStep",
    "TrustReport",
    "deletion_insertion",
    "infidelity",
    "randomization_check",
    "randomization_order",
    "sensitivity",
    "spearman",
    "trust_report",
]
