"""What ``layerscope activations`` and the app's ``A`` run through a model: example inputs or photos.

Both fronts make the same choice with the same function: random example tensors for
the ``--input`` specs when there are any (one batch), else photos preprocessed as
``cam`` does, a batch at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from layerscope.activations.images import image_activations
from layerscope.activations.recorder import ActivationReport, Cancel, Progress, collect_activations
from layerscope.models.loaded import LoadedModel
from layerscope.running.example_inputs import InputSpec, describe_inputs, example_inputs


def model_activations(
    loaded: LoadedModel,
    *,
    inputs: Sequence[InputSpec] = (),
    files: Sequence[Path] = (),
    names: Sequence[str] | None = None,
    batch_size: int = 32,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> ActivationReport:
    """Statistics of every node's output (``names``: only these) over example tensors for
    ``inputs`` when given, else over the photos ``files``.

    >>> from layerscope.running.example_inputs import parse_inputs
    >>> from layerscope.models import load_model
    >>> report = model_activations(load_model("resnet18", weights="none"), inputs=parse_inputs(["3x32x32"]))
    >>> report.inputs, report.get("layer4").shape
    ('3x32x32', (1, 512, 1, 1))
    """
    if inputs:
        batch = example_inputs(loaded.model, inputs)
        return collect_activations(
            loaded.model, [batch], names=names, inputs=describe_inputs(inputs), progress=progress, cancel=cancel
        )
    return image_activations(
        loaded.model, loaded.preprocess, files, batch_size=batch_size, names=names, progress=progress, cancel=cancel
    )
