"""Class-activation maps for any layer: nine methods, one forward, one backward.

``compute_cam`` explains one layer; ``compute_sweep`` many layers from a single
forward and a single ``torch.autograd.grad`` call; ``CamPass`` keeps those
activations and gradients so an app can redraw any hooked layer, with any method,
without running the model again. ``PhotoExplainer`` is the whole pipeline for one
photo (preprocessing, maps laid back on the photo, overlays): the notebook API, and
what the CLI and the app call.
"""

from layerscope.cam.compute import compute_cam, compute_sweep
from layerscope.cam.core import CamPass, CamResult, normalise
from layerscope.cam.detection import BoxTarget, is_detection_model
from layerscope.cam.layers import resolve_layer
from layerscope.cam.methods import METHODS, get_method
from layerscope.cam.perturb import CamCancelled
from layerscope.cam.photo import PhotoExplainer
from layerscope.cam.reshape import TokenGrid
from layerscope.cam.scoring import Prediction, top_predictions
from layerscope.cam.targets import (
    Eligibility,
    eligible_layers,
    layer_eligibility,
    suggest_from_shapes,
    suggest_target_layer,
    table_target,
)

__all__ = [
    "METHODS",
    "BoxTarget",
    "CamCancelled",
    "CamResult",
    "CamPass",
    "Eligibility",
    "PhotoExplainer",
    "Prediction",
    "TokenGrid",
    "compute_cam",
    "compute_sweep",
    "eligible_layers",
    "get_method",
    "is_detection_model",
    "layer_eligibility",
    "normalise",
    "resolve_layer",
    "suggest_from_shapes",
    "suggest_target_layer",
    "table_target",
    "top_predictions",
]
