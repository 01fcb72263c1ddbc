"""What flows through each node: streaming statistics of every module's output.

``collect_activations`` runs batches (images, or any forward's example inputs) through
a model with one forward hook per module and keeps, per node, running statistics that
never grow with the number of examples: mean and population std (float64 Welford),
min and max, the fraction of exact zeros, dead channels, the saturated fraction of
bounded activations, non-finite counts and a histogram. ``image_activations`` feeds it
photos preprocessed as ``cam`` does; ``model_activations`` picks between the two as both
fronts do. The CLI (``layerscope activations``) and the app
read the same ``ActivationReport``.
"""

from layerscope.activations.histogram import Histogram
from layerscope.activations.images import ImageBatches, image_activations, image_files
from layerscope.activations.recorder import ActivationReport, ActivationsCancelled, collect_activations
from layerscope.activations.running import Bounds, NodeActivity, saturation_bounds
from layerscope.activations.sources import model_activations

__all__ = [
    "ActivationReport",
    "ActivationsCancelled",
    "Bounds",
    "Histogram",
    "ImageBatches",
    "NodeActivity",
    "collect_activations",
    "image_activations",
    "image_files",
    "model_activations",
    "saturation_bounds",
]
