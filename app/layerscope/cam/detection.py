"""Detectors: a box as the target, and the padding the detector adds removed from the map.

torchvision's detectors resize the image and pad it to a multiple of 32 before the
backbone, so a backbone map covers more than the photo. ``FrameRecorder`` reads the
real image size from the detector's own transform during the same forward pass and
crops the map to it; without that, the overlay would be shifted and squeezed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


def is_detection_model(model: nn.Module) -> bool:
    """torchvision's R-CNN family (Faster, Mask, Keypoint) and RetinaNet/FCOS/SSD transforms."""
    return type(getattr(model, "transform", None)).__name__ == "GeneralizedRCNNTransform"


@dataclass(frozen=True)
class BoxTarget:
    """The score of one detected box: the ``rank``-th best match, optionally of ``label``
    and overlapping ``box`` (x1, y1, x2, y2 in input pixels) by at least ``iou_threshold``.

    No match gives a zero score without a graph, hence an all-zero map, not an error.
    """

    label: int | None = None
    box: tuple[float, float, float, float] | None = None
    iou_threshold: float = 0.5
    rank: int = 0

    @property
    def description(self) -> str:
        parts = [f"label {self.label}" if self.label is not None else "any label"]
        if self.box is not None:
            parts.append(f"IoU ≥ {self.iou_threshold} with {tuple(round(v, 1) for v in self.box)}")
        return f"detected box #{self.rank} ({', '.join(parts)})"

    def __call__(self, output: Sequence[dict[str, Tensor]]) -> Tensor:
        return torch.stack([self._pick(detections) for detections in output])

    def _pick(self, detections: dict[str, Tensor]) -> Tensor:
        scores = detections["scores"]
        index = self.index(detections)
        return scores.new_zeros(()) if index is None else scores[index]

    def index(self, detections: dict[str, Tensor]) -> int | None:
        """Which detection this target scores (None: no match), so it can be drawn and listed."""
        scores = detections["scores"]
        keep = torch.arange(len(scores), device=scores.device)
        if self.label is not None:
            keep = keep[detections["labels"][keep] == self.label]
        if self.box is not None and len(keep):
            from torchvision.ops import box_iou

            wanted = torch.tensor([self.box], dtype=detections["boxes"].dtype, device=scores.device)
            ious = box_iou(detections["boxes"][keep], wanted)[:, 0]
            order = torch.argsort(ious, descending=True)
            keep = keep[order][ious[order] >= self.iou_threshold]
        else:
            keep = keep[torch.argsort(scores[keep], descending=True)]
        return int(keep[self.rank]) if len(keep) > self.rank else None


@dataclass(frozen=True)
class Detection:
    """One detected box of the first image, as the CLI table and the app's tab list it."""

    rank: int  # the detector's own order: best score first
    label: int
    name: str | None
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the photo's pixels

    @property
    def title(self) -> str:
        return f"{self.label} {self.name}" if self.name else str(self.label)


def detections(output: object, categories: Sequence[str] | None = None, limit: int = 5) -> list[Detection]:
    """The first image's best ``limit`` boxes from a detector's output (a list of dicts)."""
    found = output[0] if isinstance(output, list) and output and isinstance(output[0], dict) else {}
    boxes = found.get("boxes", torch.zeros(0, 4))
    names = list(categories or [])
    rows = []
    for rank in range(min(limit, len(boxes))):
        label = int(found["labels"][rank])
        rows.append(
            Detection(
                rank=rank,
                label=label,
                name=names[label] if label < len(names) else None,
                score=float(found["scores"][rank]),
                box=tuple(float(v) for v in boxes[rank].tolist()),
            )
        )
    return rows


def target_detection(output: object, label: int | None = None) -> int | None:
    """The rank of the box a map for ``label`` explains (the default ``BoxTarget``: the best box,
    or the best of that class); None when nothing matches."""
    if not (isinstance(output, list) and output and isinstance(output[0], dict)):
        return None
    return BoxTarget(label=label).index(output[0])


class FrameRecorder:
    """Records the detector's resized image size and padded batch size during the forward."""

    def __init__(self) -> None:
        self.fraction: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def attach(cls, model: nn.Module, handles: list[RemovableHandle]) -> "FrameRecorder":
        recorder = cls()
        handles.append(model.transform.register_forward_hook(recorder._hook))
        return recorder

    def _hook(self, _module: nn.Module, _inputs: object, output: object) -> None:
        images = output[0] if isinstance(output, tuple) else output
        sizes = getattr(images, "image_sizes", None)
        tensors = getattr(images, "tensors", None)
        if sizes and tensors is not None:
            padded_h, padded_w = tensors.shape[-2:]
            self.fraction = (sizes[0][0] / padded_h, sizes[0][1] / padded_w)

    def crop(self, grid: Tensor) -> Tensor:
        """The part of an ``N×C×h×w`` map that covers the image, not the padding."""
        h, w = grid.shape[-2:]
        return grid[..., : max(1, math.ceil(h * self.fraction[0])), : max(1, math.ceil(w * self.fraction[1]))]


def explained_detections(
    output: object, label: int | None, categories: Sequence[str] | None = None, limit: int = 5
) -> tuple[list[Detection], Detection | None]:
    """The best ``limit`` boxes and the one a map for ``label`` explains, listed too when tied
    scores (random weights) rank it lower; None when no box matches."""
    found = detections(output, categories, limit)
    index = target_detection(output, label)
    if index is None:
        return found, None
    if index >= len(found):
        found.append(detections(output, categories, limit=index + 1)[index])
    return found, next(d for d in found if d.rank == index)
