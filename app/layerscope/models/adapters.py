"""The questions the tree and the CAM code ask about a model, answered by whoever made it.

"Is this a text model?", "which layer would you explain?", "how do old layer names map
onto this one?": each ``ModelAdapter`` in ``ADAPTERS`` may answer, and the first
answer that is not ``None`` wins. The engine imports this module, never a model
source, so asking costs nothing for a model no adapter knows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from torch import nn

from layerscope.models.hf_adapter import TransformersAdapter

Renamer = Callable[[str], str | None]
T = TypeVar("T")


class ModelAdapter(Protocol):
    """Answers about the models one library makes; ``None`` where it has nothing to say."""

    def text_model_problem(self, model: nn.Module) -> str | None:
        """Why the model cannot take an image (its main input is token ids or audio)."""
        ...

    def suggested_layer(self, model: nn.Module) -> str | None:
        """The qualified name of the usual Grad-CAM target layer."""
        ...

    def checkpoint_renamer(self, model: nn.Module) -> Renamer | None:
        """How a layer name spelled as in a checkpoint or older code maps onto this model."""
        ...


ADAPTERS: tuple[ModelAdapter, ...] = (TransformersAdapter(),)


def _first(ask: Callable[[ModelAdapter], T | None]) -> T | None:
    for adapter in ADAPTERS:
        answer = ask(adapter)
        if answer is not None:
            return answer
    return None


def text_model_problem(model: nn.Module) -> str | None:
    """Why ``model`` cannot take an image, as one line for the user; ``None`` when it can."""
    return _first(lambda adapter: adapter.text_model_problem(model))


def suggested_layer(model: nn.Module) -> str | None:
    """The layer ``model``'s makers would explain, when an adapter knows its family."""
    return _first(lambda adapter: adapter.suggested_layer(model))


def checkpoint_renamer(model: nn.Module) -> Renamer | None:
    """Old spellings of ``model``'s layer names onto the new ones (``ModuleTree.resolve`` uses it)."""
    return _first(lambda adapter: adapter.checkpoint_renamer(model))
