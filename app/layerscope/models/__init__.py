"""Models in: every spec layerscope reads (``load_model``) and what it knows about each.

``load`` holds the registry of sources (``sources/``: torchvision, timm, factories,
files, Hugging Face) and the steps they share; ``loaded`` what a loaded model is;
``adapters`` the questions the rest of layerscope asks about a model;
``checkpoints`` how files are read safely; ``weights_cache`` which weights are here.
"""

from layerscope.models.build import parse_kwargs
from layerscope.models.load import SOURCES, auto_weights, load_model, source_for
from layerscope.models.loaded import LoadedModel, Preprocess
from layerscope.models.source import LoadRequest, ModelSource

__all__ = [
    "SOURCES",
    "auto_weights",
    "LoadRequest",
    "LoadedModel",
    "ModelSource",
    "Preprocess",
    "load_model",
    "parse_kwargs",
    "source_for",
]
