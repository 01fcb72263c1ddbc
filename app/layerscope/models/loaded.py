"""What a loaded model is: the module plus what the rest of layerscope needs to know about it.

Kept apart from the loaders so that image code (``layerscope.io.imaging``) and the CAM
pipeline can name a ``Preprocess`` or a ``LoadedModel`` without importing any source.
``LoadedModel.from_module`` is the one constructor for a module the caller already holds
(a notebook's, a training script's): taken as it is, never moved, copied or put in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from layerscope.errors import BadArgumentError
from layerscope.models.preprocessing import IMAGENET_MEAN as IMAGENET_MEAN  # re-exported: the sources read them here
from layerscope.models.preprocessing import IMAGENET_STD as IMAGENET_STD
from layerscope.models.preprocessing import Preprocess, as_preprocess

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
FILE_SUFFIXES = STATE_DICT_SUFFIXES + (".safetensors", ".jit", ".torchscript", ".pt2")
SOURCE = "python"  # LoadedModel.source of a module handed over in-process
WEIGHTS = "as held"
NAME = "in-memory model"  # the spec line of headers: no spec loaded it
MAX_SIDE = 4096  # pixels: the most a model's input may be on a side after resize and crop (also in configs)


@dataclass
class LoadedModel:
    """A model plus what the rest of layerscope needs to know about where it came from."""

    model: nn.Module
    spec: str
    source: str
    weights: str
    pretrained: bool
    device: torch.device
    categories: list[str] | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)
    files: tuple[Path, ...] = ()  # every file the model was read from: outputs must never replace them

    @classmethod
    def from_module(
        cls,
        model: nn.Module,
        *,
        preprocess: Any = None,
        categories: Sequence[str] | None = None,
        name: str | None = None,
    ) -> LoadedModel:
        """``model`` as a ``LoadedModel``, left exactly as it is.

        Args:
            model: any ``torch.nn.Module``, on any device, lazy modules included.
            preprocess: a ``Preprocess``, a torchvision ``Compose`` of ``Resize``/``CenterCrop``/
                ``ToTensor``/``Normalize`` (timm's ``create_transform`` gives one), a torchvision
                weights' ``transforms()``, or None (timm's config for a timm model, else ImageNet's).
            categories: the class names, index by index (None: shown as numbers).
            name: what headers call the model where they show a spec (default: "in-memory model").

        Returns:
            The ``LoadedModel`` every engine entry point takes.

        Raises:
            BadArgumentError: ``model`` is no module, or ``preprocess`` has a step layerscope cannot map back.

        Examples:
            >>> from torch import nn
            >>> LoadedModel.from_module(nn.Linear(3, 2)).spec
            'in-memory model'
        """
        if not isinstance(model, nn.Module):
            raise BadArgumentError(f"expected a torch.nn.Module, got {type(model).__name__}")
        if categories is not None and (isinstance(categories, str) or not all(isinstance(c, str) for c in categories)):
            raise BadArgumentError("categories must be a list of class names (strings), index by index")
        return cls(
            model=model,
            spec=name or NAME,
            source=SOURCE,
            weights=WEIGHTS,
            pretrained=True,
            device=module_device(model),
            categories=list(categories) if categories is not None else None,
            preprocess=as_preprocess(preprocess, model),
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The C×H×W the weights were trained at: the probe's default input."""
        return (3, *(self.preprocess.crop or (224, 224)))

    @property
    def weights_label(self) -> str:
        return self.weights if self.pretrained else "random weights (untrained)"

    def weights_file(self) -> str | None:
        """The checkpoint the weights came from, as ``layerscope diff`` takes it: a ``--weights``
        file, the model file itself, a Hugging Face folder, or the cached file of published
        weights (torchvision's hub checkpoint, timm's); None for random or built-in weights."""
        if not self.pretrained:
            return None
        if self.source == "huggingface":
            return self.spec
        if is_path_weights(self.weights):
            return self.weights
        files = [path for path in self.files if path.suffix.lower() in FILE_SUFFIXES]
        return str(files[-1]) if files else None

    def diff_base(self) -> str | nn.Module | None:
        """What the app's ``d`` compares with: the weights file, or for a module handed over in
        Python (``from_module``) the module itself, its weights as they are in memory."""
        return self.model if self.source == SOURCE else self.weights_file()


def is_path_weights(weights: str) -> bool:
    """``--weights`` names a file (a state_dict to load), not a set of published weights."""
    return "/" in weights or weights.lower().endswith(FILE_SUFFIXES)


def module_device(model: nn.Module) -> torch.device:
    """Where the module's first parameter (else buffer) lives; cpu for a module with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
