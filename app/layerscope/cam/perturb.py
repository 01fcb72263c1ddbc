"""Score-CAM's masked inputs and Ablation-CAM's zeroed channels: many forwards, in batches.

Progress is reported and cancellation checked between batches, so a long run can be
watched and stopped; every pass goes through ``model_guard`` like the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from layerscope.cam.hooks import model_guard
from layerscope.errors import LayerscopeError
from layerscope.probe import call_model

if TYPE_CHECKING:
    from layerscope.cam.core import CamSession

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool] | Any  # a callable, or anything with ``is_set()`` (threading.Event)


class CamCancelled(RuntimeError):
    """Raised when ``cancel`` asks a Score-CAM or Ablation-CAM run to stop; hooks are already gone."""


def _cancelled(cancel: Cancel | None) -> bool:
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if callable(is_set) else cancel())


class ModelPerturber:
    """Score-CAM's masked inputs and Ablation-CAM's zeroed channels, in batches.

    Progress is reported and ``cancel`` checked between batches.
    """

    def __init__(
        self, session: "CamSession", layer: str, batch_size: int, progress: Progress | None, cancel: Cancel | None
    ) -> None:
        if session.target is None:
            raise LayerscopeError("Score-CAM and Ablation-CAM need a target score; pass a target")
        self.session, self.layer = session, layer
        self.batch_size = max(1, int(batch_size))
        self.progress, self.cancel = progress, cancel
        self._upstream_once = True

    def base_scores(self) -> Tensor:
        assert self.session.base_scores_value is not None
        return self.session.base_scores_value.float()

    def _batches(self, channels: int) -> Iterator[tuple[int, list[int]]]:
        n = self.session.input.shape[0]
        total, done = n * channels, 0
        for image in range(n):
            for start in range(0, channels, self.batch_size):
                if _cancelled(self.cancel):
                    raise CamCancelled(f"cancelled after {done} of {total} perturbed passes")
                ks = list(range(start, min(start + self.batch_size, channels)))
                yield image, ks
                done += len(ks)
                if self.progress is not None:
                    self.progress(done, total)

    def masked_scores(self, activations: Tensor) -> Tensor:
        session = self.session
        n, channels = activations.shape[:2]
        scores = torch.zeros(n, channels, device=activations.device)
        with model_guard(session.model, grad=False):
            for image, ks in self._batches(channels):
                masks = F.interpolate(activations[image:image + 1, ks], size=session.input_hw, mode="bilinear",
                                      align_corners=False)[0]
                low = masks.amin(dim=(1, 2), keepdim=True)
                high = masks.amax(dim=(1, 2), keepdim=True)
                masks = (masks - low) / (high - low + 1e-7)
                batch = session.input[image:image + 1] * masks[:, None]
                out = call_model(session.model, batch)
                scores[image, ks] = session.target.for_image(image)(out).float()
        return scores

    def ablated_scores(self, channels: int) -> Tensor:
        session = self.session
        layout = session.layouts[self.layer]
        if layout.kind in ("levels", "custom"):
            raise LayerscopeError("ablationcam needs a layer with one output tensor; use eigencam or gradcam here")
        n = session.input.shape[0]
        scores = torch.zeros(n, channels, device=session.input.device)
        with model_guard(session.model, grad=False) as handles:
            current: list[int] = []
            handles.append(session.modules[self.layer].register_forward_hook(
                lambda _m, _i, out: layout.ablate(out[:1], current)))
            for image, ks in self._batches(channels):
                current[:] = ks
                out = self._ablated_forward(image, len(ks))
                scores[image, ks] = session.target.for_image(image)(out).float()
        return scores

    def _ablated_forward(self, image: int, count: int) -> object:
        """Run the layers before the target once, the ones after it on ``count`` ablated copies.

        A model that reuses its input's batch size after the layer cannot do that; it
        falls back, for good, to a full batch of copies.
        """
        x = self.session.input[image:image + 1]
        if self._upstream_once:
            try:
                out = call_model(self.session.model, x)
                if not isinstance(out, Tensor) or out.shape[0] == count:
                    return out
            except RuntimeError:
                pass
            self._upstream_once = False
        return call_model(self.session.model, x.expand(count, *x.shape[1:]))
