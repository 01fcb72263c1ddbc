"""Score-CAM's masks, and which of them need a forward pass of their own.

A channel's mask is its activation upsampled to the input (bilinear) and min-max scaled to
[0, 1]: ``(m − lo) / (hi − lo + ε)``. Two channels whose activations are identical have
identical masks, so their scores come from one forward. Every channel whose upsampled
activation is flat (``hi == lo``: an all-zero channel after a ReLU, common in a trained
network's last layer) gets a mask that is exactly zero, whatever the constant: all of them
score the same blank input, one forward for all. pytorch-grad-cam scales with ε = 1e-8
instead of 1e-7, which gives the same zero for a flat map, so those scores are its scores.

Flatness is judged on the upsampled mask itself, not on the activation: bilinear weights
that do not sum to exactly 1 in floating point can leave a non-zero constant a few ulps
uneven after upsampling, and then the scaling stretches that to a real mask, which must be
run like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-7


def score_masks(grid: Tensor, size: tuple[int, int]) -> Tensor:
    """``C×h×w`` activations of one image → ``C×H×W`` masks in [0, 1] at the input's ``size``."""
    masks = F.interpolate(grid[None], size=size, mode="bilinear", align_corners=False)[0]
    low = masks.amin(dim=(1, 2), keepdim=True)
    high = masks.amax(dim=(1, 2), keepdim=True)
    return (masks - low) / (high - low + EPS)


@dataclass(frozen=True)
class MaskPlan:
    """The forwards one image's Score-CAM needs: one per distinct mask.

    ``run`` holds the channels whose masks are run, in channel order; ``source[k]`` is the
    position in ``run`` of the mask channel ``k`` shares (its own, for most channels).
    """

    run: Tensor
    source: Tensor

    @property
    def saved(self) -> int:
        """Forwards that sharing spares: channels minus distinct masks."""
        return len(self.source) - len(self.run)

    def channels_per_run(self) -> Tensor:
        """How many channels take each run mask's score (for progress counted in channels)."""
        return torch.bincount(self.source, minlength=len(self.run))


def plan_masks(grid: Tensor, size: tuple[int, int]) -> MaskPlan:
    """Group one image's channels (``C×h×w``) by the mask they give at ``size``."""
    channels = grid.shape[0]
    rows = grid.reshape(channels, -1)
    _, group = torch.unique(rows, dim=0, return_inverse=True)  # identical activations
    constant = (rows.amax(dim=1) == rows.amin(dim=1)).nonzero()[:, 0]
    if len(constant):
        blank = constant[score_masks(grid[constant], size).reshape(len(constant), -1).eq(0).all(dim=1)]
        if len(blank):
            group[blank] = group[blank[0]].clone()  # every flat mask is the same zero mask
    keys, inverse = torch.unique(group, return_inverse=True)
    index = torch.arange(channels, device=grid.device)
    first = torch.full((len(keys),), channels, device=grid.device).scatter_reduce(0, inverse, index, "amin")
    order = first.argsort()
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order), device=grid.device)
    return MaskPlan(run=first[order], source=position[inverse])
