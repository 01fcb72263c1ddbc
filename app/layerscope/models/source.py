"""The interface every kind of model spec implements, and the request it is handed.

``layerscope.models.load`` asks each source in order whether it claims a spec
(``claims``), and the first one builds the model (``load``); what every source
shares (the device, ``--weights PATH``, ``eval()``) stays in ``load_model``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from layerscope.models.loaded import LoadedModel


@dataclass(frozen=True, kw_only=True)
class LoadRequest:
    """One ``load_model`` call as a source sees it: the device already parsed, ``--weights
    auto`` already resolved to what is cached.

    ``load_arch`` loads another spec with random weights: what the file source loads a
    state_dict into (``--arch``), handed in so that no source imports the registry.
    """

    spec: str
    weights: str
    device: torch.device
    trust: bool
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    arch: str | None = None
    load_arch: Callable[[str], LoadedModel] | None = None


class ModelSource(Protocol):
    """One kind of model spec: torchvision names, ``timm:``, factories, files, Hugging Face."""

    name: str
    reads_own_weights: bool  # a file or folder that holds its weights: ``--weights PATH`` does not apply

    def claims(self, spec: str) -> bool:
        """Whether ``spec`` is this source's to load (asked in registry order)."""
        ...

    def auto_weights(self, spec: str) -> str:
        """What ``--weights auto`` stands for: weights already cached here, else ``"none"``."""
        ...

    def load(self, request: LoadRequest) -> LoadedModel:
        """The model ``request.spec`` names, on ``request.device`` (eval mode is set by the caller)."""
        ...
