"""Building a model on the meta device even when its builder computes with real tensors.

``with torch.device("meta")`` sends every tensor the builder creates to meta, which is
what keeps a 70-billion-parameter build free. Some builders compute their own layout
with tensors first: torchvision's RegNets derive their block widths with
``torch.round(...).tolist()``, which has no data on meta. For those, the second way
puts only what the model keeps on meta: each parameter and buffer is moved there as
it is registered (torch's registration hooks), while the builder's arithmetic runs on
the CPU. A parameter exists uninitialised on the CPU for a moment before it moves
(``torch.empty`` reserves no pages), and its initialisation runs on meta, for free.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules import module as nn_module

from layerscope.errors import LayerscopeError

META = torch.device("meta")


def build_on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with every parameter and buffer on meta; the builder's own exception if
    neither way works (a data-dependent builder on meta is the user's to hear about)."""
    try:
        with META:
            return build()
    except LayerscopeError:
        raise  # the user's arguments, already phrased: building again would say the same
    except Exception as first:
        try:
            with _registered_on_meta():
                model = build()
        except Exception:
            raise first from None
        if any(t.device != META for t in (*model.parameters(), *model.buffers())):
            raise first
        return model


@contextmanager
def _registered_on_meta() -> Iterator[None]:
    """Parameters and buffers registered in this thread go to meta as they are registered;
    other threads building at the same time are left alone."""
    builder = threading.get_ident()

    def parameter(_module: nn.Module, _name: str, param: nn.Parameter | None) -> nn.Parameter | None:
        if param is None or param.device == META or threading.get_ident() != builder:
            return None
        return nn.Parameter(param.to(META), requires_grad=param.requires_grad)

    def buffer(_module: nn.Module, _name: str, tensor: torch.Tensor | None) -> torch.Tensor | None:
        if tensor is None or tensor.device == META or threading.get_ident() != builder:
            return None
        return tensor.to(META)

    handles = [
        nn_module.register_module_parameter_registration_hook(parameter),
        nn_module.register_module_buffer_registration_hook(buffer),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
