"""The model sources, each a module that registers itself in :mod:`cnn_explorer.model_registry`: importing this
package registers them all (as timm's ``timm/models/__init__.py``).

* :mod:`~cnn_explorer.sources.builtin`: the networks shipped in ``assets/models``;
* :mod:`~cnn_explorer.sources.imagenet`: torchvision's ImageNet models;
* :mod:`~cnn_explorer.sources.trained_runs`: finished runs of the run store;
* :mod:`cnn_explorer.user_models`: the models the user added.

A new source is one module here, one line below, and nothing in the zoo.
"""

from cnn_explorer import user_models
from cnn_explorer.sources import builtin, imagenet, trained_runs

__all__ = ["builtin", "imagenet", "trained_runs", "user_models"]
