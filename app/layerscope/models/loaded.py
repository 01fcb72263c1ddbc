"""What a loaded model is: the module plus what the rest of layerscope needs to know about it.

Kept apart from the loaders so that image code (``layerscope.imaging``) and the CAM
pipeline can name a ``Preprocess`` or a ``LoadedModel`` without importing any source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
FILE_SUFFIXES = STATE_DICT_SUFFIXES + (".safetensors", ".jit", ".torchscript", ".pt2")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_SIDE = 4096  # pixels: the most a model's input may be on a side after resize and crop (also in configs)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the model's input; kept as numbers, not a transform object,
    so that a heatmap can be mapped back onto the original photo's geometry."""

    resize: int | tuple[int, int] | None = 256  # shorter side, or an exact H×W (Hugging Face ViT)
    crop: tuple[int, int] | None = (224, 224)  # None: keep the image's own size (detectors)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"  # of the resize: "bilinear", "bicubic" (timm's usual) or "nearest"


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
        cls, model: nn.Module, *, preprocess: object = None, categories: Sequence[str] | None = None,
        name: str | None = None,
    ) -> LoadedModel:
        """A module the caller holds, left as it is: see ``layerscope.models.own.from_module``.

        Example:
            >>> from torch import nn
            >>> LoadedModel.from_module(nn.Linear(3, 2)).spec
            'in-memory model'
        """
        from layerscope.models.own import from_module

        return from_module(model, preprocess=preprocess, categories=categories, name=name)

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


def is_path_weights(weights: str) -> bool:
    """``--weights`` names a file (a state_dict to load), not a set of published weights."""
    return "/" in weights or weights.lower().endswith(FILE_SUFFIXES)
